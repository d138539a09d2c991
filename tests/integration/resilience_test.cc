// The resilience pipeline end to end: a real fusebox in front of three tfs-sim processes on
// loopback, faults injected through the sims' control API (docs/tfs-sim.md), and every claim
// checked from outside: what the clients got, what each sim received ("requests" counts client
// traffic only, never health checks), what /admin/backends and /metrics say.
//
// Health checks are switched off wherever a fault would also fail the probes (errors, latency),
// so that the circuit breaker, not the health checker, is what reacts. Load is a bounded loop of
// requests from the test thread or a few std::threads; conditions are polled, never slept on.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway_fixture.h"
#include "scripted_backend.h"

namespace fusebox_it {
namespace {

using fusebox_test::Headers;
using fusebox_test::HttpOutcome;
using fusebox_test::json_of;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kInjected503 = "Servable not available (tfs-sim injected fault)";
constexpr std::string_view kTimeoutHeader = "X-Fusebox-Timeout-Ms";

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Model-aware probes every 100 ms (so health flips within a test's patience), with
// `unhealthy_threshold` failing probes in a row to take a backend out.
std::string fast_health_checks(int unhealthy_threshold, std::string_view more = "") {
  std::string s =
      "{interval: 100ms, unhealthy_interval: 100ms, timeout: 80ms, healthy_threshold: 1, "
      "unhealthy_threshold: " +
      std::to_string(unhealthy_threshold);
  if (!more.empty()) s += ", " + std::string(more);
  return s + "}";
}

std::string label(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

std::string backend_labels(std::uint16_t port) {
  return R"(pool="primary",backend=")" + label(port) + R"(")";
}

std::string state_series(std::uint16_t port) {
  return "fusebox_circuit_breaker_state{" + backend_labels(port) + "}";
}

std::string transitions_series(std::uint16_t port, std::string_view from, std::string_view to) {
  return "fusebox_circuit_breaker_transitions_total{" + backend_labels(port) + R"(,from=")" +
         std::string(from) + R"(",to=")" + std::string(to) + R"("})";
}

std::string rejected_series(std::uint16_t port) {
  return "fusebox_circuit_breaker_rejected_total{" + backend_labels(port) + "}";
}

std::string healthy_series(std::uint16_t port) {
  return "fusebox_backend_healthy{" + backend_labels(port) + "}";
}

std::string health_checks_series(std::uint16_t port, std::string_view result) {
  return "fusebox_health_checks_total{" + backend_labels(port) + R"(,result=")" +
         std::string(result) + R"("})";
}

std::string retries_series(std::string_view reason) {
  return R"(fusebox_retries_total{pool="primary",reason=")" + std::string(reason) + R"("})";
}

constexpr std::string_view kBudgetExhausted =
    R"(fusebox_retry_budget_exhausted_total{pool="primary"})";
constexpr std::string_view kNoEligibleBackend =
    R"(fusebox_no_eligible_backend_total{pool="primary"})";

// Transition counters are only exported once they are non-zero.
double counter(std::string_view exposition, std::string_view series) {
  return metric_value(exposition, series).value_or(0.0);
}

// What a batch of client requests saw.
struct LoadReport {
  std::vector<int> statuses;          // 0: no HTTP response at all
  std::vector<double> latency_ms;     // same order as statuses
  std::vector<std::string> problems;  // every answer that was not 200 with the predictions

  int errors() const { return static_cast<int>(problems.size()); }
  double percentile_ms(double p) const {
    if (latency_ms.empty()) return 0;
    auto sorted = latency_ms;
    std::sort(sorted.begin(), sorted.end());
    auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
  }
  double max_ms() const {
    return latency_ms.empty() ? 0 : *std::max_element(latency_ms.begin(), latency_ms.end());
  }
  std::string summary() const {
    std::ostringstream s;
    s << statuses.size() << " requests, " << errors() << " not 200 with the predictions, p99 "
      << percentile_ms(99) << " ms, max " << max_ms() << " ms";
    for (std::size_t i = 0; i < problems.size() && i < 5; ++i) s << "\n  " << problems[i];
    return s.str();
  }
  void merge(const LoadReport& other) {
    statuses.insert(statuses.end(), other.statuses.begin(), other.statuses.end());
    latency_ms.insert(latency_ms.end(), other.latency_ms.begin(), other.latency_ms.end());
    problems.insert(problems.end(), other.problems.begin(), other.problems.end());
  }
};

// `per_thread` predicts back to back from each of `threads` clients (one keep-alive connection
// each, 10 s bound per request). `completed` counts finished requests while it runs.
LoadReport run_load(std::uint16_t port, int threads, int per_thread,
                    std::atomic<int>* completed = nullptr) {
  std::vector<LoadReport> reports(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto& report = reports[static_cast<std::size_t>(t)];
      HttpClient c(port, Millis{10000});
      for (int i = 0; i < per_thread; ++i) {
        const auto start = Clock::now();
        const HttpOutcome outcome = c.try_request("POST", kPredict, kThreeInstances);
        report.latency_ms.push_back(ms_since(start));
        if (!outcome.ok()) {
          report.statuses.push_back(0);
          report.problems.push_back(std::string("no response: ") + outcome.message);
          c.close();
        } else {
          report.statuses.push_back(outcome.response->status);
          if (outcome.response->status != 200 || outcome.response->body != kThreePredictions) {
            report.problems.push_back(std::to_string(outcome.response->status) + " " +
                                      outcome.response->body);
          }
        }
        if (completed != nullptr) completed->fetch_add(1);
      }
    });
  }
  for (auto& w : workers) w.join();
  LoadReport all;
  for (const auto& r : reports) all.merge(r);
  return all;
}

class ResilienceTest : public GatewayTest {
 protected:
  // Pool "primary" over `ports` with `health_check` and more pool lines; route half_plus_two
  // with more route lines.
  static GatewayConfig pool_config(const std::vector<std::uint16_t>& ports,
                                   std::string_view health_check,
                                   std::vector<std::string> pool_lines,
                                   std::vector<std::string> route_lines,
                                   std::string timeout = "5s") {
    GatewayConfig config = single_route_config(ports, std::move(timeout));
    config.pools[0].health_check = std::string(health_check);
    config.pools[0].extra = std::move(pool_lines);
    config.routes[0].extra = std::move(route_lines);
    return config;
  }

  LoadReport load(int threads, int per_thread, std::atomic<int>* completed = nullptr) const {
    return run_load(gateway_->http_port(), threads, per_thread, completed);
  }

  // The /admin/backends entry of the backend on `port`.
  json backend(std::uint16_t port) const {
    const json all = admin_json("/admin/backends");  // outlives the loop (unlike a temporary)
    for (const auto& b : all.at("pools").at("primary").at("backends")) {
      if (b.at("port") == port) return b;
    }
    ADD_FAILURE() << "no backend on port " << port << " in /admin/backends";
    return json::object();
  }
  std::string breaker_state(std::uint16_t port) const {
    return backend(port).at("circuit_breaker").at("state").get<std::string>();
  }
  std::string health(std::uint16_t port) const {
    return backend(port).at("health").get<std::string>();
  }
  bool wait_health(std::uint16_t port, std::string_view expected,
                   Millis timeout = Millis{5000}) const {
    return wait_until([&] { return health(port) == expected; }, timeout);
  }
  static std::int64_t sim_requests(std::uint16_t port) {
    return sim_stats(port).at("requests").get<std::int64_t>();
  }

  HttpResponse post_breaker(std::string_view pool, std::string_view backend_name,
                            std::string_view body) const {
    return admin_client().post(
        "/admin/pools/" + std::string(pool) + "/backends/" + std::string(backend_name) + "/breaker",
        body);
  }
  void set_breaker(std::uint16_t port, std::string_view state) const {
    const auto r = post_breaker("primary", label(port), json({{"state", state}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }

  // The breaker transition log line (text format), written asynchronously.
  bool wait_for_log(std::string_view needle) {
    return gateway_->process().wait_for_stderr(needle, Millis{5000});
  }

  // Scenario 6, with every upstream answer delayed by `upstream_latency_ms`.
  void expect_retry_budget_holds(int upstream_latency_ms);

  void expect_json_error(const HttpResponse& r, int status, std::string_view message) const {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    EXPECT_EQ(json_of(r), json({{"error", message}}));
  }
};

// 1. A backend that dies: its breaker opens after exactly `consecutive_failures` failed
// attempts, each of which was retried on a live backend, so no client notices.
TEST_F(ResilienceTest, KilledBackendTripsOnConsecutiveFailuresWithoutClientErrors) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff,
                            {"circuit_breaker: {consecutive_failures: 3, open_duration: 30s}"},
                            {"retry: {max_attempts: 3, retry_on: [connect_failure, reset, 503]}"}));
  const auto warm = load(1, 30);
  ASSERT_EQ(warm.errors(), 0) << warm.summary();
  for (auto port : ports) EXPECT_EQ(sim_requests(port), 10) << "round robin over three backends";

  kill_sim(0);
  const auto report = load(1, 200);
  EXPECT_EQ(report.errors(), 0) << report.summary();

  const auto dead = backend(ports[0]);
  EXPECT_EQ(dead.at("circuit_breaker").at("state"), "open");
  EXPECT_EQ(dead.at("failures_total"), 3) << "no attempt reaches it once it is open";
  EXPECT_EQ(dead.at("requests_total"), 13);
  EXPECT_EQ(breaker_state(ports[1]), "closed");
  EXPECT_EQ(breaker_state(ports[2]), "closed");
  EXPECT_EQ(sim_requests(ports[1]) + sim_requests(ports[2]), 20 + 200);

  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, state_series(ports[0])), 1);
  EXPECT_EQ(metric_value(metrics, state_series(ports[1])), 0);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "closed", "open")), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[1], "closed", "open")), 0);
  EXPECT_EQ(counter(metrics, retries_series("connect_failure")) +
                counter(metrics, retries_series("reset")),
            3)
      << "each failed attempt was retried once";
  EXPECT_GT(counter(metrics, rejected_series(ports[0])), 0)
      << "the balancer still picks it and the open breaker turns it away";
  EXPECT_TRUE(
      wait_for_log("backend=" + label(ports[0]) + " closed -> open reason=consecutive_failures"));
  // The event names the request whose failure opened the breaker, by its trace id.
  const auto log = gateway_->stderr_text();
  const auto at = log.find("backend=" + label(ports[0]) + " closed -> open");
  ASSERT_NE(at, std::string::npos);
  const auto line = log.substr(at, log.find('\n', at) - at);
  const auto trace = line.find(" trace_id=");
  ASSERT_NE(trace, std::string::npos) << line;
  EXPECT_TRUE(is_hex32(line.substr(trace + 10, 32))) << line;
}

// 2. A flaky backend (503 half the time) opens on its failure rate, the only trigger on.
TEST_F(ResilienceTest, FlakyBackendTripsOnFailureRateWithoutClientErrors) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff,
                            {"circuit_breaker: {consecutive_failures: 0, failure_rate_percent: 40, "
                             "minimum_calls: 10, window: {type: count, size: 20}, "
                             "open_duration: 30s}"},
                            {"retry: {max_attempts: 3, retry_on: [connect_failure, reset, 503]}"}));
  set_sim_faults(ports[0], {{"error_rate", 0.5}, {"error_status", 503}});

  const auto report = load(1, 300);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_EQ(breaker_state(ports[0]), "open");
  EXPECT_EQ(breaker_state(ports[1]), "closed");
  EXPECT_EQ(breaker_state(ports[2]), "closed");
  const auto flaky = sim_stats(ports[0]);
  EXPECT_GE(flaky.at("requests").get<int>(), 10) << "the rate trigger waits for minimum_calls";
  EXPECT_LT(flaky.at("requests").get<int>(), 100) << "cut off long before the end of the run";
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, state_series(ports[0])), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "closed", "open")), 1);
  EXPECT_EQ(counter(metrics, retries_series("status")),
            flaky.at("responses_by_status").value("503", 0))
      << "every 503 was retried elsewhere";
  EXPECT_TRUE(wait_for_log("backend=" + label(ports[0]) + " closed -> open reason=failure_rate"));
}

// 3. A backend slowed to 3 s: every attempt to it ends at the per-try timeout (1 s) and is
// retried, so no client waits much longer than that; it opens on the slow-call rate. The
// consecutive and failure-rate triggers are off because a per-try timeout is also a failure
// and would trip those first.
TEST_F(ResilienceTest, SlowBackendTripsOnSlowCallRateAndClientLatencyStaysBounded) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(
      ports, kHealthChecksOff,
      {"circuit_breaker: {consecutive_failures: 0, failure_rate_percent: 0, "
       "slow_call_rate_percent: 50, slow_call_duration: 500ms, minimum_calls: 2, "
       "window: {type: count, size: 10}, open_duration: 30s}"},
      {"retry: {max_attempts: 3, per_try_timeout: 1s, retry_on: [connect_failure, reset, "
       "timeout, 503]}"}));
  set_sim_faults(ports[0], {{"latency_ms", 3000}});

  const auto report = load(1, 30);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_LT(report.max_ms(), 2500) << "per-try timeout (1 s) + backoff + a fast retry";
  EXPECT_EQ(sim_requests(ports[0]), 2) << "minimum_calls slow calls, then open";
  EXPECT_EQ(breaker_state(ports[0]), "open");
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, state_series(ports[0])), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "closed", "open")), 1);
  EXPECT_EQ(counter(metrics, retries_series("timeout")), 2);
  EXPECT_TRUE(wait_for_log("backend=" + label(ports[0]) + " closed -> open reason=slow_call_rate"));
}

// 4a. Model-aware health: a backend whose model is LOADING still answers the status call with
// 200, but the probe reads the state and takes it out of rotation, with no client request
// sent to it (the breaker never sees a failure); AVAILABLE brings it back.
TEST_F(ResilienceTest, LoadingModelTakesBackendOutUntilAvailable) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, fast_health_checks(2), {}, {}));
  for (auto port : ports) ASSERT_TRUE(wait_health(port, "healthy")) << port;
  const auto warm = load(1, 30);
  ASSERT_EQ(warm.errors(), 0) << warm.summary();
  ASSERT_EQ(sim_requests(ports[0]), 10);

  set_sim_faults(ports[0], {{"model_state", "LOADING"}});
  ASSERT_TRUE(wait_health(ports[0], "unhealthy"));
  auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, healthy_series(ports[0])), 0);
  EXPECT_EQ(metric_value(metrics, healthy_series(ports[1])), 1);
  EXPECT_GE(counter(metrics, health_checks_series(ports[0], "not_available")), 2);
  EXPECT_EQ(admin_client().get("/readyz").status, 200) << "two backends still serve";

  const auto out = load(1, 30);
  EXPECT_EQ(out.errors(), 0) << out.summary();
  EXPECT_EQ(sim_requests(ports[0]), 10) << "no client request reaches a LOADING backend";
  EXPECT_EQ(breaker_state(ports[0]), "closed") << "health alone took it out";
  EXPECT_GT(sim_stats(ports[0]).at("probe_requests").get<int>(), 0);

  set_sim_faults(ports[0], json::object());
  ASSERT_TRUE(wait_health(ports[0], "healthy"));
  EXPECT_EQ(metric_value(metrics_text(), healthy_series(ports[0])), 1);
  const auto back = load(1, 30);
  EXPECT_EQ(back.errors(), 0) << back.summary();
  EXPECT_GE(sim_requests(ports[0]), 10 + 8) << "back in rotation (about a third of 30)";
}

// 4b. require_health_check: a breaker opened by client failures stays open, although its open
// period is long over and the backend still looks eligible, until a health check passes; then
// it returns through half_open to closed. The model goes LOADING (inference answers 503, the
// probe fails); unhealthy_threshold 5 keeps the backend's health "healthy" for about half a
// second, so client traffic keeps asking the open breaker for admission after its 50 ms.
TEST_F(ResilienceTest, OpenBreakerWaitsForPassingHealthCheckThenClosesThroughHalfOpen) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(
      ports, fast_health_checks(5),
      {"circuit_breaker: {consecutive_failures: 3, open_duration: 50ms, max_open_duration: 1s, "
       "half_open_max_calls: 2, require_health_check: true}"},
      {"retry: {max_attempts: 3, retry_on: [connect_failure, reset, 503]}"}));
  for (auto port : ports) ASSERT_TRUE(wait_health(port, "healthy")) << port;

  set_sim_faults(ports[0], {{"model_state", "LOADING"}, {"not_available_status", 503}});
  LoadReport report;
  ASSERT_TRUE(wait_until(
      [&] {
        report.merge(load(1, 3));
        return breaker_state(ports[0]) == "open";
      },
      Millis{3000}, Millis{0}))
      << "three 503s from the LOADING backend open its breaker";
  const auto opened = Clock::now();
  const auto requests_when_opened = sim_requests(ports[0]);
  EXPECT_EQ(requests_when_opened, 3);
  ASSERT_EQ(health(ports[0]), "healthy") << "the test needs the breaker to open first";

  // Keep asking while the backend is still eligible by health.
  ASSERT_TRUE(wait_until(
      [&] {
        report.merge(load(1, 3));
        return health(ports[0]) == "unhealthy";
      },
      Millis{5000}, Millis{0}));
  const double eligible_while_open_ms = ms_since(opened);
  std::cout << "[require_health_check] open and eligible by health for " << eligible_while_open_ms
            << " ms without a half-open probe\n";
  EXPECT_GT(eligible_while_open_ms, 150) << "the open period (50 ms) passed with traffic asking";
  EXPECT_EQ(breaker_state(ports[0]), "open") << "no half-open without a passing health check";
  EXPECT_EQ(sim_requests(ports[0]), requests_when_opened) << "no probe request was sent";
  auto metrics = metrics_text();
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "open", "half_open")), 0);
  EXPECT_EQ(metric_value(metrics, state_series(ports[0])), 1);
  EXPECT_EQ(metric_value(metrics, healthy_series(ports[0])), 0);

  set_sim_faults(ports[0], json::object());
  ASSERT_TRUE(wait_health(ports[0], "healthy"));
  ASSERT_TRUE(wait_until(
      [&] {
        report.merge(load(1, 3));
        return breaker_state(ports[0]) == "closed";
      },
      Millis{5000}, Millis{0}))
      << "two successful half-open probes close it";
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_GE(sim_requests(ports[0]), requests_when_opened + 2);
  metrics = metrics_text();
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "closed", "open")), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "open", "half_open")), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "half_open", "closed")), 1);
  EXPECT_EQ(counter(metrics, transitions_series(ports[0], "half_open", "open")), 0);
  EXPECT_EQ(metric_value(metrics, state_series(ports[0])), 0);
}

// 5. expected_version: a backend serving another version is out of rotation at the first probe.
TEST_F(ResilienceTest, VersionMismatchIsOutOfRotation) {
  std::vector<std::uint16_t> ports = start_sims(2);
  ports.push_back(start_sim({"--version", "2"}).port);
  start_gateway(pool_config(ports, fast_health_checks(2, "expected_version: 1"), {}, {}));
  ASSERT_TRUE(wait_health(ports[2], "version_mismatch"));
  ASSERT_TRUE(wait_health(ports[0], "healthy"));
  ASSERT_TRUE(wait_health(ports[1], "healthy"));

  const auto report = load(1, 30);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_EQ(sim_requests(ports[2]), 0);
  EXPECT_EQ(sim_requests(ports[0]) + sim_requests(ports[1]), 30);
  EXPECT_EQ(breaker_state(ports[2]), "closed") << "health, not the breaker, keeps it out";
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, healthy_series(ports[2])), 0);
  EXPECT_EQ(metric_value(metrics, healthy_series(ports[0])), 1);
  EXPECT_GE(counter(metrics, health_checks_series(ports[2], "version_mismatch")), 1);
  EXPECT_EQ(counter(metrics, health_checks_series(ports[0], "version_mismatch")), 0);
  EXPECT_EQ(admin_client().get("/readyz").status, 200);
}

// 6. Every backend fails: the retry budget (10 % of active requests, at least one retry in
// flight) keeps the upstream load near one attempt per client request instead of three
// (max_attempts), and clients promptly get the upstream 503. Breakers and health checks are off
// so that only the budget limits retries. Eight clients send ten requests each.
void ResilienceTest::expect_retry_budget_holds(int upstream_latency_ms) {
  const auto ports = start_sims(3);
  auto config = pool_config(ports, kHealthChecksOff,
                            {"circuit_breaker: {mode: disabled}",
                             "retry_budget: {budget_percent: 10, min_concurrency: 1}"},
                            {"retry: {max_attempts: 3, retry_on: [503]}"});
  config.threads = 2;
  start_gateway(config);
  json faults = {{"error_rate", 1.0}, {"error_status", 503}};
  if (upstream_latency_ms > 0) faults["latency_ms"] = upstream_latency_ms;
  for (auto port : ports) set_sim_faults(port, faults);

  constexpr int kThreads = 8, kPerThread = 10, kRequests = kThreads * kPerThread;
  const auto report = load(kThreads, kPerThread);
  ASSERT_EQ(report.statuses.size(), static_cast<std::size_t>(kRequests));
  EXPECT_EQ(std::count(report.statuses.begin(), report.statuses.end(), 503), kRequests)
      << report.summary();
  EXPECT_LT(report.max_ms(), 2000) << "failed fast, no hang";
  HttpClient c(gateway_->http_port());
  const auto one = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(one.status, 503);
  EXPECT_EQ(json_of(one), json({{"error", kInjected503}})) << "the upstream answer is relayed";

  std::int64_t upstream = 0;
  for (auto port : ports) upstream += sim_requests(port);
  const auto metrics = metrics_text();
  const double retries = counter(metrics, retries_series("status"));
  std::cout << "[retry budget, upstream latency " << upstream_latency_ms
            << " ms] client requests=" << kRequests + 1 << " upstream requests=" << upstream
            << " retries=" << retries << " budget_exhausted=" << counter(metrics, kBudgetExhausted)
            << "\n";
  EXPECT_EQ(static_cast<double>(upstream), kRequests + 1 + retries)
      << "every upstream request beyond the first of each client request is a counted retry";
  EXPECT_LE(upstream, kRequests + 1 + kRequests / 2)
      << "with at most one retry in flight; without a budget it approaches 3 x " << kRequests;
  EXPECT_GT(counter(metrics, kBudgetExhausted), 0);
}

// Backends that fail at once (the usual storm: a full batch queue answers 503 immediately).
TEST_F(ResilienceTest, RetryBudgetStopsARetryStormOfFast503s) { expect_retry_budget_holds(0); }

// Backends that fail after 100 ms, so each retry spends most of its life in its attempt rather
// than in the backoff before it.
TEST_F(ResilienceTest, RetryBudgetStopsARetryStormOfSlow503s) { expect_retry_budget_holds(100); }

// 7. Hedging: one backend takes 1 s; after 100 ms without an answer a second attempt goes to
// another backend and wins, so no client waits for the slow one.
TEST_F(ResilienceTest, HedgingCutsTheTailOfASlowBackend) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff, {}, {"hedge: {delay: 100ms}"}));
  set_sim_faults(ports[0], {{"latency_ms", 1000}});

  const auto report = load(1, 30);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_LT(report.max_ms(), 800) << report.summary();
  const auto slow_requests = sim_requests(ports[0]);
  EXPECT_GE(slow_requests, 5) << "round robin keeps sending first attempts to it";
  const double hedges = counter(metrics_text(), retries_series("hedge"));
  EXPECT_GE(hedges, static_cast<double>(slow_requests)) << "each attempt to it was hedged";
  EXPECT_LE(hedges, static_cast<double>(slow_requests) + 3) << "fast attempts are not hedged";
  EXPECT_EQ(breaker_state(ports[0]), "closed") << "a hedge's lost race is not a failure";
}

// 7b. Hedging must not hide a slow replica from its breaker: with the slow-call trigger on,
// attempts that lost the race after running longer than slow_call_duration count as slow
// calls, so the slow backend's breaker opens and first attempts stop going there.
TEST_F(ResilienceTest, HedgedSlowBackendStillTripsTheSlowCallTrigger) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff,
                            {"circuit_breaker: {slow_call_rate_percent: 50, slow_call_duration: "
                             "60ms, minimum_calls: 4, open_duration: 60s}"},
                            {"hedge: {delay: 100ms}"}));
  set_sim_faults(ports[0], {{"latency_ms", 1000}});

  const auto report = load(1, 45);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_EQ(breaker_state(ports[0]), "open") << "the lost races counted as slow calls";
  EXPECT_LE(sim_requests(ports[0]), 6) << "once open, first attempts avoid it";
  EXPECT_EQ(breaker_state(ports[1]), "closed");
  EXPECT_EQ(breaker_state(ports[2]), "closed");
}

// 8. Operator control of one breaker through the admin API.
TEST_F(ResilienceTest, AdminForcesABreakerOpenAndBackToAuto) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff, {}, {}));
  ASSERT_EQ(load(1, 30).errors(), 0);
  ASSERT_EQ(sim_requests(ports[1]), 10);

  const auto forced = post_breaker("primary", label(ports[1]), R"({"state": "forced_open"})");
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(forced.header("Content-Type"), "application/json");
  EXPECT_EQ(json_of(forced).at("port"), ports[1]);
  EXPECT_EQ(json_of(forced).at("circuit_breaker").at("state"), "forced_open");

  auto report = load(1, 30);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_EQ(sim_requests(ports[1]), 10) << "no traffic to a forced-open backend";
  EXPECT_EQ(sim_requests(ports[0]) + sim_requests(ports[2]), 20 + 30);
  EXPECT_EQ(breaker_state(ports[1]), "forced_open");
  auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, state_series(ports[1])), 3);
  EXPECT_EQ(counter(metrics, transitions_series(ports[1], "closed", "forced_open")), 1);

  const auto automatic = post_breaker("primary", label(ports[1]), R"({"state": "auto"})");
  ASSERT_EQ(automatic.status, 200) << automatic.body;
  EXPECT_EQ(json_of(automatic).at("circuit_breaker").at("state"), "closed");
  report = load(1, 30);
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_GE(sim_requests(ports[1]), 10 + 8) << "traffic returns";
  EXPECT_LE(sim_requests(ports[1]), 10 + 12);
  metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, state_series(ports[1])), 0);
  EXPECT_EQ(counter(metrics, transitions_series(ports[1], "forced_open", "closed")), 1);

  // The backend may also be named by its index in the pool.
  const auto disabled = post_breaker("primary", "2", R"({"state": "disabled"})");
  ASSERT_EQ(disabled.status, 200) << disabled.body;
  EXPECT_EQ(json_of(disabled).at("port"), ports[2]);
  EXPECT_EQ(metric_value(metrics_text(), state_series(ports[2])), 4);

  expect_json_error(post_breaker("primary", label(ports[1]), R"({"state": "bogus"})"), 400,
                    "unknown breaker state \"bogus\" (expected forced_open, closed, disabled, "
                    "metrics_only or auto)");
  expect_json_error(
      post_breaker("primary", label(ports[1]), "not json"), 400,
      R"(expected a JSON object {"state": "forced_open|closed|disabled|metrics_only|auto"})");
  expect_json_error(
      post_breaker("primary", label(ports[1]), R"({"state": 3})"), 400,
      R"(expected a JSON object {"state": "forced_open|closed|disabled|metrics_only|auto"})");
  expect_json_error(post_breaker("nope", label(ports[1]), R"({"state": "auto"})"), 404,
                    R"(no pool named "nope")");
  expect_json_error(post_breaker("primary", "10.0.0.1:1", R"({"state": "auto"})"), 404,
                    R"(no backend "10.0.0.1:1" in pool "primary")");
  expect_json_error(post_breaker("primary", "3", R"({"state": "auto"})"), 404,
                    R"(no backend "3" in pool "primary")");
  expect_json_error(
      admin_client().get("/admin/pools/primary/backends/" + label(ports[1]) + "/breaker"), 405,
      "use POST");
  EXPECT_EQ(breaker_state(ports[1]), "closed") << "rejected requests changed nothing";
}

// 9. No eligible backend: fail fast with 503 JSON, never wait for the deadline, never send.
TEST_F(ResilienceTest, NoEligibleBackendFailsFastWith503Json) {
  const auto ports = start_sims(3);
  start_gateway(pool_config(ports, kHealthChecksOff, {}, {}, "5s"));
  for (auto port : ports) set_breaker(port, "forced_open");

  HttpClient c(gateway_->http_port());
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_LT(ms_since(start), 500) << "immediately, not after the 5 s route timeout";
    expect_json_error(r, 503, R"(no healthy backend in pool "primary")");
  }
  for (auto port : ports) EXPECT_EQ(sim_requests(port), 0);
  EXPECT_EQ(counter(metrics_text(), kNoEligibleBackend), 5);
  const auto ready = admin_client().get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(json_of(ready).at("reason"),
            R"(route "half_plus_two": no healthy backend in pool "primary")");

  set_breaker(ports[2], "auto");
  EXPECT_EQ(c.post(kPredict, kThreeInstances).body, kThreePredictions);
  EXPECT_EQ(sim_requests(ports[2]), 1);
}

// 10. The overheating node of issue 3: steady load over three replicas, one of them turns 3 s
// slow in the middle of the run. Clients see no error and a bounded p99, and once its breaker
// opens the slow replica gets no regular traffic. Measured figures are printed.
TEST_F(ResilienceTest, OverheatingReplicaIsCutOffWhileClientsSeeNoErrors) {
  const auto ports = start_sims(3, {"--latency", "10ms", "--latency-jitter", "5ms"});
  auto config = pool_config(
      ports, kHealthChecksOff,
      {"circuit_breaker: {consecutive_failures: 3, slow_call_rate_percent: 50, "
       "slow_call_duration: 500ms, minimum_calls: 5, open_duration: 2s, half_open_max_calls: 1}",
       "retry_budget: {budget_percent: 50, min_concurrency: 4}"},
      {"retry: {max_attempts: 3, per_try_timeout: 1s, retry_on: [connect_failure, reset, "
       "timeout, 502, 503, 504]}"});
  config.threads = 2;
  start_gateway(config);

  constexpr int kThreads = 4, kPerThread = 150, kTotal = kThreads * kPerThread;
  std::atomic<int> completed{0};
  LoadReport report;
  std::thread clients([&] { report = load(kThreads, kPerThread, &completed); });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{clients};

  const bool mid_run = wait_until([&] { return completed.load() >= kTotal / 4; }, Millis{10000});
  const auto fault_at = Clock::now();
  const int completed_at_fault = completed.load();
  const auto requests_before_fault = sim_requests(ports[0]);
  set_sim_faults(ports[0], {{"latency_ms", 3000}});

  // Watch the slow replica: when its breaker opens and when it last received a request.
  std::int64_t last_count = sim_requests(ports[0]);
  double last_request_ms = 0, isolated_ms = -1;
  std::int64_t requests_at_isolation = 0;
  int completed_at_isolation = 0;
  wait_until(
      [&] {
        const auto now_count = sim_requests(ports[0]);
        if (now_count != last_count) {
          last_count = now_count;
          last_request_ms = ms_since(fault_at);
        }
        if (isolated_ms < 0 && breaker_state(ports[0]) != "closed") {
          isolated_ms = ms_since(fault_at);
          requests_at_isolation = sim_requests(ports[0]);
          completed_at_isolation = completed.load();
        }
        return completed.load() >= kTotal;
      },
      Millis{30000}, Millis{5});
  clients.join();
  const auto requests_at_end = sim_requests(ports[0]);

  std::cout << "[overheating replica] fault after " << completed_at_fault
            << " requests; breaker open after " << isolated_ms
            << " ms; last request to the slow replica " << last_request_ms
            << " ms after the fault; requests to it before opening: "
            << requests_at_isolation - requests_before_fault
            << ", after opening: " << requests_at_end - requests_at_isolation
            << "; client errors: " << report.errors() << " of " << report.statuses.size()
            << "; client p50 " << report.percentile_ms(50) << " ms, p99 "
            << report.percentile_ms(99) << " ms, max " << report.max_ms() << " ms\n";

  ASSERT_TRUE(mid_run);
  ASSERT_EQ(report.statuses.size(), static_cast<std::size_t>(kTotal));
  EXPECT_EQ(report.errors(), 0) << report.summary();
  EXPECT_LT(report.percentile_ms(99), 2000) << report.summary();
  ASSERT_GE(isolated_ms, 0) << "the slow replica's breaker never opened";
  EXPECT_LT(isolated_ms, 3000) << "one per-try timeout (1 s) after the first slow calls";
  EXPECT_GE(kTotal - completed_at_isolation, 100) << "the run went on long enough to tell";
  EXPECT_LE(requests_at_end - requests_at_isolation, 4)
      << "at most requests already admitted and a half-open probe";
  EXPECT_EQ(counter(metrics_text(), transitions_series(ports[0], "closed", "open")), 1);
}

// 11. X-Fusebox-Timeout-Ms: a client may shorten its deadline, never lengthen it past the
// route's, a malformed value is a 400, and the backend is told the time left.
TEST_F(ResilienceTest, ClientTimeoutHeaderShortensTheDeadlineAndIsForwarded) {
  ScriptedBackend backend(ScriptedReply::json(200, R"({"predictions": [1.0]})"));
  backend.push(ScriptedReply::hang_up());
  start_gateway(pool_config({backend.port()}, kHealthChecksOff, {}, {}, "2s"));
  HttpClient c(gateway_->http_port());

  auto start = Clock::now();
  const auto hung = c.post(kPredict, kThreeInstances, {{std::string(kTimeoutHeader), "200"}});
  const double elapsed = ms_since(start);
  expect_json_error(hung, 504, "upstream request timeout");
  EXPECT_GE(elapsed, 190);
  EXPECT_LT(elapsed, 700) << "the client's 200 ms, not the route's 2 s";
  ASSERT_TRUE(backend.wait_for_requests(1, Millis{1000}));
  auto sent = backend.requests().at(0);
  EXPECT_EQ(sent.count(kTimeoutHeader), 1u);
  const auto forwarded = std::stoll(sent.header(kTimeoutHeader).value_or("-1"));
  EXPECT_GE(forwarded, 150);
  EXPECT_LE(forwarded, 200) << "no more than the time left";

  for (const char* bad : {"abc", "-5", "12.5", "99999999999", "1e3"}) {
    const auto before = backend.request_count();
    expect_json_error(c.post(kPredict, kThreeInstances, {{std::string(kTimeoutHeader), bad}}), 400,
                      "X-Fusebox-Timeout-Ms must be a whole number of milliseconds");
    EXPECT_EQ(backend.request_count(), before) << bad;
  }

  // Longer than the route allows: capped at the route's 2 s.
  EXPECT_EQ(c.post(kPredict, kThreeInstances, {{std::string(kTimeoutHeader), "100000"}}).status,
            200);
  ASSERT_TRUE(backend.wait_for_requests(2, Millis{1000}));
  sent = backend.requests().back();
  const auto capped = std::stoll(sent.header(kTimeoutHeader).value_or("-1"));
  EXPECT_LE(capped, 2000);
  EXPECT_GE(capped, 1500);
  // Shorter: what is left of 300 ms.
  EXPECT_EQ(c.post(kPredict, kThreeInstances, {{std::string(kTimeoutHeader), "300"}}).status, 200);
  ASSERT_TRUE(backend.wait_for_requests(3, Millis{1000}));
  const auto shortened =
      std::stoll(backend.requests().back().header(kTimeoutHeader).value_or("-1"));
  EXPECT_LE(shortened, 300);
  EXPECT_GE(shortened, 250);
}

}  // namespace
}  // namespace fusebox_it
