#include "sim/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tfs_sim {
namespace {

using std::chrono::microseconds;

TEST(ParseDurationTest, UnitsAndBareMilliseconds) {
  EXPECT_EQ(parse_duration("200ms"), microseconds(200'000));
  EXPECT_EQ(parse_duration("1.5s"), microseconds(1'500'000));
  EXPECT_EQ(parse_duration("250us"), microseconds(250));
  EXPECT_EQ(parse_duration("2m"), microseconds(120'000'000));
  EXPECT_EQ(parse_duration("40"), microseconds(40'000));
  EXPECT_FALSE(parse_duration("").has_value());
  EXPECT_FALSE(parse_duration("ms").has_value());
  EXPECT_FALSE(parse_duration("-5ms").has_value());
  EXPECT_FALSE(parse_duration("5 ms").has_value());
  EXPECT_FALSE(parse_duration("fast").has_value());
}

TEST(ParseOptionsTest, DefaultsServeHalfPlusTwo) {
  const auto r = parse_options({});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  const auto& o = *r.options;
  EXPECT_EQ(o.rest_port, 8501);
  EXPECT_FALSE(o.grpc_port.has_value());  // no gRPC unless asked for
  EXPECT_EQ(o.address, "127.0.0.1");
  ASSERT_EQ(o.models.size(), 1u);
  EXPECT_EQ(o.models[0].name, "half_plus_two");
  EXPECT_EQ(o.models[0].kind, ModelKind::half_plus_two);
  EXPECT_EQ(o.version, 1);
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.labels.count("stable"), 1u);
  EXPECT_FALSE(o.faults.any());
}

TEST(ParseOptionsTest, ModelsAndServingFlags) {
  const auto r =
      parse_options({"--rest-port", "0", "--model", "main", "--model=light:half_plus_three",
                     "--version", "3", "--threads=4", "--label", "prod=3", "--json-style",
                     "tfserving", "--idle-timeout", "5s", "--seed", "9"});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  const auto& o = *r.options;
  EXPECT_EQ(o.rest_port, 0);
  ASSERT_EQ(o.models.size(), 2u);
  EXPECT_EQ(o.models[0].name, "main");
  EXPECT_EQ(o.models[0].kind, ModelKind::half_plus_two);
  EXPECT_EQ(o.models[1].name, "light");
  EXPECT_EQ(o.models[1].kind, ModelKind::half_plus_three);
  EXPECT_EQ(o.version, 3);
  EXPECT_EQ(o.threads, 4);
  ASSERT_EQ(o.labels.size(), 1u);  // --label replaces the default labels
  EXPECT_EQ(o.labels.at("prod"), 3);
  EXPECT_EQ(o.json_style, JsonStyle::tfserving);
  EXPECT_EQ(o.idle_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(o.seed, 9u);
}

TEST(ParseOptionsTest, FaultFlagsBuildTheInitialFaultSet) {
  const auto r = parse_options({"--latency", "200ms", "--latency-jitter", "10ms", "--error-rate",
                                "0.5", "--error-status", "429", "--hang", "--reset-rate", "1",
                                "--model-state", "LOADING", "--fault-models", "a,b"});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  const auto& f = r.options->faults;
  EXPECT_EQ(f.latency.kind, LatencySpec::Kind::uniform);
  EXPECT_DOUBLE_EQ(f.latency.min_ms, 190);
  EXPECT_DOUBLE_EQ(f.latency.max_ms, 210);
  EXPECT_DOUBLE_EQ(f.error_rate, 0.5);
  EXPECT_EQ(f.error_status, 429);
  EXPECT_TRUE(f.hang);
  EXPECT_DOUBLE_EQ(f.reset_rate, 1.0);
  EXPECT_EQ(f.model_state, ModelState::loading);
  EXPECT_EQ(f.models, (std::vector<std::string>{"a", "b"}));
}

TEST(ParseOptionsTest, GrpcPort) {
  auto r = parse_options({"--grpc-port", "0"});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  EXPECT_EQ(r.options->grpc_port, 0);
  r = parse_options({"--grpc-port=8500"});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  EXPECT_EQ(r.options->grpc_port, 8500);
}

TEST(ParseOptionsTest, FaultsJson) {
  const auto r =
      parse_options({"--faults", R"({"latency_distribution": {"kind": "fixed", "ms": 5}})"});
  ASSERT_TRUE(r.options.has_value()) << r.error;
  EXPECT_EQ(r.options->faults.latency.kind, LatencySpec::Kind::fixed);
}

TEST(ParseOptionsTest, HelpFlag) {
  const auto r = parse_options({"--help"});
  ASSERT_TRUE(r.options.has_value());
  EXPECT_TRUE(r.options->help);
  EXPECT_NE(usage().find("--rest-port"), std::string::npos);
}

struct BadCase {
  std::vector<std::string> args;
  std::string error_contains;
};

class ParseOptionsErrorTest : public testing::TestWithParam<BadCase> {};

TEST_P(ParseOptionsErrorTest, Rejects) {
  const auto r = parse_options(GetParam().args);
  ASSERT_FALSE(r.options.has_value());
  EXPECT_NE(r.error.find(GetParam().error_contains), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseOptionsErrorTest,
    testing::Values(BadCase{{"--bogus"}, "unknown flag: --bogus"},
                    BadCase{{"--rest-port"}, "--rest-port needs a value"},
                    BadCase{{"--rest-port", "70000"}, "--rest-port"},
                    BadCase{{"--grpc-port", "-1"}, "--grpc-port: not a port number"},
                    BadCase{{"--grpc-port"}, "--grpc-port needs a value"},
                    BadCase{{"--model", "m:resnet"}, "unknown kind 'resnet'"},
                    BadCase{{"--model", ":half_plus_two"}, "empty model name"},
                    BadCase{{"--model", "m", "--model", "m"}, "given twice"},
                    BadCase{{"--threads", "0"}, "--threads"},
                    BadCase{{"--json-style", "pretty"}, "--json-style"},
                    BadCase{{"--latency", "soon"}, "--latency: not a duration"},
                    BadCase{{"--error-rate", "2"}, "'error_rate' must be a number between 0 and 1"},
                    BadCase{{"--model-state", "READY"}, "'model_state'"},
                    BadCase{{"--hang=yes"}, "--hang takes no value"},
                    BadCase{{"--faults", "{}", "--hang"}, "one or the other"},
                    BadCase{{"--faults", "{\"x\": 1}"}, "unknown field 'x'"}));

}  // namespace
}  // namespace tfs_sim
