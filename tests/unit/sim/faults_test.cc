#include "sim/faults.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "sim/control_api.h"
#include "sim/stats.h"

namespace tfs_sim {
namespace {

using std::chrono::microseconds;

TEST(ParseFaultSetTest, EmptyObjectMeansNoFaults) {
  const auto r = parse_fault_set("{}");
  ASSERT_TRUE(r.faults.has_value()) << r.error;
  EXPECT_FALSE(r.faults->any());
  EXPECT_EQ(r.faults->error_status, 503);
  EXPECT_TRUE(r.faults->applies_to("anything"));
}

TEST(ParseFaultSetTest, ReadsEveryField) {
  const auto r = parse_fault_set(R"({"latency_ms": 200, "latency_jitter_ms": 50,
      "error_rate": 0.25, "error_status": 429, "error_message": "busy", "hang": false,
      "reset_rate": 0.5, "model_state": "loading", "not_available_status": 404, "version": 7,
      "models": ["a", "b"]})");
  ASSERT_TRUE(r.faults.has_value()) << r.error;
  const FaultSet& f = *r.faults;
  EXPECT_EQ(f.latency.kind, LatencySpec::Kind::uniform);
  EXPECT_DOUBLE_EQ(f.latency.min_ms, 150);
  EXPECT_DOUBLE_EQ(f.latency.max_ms, 250);
  EXPECT_DOUBLE_EQ(f.error_rate, 0.25);
  EXPECT_EQ(f.error_status, 429);
  EXPECT_EQ(f.error_message, "busy");
  EXPECT_DOUBLE_EQ(f.reset_rate, 0.5);
  EXPECT_EQ(f.model_state, ModelState::loading);
  EXPECT_EQ(f.not_available_status, 404);
  EXPECT_EQ(f.version, 7);
  EXPECT_TRUE(f.applies_to("a"));
  EXPECT_FALSE(f.applies_to("c"));
  EXPECT_FALSE(f.applies_to(""));
}

TEST(ParseFaultSetTest, RoundTripsThroughJson) {
  for (const char* text :
       {R"({"latency_ms": 100})",
        R"({"latency_distribution": {"kind": "exponential", "mean_ms": 20, "max_ms": 500}})",
        R"({"latency_distribution": {"kind": "uniform", "min_ms": 1, "max_ms": 2}, "hang": true})",
        R"({"error_rate": 1, "error_status": 500, "models": ["m"]})"}) {
    const auto first = parse_fault_set(text);
    ASSERT_TRUE(first.faults.has_value()) << text << ": " << first.error;
    const std::string json = fault_set_to_json(*first.faults);
    const auto second = parse_fault_set(json);
    ASSERT_TRUE(second.faults.has_value()) << json << ": " << second.error;
    EXPECT_EQ(fault_set_to_json(*second.faults), json);
  }
}

struct BadCase {
  std::string json;
  std::string error_contains;
};

class ParseFaultSetErrorTest : public testing::TestWithParam<BadCase> {};

TEST_P(ParseFaultSetErrorTest, RejectsWithAClearMessage) {
  const auto r = parse_fault_set(GetParam().json);
  ASSERT_FALSE(r.faults.has_value()) << GetParam().json;
  EXPECT_NE(r.error.find(GetParam().error_contains), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseFaultSetErrorTest,
    testing::Values(
        BadCase{"not json", "not valid JSON"}, BadCase{"[1]", "must be a JSON object"},
        BadCase{R"({"latency": 5})", "unknown field 'latency'"},
        BadCase{R"({"error_rate": 1.5})", "'error_rate' must be a number between 0 and 1"},
        BadCase{R"({"error_rate": "0.5"})", "'error_rate'"},
        BadCase{R"({"reset_rate": -0.1})", "'reset_rate'"},
        BadCase{R"({"error_status": 99})", "'error_status'"},
        BadCase{R"({"error_status": 503.5})", "'error_status'"},
        BadCase{R"({"latency_ms": -1})", "'latency_ms'"},
        BadCase{R"({"latency_ms": 1e12})", "'latency_ms'"},
        BadCase{R"({"latency_ms": 1, "latency_distribution": {"kind": "fixed", "ms": 1}})",
                "not both"},
        BadCase{R"({"latency_distribution": {"kind": "gamma"}})", "'latency_distribution.kind'"},
        BadCase{R"({"latency_distribution": {"kind": "uniform", "min_ms": 5, "max_ms": 1}})",
                "'latency_distribution.max_ms' must be >= 'min_ms'"},
        BadCase{R"({"latency_distribution": {"kind": "fixed", "ms": 1, "x": 2}})",
                "unknown field 'latency_distribution.x'"},
        BadCase{R"({"hang": 1})", "'hang' must be true or false"},
        BadCase{R"({"model_state": "READY"})", "'model_state' must be one of"},
        BadCase{R"({"not_available_status": 500})", "'not_available_status'"},
        BadCase{R"({"version": -1})", "'version'"}, BadCase{R"({"models": "m"})", "'models'"},
        BadCase{R"({"models": [""]})", "'models'"}));

TEST(LatencySpecTest, SamplesStayInsideTheDistribution) {
  std::mt19937_64 rng(42);
  LatencySpec fixed;
  fixed.kind = LatencySpec::Kind::fixed;
  fixed.min_ms = 12.5;
  EXPECT_EQ(fixed.sample(rng), microseconds(12500));

  LatencySpec uniform;
  uniform.kind = LatencySpec::Kind::uniform;
  uniform.min_ms = 10;
  uniform.max_ms = 20;
  LatencySpec exponential;
  exponential.kind = LatencySpec::Kind::exponential;
  exponential.mean_ms = 5;
  exponential.min_ms = 1;
  exponential.max_ms = 8;
  for (int i = 0; i < 1000; ++i) {
    const auto u = uniform.sample(rng);
    EXPECT_GE(u, microseconds(10000));
    EXPECT_LE(u, microseconds(20000));
    const auto e = exponential.sample(rng);
    EXPECT_GE(e, microseconds(1000));
    EXPECT_LE(e, microseconds(8000));
  }
  EXPECT_EQ(LatencySpec{}.sample(rng), microseconds(0));
}

TEST(RollTest, EdgesAreExact) {
  std::mt19937_64 rng(1);
  int hits = 0;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(roll(0.0, rng));
    EXPECT_TRUE(roll(1.0, rng));
    hits += roll(0.5, rng) ? 1 : 0;
  }
  EXPECT_GT(hits, 400);
  EXPECT_LT(hits, 600);
}

TEST(DefaultErrorMessageTest, TfTextsWhereKnown) {
  EXPECT_EQ(default_error_message(429),
            "The batch scheduling queue to which this task was submitted is full");
  EXPECT_EQ(default_error_message(504), "Timed out waiting for notification");
  EXPECT_EQ(default_error_message(500), "INTERNAL (tfs-sim injected fault)");
}

TEST(FaultStateTest, ReplaceSwapsTheSnapshot) {
  FaultState state;
  const auto before = state.snapshot();
  FaultSet f;
  f.hang = true;
  state.replace(f);
  EXPECT_FALSE(before->hang);  // old snapshots stay valid and unchanged
  EXPECT_TRUE(state.snapshot()->hang);
  state.clear();
  EXPECT_FALSE(state.snapshot()->any());
}

TEST(ControlApiTest, FaultsAndStatsEndpoints) {
  FaultState faults;
  SimStats stats({"m"});
  ControlApi api(faults, stats);
  EXPECT_TRUE(ControlApi::owns("/sim/faults?x"));
  EXPECT_FALSE(ControlApi::owns("/simulate"));

  auto r = api.handle("POST", "/sim/faults", R"({"error_rate": 1, "error_status": 503})");
  EXPECT_EQ(r.status, 200);
  EXPECT_DOUBLE_EQ(faults.snapshot()->error_rate, 1.0);
  r = api.handle("GET", "/sim/faults", "");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error_rate"], 1);

  r = api.handle("POST", "/sim/faults", R"({"error_rate": 2})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(nlohmann::json::parse(r.body)["error"].get<std::string>().find("error_rate"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(faults.snapshot()->error_rate, 1.0);  // a rejected set changes nothing

  r = api.handle("DELETE", "/sim/faults", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(faults.snapshot()->any());

  stats.on_connection_accepted();
  stats.on_v1_request("m");
  stats.on_v1_request("other");
  stats.on_v1_response(200);
  stats.on_v1_response(503);
  stats.on_fault(InjectedFault::error);
  auto j = nlohmann::json::parse(api.handle("GET", "/sim/stats", "").body);
  EXPECT_EQ(j["requests"], 2);
  EXPECT_EQ(j["requests_by_model"]["m"], 1);
  EXPECT_EQ(j["requests_other_models"], 1);
  EXPECT_EQ(j["responses_by_status"]["503"], 1);
  EXPECT_EQ(j["connections_accepted"], 1);
  EXPECT_EQ(j["connections_open"], 1);
  EXPECT_EQ(j["faults"]["errors"], 1);

  j = nlohmann::json::parse(api.handle("POST", "/sim/stats/reset", "").body);
  EXPECT_EQ(j["requests"], 0);
  EXPECT_EQ(j["connections_accepted"], 0);
  EXPECT_EQ(j["connections_open"], 1);  // a gauge, not reset

  EXPECT_EQ(api.handle("GET", "/sim/nope", "").status, 404);
  EXPECT_EQ(api.handle("DELETE", "/sim/stats", "").status, 405);
}

}  // namespace
}  // namespace tfs_sim
