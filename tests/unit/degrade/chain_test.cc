#include "fusebox/degrade/chain.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fusebox/metrics/family_builder.h"

namespace fusebox::degrade {
namespace {

config::FallbackTier model_tier(std::string model, std::int64_t version = 0,
                                std::string label = "") {
  config::FallbackTier t;
  t.kind = config::TierKind::model;
  t.pool = "light";
  t.model = std::move(model);
  t.version = version;
  t.label = std::move(label);
  return t;
}

http::RestTarget rest(http::RestVerb verb) {
  http::RestTarget t;
  t.verb = verb;
  t.model = "resnet";
  return t;
}

TEST(RewriteTarget, PointsTheRequestAtTheTierModel) {
  struct Case {
    http::RestVerb verb;
    std::string original;
    config::FallbackTier tier;
    std::string expected;
  } cases[] = {
      {http::RestVerb::predict, "/v1/models/resnet:predict", model_tier("mobilenet"),
       "/v1/models/mobilenet:predict"},
      {http::RestVerb::predict, "/v1/models/resnet/versions/7:predict", model_tier("mobilenet"),
       "/v1/models/mobilenet:predict"},
      {http::RestVerb::classify, "/v1/models/resnet:classify", model_tier("m", 3),
       "/v1/models/m/versions/3:classify"},
      {http::RestVerb::regress, "/v1/models/resnet:regress", model_tier("m", 0, "stable"),
       "/v1/models/m/labels/stable:regress"},
      {http::RestVerb::metadata, "/v1/models/resnet/metadata", model_tier("m"),
       "/v1/models/m/metadata"},
      {http::RestVerb::status, "/v1/models/resnet", model_tier("m"), "/v1/models/m"},
      {http::RestVerb::predict, "/v1/models/resnet:predict?x=1", model_tier("my model"),
       "/v1/models/my%20model:predict?x=1"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(rewrite_target(rest(c.verb), c.original, c.tier), c.expected) << c.original;
  }
}

TEST(RewriteSignature, ReplacesOrAddsSignatureName) {
  auto out = rewrite_signature(R"({"signature_name": "a", "instances": [1]})", "small");
  ASSERT_TRUE(out);
  EXPECT_EQ(nlohmann::json::parse(*out),
            nlohmann::json::parse(R"({"signature_name": "small", "instances": [1]})"));
  out = rewrite_signature(R"({"inputs": [1]})", "small");
  ASSERT_TRUE(out);
  EXPECT_EQ(nlohmann::json::parse(*out).at("signature_name"), "small");
  EXPECT_FALSE(rewrite_signature("[1, 2]", "small"));
  EXPECT_FALSE(rewrite_signature("{broken", "small"));
}

TEST(TierName, NamesEachKind) {
  EXPECT_EQ(tier_name(model_tier("mobilenet")), "model:mobilenet");
  config::FallbackTier cache;
  cache.kind = config::TierKind::cache;
  EXPECT_EQ(tier_name(cache), "cache");
  config::FallbackTier def;
  def.kind = config::TierKind::default_;
  EXPECT_EQ(tier_name(def), "default");
  EXPECT_STREQ(to_string(Reason::no_healthy_backend), "no_healthy_backend");
  EXPECT_STREQ(to_string(Reason::breaker_open), "breaker_open");
}

TEST(DegradeMetrics, CountsByRouteTierAndReason) {
  config::Config config;
  config::RouteConfig route;
  route.name = "resnet";
  route.fallbacks.push_back(model_tier("mobilenet"));
  config::FallbackTier def;
  def.kind = config::TierKind::default_;
  route.fallbacks.push_back(def);
  config.routes.push_back(route);
  DegradeMetrics metrics(config, 2);
  metrics.record(0, 0, 0, Reason::none, Protocol::rest);
  metrics.record(1, 0, 0, Reason::none, Protocol::rest);
  metrics.record(0, 0, 1, Reason::timeout, Protocol::rest);
  metrics.record(1, 0, 2, Reason::breaker_open, Protocol::rest);
  metrics.record(1, 0, 2, Reason::breaker_open, Protocol::rest);
  std::vector<prometheus::MetricFamily> families;
  metrics.collect(families);
  auto text = metrics::serialize(families);
  EXPECT_NE(text.find(R"(fusebox_responses_total{route="resnet",tier="primary",reason="none",protocol="rest"} 2)"),
            std::string::npos) << text;
  EXPECT_NE(text.find(R"(fusebox_responses_total{route="resnet",tier="model:mobilenet",reason="timeout",protocol="rest"} 1)"),
            std::string::npos) << text;
  EXPECT_NE(text.find(R"(fusebox_responses_total{route="resnet",tier="default",reason="breaker_open",protocol="rest"} 2)"),
            std::string::npos) << text;
  EXPECT_EQ(text.find(R"(tier="primary",reason="timeout")"), std::string::npos)
      << "the primary never has a reason";
  EXPECT_EQ(text.find(R"(protocol="grpc")"), std::string::npos)
      << "no grpc series without a gRPC listener";
}

TEST(DegradeMetrics, CountsEachProtocolApartWhenTheGrpcListenerIsOn) {
  config::Config config;
  config.listeners.grpc.enabled = true;
  for (const char* name : {"a", "b"}) {
    config::RouteConfig route;
    route.name = name;
    route.fallbacks.push_back(model_tier("light"));
    config.routes.push_back(route);
  }
  DegradeMetrics metrics(config, 1);
  metrics.record(0, 0, 0, Reason::none, Protocol::rest);
  metrics.record(0, 0, 0, Reason::none, Protocol::grpc);
  metrics.record(0, 0, 0, Reason::none, Protocol::grpc);
  metrics.record(0, 1, 1, Reason::timeout, Protocol::grpc);
  std::vector<prometheus::MetricFamily> families;
  metrics.collect(families);
  auto text = metrics::serialize(families);
  for (const char* series :
       {R"(fusebox_responses_total{route="a",tier="primary",reason="none",protocol="rest"} 1)",
        R"(fusebox_responses_total{route="a",tier="primary",reason="none",protocol="grpc"} 2)",
        R"(fusebox_responses_total{route="b",tier="model:light",reason="timeout",protocol="grpc"} 1)",
        R"(fusebox_responses_total{route="b",tier="model:light",reason="timeout",protocol="rest"} 0)",
        R"(fusebox_responses_total{route="b",tier="primary",reason="none",protocol="rest"} 0)"}) {
    EXPECT_NE(text.find(series), std::string::npos) << series << "\n" << text;
  }
}

}  // namespace
}  // namespace fusebox::degrade
