#pragma once
// Serialising an HTTP/1.1 message head ourselves: the data path writes [head, body] with one
// gathered send, which costs far less than Beast's generic serializer. Only for messages whose
// body is a complete string with Content-Length already set (prepare_payload()); never chunked.

#include <string>

#include "fusebox/http/message.h"

namespace fusebox::http {

// Appends "METHOD target HTTP/x.y\r\n" + fields + "\r\n" to `out`.
void append_request_head(const Request& req, std::string& out);
void append_request_head(const Request& req, PooledString& out);
// Appends "HTTP/x.y code reason\r\n" + fields + "\r\n" to `out`.
void append_response_head(const Response& res, std::string& out);

// prepare_payload() for a message with a complete string body, leaving the header alone when it
// already has exactly the right Content-Length and no Transfer-Encoding (a message passed on as
// it came): prepare_payload() would replace that field with an equal one.
void frame_payload(Request& req);
void frame_payload(Response& res);

}  // namespace fusebox::http
