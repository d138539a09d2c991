// Traffic policies on top of the degradation chain, with real processes: load-aware
// degradation, canary splits, idempotent replay and request coalescing.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <map>
#include <string>
#include <thread>

#include "gateway_fixture.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using nlohmann::json;

// half_plus_three's answers for kThreeInstances: how a canary or light model is recognised.
constexpr std::string_view kPlusThreePredictions = R"({"predictions": [3.5, 4.0, 5.5]})";

class TrafficTest : public GatewayTest {
 protected:
  static double requests_seen(std::uint16_t sim_port) { return sim_stats(sim_port).at("requests"); }

  // Sends `count` requests at once from `count` threads (each on its own connection); returns
  // the responses in thread order.
  std::vector<HttpResponse> concurrent_posts(int count, std::string_view body,
                                             const Headers& headers = {}) {
    std::vector<HttpResponse> out(static_cast<std::size_t>(count));
    std::barrier start(count);
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i) {
      threads.emplace_back([&, i] {
        auto c = client();
        start.arrive_and_wait();
        out[static_cast<std::size_t>(i)] = c.post(kPredict, body, headers);
      });
    }
    for (auto& t : threads) t.join();
    return out;
  }
};

// ---- canary splits --------------------------------------------------------------------------

class SplitTest : public TrafficTest {
 protected:
  // sim 0: stable (half_plus_two); sim 1: canary serving "half_plus_two" with half_plus_three's
  // math, so every answer shows which target gave it.
  void start_split(std::string canary_breaker = "", std::string sticky = "") {
    const auto stable = start_sims(1).at(0);
    const auto canary =
        start_sim({"--rest-port", "0", "--model", "half_plus_two:half_plus_three"}).port;
    GatewayConfig config;
    config.pools.push_back({"primary", {stable}});
    PoolSpec canary_pool{"canary", {canary}};
    if (!canary_breaker.empty()) canary_pool.extra.push_back(canary_breaker);
    config.pools.push_back(canary_pool);
    RouteSpec route;
    route.extra = {"split:", "  canaries: [{name: v2, pool: canary, weight_percent: 10}]"};
    if (!sticky.empty()) route.extra.push_back("  sticky_header: " + sticky);
    config.routes.push_back(route);
    start_gateway(config);
    ASSERT_TRUE(wait_all_backends_health("healthy"));
  }
};

TEST_F(SplitTest, NinetyTenSplitHoldsOverTwoThousandRequests) {
  start_split();
  auto c = client();
  std::map<std::string, int> by_target;
  constexpr int kRequests = 2000;
  for (int i = 0; i < kRequests; ++i) {
    auto r = c.post(kPredict, kThreeInstances);
    ASSERT_EQ(r.status, 200) << r.body;
    auto target = r.header("X-Fusebox-Split").value_or("?");
    ++by_target[target];
    EXPECT_EQ(r.body, target == "v2" ? kPlusThreePredictions : kThreePredictions) << target;
    EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  }
  // Binomial(2000, 0.1): mean 200, sd 13.4; +-60 is 4.5 sd.
  EXPECT_NEAR(by_target["v2"], 200, 60);
  EXPECT_EQ(by_target["v2"] + by_target["stable"], kRequests);
  EXPECT_EQ(requests_seen(sim(1).port), by_target["v2"]) << "the canary saw exactly its share";
  EXPECT_EQ(requests_seen(sim(0).port), by_target["stable"]);
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, R"(fusebox_split_responses_total{route="half_plus_two",target="v2"})"),
            by_target["v2"]);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_split_responses_total{route="half_plus_two",target="stable"})"),
            by_target["stable"]);
  auto routes = admin_json("/admin/routes");
  EXPECT_EQ(routes["routes"][0]["split"]["targets"][1]["name"], "v2");
  EXPECT_EQ(routes["routes"][0]["split"]["targets"][0]["weight_percent"], 90.0);
}

TEST_F(SplitTest, OverrideHeaderPinsTheTarget) {
  start_split();
  auto c = client();
  for (int i = 0; i < 20; ++i) {
    auto r = c.post(kPredict, kThreeInstances, {{"X-Fusebox-Canary", "always"}});
    EXPECT_EQ(r.header("X-Fusebox-Split"), "v2");
    EXPECT_EQ(r.body, kPlusThreePredictions);
    r = c.post(kPredict, kThreeInstances, {{"X-Fusebox-Canary", "never"}});
    EXPECT_EQ(r.header("X-Fusebox-Split"), "stable");
    EXPECT_EQ(r.body, kThreePredictions);
  }
  // Status and metadata requests are not split.
  auto r = c.get("/v1/models/half_plus_two", {{"X-Fusebox-Canary", "always"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.has_header("X-Fusebox-Split"));
}

TEST_F(SplitTest, StickyKeyKeepsEachUserOnOneTarget) {
  start_split("", "X-User-Id");
  auto c = client();
  std::map<std::string, int> users_by_target;
  for (int user = 0; user < 40; ++user) {
    std::string id = "user-" + std::to_string(user);
    auto first = c.post(kPredict, kThreeInstances, {{"X-User-Id", id}}).header("X-Fusebox-Split");
    ASSERT_TRUE(first.has_value());
    ++users_by_target[*first];
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(c.post(kPredict, kThreeInstances, {{"X-User-Id", id}}).header("X-Fusebox-Split"),
                first)
          << id;
    }
  }
  EXPECT_GT(users_by_target["stable"], 0);
}

TEST_F(SplitTest, FailingCanaryHandsItsTrafficToStableNotToTheChain) {
  // The canary's breaker is stricter than the stable one: one failure opens it.
  start_split("circuit_breaker: {consecutive_failures: 1, open_duration: 30s}");
  set_sim_faults(sim(1).port, {{"error_rate", 1.0}, {"error_status", 503}});
  auto c = client();
  for (int i = 0; i < 5; ++i) {
    auto r = c.post(kPredict, kThreeInstances, {{"X-Fusebox-Canary", "always"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, kThreePredictions) << "stable answered";
    EXPECT_EQ(r.header("X-Fusebox-Split"), "stable");
    EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
    EXPECT_FALSE(r.has_header("X-Fusebox-Degraded-Reason"));
  }
  EXPECT_EQ(backend_json("canary", 0).at("circuit_breaker").at("state"), "open");
  // The first failure opened the canary's breaker; after that nothing more was sent to it.
  EXPECT_EQ(requests_seen(sim(1).port), 1);
  EXPECT_EQ(metric_value(metrics_text(),
                         R"(fusebox_split_handoffs_total{route="half_plus_two",canary="v2"})"),
            5);
}

// ---- load-aware degradation -----------------------------------------------------------------

class LoadDegradeTest : public TrafficTest {
 protected:
  void start_load_route() {
    const auto primary = start_sims(1).at(0);
    const auto light = start_sim({"--rest-port", "0", "--model", "light:half_plus_three"}).port;
    GatewayConfig config;
    // No health checks: the injected latency would fail the probes too, and this test is about
    // the route's load signals, not about the backend's health.
    config.pools.push_back({"primary", {primary}, std::string(kHealthChecksOff)});
    config.pools.push_back({"light", {light}, std::string(kHealthChecksOff)});
    RouteSpec route;
    route.extra = {
        "fallbacks: [{tier: model, pool: light, model: light, timeout: 2s}]",
        "degrade_on_load: {max_latency: 100ms, interval: 100ms, step_percent: 50, "
        "max_percent: 100, recover_ratio: 0.8, recover_intervals: 1}",
    };
    config.routes.push_back(route);
    start_gateway(config);
  }

  json load_state() { return admin_json("/admin/routes")["routes"][0]["degrade_on_load"]; }
};

TEST_F(LoadDegradeTest, EngagesUnderSlowdownAndRecoversStepwise) {
  start_load_route();
  auto c = client();
  auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  EXPECT_EQ(load_state()["fraction"], 0.0);

  set_sim_faults(sim(0).port, {{"latency_ms", 250}, {"models", {"half_plus_two"}}});
  // Slow primary answers raise the latency EWMA over 100ms; then requests are diverted.
  bool diverted = false;
  for (int i = 0; i < 60 && !diverted; ++i) {
    r = c.post(kPredict, kThreeInstances);
    ASSERT_EQ(r.status, 200) << r.body;
    diverted = r.header("X-Fusebox-Degraded-Reason") == "overload";
    if (diverted) {
      EXPECT_EQ(r.header("X-Fusebox-Tier"), "model:light");
      EXPECT_EQ(r.body, kPlusThreePredictions);
    }
  }
  ASSERT_TRUE(diverted) << load_state().dump();
  auto state = load_state();
  EXPECT_GT(state["fraction"].get<double>(), 0.0);
  EXPECT_NE(state["state"], "normal");
  EXPECT_NE(state["reason"].get<std::string>().find("latency ewma"), std::string::npos)
      << state.dump();
  EXPECT_GT(metric_value(metrics_text(),
                         R"(fusebox_load_degradation_fraction{route="half_plus_two"})").value_or(0),
            0.0);

  set_sim_faults(sim(0).port, json::object());
  // Stepwise recovery: fast primary samples (or none at 100%) are calm, one step per interval.
  bool recovered = wait_until(
      [&] {
        auto answer = c.post(kPredict, kThreeInstances);
        return answer.status == 200 && load_state()["fraction"] == 0.0;
      },
      Millis{10000}, Millis{20});
  ASSERT_TRUE(recovered) << load_state().dump();
  r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
  EXPECT_EQ(r.body, kThreePredictions);
  EXPECT_GE(metric_value(metrics_text(),
                         R"(fusebox_load_degradation_changes_total{route="half_plus_two"})").value_or(0),
            2)
      << "up at least once and back down";
  EXPECT_NE(gateway().stderr_text().find("load-aware degradation normal -> degrading"),
            std::string::npos)
      << gateway().stderr_text();
}

// ---- idempotent replay and coalescing -------------------------------------------------------

class ReplayTest : public TrafficTest {
 protected:
  void start_replay_route(std::string idempotency, int threads = 2) {
    start_sims(1);
    GatewayConfig config = single_route_config({sim(0).port});
    config.pools[0].health_check = kHealthChecksOff;  // injected latency would fail the probes
    config.threads = threads;
    config.routes[0].extra.push_back("idempotency: " + idempotency);
    start_gateway(config);
  }
};

TEST_F(ReplayTest, SameKeySharesOneUpstreamCallAndReplaysLater) {
  start_replay_route("{ttl: 60s}");
  set_sim_faults(sim(0).port, {{"latency_ms", 300}});
  auto responses = concurrent_posts(5, kThreeInstances, {{"Idempotency-Key", "order-17"}});
  int marked = 0;
  for (const auto& r : responses) {
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, kThreePredictions);
    EXPECT_EQ(r.header("X-Fusebox-Tier"), "primary");
    marked += r.header("X-Fusebox-Replayed") == "true";
  }
  EXPECT_EQ(marked, 4) << "one leader, four shared its answer";
  EXPECT_EQ(requests_seen(sim(0).port), 1);

  // Later, with the same key and the same body (other spelling): the stored answer.
  auto c = client();
  auto r = c.post(kPredict, R"({"instances": [1, 2, 5]})", {{"Idempotency-Key", "order-17"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kThreePredictions);
  EXPECT_EQ(r.header("X-Fusebox-Replayed"), "true");
  EXPECT_TRUE(r.has_header("X-Request-Id"));
  EXPECT_NE(r.header("X-Request-Id"), responses[0].header("X-Request-Id"));
  EXPECT_EQ(requests_seen(sim(0).port), 1);

  // The same key with another body is refused.
  r = c.post(kPredict, R"({"instances": [9.0]})", {{"Idempotency-Key", "order-17"}});
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(json_of(r).at("error").get<std::string>().find("order-17"), std::string::npos);
  // Another key runs again.
  r = c.post(kPredict, kThreeInstances, {{"Idempotency-Key", "order-18"}});
  EXPECT_FALSE(r.has_header("X-Fusebox-Replayed"));
  EXPECT_EQ(requests_seen(sim(0).port), 2);

  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics, R"(fusebox_idempotency_requests_total{outcome="lead"})"), 2);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_idempotency_requests_total{outcome="mismatch"})"), 1);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_idempotency_requests_total{outcome="joined"})").value_or(0) +
                metric_value(metrics, R"(fusebox_idempotency_requests_total{outcome="replay"})").value_or(0),
            5);
}

TEST_F(ReplayTest, FailuresAreSharedButNotReplayed) {
  start_replay_route("{ttl: 60s}", 1);
  set_sim_faults(sim(0).port, {{"error_rate", 1.0}, {"error_status", 400}});
  auto c = client();
  auto r = c.post(kPredict, kThreeInstances, {{"Idempotency-Key", "k1"}});
  EXPECT_EQ(r.status, 400);
  r = c.post(kPredict, kThreeInstances, {{"Idempotency-Key", "k1"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.header("X-Fusebox-Replayed"), "true") << "a client error is an answer: replayed";

  set_sim_faults(sim(0).port, {{"error_rate", 1.0}, {"error_status", 503}});
  r = c.post(kPredict, kThreeInstances, {{"Idempotency-Key", "k2"}});
  EXPECT_EQ(r.status, 503);
  set_sim_faults(sim(0).port, json::object());
  r = c.post(kPredict, kThreeInstances, {{"Idempotency-Key", "k2"}});
  EXPECT_EQ(r.status, 200) << "a server error is not kept: the retry runs";
  EXPECT_FALSE(r.has_header("X-Fusebox-Replayed"));
}

TEST_F(ReplayTest, IdenticalRequestsAreCoalescedWhenEnabled) {
  start_replay_route("{coalesce_identical: true}");
  set_sim_faults(sim(0).port, {{"latency_ms", 300}});
  auto responses = concurrent_posts(6, kThreeInstances);
  int coalesced = 0;
  for (const auto& r : responses) {
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, kThreePredictions);
    coalesced += r.header("X-Fusebox-Coalesced") == "true";
  }
  const auto upstream = requests_seen(sim(0).port);
  EXPECT_EQ(upstream + coalesced, 6) << "every request either went upstream or shared a call";
  EXPECT_LT(upstream, 6) << "coalescing saved upstream calls";
  // Not kept after the call: the next identical request goes upstream again.
  auto r = client().post(kPredict, kThreeInstances);
  EXPECT_FALSE(r.has_header("X-Fusebox-Coalesced"));
  EXPECT_EQ(requests_seen(sim(0).port), upstream + 1);
}

TEST_F(ReplayTest, WithoutCoalescingIdenticalRequestsEachGoUpstream) {
  start_replay_route("{ttl: 60s}");
  set_sim_faults(sim(0).port, {{"latency_ms", 100}});
  auto responses = concurrent_posts(4, kThreeInstances);
  for (const auto& r : responses) EXPECT_FALSE(r.has_header("X-Fusebox-Coalesced"));
  EXPECT_EQ(requests_seen(sim(0).port), 4);
}

}  // namespace
}  // namespace fusebox_it
