#include "fusebox/http/proxy_headers.h"

#include <boost/beast/core/string.hpp>
#include <boost/container/small_vector.hpp>

namespace fusebox::http {
namespace {

namespace beast = boost::beast;

constexpr std::string_view kForwardedFor = "X-Forwarded-For";
constexpr char kHexDigits[] = "0123456789abcdef";

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `fn` for each non-empty, OWS-trimmed element of a comma-separated list.
template <class Fn>
void for_each_list_element(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// Writes `v` as 16 lowercase hex digits at `out`.
void write_hex64(char* out, std::uint64_t v) {
  for (int i = 15; i >= 0; --i) {
    out[i] = kHexDigits[v & 0xF];
    v >>= 4;
  }
}

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool is_all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// The fixed hop-by-hop set, by Beast's field codes: every name in it is a known field, so a
// header parsed with another code (or none) is never one of them.
bool is_hop_by_hop_field(boost::beast::http::field name) {
  using boost::beast::http::field;
  switch (name) {
    case field::connection:
    case field::keep_alive:
    case field::proxy_connection:
    case field::te:
    case field::trailer:
    case field::transfer_encoding:
    case field::upgrade:
    case field::proxy_authenticate:
    case field::proxy_authorization:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  return is_hop_by_hop_field(boost::beast::http::string_to_field(name));
}

void strip_hop_by_hop(Fields& headers) {
  // One walk over the fields. The names the Connection fields nominate are views into them,
  // so those fields go last, in a second walk.
  boost::container::small_vector<std::string_view, 8> nominated;
  const auto connection = headers.equal_range(boost::beast::http::field::connection);
  for (auto it = connection.first; it != connection.second; ++it) {
    for_each_list_element(it->value(), [&](std::string_view token) {
      if (!beast::iequals(token, "Connection")) nominated.push_back(token);
    });
  }
  bool has_connection = connection.first != connection.second;
  auto is_nominated = [&](std::string_view name) {
    for (std::string_view token : nominated) {
      if (beast::iequals(name, token)) return true;
    }
    return false;
  };
  for (auto it = headers.begin(); it != headers.end();) {
    const auto code = it->name();
    if (code != boost::beast::http::field::connection &&
        (is_hop_by_hop_field(code) || is_nominated(it->name_string()))) {
      it = headers.erase(it);
    } else {
      ++it;
    }
  }
  if (has_connection) headers.erase(boost::beast::http::field::connection);
}

void append_forwarded_for(Fields& headers, std::string_view client_ip) {
  std::string merged;
  const auto existing = headers.equal_range(kForwardedFor);
  for (auto it = existing.first; it != existing.second; ++it) {
    const std::string_view value = trim_ows(it->value());
    if (value.empty()) continue;
    if (!merged.empty()) merged.append(", ");
    merged.append(value);
  }
  if (!client_ip.empty()) {
    if (!merged.empty()) merged.append(", ");
    merged.append(client_ip);
  }
  if (merged.empty()) {
    headers.erase(kForwardedFor);
  } else {
    headers.set(kForwardedFor, merged);
  }
}

bool is_acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

IdGenerator::IdGenerator(std::uint64_t seed) : rng_(seed) {}

std::string IdGenerator::request_id() {
  std::string id(kRequestIdLength, '0');
  write_request_id(id.data());
  return id;
}

void IdGenerator::write_request_id(char* out) {
  write_hex64(out, rng_());
  write_hex64(out + 16, rng_());
}

void IdGenerator::write_trace_id(char* out) {
  std::uint64_t high = rng_();
  std::uint64_t low = rng_();
  while ((high | low) == 0) low = rng_();  // W3C: the all-zero trace-id is invalid
  write_hex64(out, high);
  write_hex64(out + 16, low);
}

void IdGenerator::write_span_id(char* out) {
  std::uint64_t value = rng_();
  while (value == 0) value = rng_();  // W3C: the all-zero parent-id is invalid
  write_hex64(out, value);
}

std::string IdGenerator::trace_id() {
  std::string id(32, '0');
  write_trace_id(id.data());
  return id;
}

std::string IdGenerator::span_id() {
  std::string id(16, '0');
  write_span_id(id.data());
  return id;
}

// W3C Trace Context level 1, section 3.2 ("traceparent Header") and 4.3 ("Versioning of
// traceparent"): version-format = trace-id "-" parent-id "-" trace-flags, all HEXDIGLC.
bool is_valid_traceparent(std::string_view value) {
  constexpr std::size_t kLength = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  if (value.size() < kLength) return false;
  const std::string_view version = value.substr(0, 2);
  if (!is_lower_hex(version) || version == "ff") return false;
  if (version == "00") {
    if (value.size() != kLength) return false;
  } else if (value.size() > kLength && value[kLength] != '-') {
    return false;  // a future version may append fields, each after a '-'
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  const std::string_view trace = value.substr(3, 32);
  const std::string_view parent = value.substr(36, 16);
  const std::string_view flags = value.substr(53, 2);
  return is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) &&
         !is_all_zero(trace) && !is_all_zero(parent);
}

std::string_view trace_id_of(std::string_view traceparent) {
  if (!is_valid_traceparent(traceparent)) return {};
  return trace_id_of_valid(traceparent);
}

std::string make_traceparent(IdGenerator& ids) {
  std::string value(kTraceparentLength, '\0');
  write_traceparent(ids, value.data());
  return value;
}

void write_traceparent(IdGenerator& ids, char* out) {
  constexpr std::string_view kLayout = "00-................................-................-01";
  static_assert(kLayout.size() == kTraceparentLength);
  kLayout.copy(out, kLayout.size());
  ids.write_trace_id(out + 3);
  ids.write_span_id(out + 36);
}

}  // namespace fusebox::http
