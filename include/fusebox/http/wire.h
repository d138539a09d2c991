#pragma once
// Serialising an HTTP/1.1 message head ourselves: the data path writes [head, body] with one
// gathered send, which costs far less than Beast's generic serializer. Only for messages whose
// body is a complete string with Content-Length already set (prepare_payload()); never chunked.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

namespace fusebox::http {

// Appends "METHOD target HTTP/x.y\r\n" + fields + "\r\n" to `out`.
void append_request_head(const boost::beast::http::request<boost::beast::http::string_body>& req,
                         std::string& out);
// Appends "HTTP/x.y code reason\r\n" + fields + "\r\n" to `out`.
void append_response_head(
    const boost::beast::http::response<boost::beast::http::string_body>& res, std::string& out);

// prepare_payload() for a message with a complete string body, leaving the header alone when it
// already has exactly the right Content-Length and no Transfer-Encoding (a message passed on as
// it came): prepare_payload() would replace that field with an equal one.
void frame_payload(boost::beast::http::request<boost::beast::http::string_body>& req);
void frame_payload(boost::beast::http::response<boost::beast::http::string_body>& res);

}  // namespace fusebox::http
