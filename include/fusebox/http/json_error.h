#pragma once
// Every error fusebox makes itself is answered the way TF Serving answers errors, so clients
// parse one shape: a JSON object {"error": "<message>"} with Content-Type application/json.

#include <string>
#include <string_view>

#include "fusebox/http/message.h"
#include "fusebox/logging/logging.h"

namespace fusebox::http {

inline std::string json_error_body(std::string_view message) {
  std::string body;
  body.reserve(message.size() + 16);
  body += "{\"error\": \"";
  logging::append_json_escaped(body, message);
  body += "\"}";
  return body;
}

inline Response json_error_response(unsigned status, std::string_view message,
                                    unsigned version = 11) {
  namespace bhttp = boost::beast::http;
  Response res{static_cast<bhttp::status>(status), version};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = json_error_body(message);
  res.prepare_payload();
  return res;
}

}  // namespace fusebox::http
