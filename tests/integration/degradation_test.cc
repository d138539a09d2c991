// The degradation chain with real processes: a primary pool serving half_plus_two, a light pool
// serving a different model (half_plus_three, so its answers are visibly different), the
// response cache and a default answer.
#include <gtest/gtest.h>

#include <string>

#include "gateway_fixture.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using nlohmann::json;

constexpr std::string_view kLightPredictions = R"({"predictions": [3.5, 4.0, 5.5]})";
constexpr std::string_view kDefaultBody = R"({"predictions": [], "note": "default"})";

class DegradationTest : public GatewayTest {
 protected:
  // sim 0: primary (half_plus_two); sim 1: light (model "light" = half_plus_three).
  void start_chain(std::string cache_mode = "fallback", std::vector<std::string> rules_tier = {}) {
    const auto primary = start_sims(1).at(0);
    const auto light = start_sim({"--rest-port", "0", "--model", "light:half_plus_three"}).port;
    GatewayConfig config;
    config.pools.push_back({"primary", {primary}});
    config.pools.push_back({"light", {light}});
    RouteSpec route;
    route.extra = {
        "retry: {max_attempts: 2}",
        "fallback_reserve: 1s",
        "cache: {mode: " + cache_mode + ", ttl: 60s, stale_if_error: 10m}",
        "fallbacks:",
        "  - {tier: model, pool: light, model: light, timeout: 1s}",
        "  - {tier: cache}",
    };
    route.extra.insert(route.extra.end(), rules_tier.begin(), rules_tier.end());
    route.extra.push_back(std::string("  - {tier: default, status: 200, body: '") + std::string(kDefaultBody) +
            "', retry_after: 5s}");
    config.routes.push_back(route);
    // The light pool also needs a route, or its health check has no model to probe.
    config.routes.push_back({"light", "light", "light", "5s", {}});
    start_gateway(config);
    ASSERT_TRUE(wait_all_backends_health("healthy"));
  }

  double responses(std::string_view tier, std::string_view reason) const {
    auto series = "fusebox_responses_total{route=\"half_plus_two\",tier=\"" + std::string(tier) +
                  "\",reason=\"" + std::string(reason) + "\",protocol=\"rest\"}";
    return metric_value(metrics_text(), series).value_or(-1);
  }
};

TEST_F(DegradationTest, KillPrimaryThenLightWalksTheChainWithoutServerErrors) {
  start_chain();
  auto c = client();

  auto r = c.post(kPredict, kThreeInstances);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kThreePredictions);
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  EXPECT_FALSE(r.has_header("X-Fusebox-Degraded-Reason"));

  kill_sim(0);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  r = c.post(kPredict, kThreeInstances);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kLightPredictions) << "the light model answers";
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "model:light");
  EXPECT_EQ(r.header("X-Fusebox-Degraded-Reason"), "no_healthy_backend");
  EXPECT_NO_THROW(json_of(r).at("predictions"));

  kill_sim(1);
  ASSERT_TRUE(wait_backend_health("light", 0, "unhealthy"));
  r = c.post(kPredict, kThreeInstances);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kThreePredictions) << "the primary's earlier answer, from the cache";
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "cache");
  EXPECT_EQ(r.header("X-Fusebox-Degraded-Reason"), "no_healthy_backend");

  // Same numbers, other spelling and key order: still the same cache entry.
  r = c.post(kPredict, R"({ "instances" : [1, 2.0, 5e0] })");
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "cache");
  EXPECT_EQ(r.body, kThreePredictions);

  r = c.post(kPredict, R"({"instances": [7.0]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json_of(r), json::parse(kDefaultBody)) << "a request never seen before gets the default";
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "default");
  EXPECT_EQ(r.header("Retry-After"), "5");
  EXPECT_EQ(r.header("Content-Type"), "application/json");

  const auto metrics = metrics_text();
  EXPECT_EQ(responses("primary", "none"), 1);
  EXPECT_EQ(responses("model:light", "no_healthy_backend"), 1);
  EXPECT_EQ(responses("cache", "no_healthy_backend"), 2);
  EXPECT_EQ(responses("default", "no_healthy_backend"), 1);
  EXPECT_EQ(metric_value(metrics, "fusebox_requests_total{route=\"half_plus_two\",method=\"POST\",code=\"200\"}"), 5)
      << "no client saw a server error";

  if (!restart_sim_on_same_port(0)) GTEST_SKIP() << "cannot restart the primary on its port";
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary") << "traffic returns without a restart";
  EXPECT_EQ(r.body, kThreePredictions);
}

TEST_F(DegradationTest, ClientErrorsAreNeverMasked) {
  start_chain();
  auto r = client().post(kPredict, R"({"instances": [1.0)");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  EXPECT_FALSE(r.has_header("X-Fusebox-Degraded-Reason"));
}

TEST_F(DegradationTest, UpstreamErrorEngagesTheModelTier) {
  start_chain();
  set_sim_faults(sim(0).port, {{"error_rate", 1.0}, {"error_status", 503}, {"models", {"half_plus_two"}}});
  auto r = client().post(kPredict, kThreeInstances);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kLightPredictions);
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "model:light");
  EXPECT_EQ(r.header("X-Fusebox-Degraded-Reason"), "upstream_error");
}

TEST_F(DegradationTest, CacheFirstServesHitsWithoutTheBackend) {
  start_chain("first");
  auto c = client();
  auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.header("X-Fusebox-Cache"), "miss");
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  for (int i = 0; i < 5; ++i) {
    r = c.post(kPredict, kThreeInstances);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, kThreePredictions);
    EXPECT_EQ(r.header("X-Fusebox-Cache"), "hit");
    EXPECT_EQ(r.header("X-Fusebox-Tier"), "cache");
  }
  EXPECT_EQ(sim_stats(sim(0).port).at("requests"), 1) << "hits never reach the backend";
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, "fusebox_cache_hits_total"), 5);
  EXPECT_EQ(metric_value(metrics, "fusebox_cache_entries"), 1);
}

TEST_F(DegradationTest, RulesAnswerWhatTheirConditionsCoverKeepingTheShape) {
  start_chain("fallback", {
                              "  - tier: rules",
                              "    rules:",
                              "      - name: small_inputs",
                              "        instance_when: [{pointer: \"\", op: range, max: 3}]",
                              "        prediction: 0.5",
                          });
  kill_sim(0);
  kill_sim(1);
  ASSERT_TRUE(wait_all_backends_health("unhealthy"));
  auto c = client();
  auto r = c.post(kPredict, R"({"instances": [1.0, 2.0, 3.0]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json_of(r), json::parse(R"({"predictions": [0.5, 0.5, 0.5]})"))
      << "one prediction per instance, like the model's answer";
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "rules");
  EXPECT_EQ(r.header("X-Fusebox-Rule"), "small_inputs");
  EXPECT_EQ(r.header("X-Fusebox-Degraded-Reason"), "no_healthy_backend");

  r = c.post(kPredict, R"({"instances": [1.0, 9.0]})");
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "default") << "an instance no rule covers";
  EXPECT_EQ(metric_value(metrics_text(),
                         R"(fusebox_responses_total{route="half_plus_two",tier="rules",reason="no_healthy_backend",protocol="rest"})"),
            1);
}

}  // namespace
}  // namespace fusebox_it
