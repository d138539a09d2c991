// HTTP/1.1 on the client side of fusebox: limits, timeouts, framing rules that close
// request-smuggling gaps, keep-alive, pipelining, HTTP/1.0 and Expect: 100-continue.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "gateway_fixture.h"
#include "scripted_backend.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using std::chrono::steady_clock;

constexpr Millis kCloseWait{3000};

std::string predict_request(std::string_view body, std::string_view extra_headers = {}) {
  return "POST " + std::string(kPredict) +
         " HTTP/1.1\r\nHost: fusebox\r\nContent-Type: application/json\r\n" +
         std::string(extra_headers) + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

class ProtocolTest : public GatewayTest {
 protected:
  // One sim, one route; `http` lines go under listeners.http.
  void start(std::vector<std::string> http = {}) {
    const auto port = start_sims(1).at(0);
    auto config = single_route_config({port});
    config.http = std::move(http);
    start_gateway(config);
  }

  std::uint16_t sim_port() { return sim(0).port; }

  // Sends `bytes` on a fresh connection, expects a JSON error with `status`, then the close.
  void expect_rejected_and_closed(std::string_view bytes, int status, std::string_view error) {
    auto c = client();
    c.send_raw(bytes);
    const auto outcome = c.read_raw_response();
    ASSERT_TRUE(outcome.ok()) << outcome.message;
    const auto& r = *outcome.response;
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_EQ(json_of(r).at("error"), error);
    EXPECT_TRUE(c.connection_closed(kCloseWait)) << "fusebox must close the connection";
  }

  // Sends `bytes` (an incomplete request) with a 300 ms timeout configured, and expects a 408
  // with `error` about that long after, then the close; nothing more reaches the backend than
  // the `served` requests `c` had made before.
  void expect_timed_out(std::string_view bytes, std::string_view error, HttpClient c,
                        int served = 0) {
    const auto begin = steady_clock::now();
    c.send_raw(bytes);
    const auto outcome = c.read_raw_response(Millis{3000});
    const auto elapsed = std::chrono::duration_cast<Millis>(steady_clock::now() - begin);
    ASSERT_TRUE(outcome.ok()) << outcome.message;
    EXPECT_EQ(outcome.response->status, 408);
    EXPECT_EQ(outcome.response->header("Content-Type"), "application/json");
    EXPECT_EQ(json_of(*outcome.response).at("error"), error);
    EXPECT_GE(elapsed.count(), 250);
    EXPECT_LT(elapsed.count(), 900) << "not within 3x the 300 ms timeout";
    EXPECT_TRUE(c.connection_closed(kCloseWait));
    EXPECT_EQ(sim_stats(sim_port()).at("requests"), served);
  }
  void expect_timed_out(std::string_view bytes, std::string_view error) {
    expect_timed_out(bytes, error, client());
  }

  // Expects the idle timeout (`idle`) to close `c`'s connection silently, counting from now.
  static void expect_closed_when_idle(HttpClient& c, Millis idle) {
    const auto begin = steady_clock::now();
    EXPECT_TRUE(c.connection_closed(kCloseWait)) << "the idle timeout must close the connection";
    const auto elapsed = std::chrono::duration_cast<Millis>(steady_clock::now() - begin);
    EXPECT_GE(elapsed.count(), idle.count() * 7 / 8) << "closed before the idle timeout";
    EXPECT_LT(elapsed.count(), idle.count() * 3) << "not within 3x idle_timeout";
  }
};

TEST_F(ProtocolTest, BodyOverLimitIs413AndClosesTheConnection) {
  start({"max_request_body: 1KiB"});
  const std::string body(2048, 'x');
  expect_rejected_and_closed(predict_request(body), 413, "request body too large");
  // Exactly at the limit is fine.
  std::string at_limit = R"({"instances": [1.0]})";
  at_limit.insert(at_limit.size() - 1, std::string(1024 - at_limit.size(), ' '));
  ASSERT_EQ(at_limit.size(), 1024u);
  auto c = client();
  EXPECT_EQ(c.post(kPredict, at_limit).status, 200);
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 1);
}

TEST_F(ProtocolTest, HeaderOverLimitIs431) {
  start({"max_request_headers: 1KiB"});
  const std::string big_header = "X-Big: " + std::string(4096, 'h') + "\r\n";
  expect_rejected_and_closed(predict_request(kThreeInstances, big_header), 431,
                             "request header fields too large");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0);
}

TEST_F(ProtocolTest, SlowHeaderIs408AfterTheHeaderTimeout) {
  start({"request_header_timeout: 300ms"});
  expect_timed_out("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\nContent-Le",
                   "request header not received within the timeout");
}

TEST_F(ProtocolTest, SlowBodyIs408AfterTheBodyTimeout) {
  start({"request_body_timeout: 300ms"});
  expect_timed_out("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
                   "Content-Length: 30\r\n\r\n{\"instances\"",
                   "request body not received within the timeout");
}

// A predict body of `n` instances of 0.5 (tfs-sim answers 2.25 for each), about 5 bytes each.
std::string large_predict_body(std::size_t n) {
  std::string body = R"({"instances": [)";
  for (std::size_t i = 0; i < n; ++i) body += i ? ", 0.5" : "0.5";
  return body + "]}";
}

// Bodies from 16 KiB on are read past the HTTP parser, in pieces of up to 256 KiB; these
// cover that path: a body arriving in parts, keep-alive and pipelining after it, and a stall.
TEST_F(ProtocolTest, LargeBodyArrivingInPartsIsForwardedWhole) {
  start();
  const std::size_t n = 60000;  // about 300 KiB: more than one 256 KiB piece
  const std::string request = predict_request(large_predict_body(n));
  ASSERT_GT(request.size(), 256u * 1024);
  auto c = client();
  // The header with the first bytes, then the rest in three writes.
  std::size_t sent = 0;
  for (std::size_t part : {std::size_t{10'000}, std::size_t{100'000}, std::size_t{150'000},
                           request.size()}) {
    part = std::min(part, request.size());
    c.send_raw(std::string_view(request).substr(sent, part - sent));
    sent = part;
  }
  const auto outcome = c.read_raw_response();
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  ASSERT_EQ(outcome.response->status, 200) << outcome.response->body.substr(0, 300);
  const auto predictions = json_of(*outcome.response).at("predictions");
  ASSERT_EQ(predictions.size(), n);
  EXPECT_EQ(predictions.at(0), 2.25);
  EXPECT_EQ(predictions.at(n - 1), 2.25);

  // The connection then serves a small request (it does not wait for another large piece)...
  EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  // ...and a large request with a small one pipelined behind it in the same write.
  c.send_raw(predict_request(large_predict_body(5000)) + predict_request(R"({"instances": [4.0]})"));
  const auto first = c.read_raw_response();
  ASSERT_TRUE(first.ok()) << first.message;
  EXPECT_EQ(json_of(*first.response).at("predictions").size(), 5000u);
  const auto second = c.read_raw_response();
  ASSERT_TRUE(second.ok()) << second.message;
  EXPECT_EQ(second.response->body, R"({"predictions": [4.0]})");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 4);
}

TEST_F(ProtocolTest, LargeBodyThatStallsIs408AfterTheBodyTimeout) {
  start({"request_body_timeout: 300ms"});
  expect_timed_out("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
                   "Content-Length: 100000\r\n\r\n" + std::string(40'000, ' '),
                   "request body not received within the timeout");
}

TEST_F(ProtocolTest, ClientGoneMidLargeBodyForwardsNothing) {
  start();
  {
    auto c = client();
    c.send_raw("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
               "Content-Length: 100000\r\n\r\n" + std::string(40'000, ' '));
    c.close();
  }
  // fusebox carries on: the next client is served, and nothing half-read went upstream.
  EXPECT_EQ(client().post(kPredict, kThreeInstances).status, 200);
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 1);
}

TEST_F(ProtocolTest, MalformedRequestLineIs400) {
  start();
  expect_rejected_and_closed("GARBAGE\r\n\r\n", 400, "malformed request: bad method");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0);
}

TEST_F(ProtocolTest, ContentLengthWithTransferEncodingIs400) {
  start();
  auto c = client();
  c.send_raw(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
      "GET /v1/models/half_plus_two HTTP/1.1\r\nHost: fusebox\r\n\r\n");
  const auto outcome = c.read_raw_response();
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(outcome.response->status, 400);
  EXPECT_EQ(outcome.response->header("Connection"), "close");
  EXPECT_TRUE(c.connection_closed(kCloseWait));
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0)
      << "nothing of a smuggling attempt is forwarded";
}

TEST_F(ProtocolTest, DuplicateContentLengthIs400) {
  start();
  expect_rejected_and_closed(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
      "Content-Length: 30\r\nContent-Length: 30\r\n\r\n" +
          std::string(kThreeInstances),
      400, "multiple Content-Length headers");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0);
}

TEST_F(ProtocolTest, TransferEncodingOtherThanChunkedIs400) {
  start();
  expect_rejected_and_closed(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
      "Transfer-Encoding: gzip\r\n\r\nabc",
      400, "unsupported Transfer-Encoding");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0);
}

TEST_F(ProtocolTest, ChunkedRequestBodyIsAccepted) {
  start();
  auto c = client();
  const std::string body(kThreeInstances);
  const std::string a = body.substr(0, 10);
  const std::string b = body.substr(10);
  auto hex = [](std::size_t n) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%zx", n);
    return std::string(buf);
  };
  c.send_raw(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      hex(a.size()) + "\r\n" + a + "\r\n" + hex(b.size()) + "\r\n" + b + "\r\n0\r\n\r\n");
  const auto outcome = c.read_raw_response();
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(outcome.response->status, 200);
  EXPECT_EQ(outcome.response->body, kThreePredictions);
}

TEST_F(ProtocolTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  auto c = client();
  for (int i = 0; i < 5; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, kThreePredictions);
    EXPECT_FALSE(r.has_header("Connection")) << "HTTP/1.1 keep-alive is the default";
  }
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(c.connections_opened(), 1);
}

// An idle keep-alive connection waits without buffers: waiting longer than the header timeout
// is fine (that timeout starts with the first bytes), and the idle timeout closes it silently.
TEST_F(ProtocolTest, IdleKeepAliveConnectionIsServedAgainThenClosedAfterTheIdleTimeout) {
  start({"request_header_timeout: 200ms", "idle_timeout: 800ms"});
  auto c = client();
  EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  std::this_thread::sleep_for(Millis{400});
  const auto again = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, kThreePredictions);
  EXPECT_EQ(c.connections_opened(), 1);
  expect_closed_when_idle(c, Millis{800});
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 2);
}

// A connection its client has reused waits for the next request with its buffers, for at most
// the shortest configured timeout (here the header timeout), then without them. Both waits
// serve the next request, and the idle timeout still closes it.
TEST_F(ProtocolTest, ReusedConnectionIsServedWithinAndAfterItsBufferedWaitThenClosedWhenIdle) {
  start({"request_header_timeout: 200ms", "idle_timeout: 800ms"});
  auto c = client();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  std::this_thread::sleep_for(Millis{100});  // within the buffered wait
  EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  std::this_thread::sleep_for(Millis{450});  // past it: waiting without buffers
  const auto again = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, kThreePredictions);
  EXPECT_EQ(c.connections_opened(), 1);
  expect_closed_when_idle(c, Millis{800});  // not at the end of the buffered wait
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 5);
}

// When the idle timeout is the shortest, the buffered wait ends with it: the connection closes
// silently (no 408: no request had begun).
TEST_F(ProtocolTest, ReusedConnectionIsClosedSilentlyAtTheIdleTimeout) {
  start({"request_header_timeout: 5s", "idle_timeout: 300ms"});
  auto c = client();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  expect_closed_when_idle(c, Millis{300});
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 3);
}

// On a reused connection the header timeout starts with the first bytes of the next request,
// which its buffered wait reads: half a header, then silence, is a 408 that long after.
TEST_F(ProtocolTest, ReusedConnectionSlowHeaderIs408AfterTheHeaderTimeout) {
  start({"request_header_timeout: 300ms", "idle_timeout: 5s"});
  auto c = client();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  std::this_thread::sleep_for(Millis{150});  // the header timeout must not count this wait
  expect_timed_out("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\nContent-Le",
                   "request header not received within the timeout", std::move(c), 3);
}

TEST_F(ProtocolTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  auto c = client();
  std::string batch;
  for (int i = 1; i <= 3; ++i) {
    batch += predict_request(R"({"instances": [)" + std::to_string(i) + ".0]}",
                             "X-Request-Id: pipe-" + std::to_string(i) + "\r\n");
  }
  c.send_raw(batch);  // one write
  const char* expected[] = {R"({"predictions": [2.5]})", R"({"predictions": [3.0]})",
                            R"({"predictions": [3.5]})"};
  for (int i = 1; i <= 3; ++i) {
    SCOPED_TRACE(i);
    const auto outcome = c.read_raw_response();
    ASSERT_TRUE(outcome.ok()) << outcome.message;
    EXPECT_EQ(outcome.response->status, 200);
    EXPECT_EQ(outcome.response->header("X-Request-Id"), "pipe-" + std::to_string(i));
    EXPECT_EQ(outcome.response->body, expected[i - 1]);
  }
  EXPECT_FALSE(c.connection_closed(Millis{100})) << "the connection stays open";
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 3);
}

TEST_F(ProtocolTest, Http10RequestIsAnsweredAndClosed) {
  start();
  auto c = client();
  c.send_raw("GET /v1/models/half_plus_two HTTP/1.0\r\n\r\n");
  const auto outcome = c.read_raw_response();
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(outcome.response->status, 200);
  EXPECT_EQ(json_of(*outcome.response).at("model_version_status").at(0).at("state"), "AVAILABLE");
  EXPECT_TRUE(c.connection_closed(kCloseWait))
      << "HTTP/1.0 without keep-alive: close after the response";
}

TEST_F(ProtocolTest, ExpectContinueGetsInterim100ThenTheResponse) {
  start();
  RawSocket s(gateway().http_port());
  const std::string body(kThreeInstances);
  s.send(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\n"
      "Expect: 100-continue\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  const auto interim = s.read_until("\r\n\r\n");
  ASSERT_TRUE(interim.has_value()) << "no 100 Continue before the body was sent";
  EXPECT_EQ(*interim, "HTTP/1.1 100 Continue\r\n\r\n");
  s.send(body);
  const auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, kThreePredictions);
}

TEST_F(ProtocolTest, ExpectContinueWithBodyAlreadySentIsServed) {
  start();
  RawSocket s(gateway().http_port());
  s.send(predict_request(kThreeInstances, "Expect: 100-continue\r\n"));
  auto r = s.read_response();
  // fusebox may send its own bare interim "100 Continue" first; the next one is the answer.
  if (r && r->status == 100 && r->headers.empty()) r = s.read_response();
  ASSERT_TRUE(r.has_value()) << "no final response";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, kThreePredictions);
}

TEST_F(ProtocolTest, UnsupportedExpectationIs417) {
  start();
  expect_rejected_and_closed(predict_request(kThreeInstances, "Expect: something-else\r\n"), 417,
                             "unsupported Expect header");
  EXPECT_EQ(sim_stats(sim_port()).at("requests"), 0);
}

TEST_F(ProtocolTest, MaxRequestsPerConnectionClosesAfterN) {
  start({"max_requests_per_connection: 3"});
  auto c = client();
  for (int i = 1; i <= 3; ++i) {
    SCOPED_TRACE(i);
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200);
    if (i < 3) {
      EXPECT_FALSE(r.has_header("Connection"));
      EXPECT_TRUE(c.connected());
    } else {
      EXPECT_EQ(r.header("Connection"), "close");
      EXPECT_FALSE(c.connected()) << "the client closed after Connection: close";
    }
  }
  EXPECT_EQ(c.connections_opened(), 1);
  // The third response closed the connection on fusebox's side too.
  auto raw = client();
  for (int i = 0; i < 3; ++i) raw.send_raw(predict_request(kThreeInstances));
  for (int i = 0; i < 3; ++i) {
    const auto outcome = raw.read_raw_response();
    ASSERT_TRUE(outcome.ok()) << "response " << i << ": " << outcome.message;
    EXPECT_EQ(outcome.response->status, 200);
  }
  EXPECT_TRUE(raw.connection_closed(kCloseWait));
  const auto next = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(c.connections_opened(), 2);
}

}  // namespace
}  // namespace fusebox_it
