#include "fusebox/http/wire.h"

#include <gtest/gtest.h>

namespace fusebox::http {
namespace {

namespace bhttp = boost::beast::http;
using Request = fusebox::http::Request;
using Response = fusebox::http::Response;

Request post(std::string body) {
  Request req{bhttp::verb::post, "/v1/models/m:predict", 11};
  req.body() = std::move(body);
  return req;
}

TEST(FramePayload, AddsContentLengthWhenMissing) {
  auto req = post("{}");
  frame_payload(req);
  EXPECT_EQ(req[bhttp::field::content_length], "2");
}

TEST(FramePayload, CorrectsAWrongContentLength) {
  auto req = post("{\"a\": 1}");
  req.set(bhttp::field::content_length, "2");
  frame_payload(req);
  EXPECT_EQ(req[bhttp::field::content_length], "8");
  EXPECT_EQ(req.count(bhttp::field::content_length), 1u);
}

TEST(FramePayload, ReplacesChunkedTransferEncoding) {
  auto req = post("{\"a\": 1}");
  req.set(bhttp::field::transfer_encoding, "chunked");
  frame_payload(req);
  EXPECT_EQ(req.count(bhttp::field::transfer_encoding), 0u);
  EXPECT_EQ(req[bhttp::field::content_length], "8");
}

TEST(FramePayload, LeavesARightContentLengthWhereItIs) {
  Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::content_length, "12");
  res.set("X-After", "1");
  res.body() = "{\"ok\": true}";
  frame_payload(res);
  std::string head;
  append_response_head(res, head);
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
            "X-After: 1\r\n\r\n")
      << "the field keeps its place: it was not replaced";
}

TEST(FramePayload, EmptyBodyIsFramedAsBeastWould) {
  Response res{bhttp::status::no_content, 11};
  res.set(bhttp::field::content_length, "0");
  Response expected = res;
  expected.prepare_payload();
  frame_payload(res);
  EXPECT_EQ(res.count(bhttp::field::content_length), expected.count(bhttp::field::content_length));
}

}  // namespace
}  // namespace fusebox::http
