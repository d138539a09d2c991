// How fusebox answers when a backend is down, slow, failing, or answers nonsense.
//
// Most tests look at one upstream exchange: single_attempt_config() turns off health checks,
// the circuit breaker and retries, so the client's answer is exactly what that exchange gave.
// The others show what the resilience pipeline adds by default (retries, health checks).

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "gateway_fixture.h"
#include "scripted_backend.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using nlohmann::json;
using std::chrono::steady_clock;


std::string upstream_series(std::uint16_t port, std::string_view outcome) {
  return R"(fusebox_upstream_requests_total{pool="primary",backend="127.0.0.1:)" +
         std::to_string(port) + R"(",outcome=")" + std::string(outcome) + R"("})";
}

std::string retries_series(std::string_view reason) {
  return R"(fusebox_retries_total{pool="primary",reason=")" + std::string(reason) + R"("})";
}

std::string requests_series(std::string_view code) {
  return R"(fusebox_requests_total{route="half_plus_two",method="POST",code=")" +
         std::string(code) + R"("})";
}

class FailureTest : public GatewayTest {
 protected:
  void expect_gateway_error(const HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    const auto body = json_of(r);
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body.size(), 1u) << r.body;
    ASSERT_TRUE(body.contains("error")) << r.body;
    EXPECT_TRUE(body.at("error").is_string()) << r.body;
    EXPECT_FALSE(body.at("error").get<std::string>().empty());
  }
};

TEST_F(FailureTest, BackendDownIs502Json) {
  const auto port = unused_port();
  start_gateway(single_attempt_config({port}));
  auto c = client();
  for (int i = 0; i < 2; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    expect_gateway_error(r, 502);
    EXPECT_EQ(json_of(r).at("error"), "upstream connect error: Connection refused");
  }
  EXPECT_TRUE(c.connected()) << "a 502 does not close the client connection";
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "connect_failure")), 2);
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "success")), 0);
  EXPECT_EQ(metric_value(metrics, requests_series("502")), 2);
  const auto backend = admin_json("/admin/backends").at("pools").at("primary").at("backends").at(0);
  EXPECT_EQ(backend.at("failures_total"), 2);
  EXPECT_EQ(backend.at("requests_total"), 2);
  EXPECT_EQ(backend.at("reachable"), false);
  EXPECT_EQ(backend.at("health"), "unknown") << "nothing probes it";
  EXPECT_EQ(metric_value(metrics, retries_series("connect_failure")), 0);
}

TEST_F(FailureTest, BackendDownIsTriedMaxAttemptsTimesThen502) {
  const auto port = unused_port();
  auto config = single_route_config({port});
  config.pools[0].health_check = kHealthChecksOff;  // it would take the backend out first
  start_gateway(config);
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_EQ(json_of(r).at("error"), "upstream connect error: Connection refused");
  // Default retry policy: 3 attempts; the only backend gets all of them.
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "connect_failure")), 3);
  EXPECT_EQ(metric_value(metrics, retries_series("connect_failure")), 2);
  EXPECT_EQ(metric_value(metrics, requests_series("502")), 1);
  const auto backend = backend_json("primary", 0);
  EXPECT_EQ(backend.at("requests_total"), 3);
  EXPECT_EQ(backend.at("failures_total"), 3);
  EXPECT_EQ(backend.at("circuit_breaker").at("state"), "closed") << "5 failures open it, not 3";
  EXPECT_EQ(backend.at("circuit_breaker").at("consecutive_failures"), 3);
}

TEST_F(FailureTest, BackendDownFoundByItsHealthCheckIs503WithoutAnAttempt) {
  const auto port = unused_port();
  start_gateway(single_route_config({port}));
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 503);
  EXPECT_EQ(json_of(r).at("error"), R"(no healthy backend in pool "primary")");
  EXPECT_TRUE(c.connected());
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "connect_failure")), 0);
  EXPECT_EQ(metric_value(metrics, requests_series("503")), 1);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_no_eligible_backend_total{pool="primary"})"), 1);
  EXPECT_EQ(backend_json("primary", 0).at("requests_total"), 0);
}

TEST_F(FailureTest, HangingBackendIs504WithinTheRouteTimeout) {
  const auto port = start_sims(1, {"--hang"}).at(0);
  start_gateway(single_attempt_config({port}, "300ms"));
  auto c = client();
  const auto begin = steady_clock::now();
  const auto r = c.post(kPredict, kThreeInstances);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - begin);
  expect_gateway_error(r, 504);
  EXPECT_EQ(json_of(r).at("error"), "upstream request timeout");
  EXPECT_GE(elapsed.count(), 300) << "answered before the route timeout";
  EXPECT_LT(elapsed.count(), 900) << "not answered within 3x the route timeout";
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(sim_stats(port).at("faults").at("hangs"), 1);
  EXPECT_EQ(metric_value(metrics_text(), upstream_series(port, "timeout")), 1);
}

TEST_F(FailureTest, BackendErrorStatusIsRelayed) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_attempt_config({port}));
  set_sim_faults(port, {{"error_rate", 1.0}, {"error_status", 503}});
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  HttpClient direct(port);
  const auto want = direct.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(want.status, 503);
  EXPECT_EQ(r.body, want.body);
  EXPECT_EQ(json_of(r).at("error"), "Servable not available (tfs-sim injected fault)");
  EXPECT_EQ(r.header("Content-Type"), "application/json");

  set_sim_faults(port, {{"error_rate", 1.0}, {"error_status", 429}});
  const auto throttled = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(json_of(throttled).at("error"),
            "The batch scheduling queue to which this task was submitted is full");

  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "http_5xx")), 1);
  EXPECT_EQ(metric_value(metrics, upstream_series(port, "success")), 1);
  EXPECT_EQ(metric_value(metrics, requests_series("503")), 1);
  EXPECT_EQ(metric_value(metrics, requests_series("429")), 1);
}

TEST_F(FailureTest, BackendResetIs502) {
  const auto port = start_sims(1, {"--reset-rate", "1"}).at(0);
  start_gateway(single_attempt_config({port}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_TRUE(json_of(r).at("error").get<std::string>().starts_with("upstream connection"))
      << r.body;
  EXPECT_GE(sim_stats(port).at("faults").at("resets"), 1);
  EXPECT_EQ(metric_value(metrics_text(), upstream_series(port, "reset")), 1);
}

TEST_F(FailureTest, GarbageResponseIs502) {
  ScriptedBackend backend(ScriptedReply::raw_bytes("THIS IS NOT HTTP\r\n\r\n"));
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_TRUE(json_of(r).at("error").get<std::string>().starts_with("invalid upstream response"))
      << r.body;
  EXPECT_EQ(backend.request_count(), 1u) << "an unparsable answer is not retried";
  EXPECT_EQ(metric_value(metrics_text(), upstream_series(backend.port(), "protocol_error")), 1);
}

TEST_F(FailureTest, ResponseCutShortIs502) {
  ScriptedBackend backend(ScriptedReply::raw_bytes(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"predi"));
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_TRUE(json_of(r).at("error").get<std::string>().starts_with("invalid upstream response"))
      << r.body;
  EXPECT_EQ(backend.request_count(), 1u) << "a partly answered request is not sent again";
}

// A response without Content-Length ends where the backend closes (RFC 9112 6.3): whole, not
// cut short. The client gets it framed with a Content-Length.
TEST_F(FailureTest, ResponseDelimitedByTheCloseIsRelayedWhole) {
  ScriptedBackend backend(ScriptedReply::raw_bytes(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
      R"({"predictions": [2.5, 3.0]})"));
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"predictions": [2.5, 3.0]})");
  EXPECT_EQ(r.header("Content-Length"), "27");
  EXPECT_EQ(backend.request_count(), 1u);
}

TEST_F(FailureTest, ConnectionClosedWithoutAnswerIs502) {
  ScriptedBackend backend;
  backend.push(ScriptedReply::close_connection());
  start_gateway(single_attempt_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_TRUE(json_of(r).at("error").get<std::string>().starts_with("upstream connection closed"))
      << r.body;
  EXPECT_EQ(backend.request_count(), 1u)
      << "the connection pool does not resend after a fresh connection's failure";
  // The backend answers again: so does fusebox.
  const auto ok = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"ok": true})");
}

TEST_F(FailureTest, ConnectionClosedWithoutAnswerIsRetriedByDefault) {
  ScriptedBackend backend;
  backend.push(ScriptedReply::close_connection());
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"ok": true})");
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0].connection, seen[1].connection);
  EXPECT_EQ(seen[1].body, seen[0].body);
  EXPECT_EQ(seen[1].header("X-Request-Id"), seen[0].header("X-Request-Id"));
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, upstream_series(backend.port(), "reset")), 1);
  EXPECT_EQ(metric_value(metrics, upstream_series(backend.port(), "success")), 1);
  EXPECT_EQ(metric_value(metrics, retries_series("reset")), 1);
}

TEST_F(FailureTest, OversizedUpstreamResponseIs502) {
  ScriptedBackend backend(ScriptedReply::json(200, std::string(4096, 'x')));
  auto config = single_route_config({backend.port()});
  config.pools[0].extra.push_back("max_response_body: 1KiB");
  start_gateway(config);
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  expect_gateway_error(r, 502);
  EXPECT_EQ(json_of(r).at("error"), "upstream response body too large");
  EXPECT_EQ(backend.request_count(), 1u) << "an oversized answer is not retried";
}

TEST_F(FailureTest, StaleKeptAliveConnectionIsRetriedOnAFreshOne) {
  ScriptedBackend backend(ScriptedReply::json(200, R"({"answer": "second"})"));
  backend.push(ScriptedReply::json(200, R"({"answer": "first"})"));
  backend.push(ScriptedReply::close_connection());  // closes the kept-alive connection unanswered
  // One attempt: only the connection pool's own resend can save the second request.
  start_gateway(single_attempt_config({backend.port()}));
  auto c = client();
  const auto first = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(first.body, R"({"answer": "first"})");
  const auto second = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, R"({"answer": "second"})");
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].connection, seen[1].connection) << "the second request reused the connection";
  EXPECT_NE(seen[1].connection, seen[2].connection) << "the retry went over a new connection";
  EXPECT_EQ(seen[2].body, seen[1].body);
  EXPECT_EQ(seen[2].header("X-Request-Id"), seen[1].header("X-Request-Id"));
}

TEST_F(FailureTest, InterimContinueFromBackendIsNotTakenForTheResponse) {
  ScriptedBackend backend(ScriptedReply::raw_bytes(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
      R"({"predictions": [2.5]})",
      /*close_after=*/false));
  start_gateway(single_route_config({backend.port()}));
  // A client must cope with 1xx it did not ask for (RFC 9110 15.2); so must fusebox's upstream
  // side. RawSocket shows the first response as it arrives, interim or not.
  RawSocket s(gateway().http_port());
  s.send("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\nContent-Length: " +
         std::to_string(kThreeInstances.size()) + "\r\n\r\n" + std::string(kThreeInstances));
  const auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << "no response";
  EXPECT_EQ(r->status, 200) << "the backend's interim 100 was relayed as the response";
  EXPECT_EQ(r->body, R"({"predictions": [2.5]})");
}

TEST_F(FailureTest, KilledBackendIs502UntilItReturns) {
  start_sims(1);
  start_gateway(single_attempt_config({sim(0).port}));
  auto c = client();
  ASSERT_EQ(c.post(kPredict, kThreeInstances).body, kThreePredictions);
  kill_sim(0);
  const auto down = c.post(kPredict, kThreeInstances);
  expect_gateway_error(down, 502);
  EXPECT_EQ(json_of(down).at("error"), "upstream connect error: Connection refused");
  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot start tfs-sim on the same port again";
  const auto back = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(back.status, 200);
  EXPECT_EQ(back.body, kThreePredictions);
}

TEST_F(FailureTest, KilledBackendIsTakenOutByItsHealthCheckUntilItReturns) {
  start_sims(1);
  start_gateway(single_route_config({sim(0).port}));
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  auto c = client();
  ASSERT_EQ(c.post(kPredict, kThreeInstances).body, kThreePredictions);
  kill_sim(0);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  const auto down = c.post(kPredict, kThreeInstances);
  expect_gateway_error(down, 503);
  EXPECT_EQ(json_of(down).at("error"), R"(no healthy backend in pool "primary")");
  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot start tfs-sim on the same port again";
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  const auto back = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(back.status, 200);
  EXPECT_EQ(back.body, kThreePredictions);
  EXPECT_EQ(sim_stats(sim(0).port).at("requests"), 1) << "the new process saw one request";
  EXPECT_EQ(backend_json("primary", 0).at("requests_total"), 2) << "none while it was out";
}

TEST_F(FailureTest, RestartedBackendIsUsedAgainWithoutErrors) {
  start_sims(1);
  // One attempt, no health checks: only the connection pool's handling of a connection to the
  // old process (detected and replaced) can keep the answers free of errors.
  start_gateway(single_attempt_config({sim(0).port}));
  auto c = client();
  ASSERT_EQ(c.post(kPredict, kThreeInstances).body, kThreePredictions);
  // fusebox keeps the connection to the old process; the new one never saw it.
  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot start tfs-sim on the same port again";
  for (int i = 0; i < 3; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200) << "request " << i << ": " << r.body;
    EXPECT_EQ(r.body, kThreePredictions);
  }
  EXPECT_EQ(sim_stats(sim(0).port).at("requests"), 3);
}

TEST_F(FailureTest, UnreachableBackendIsSkippedWhileAnotherIsUp) {
  const auto alive = start_sims(1).at(0);
  const auto dead = unused_port();
  start_gateway(single_route_config({dead, alive}));
  ASSERT_TRUE(wait_until([&] {
    const auto backends = admin_json("/admin/backends").at("pools").at("primary").at("backends");
    return backends.at(0).at("health") == "unhealthy" && backends.at(1).at("health") == "healthy";
  })) << "the health check must mark the dead backend unhealthy and the live one healthy";
  auto c = client();
  for (int i = 0; i < 4; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200) << "request " << i;
  }
  EXPECT_EQ(sim_stats(alive).at("requests"), 4);
  EXPECT_EQ(metric_value(metrics_text(), upstream_series(dead, "connect_failure")), 0);
  EXPECT_EQ(backend_json("primary", 0).at("requests_total"), 0);
}

}  // namespace
}  // namespace fusebox_it
