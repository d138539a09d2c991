#include "fusebox/http/proxy_headers.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace fusebox::http {
namespace {

namespace bhttp = boost::beast::http;

// Header names in the container, in order, lowercased for comparison.
std::vector<std::string> names_of(const fusebox::http::Fields& headers) {
  std::vector<std::string> names;
  for (const auto& field : headers) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    names.push_back(std::move(name));
  }
  return names;
}

bool is_lower_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(ProxyHeaders, HopByHopNames) {
  for (const char* name :
       {"Connection", "connection", "KEEP-ALIVE", "Keep-Alive", "Proxy-Connection", "TE", "te",
        "Trailer", "Transfer-Encoding", "transfer-encoding", "Upgrade", "Proxy-Authenticate",
        "Proxy-Authorization"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (const char* name : {"", "Content-Type", "Content-Length", "Trailers", "X-Forwarded-For",
                           "Authorization", "Host", "Connection2", "Keep", "X-Request-Id"}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(ProxyHeaders, StripsFixedSetAndConnectionTokens) {
  fusebox::http::Fields headers;
  headers.insert("Host", "gw");
  headers.insert("Connection", "keep-alive, X-Foo ,\tx-bar\t,, close");
  headers.insert("Keep-Alive", "timeout=5");
  headers.insert("X-Foo", "1");
  headers.insert("X-BAR", "2");
  headers.insert("X-Baz", "3");
  headers.insert("Transfer-Encoding", "chunked");
  headers.insert("TE", "trailers");
  headers.insert("Trailer", "X-Checksum");
  headers.insert("Upgrade", "h2c");
  headers.insert("Proxy-Connection", "keep-alive");
  headers.insert("Proxy-Authorization", "Basic eA==");
  headers.insert("Proxy-Authenticate", "Basic");
  headers.insert("Content-Type", "application/json");
  headers.insert("Connection", "X-Second");  // a repeated Connection header counts too
  headers.insert("X-Second", "4");

  strip_hop_by_hop(headers);

  EXPECT_EQ(names_of(headers), (std::vector<std::string>{"host", "x-baz", "content-type"}));
}

TEST(ProxyHeaders, ConnectionNamingItselfOrNothingIsHarmless) {
  fusebox::http::Fields headers;
  headers.insert("Connection", "connection, CONNECTION");
  headers.insert("Accept", "*/*");
  strip_hop_by_hop(headers);
  EXPECT_EQ(names_of(headers), (std::vector<std::string>{"accept"}));

  fusebox::http::Fields empty_tokens;
  empty_tokens.insert("Connection", " , ,, ");
  empty_tokens.insert("Date", "x");
  strip_hop_by_hop(empty_tokens);
  EXPECT_EQ(names_of(empty_tokens), (std::vector<std::string>{"date"}));
}

TEST(ProxyHeaders, NominatedHeaderNextToConnectionIsRemoved) {
  // Removing a field that directly follows the Connection fields must not disturb the walk.
  fusebox::http::Fields headers;
  headers.insert("Connection", "X-Next, X-Other");
  headers.insert("X-Next", "1");
  headers.insert("X-Next", "2");
  headers.insert("X-Other", "3");
  headers.insert("X-Keep", "4");
  strip_hop_by_hop(headers);
  EXPECT_EQ(names_of(headers), (std::vector<std::string>{"x-keep"}));
}

TEST(ProxyHeaders, ForwardedForCreatedAppendedAndMerged) {
  fusebox::http::Fields none;
  append_forwarded_for(none, "192.0.2.7");
  EXPECT_EQ(none["X-Forwarded-For"], "192.0.2.7");

  fusebox::http::Fields one;
  one.insert("X-Forwarded-For", "203.0.113.1");
  append_forwarded_for(one, "192.0.2.7");
  EXPECT_EQ(one["X-Forwarded-For"], "203.0.113.1, 192.0.2.7");

  fusebox::http::Fields repeated;
  repeated.insert("X-Forwarded-For", "203.0.113.1, 198.51.100.2");
  repeated.insert("Host", "gw");
  repeated.insert("x-forwarded-for", "198.51.100.3");
  repeated.insert("X-Forwarded-For", "");
  append_forwarded_for(repeated, "2001:db8::1");
  EXPECT_EQ(repeated.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(repeated["X-Forwarded-For"], "203.0.113.1, 198.51.100.2, 198.51.100.3, 2001:db8::1");
  EXPECT_EQ(repeated["Host"], "gw");
}

TEST(ProxyHeaders, RequestIdAcceptance) {
  EXPECT_TRUE(is_acceptable_request_id("a"));
  EXPECT_TRUE(is_acceptable_request_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_TRUE(is_acceptable_request_id("req:42/abc_DEF.~!"));
  EXPECT_TRUE(is_acceptable_request_id(std::string(128, 'x')));
  EXPECT_FALSE(is_acceptable_request_id(""));
  EXPECT_FALSE(is_acceptable_request_id(std::string(129, 'x')));
  for (const char* bad : {"has space", "tab\there", "nl\n", "del\x7f", "caf\xC3\xA9", "\x01"}) {
    EXPECT_FALSE(is_acceptable_request_id(bad)) << bad;
  }
}

TEST(ProxyHeaders, IdGeneratorFormatsAndIsDeterministicPerSeed) {
  IdGenerator a(42), b(42), c(43);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string rid = a.request_id();
    EXPECT_EQ(rid.size(), 32u);
    EXPECT_TRUE(is_lower_hex(rid)) << rid;
    EXPECT_EQ(rid, b.request_id());
    EXPECT_TRUE(seen.insert(rid).second) << "repeated id " << rid;

    const std::string trace = a.trace_id();
    EXPECT_EQ(trace, b.trace_id());
    EXPECT_EQ(trace.size(), 32u);
    EXPECT_TRUE(is_lower_hex(trace)) << trace;
    EXPECT_NE(trace, std::string(32, '0'));

    const std::string span = a.span_id();
    EXPECT_EQ(span, b.span_id());
    EXPECT_EQ(span.size(), 16u);
    EXPECT_TRUE(is_lower_hex(span)) << span;
    EXPECT_NE(span, std::string(16, '0'));
  }
  EXPECT_EQ(seen.count(c.request_id()), 0u);
}

TEST(ProxyHeaders, TraceparentValidation) {
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string parent = "00f067aa0ba902b7";
  const std::string zero_trace(32, '0');
  const std::string zero_parent(16, '0');
  auto tp = [](const std::string& v, const std::string& t, const std::string& p,
               const std::string& f) { return v + "-" + t + "-" + p + "-" + f; };

  const std::vector<std::string> valid = {
      tp("00", trace, parent, "01"),
      tp("00", trace, parent, "00"),
      tp("00", trace, parent, "ff"),  // unknown flag bits are allowed
      tp("01", trace, parent, "01"),  // future versions: parse the 00 layout...
      tp("cc", trace, parent, "01") + "-what-the-future-will-be-like",  // ...extra after '-'
      tp("fe", trace, parent, "09") + "-",
  };
  for (const auto& value : valid) EXPECT_TRUE(is_valid_traceparent(value)) << value;

  const std::vector<std::string> invalid = {
      "",
      "00",
      tp("ff", trace, parent, "01"),  // version ff is forbidden
      tp("0g", trace, parent, "01"),
      tp("0A", trace, parent, "01"),  // HEXDIGLC only
      tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", parent, "01"),
      tp("00", trace, "00F067AA0BA902B7", "01"),
      tp("00", trace, parent, "0A"),
      tp("00", zero_trace, parent, "01"),
      tp("00", trace, zero_parent, "01"),
      tp("cc", zero_trace, parent, "01"),
      tp("00", trace, parent, "01") + "-",  // version 00 is exactly 55 characters
      tp("00", trace, parent, "01") + "0",
      tp("00", trace, parent, "1"),
      tp("00", trace.substr(1), parent, "01"),
      tp("00", trace, parent.substr(1), "011"),
      tp("cc", trace, parent, "01") + ".what",  // a future version adds fields after '-'
      tp("cc", trace, parent, "0"),
      "00_" + trace + "-" + parent + "-01",
      "00-" + trace + "_" + parent + "-01",
      "00-" + trace + "-" + parent + "_01",
      tp("00", trace.substr(0, 31) + "x", parent, "01"),
      " " + tp("00", trace, parent, "01").substr(1),
  };
  for (const auto& value : invalid) EXPECT_FALSE(is_valid_traceparent(value)) << value;
}

TEST(ProxyHeaders, TraceIdOfAndMakeTraceparent) {
  const std::string value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  EXPECT_EQ(trace_id_of(value), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(trace_id_of("00-garbage"), "");
  EXPECT_EQ(trace_id_of("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), "");

  IdGenerator ids(7), same(7);
  const std::string made = make_traceparent(ids);
  EXPECT_TRUE(is_valid_traceparent(made)) << made;
  EXPECT_EQ(made.size(), 55u);
  EXPECT_EQ(made.substr(0, 3), "00-");
  EXPECT_EQ(made.substr(52), "-01");
  EXPECT_EQ(trace_id_of(made), same.trace_id());
  EXPECT_EQ(made.substr(36, 16), same.span_id());
  EXPECT_NE(make_traceparent(ids), made);
}

}  // namespace
}  // namespace fusebox::http
