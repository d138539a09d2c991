#include "fusebox/http/wire.h"

#include <boost/beast/http/status.hpp>
#include <charconv>

namespace fusebox::http {
namespace {

namespace bhttp = boost::beast::http;

template <class String>
void append(String& out, boost::beast::string_view s) {
  out.append(s.data(), s.size());
}

template <class String>
void append_version(String& out, unsigned version) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
}

// The serialized size of the fields, so the head is written with one allocation at most.
std::size_t fields_size(const Fields& fields) {
  std::size_t size = 2;
  for (const auto& field : fields) size += field.name_string().size() + field.value().size() + 4;
  return size;
}

template <class String>
void append_fields(const Fields& fields, String& out) {
  for (const auto& field : fields) {
    append(out, field.name_string());
    out += ": ";
    append(out, field.value());
    out += "\r\n";
  }
  out += "\r\n";
}

template <bool isRequest>
bool framed_already(const bhttp::message<isRequest, bhttp::string_body, Fields>& m) {
  const auto size = m.body().size();
  if (size == 0) return false;
  // One walk over the (few) fields, by their parsed codes: cheaper than three name lookups.
  boost::beast::string_view length;
  int lengths = 0;
  for (const auto& field : m) {
    if (field.name() == bhttp::field::transfer_encoding) return false;
    if (field.name() == bhttp::field::content_length && ++lengths == 1) length = field.value();
  }
  if (lengths != 1) return false;
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), size);
  return length == boost::beast::string_view(digits, end - digits);
}

template <class String>
void append_head(const Request& req, String& out) {
  out.reserve(out.size() + req.method_string().size() + req.target().size() + 12 +
              fields_size(req));
  append(out, req.method_string());
  out += ' ';
  append(out, req.target());
  out += ' ';
  append_version(out, req.version());
  out += "\r\n";
  append_fields(req, out);
}

}  // namespace

void frame_payload(Request& req) {
  if (!framed_already(req)) req.prepare_payload();
}

void frame_payload(Response& res) {
  if (!framed_already(res)) res.prepare_payload();
}

void append_request_head(const Request& req, std::string& out) { append_head(req, out); }
void append_request_head(const Request& req, PooledString& out) { append_head(req, out); }

void append_response_head(const Response& res, std::string& out) {
  out.reserve(out.size() + 48 + fields_size(res));
  append_version(out, res.version());
  out += ' ';
  out += std::to_string(res.result_int());
  out += ' ';
  auto reason = res.reason();
  append(out, reason.empty() ? bhttp::obsolete_reason(res.result()) : reason);
  out += "\r\n";
  append_fields(res, out);
}

}  // namespace fusebox::http
