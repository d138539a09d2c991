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

class AdminTest : public GatewayTest {};

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
  ASSERT_TRUE(wait_readyz(200)) << "ready once the probe reached the backend";
  auto admin = admin_client();
  EXPECT_EQ(json_of(admin.get("/readyz")), json({{"status", "ready"}}));

  kill_sim(0);
  ASSERT_TRUE(wait_readyz(503)) << "not ready after the backend died";
  const auto r = admin.get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(json_of(r),
            json({{"status", "not_ready"},
                  {"reason", R"(route "half_plus_two": no reachable backend in pool "primary")"}}));

  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot start tfs-sim on the same port again";
  EXPECT_TRUE(wait_readyz(200)) << "ready again after the backend returned";
}

TEST_F(AdminTest, ReadinessNeedsEveryRoute) {
  const auto alive = start_sims(1).at(0);
  GatewayConfig config;
  config.pools.push_back({"up", {alive}, "100ms", {}});
  config.pools.push_back({"down", {unused_port()}, "100ms", {}});
  config.routes.push_back({"hp2", "half_plus_two", "up", "5s"});
  config.routes.push_back({"other", "other", "down", "5s"});
  start_gateway(config);
  ASSERT_TRUE(wait_until([&] {
    return admin_json("/admin/backends")
               .at("pools")
               .at("up")
               .at("backends")
               .at(0)
               .at("reachable") == true;
  }));
  const auto r = admin_client().get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json_of(r).at("reason"), R"(route "other": no reachable backend in pool "down")");
}

TEST_F(AdminTest, MetricsCountExactlyWhatWasSent) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
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
  EXPECT_EQ(metric_value(m, "fusebox_upstream_request_duration_seconds_count{" + backend + "}"), 6);
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
  start_gateway(config);
  const auto j = admin_json("/admin/config");
  EXPECT_EQ(j.at("server"), json({{"threads", 2}, {"shutdown_timeout", "5s"}}));
  const auto& http = j.at("listeners").at("http");
  EXPECT_EQ(http.at("address"), "127.0.0.1");
  EXPECT_EQ(http.at("port"), 0) << "the configured value, not the bound port";
  EXPECT_EQ(http.at("max_request_body"), "1MiB");
  EXPECT_EQ(http.at("max_request_headers"), "16KiB") << "defaults are filled in";
  EXPECT_EQ(http.at("request_header_timeout"), "10s");
  EXPECT_EQ(http.at("max_requests_per_connection"), 7);
  const auto& pool = j.at("pools").at("primary");
  EXPECT_EQ(pool.at("endpoints"),
            json::array({{{"address", "127.0.0.1"}, {"port", port}, {"weight", 1}}}));
  EXPECT_EQ(pool.at("connect_timeout"), "250ms");
  EXPECT_EQ(pool.at("max_connections_per_backend"), 16);
  EXPECT_EQ(pool.at("reachability_interval"), "100ms");
  EXPECT_EQ(pool.at("max_response_body"), "64MiB");
  EXPECT_EQ(j.at("routes"), json::array({{{"name", "half_plus_two"},
                                          {"match", {{"model", "half_plus_two"}}},
                                          {"pool", "primary"},
                                          {"timeout", "750ms"}}}));
  EXPECT_EQ(j.at("logging").at("level"), "warn");
  EXPECT_EQ(j.at("logging").at("access_log"), false);
  EXPECT_EQ(j.at("logging").at("format"), "text");
}

TEST_F(AdminTest, AdminBackendsListsBackendsWithCounters) {
  const auto ports = start_sims(2);
  const auto dead = unused_port();
  GatewayConfig config = single_route_config(ports);
  config.pools.push_back({"lonely", {dead}, "100ms", {}});
  config.routes.push_back({"other", "other", "lonely", "5s"});
  start_gateway(config);
  ASSERT_TRUE(wait_until([&] {
    const auto b = admin_json("/admin/backends").at("pools").at("primary").at("backends");
    return b.at(0).at("reachable") == true && b.at(1).at("reachable") == true;
  }));
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
    EXPECT_EQ(primary.at(i), json({{"address", "127.0.0.1"},
                                   {"port", ports[i]},
                                   {"weight", 1},
                                   {"reachable", true},
                                   {"open_connections", 1},
                                   {"active_requests", 0},
                                   {"requests_total", 2},
                                   {"failures_total", 0}}));
  }
  const auto& lonely = j.at("pools").at("lonely").at("backends");
  ASSERT_EQ(lonely.size(), 1u);
  EXPECT_EQ(lonely.at(0), json({{"address", "127.0.0.1"},
                                {"port", dead},
                                {"weight", 1},
                                {"reachable", false},
                                {"open_connections", 0},
                                {"active_requests", 0},
                                {"requests_total", 3},
                                {"failures_total", 3}}));
}

}  // namespace
}  // namespace fusebox_it
