#pragma once
// Header rules applied when fusebox forwards a request or a response (RFC 9110 section 7.6):
// hop-by-hop headers are dropped, X-Forwarded-For is appended, X-Request-Id and W3C
// traceparent are kept or generated. Pure functions over Beast header containers.

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "fusebox/http/message.h"

namespace fusebox::http {

// True for the fixed hop-by-hop set (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization). Case-insensitive.
bool is_hop_by_hop(std::string_view name);

// Removes the fixed hop-by-hop set and every header named in the Connection header(s)
// (comma-separated tokens, case-insensitive, optional whitespace around each token).
void strip_hop_by_hop(Fields& headers);

// Appends `client_ip` to X-Forwarded-For (creating it), merging repeated X-Forwarded-For
// headers into one comma-separated value first ("a, b" + "c" + ip -> "a, b, c, ip"; empty
// values are dropped).
void append_forwarded_for(Fields& headers, std::string_view client_ip);

// A request id is accepted from the client when it is 1..128 visible ASCII characters;
// otherwise a fresh one is generated.
bool is_acceptable_request_id(std::string_view id);

// Fast, non-cryptographic id source, one per thread. Ids are 32 lowercase hex digits
// (128 random bits); trace/span ids follow W3C Trace Context (never all zero).
// Not thread-safe: one instance per thread.
inline constexpr std::size_t kRequestIdLength = 32;
inline constexpr std::size_t kTraceparentLength = 55;

class IdGenerator {
 public:
  explicit IdGenerator(std::uint64_t seed);
  std::string request_id();
  void write_request_id(char* out);  // the kRequestIdLength hex digits of a request id at `out`
  std::string trace_id();   // 32 hex
  std::string span_id();    // 16 hex
  void write_trace_id(char* out);  // the 32 hex digits of a trace id at `out`
  void write_span_id(char* out);   // the 16 hex digits of a span id at `out`
 private:
  std::mt19937_64 rng_;
};

// Validates a W3C traceparent header value ("00-<32hex>-<16hex>-<2hex>", lowercase hex, ids
// not all zero). Version ff is invalid; a future version (01..fe) is accepted when its first 55
// characters have the version-00 layout and the next character, if any, is '-'.
bool is_valid_traceparent(std::string_view value);
// The trace-id part of a valid traceparent (a view into `traceparent`); empty if not valid.
std::string_view trace_id_of(std::string_view traceparent);
// The same for a traceparent already known to be valid (checked, or made by make_traceparent).
inline std::string_view trace_id_of_valid(std::string_view traceparent) {
  return traceparent.substr(3, 32);
}
// A fresh traceparent for a request that came without a valid one (sampled flag 01).
std::string make_traceparent(IdGenerator& ids);
// The same written at `out` (kTraceparentLength characters): no string made.
void write_traceparent(IdGenerator& ids, char* out);

}  // namespace fusebox::http
