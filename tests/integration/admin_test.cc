// The admin listener: liveness, readiness that follows the backends, Prometheus metrics that
// count exactly what happened, and the configuration and backend views.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "gateway_fixture.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using nlohmann::json;

constexpr const char* kPromtool = "/usr/bin/promtool";

PoolSpec pool_spec(std::string name, std::vector<std::uint16_t> ports) {
  PoolSpec pool;
  pool.name = std::move(name);
  pool.ports = std::move(ports);
  return pool;
}

RouteSpec route_spec(std::string name, std::string model, std::string pool) {
  RouteSpec route;
  route.name = std::move(name);
  route.model = std::move(model);
  route.pool = std::move(pool);
  return route;
}

class AdminTest : public GatewayTest {
 protected:
  HttpResponse post_breaker(std::string_view pool, std::string_view backend,
                            std::string_view body) const {
    auto admin = admin_client();
    return admin.post("/admin/pools/" + std::string(pool) + "/backends/" + std::string(backend) +
                          "/breaker",
                      body);
  }
};

TEST_F(AdminTest, HealthzIsAlive) {
  start_gateway(single_route_config({unused_port()}));
  auto admin = admin_client();
  const auto r = admin.get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(json_of(r), json({{"status", "alive"}}));
}

TEST_F(AdminTest, UnknownAdminPathIs404AndOnlyGetIsAllowed) {
  start_gateway(single_route_config({unused_port()}));
  auto admin = admin_client();
  const auto missing = admin.get("/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json_of(missing), json({{"error", "no admin endpoint /nope"}}));
  const auto post = admin.post("/healthz", "{}");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(json_of(post), json({{"error", "only GET is supported"}}));
}

TEST_F(AdminTest, ReadinessFollowsTheOnlyBackend) {
  start_sims(1);
  start_gateway(single_route_config({sim(0).port}));
  ASSERT_TRUE(wait_readyz(200)) << "ready once the health check passed";
  auto admin = admin_client();
  EXPECT_EQ(json_of(admin.get("/readyz")), json({{"status", "ready"}}));

  kill_sim(0);
  ASSERT_TRUE(wait_readyz(503)) << "not ready after the backend died";
  const auto r = admin.get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(json_of(r),
            json({{"status", "not_ready"},
                  {"reason", R"(route "half_plus_two": no healthy backend in pool "primary")"}}));
  EXPECT_EQ(backend_json("primary", 0).at("health"), "unhealthy");

  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot start tfs-sim on the same port again";
  EXPECT_TRUE(wait_readyz(200)) << "ready again after the backend returned";
}

TEST_F(AdminTest, ReadinessNeedsEveryRoute) {
  const auto alive = start_sims(1).at(0);
  GatewayConfig config;
  config.pools.push_back(pool_spec("up", {alive}));
  config.pools.push_back(pool_spec("down", {unused_port()}));
  config.routes.push_back(route_spec("hp2", "half_plus_two", "up"));
  config.routes.push_back(route_spec("other", "other", "down"));
  start_gateway(config);
  ASSERT_TRUE(wait_backend_health("up", 0, "healthy"));
  ASSERT_TRUE(wait_backend_health("down", 0, "unhealthy"));
  const auto r = admin_client().get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json_of(r).at("reason"), R"(route "other": no healthy backend in pool "down")");
}

TEST_F(AdminTest, ReadinessWithoutHealthChecksFollowsTheCircuitBreaker) {
  // Nothing probes the dead backend: it counts as serving until its breaker opens (5 failures
  // in a row by default).
  auto config = single_route_config({unused_port()});
  config.pools[0].health_check = kHealthChecksOff;
  config.routes[0].extra.emplace_back(kSingleAttempt);
  start_gateway(config);
  auto admin = admin_client();
  EXPECT_EQ(admin.get("/readyz").status, 200);
  auto c = client();
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_EQ(backend_json("primary", 0).at("circuit_breaker").at("state"),
              i < 4 ? "closed" : "open");
  }
  const auto ready = admin.get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(json_of(ready).at("reason"),
            R"(route "half_plus_two": no healthy backend in pool "primary")");
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json_of(r).at("error"), R"(no healthy backend in pool "primary")");
  EXPECT_EQ(backend_json("primary", 0).at("requests_total"), 5) << "the open breaker sent none";
}

TEST_F(AdminTest, MetricsCountExactlyWhatWasSent) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  auto c = client();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(c.post("/v1/models/unknown:predict", kThreeInstances).status, 404);
  ASSERT_EQ(c.get("/v1/models/half_plus_two").status, 200);

  auto admin = admin_client();
  const auto r = admin.get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto& m = r.body;
  const std::string backend = R"(pool="primary",backend="127.0.0.1:)" + std::to_string(port) + "\"";
  EXPECT_EQ(
      metric_value(m, R"(fusebox_requests_total{route="half_plus_two",method="POST",code="200"})"),
      5);
  EXPECT_EQ(
      metric_value(m, R"(fusebox_requests_total{route="half_plus_two",method="GET",code="200"})"),
      1);
  EXPECT_EQ(
      metric_value(m, R"(fusebox_requests_total{route="unmatched",method="POST",code="404"})"), 2);
  EXPECT_EQ(metric_value(m, R"(fusebox_requests_total{route="unmatched",method="GET",code="404"})"),
            std::nullopt);
  EXPECT_EQ(metric_value(m, R"(fusebox_request_duration_seconds_count{route="half_plus_two"})"), 6);
  EXPECT_EQ(metric_value(m, R"(fusebox_request_duration_seconds_count{route="unmatched"})"), 2);
  EXPECT_EQ(
      metric_value(m, "fusebox_upstream_requests_total{" + backend + R"(,outcome="success"})"), 6);
  for (const char* outcome :
       {"http_5xx", "connect_failure", "reset", "timeout", "protocol_error"}) {
    EXPECT_EQ(metric_value(m, "fusebox_upstream_requests_total{" + backend + ",outcome=\"" +
                                  outcome + "\"}"),
              0)
        << outcome;
  }
  EXPECT_EQ(metric_value(m, "fusebox_upstream_request_duration_seconds_count{" + backend + "}"), 6)
      << "health checks are not upstream requests";
  EXPECT_EQ(metric_value(m, "fusebox_backend_healthy{" + backend + "}"), 1);
  EXPECT_EQ(metric_value(m, "fusebox_circuit_breaker_state{" + backend + "}"), 0);
  EXPECT_EQ(metric_value(m, "fusebox_circuit_breaker_rejected_total{" + backend + "}"), 0);
  for (const char* reason : {"connect_failure", "reset", "timeout", "status", "hedge"}) {
    EXPECT_EQ(metric_value(m, R"(fusebox_retries_total{pool="primary",reason=")" +
                                  std::string(reason) + "\"}"),
              0)
        << reason;
  }
  EXPECT_EQ(metric_value(m, R"(fusebox_retry_budget_exhausted_total{pool="primary"})"), 0);
  EXPECT_EQ(metric_value(m, R"(fusebox_no_eligible_backend_total{pool="primary"})"), 0);
  EXPECT_EQ(metric_value(m, "fusebox_inflight_requests"), 0);
  EXPECT_EQ(metric_value(m, "fusebox_downstream_connections"), 1) << "our keep-alive client";
  EXPECT_EQ(metric_value(m, R"(fusebox_build_info{version=")" FUSEBOX_VERSION R"("})"), 1);
  // Session-level rejections are counted too.
  auto raw = client();
  raw.send_raw("GARBAGE\r\n\r\n");
  ASSERT_TRUE(raw.read_raw_response().ok());
  EXPECT_EQ(metric_value(admin.get("/metrics").body,
                         R"(fusebox_requests_total{route="unmatched",method="other",code="400"})"),
            1);
}

TEST_F(AdminTest, MetricsPassPromtoolCheck) {
  if (!std::filesystem::exists(kPromtool)) GTEST_SKIP() << kPromtool << " is not installed";
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port, unused_port()}));
  auto c = client();
  for (int i = 0; i < 3; ++i) c.post(kPredict, kThreeInstances);
  c.post("/v1/models/unknown:predict", kThreeInstances);
  c.get("/nope");
  const auto text = metrics_text();
  TempFile file(text, ".prom");
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto promtool = ChildProcess::spawn(
      "/bin/sh", {"-c", std::string(kPromtool) + " check metrics < '" + file.path() + "'"},
      options);
  const auto code = promtool.wait_exit(Millis{10000});
  ASSERT_TRUE(code.has_value()) << "promtool did not finish";
  EXPECT_EQ(*code, 0) << "promtool check metrics:\n"
                      << promtool.stdout_text() << promtool.stderr_text();
  EXPECT_EQ(promtool.stdout_text() + promtool.stderr_text(), "") << "promtool lint findings";
}

TEST_F(AdminTest, AdminConfigReflectsTheConfiguration) {
  const auto port = start_sims(1).at(0);
  auto config = single_route_config({port}, "750ms");
  config.threads = 2;
  config.http = {"max_request_body: 1MiB", "max_requests_per_connection: 7"};
  config.pools[0].extra = {"connect_timeout: 250ms", "max_connections_per_backend: 16"};
  auto other = route_spec("other", "other", "primary");
  other.timeout = "2s";
  other.extra = {"retry: {max_attempts: 2, retry_on: [connect_failure, 503],",
                 "        per_try_timeout: 500ms}"};
  config.routes.push_back(other);
  start_gateway(config);
  const auto j = admin_json("/admin/config");
  EXPECT_EQ(j.at("server"), json({{"threads", 2}}));
  EXPECT_EQ(j.at("drain"), json({{"delay", "0s"}, {"timeout", "5s"}}));
  const auto& http = j.at("listeners").at("http");
  EXPECT_EQ(http.at("address"), "127.0.0.1");
  EXPECT_EQ(http.at("port"), 0) << "the configured value, not the bound port";
  EXPECT_EQ(http.at("max_request_body"), "1MiB");
  EXPECT_EQ(http.at("max_request_headers"), "16KiB") << "defaults are filled in";
  EXPECT_EQ(http.at("request_header_timeout"), "10s");
  EXPECT_EQ(http.at("max_requests_per_connection"), 7);
  const auto& pool = j.at("pools").at("primary");
  EXPECT_EQ(pool.at("endpoints"),
            json::array({{{"address", "127.0.0.1"}, {"port", port}, {"weight", 1}, {"grpc_port", 0}}}));
  EXPECT_FALSE(j.at("listeners").contains("grpc")) << "the gRPC listener only when configured";
  EXPECT_EQ(pool.at("connect_timeout"), "250ms");
  EXPECT_EQ(pool.at("max_connections_per_backend"), 16);
  EXPECT_FALSE(pool.contains("reachability_interval")) << "active health checks replaced it";
  EXPECT_EQ(pool.at("max_response_body"), "64MiB");
  EXPECT_EQ(pool.at("max_ejection_percent"), 50);
  // The fixture's fast health checks, the rest at their defaults.
  EXPECT_EQ(pool.at("health_check"), json({{"enabled", true},
                                           {"protocol", "rest"},
                                           {"interval", "100ms"},
                                           {"unhealthy_interval", "100ms"},
                                           {"jitter_percent", 10},
                                           {"timeout", "50ms"},
                                           {"healthy_threshold", 1},
                                           {"unhealthy_threshold", 1},
                                           {"models", json::array()},
                                           {"expected_version", 0}}));
  EXPECT_EQ(pool.at("load_balancing"), json({{"policy", "weighted_round_robin"},
                                             {"slow_start", "0s"},
                                             {"slow_start_min_weight_percent", 10}}));
  EXPECT_EQ(pool.at("circuit_breaker"),
            json({{"mode", "auto"},
                  {"consecutive_failures", 5},
                  {"window", {{"type", "count"}, {"size", 20}, {"duration", "10s"}}},
                  {"minimum_calls", 10},
                  {"failure_rate_percent", 50},
                  {"slow_call_rate_percent", 0},
                  {"slow_call_duration", "1s"},
                  {"failure_statuses", {500, 502, 503, 504}},
                  {"open_duration", "5s"},
                  {"max_open_duration", "1m"},
                  {"open_jitter_percent", 10},
                  {"half_open_max_calls", 3},
                  {"require_health_check", false}}));
  EXPECT_EQ(pool.at("retry_budget"), json({{"budget_percent", 20}, {"min_concurrency", 3}}));
  const json default_retry = {{"max_attempts", 3},
                              {"retry_on", {"connect_failure", "reset", "timeout", 502, 503, 504}},
                              {"per_try_timeout", "0s"},
                              {"backoff", {{"base", "25ms"}, {"max", "250ms"}}}};
  const json no_cache = {{"mode", "off"}, {"ttl", "1m"}, {"stale_if_error", "0s"},
                         {"fill_from_model_tiers", false}};
  for (auto route : j.at("routes")) {
    EXPECT_EQ(route.at("cache"), no_cache) << "routes cache nothing unless asked";
    EXPECT_EQ(route.at("fallbacks"), json::array());
    EXPECT_EQ(route.at("fallback_reserve"), "0s");
    EXPECT_EQ(route.at("idempotency").at("enabled"), false);
    EXPECT_FALSE(route.contains("split")) << "optional sections only when configured";
    EXPECT_FALSE(route.contains("degrade_on_load"));
    EXPECT_EQ(route.at("auth"), "none") << "admission keys are always shown";
    EXPECT_EQ(route.at("priority"), 5);
    EXPECT_FALSE(route.contains("concurrency")) << "only when configured";
  }
  auto routes = j.at("routes");
  for (auto& route : routes) {
    route.erase("auth");
    route.erase("priority");
    route.erase("cache");
    route.erase("fallbacks");
    route.erase("fallback_reserve");
    route.erase("idempotency");
  }
  EXPECT_EQ(routes,
            json::array({{{"name", "half_plus_two"},
                          {"match", {{"model", "half_plus_two"}}},
                          {"pool", "primary"},
                          {"timeout", "750ms"},
                          {"max_timeout", "0s"},
                          {"retry", default_retry},
                          {"hedge", {{"delay", "0s"}}}},
                         {{"name", "other"},
                          {"match", {{"model", "other"}}},
                          {"pool", "primary"},
                          {"timeout", "2s"},
                          {"max_timeout", "0s"},
                          {"retry",
                           {{"max_attempts", 2},
                            {"retry_on", {"connect_failure", 503}},
                            {"per_try_timeout", "500ms"},
                            {"backoff", {{"base", "25ms"}, {"max", "250ms"}}}}},
                          {"hedge", {{"delay", "0s"}}}}}));
  EXPECT_EQ(j.at("logging").at("level"), "warn");
  EXPECT_EQ(j.at("logging").at("access_log"), false);
  EXPECT_EQ(j.at("logging").at("format"), "text");
}

TEST_F(AdminTest, AdminBackendsListsBackendsWithCounters) {
  const auto ports = start_sims(2);
  const auto dead = unused_port();
  GatewayConfig config = single_route_config(ports);
  // Not probed, and one attempt per request: each request to it is one connect failure.
  auto lonely = pool_spec("lonely", {dead});
  lonely.health_check = kHealthChecksOff;
  config.pools.push_back(lonely);
  auto other = route_spec("other", "other", "lonely");
  other.extra.emplace_back(kSingleAttempt);
  config.routes.push_back(other);
  start_gateway(config);
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  ASSERT_TRUE(wait_backend_health("primary", 1, "healthy"));
  auto c = client();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(c.post("/v1/models/other:predict", kThreeInstances).status, 502);

  const auto j = admin_json("/admin/backends");
  ASSERT_EQ(j.at("pools").size(), 2u);
  const auto& primary = j.at("pools").at("primary").at("backends");
  ASSERT_EQ(primary.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    auto backend = primary.at(i);
    // The last probe's words; the rest of the entry is compared whole.
    const auto probe = backend.at("last_health_check");
    EXPECT_EQ(probe.at("result"), "passed");
    EXPECT_NE(probe.at("detail").get<std::string>().find(" AVAILABLE"), std::string::npos) << probe;
    backend.erase("last_health_check");
    EXPECT_EQ(backend, json({{"name", "127.0.0.1:" + std::to_string(ports[i])},
                             {"address", "127.0.0.1"},
                             {"port", ports[i]},
                             {"grpc_port", nullptr},
                             {"weight", 1},
                             {"health", "healthy"},
                             {"circuit_breaker",
                              {{"state", "closed"},
                               {"window_calls", 2},
                               {"window_failures", 0},
                               {"window_slow_calls", 0},
                               {"failure_rate_percent", 0},
                               {"slow_rate_percent", 0},
                               {"consecutive_failures", 0}}},
                             {"reachable", true},
                             {"open_connections", 1},
                             {"active_requests", 0},
                             {"requests_total", 2},
                             {"failures_total", 0}}));
  }
  const auto& lonely_backends = j.at("pools").at("lonely").at("backends");
  ASSERT_EQ(lonely_backends.size(), 1u);
  EXPECT_EQ(lonely_backends.at(0), json({{"name", "127.0.0.1:" + std::to_string(dead)},
                                         {"address", "127.0.0.1"},
                                         {"port", dead},
                                         {"grpc_port", nullptr},
                                         {"weight", 1},
                                         {"health", "unknown"},
                                         {"last_health_check", nullptr},
                                         {"circuit_breaker",
                                          {{"state", "closed"},
                                           {"window_calls", 3},
                                           {"window_failures", 3},
                                           {"window_slow_calls", 0},
                                           {"failure_rate_percent", 100},
                                           {"slow_rate_percent", 0},
                                           {"consecutive_failures", 3}}},
                                         {"reachable", false},
                                         {"open_connections", 0},
                                         {"active_requests", 0},
                                         {"requests_total", 3},
                                         {"failures_total", 3}}));
}

TEST_F(AdminTest, BreakerControlForcesABackendOutAndBack) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  ASSERT_TRUE(wait_readyz(200));
  const std::string label = "127.0.0.1:" + std::to_string(port);
  const std::string series =
      R"(fusebox_circuit_breaker_state{pool="primary",backend=")" + label + "\"}";

  const auto forced = post_breaker("primary", label, R"({"state": "forced_open"})");
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(forced.header("Content-Type"), "application/json");
  const auto shown = json_of(forced);
  EXPECT_EQ(shown.at("port"), port) << "the answer is the backend's /admin/backends entry";
  EXPECT_EQ(shown.at("circuit_breaker").at("state"), "forced_open");
  EXPECT_EQ(backend_json("primary", 0), shown);
  EXPECT_EQ(metric_value(metrics_text(), series), 3);

  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json_of(r).at("error"), R"(no healthy backend in pool "primary")");
  EXPECT_EQ(sim_stats(port).at("requests"), 0);
  const auto ready = admin_client().get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(json_of(ready).at("reason"),
            R"(route "half_plus_two": no healthy backend in pool "primary")");

  // Back to automatic control, addressing the backend by its index this time.
  const auto back = post_breaker("primary", "0", R"({"state": "auto"})");
  ASSERT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(json_of(back).at("circuit_breaker").at("state"), "closed");
  EXPECT_EQ(metric_value(metrics_text(), series), 0);
  EXPECT_EQ(c.post(kPredict, kThreeInstances).body, kThreePredictions);
  EXPECT_EQ(sim_stats(port).at("requests"), 1);
  EXPECT_EQ(admin_client().get("/readyz").status, 200);
}

TEST_F(AdminTest, BreakerControlRejectsBadRequests) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  const std::string label = "127.0.0.1:" + std::to_string(port);
  struct Case {
    std::string pool, backend, body;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"nope", label, R"({"state": "closed"})", 404, R"(no pool named "nope")"},
      {"primary", "10.0.0.1:8501", R"({"state": "closed"})", 404,
       R"(no backend "10.0.0.1:8501" in pool "primary")"},
      {"primary", "1", R"({"state": "closed"})", 404, R"(no backend "1" in pool "primary")"},
      {"primary", label, "not json", 400,
       R"(expected a JSON object {"state": "forced_open|closed|disabled|metrics_only|auto"})"},
      {"primary", label, R"({"state": 1})", 400,
       R"(expected a JSON object {"state": "forced_open|closed|disabled|metrics_only|auto"})"},
      {"primary", label, R"({"state": "open"})", 400,
       R"(unknown breaker state "open" (expected forced_open, closed, disabled, metrics_only or auto))"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.pool + " " + k.backend + " " + k.body);
    const auto r = post_breaker(k.pool, k.backend, k.body);
    EXPECT_EQ(r.status, k.status);
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    EXPECT_EQ(json_of(r), json({{"error", k.error}}));
  }
  auto admin = admin_client();
  const auto get = admin.get("/admin/pools/primary/backends/0/breaker");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(json_of(get), json({{"error", "use POST"}}));
  const auto partial = admin.post("/admin/pools/primary/backends/0", R"({"state": "closed"})");
  EXPECT_EQ(partial.status, 404);
  EXPECT_EQ(json_of(partial),
            json({{"error", "no admin endpoint /admin/pools/primary/backends/0"}}));
  EXPECT_EQ(backend_json("primary", 0).at("circuit_breaker").at("state"), "closed")
      << "no rejected request changed the breaker";
}

}  // namespace
}  // namespace fusebox_it
