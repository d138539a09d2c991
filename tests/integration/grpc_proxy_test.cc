// fusebox's gRPC listener in front of tfs-sim's gRPC side, with TF Serving's own C++ stubs as
// the client: routing by ModelSpec, the shared resilience pipeline (retries, breakers, killed
// backends), deadlines, degradation tiers, message sizes and grpc.health.v1.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <map>
#include <string>
#include <vector>

#include "gateway_fixture.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace fusebox_it {
namespace {

namespace tf = tensorflow;
namespace tfs = tensorflow::serving;
using nlohmann::json;

tfs::PredictRequest predict_request(const std::string& model, const std::vector<float>& xs) {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name(model);
  auto& x = (*r.mutable_inputs())["x"];
  x.set_dtype(tf::DT_FLOAT);
  x.mutable_tensor_shape()->add_dim()->set_size(static_cast<std::int64_t>(xs.size()));
  for (float v : xs) x.add_float_val(v);
  return r;
}

std::vector<float> output_y(const tfs::PredictResponse& response) {
  const auto& y = response.outputs().at("y");
  if (!y.tensor_content().empty()) {
    std::vector<float> out(y.tensor_content().size() / sizeof(float));
    std::memcpy(out.data(), y.tensor_content().data(), out.size() * sizeof(float));
    return out;
  }
  return {y.float_val().begin(), y.float_val().end()};
}

std::string trailing(const grpc::ClientContext& context, const std::string& key) {
  const auto& md = context.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

struct Predicted {
  grpc::Status status;
  std::vector<float> y;
  std::string tier;
  std::string reason;
  std::string request_id;
};

class GrpcProxyTest : public GatewayTest {
 protected:
  // Starts `n` sims with REST and gRPC on free ports (extra args, e.g. a model alias).
  std::vector<std::size_t> start_grpc_sims(std::size_t n, std::vector<std::string> args = {}) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<std::string> all = {"--rest-port", "0", "--grpc-port", "0"};
      all.insert(all.end(), args.begin(), args.end());
      start_sim(all);
      out.push_back(sims_.size() - 1);
    }
    return out;
  }

  PoolSpec grpc_pool(std::string name, const std::vector<std::size_t>& sims) {
    PoolSpec pool{std::move(name), {}};
    for (auto i : sims) {
      pool.ports.push_back(sim(i).port);
      pool.grpc_ports.push_back(sim(i).grpc_port);
    }
    return pool;
  }

  void start_grpc_gateway(GatewayConfig config) {
    config.grpc = true;
    start_gateway(config);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(gateway().grpc_port()),
                                         grpc::InsecureChannelCredentials(), channel_args());
  }

  static grpc::ChannelArguments channel_args() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    return args;
  }

  Predicted predict(const std::string& model, const std::vector<float>& xs,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10),
                    const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    auto stub = tfs::PredictionService::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
    tfs::PredictResponse response;
    Predicted out;
    out.status = stub->Predict(&context, predict_request(model, xs), &response);
    if (out.status.ok()) out.y = output_y(response);
    out.tier = trailing(context, "x-fusebox-tier");
    out.reason = trailing(context, "x-fusebox-degraded-reason");
    out.request_id = trailing(context, "x-request-id");
    return out;
  }

  // grpc.health.v1.Health/Check, hand-encoded (HealthCheckRequest{service = 1}).
  std::pair<grpc::Status, int> health(const std::string& service) {
    grpc::GenericStub stub(channel_);
    std::string request;
    if (!service.empty()) {
      request.push_back(0x0a);
      request.push_back(static_cast<char>(service.size()));
      request += service;
    }
    grpc::Slice slice(request);
    grpc::ByteBuffer in(&slice, 1), out;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                   [&](grpc::Status s) {
                     std::lock_guard lock(m);
                     status = s;
                     done = true;
                     cv.notify_one();
                   });
    std::unique_lock lock(m);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; });
    int serving = -1;
    std::vector<grpc::Slice> slices;
    if (status.ok() && out.Dump(&slices).ok() && !slices.empty() && slices[0].size() >= 2) {
      serving = slices[0].begin()[1];
    }
    return {status, serving};
  }

  // A pool of gRPC-only endpoints (`port: 0`) probed over gRPC, fast enough for a test.
  PoolSpec grpc_only_pool(std::string name, const std::vector<std::size_t>& sims) {
    PoolSpec pool = grpc_pool(std::move(name), sims);
    for (auto& port : pool.ports) port = 0;
    pool.health_check =
        "{protocol: grpc, interval: 200ms, unhealthy_interval: 100ms, timeout: 150ms, "
        "healthy_threshold: 1, unhealthy_threshold: 1}";
    return pool;
  }

  // Predict calls a sim has received (gateway traffic; probes are counted apart).
  static int grpc_predicts(std::uint16_t sim_rest_port) {
    return sim_stats(sim_rest_port).at("grpc").at("requests_by_method").at("Predict").get<int>();
  }

  // `pool` behind the default route, every backend healthy.
  void start_default_route(PoolSpec pool) {
    GatewayConfig config;
    config.pools.push_back(std::move(pool));
    config.routes.push_back({});
    start_grpc_gateway(config);
    EXPECT_TRUE(wait_all_backends_health("healthy"));
  }

  // One sim behind pool "primary" and the default route, healthy; returns the sims.
  std::vector<std::size_t> start_single_grpc_route() {
    auto sims = start_grpc_sims(1);
    start_default_route(grpc_pool("primary", sims));
    return sims;
  }

  // `n` sims behind a gRPC-only pool "primary" and the default route, healthy; returns the sims.
  std::vector<std::size_t> start_grpc_only_route(std::size_t n) {
    auto sims = start_grpc_sims(n);
    start_default_route(grpc_only_pool("primary", sims));
    return sims;
  }

  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcProxyTest, PredictStatusAndMetadataPassThrough) {
  auto sims = start_single_grpc_route();

  auto r = predict("half_plus_two", {1, 2, 5}, std::chrono::seconds(10),
                   {{"x-request-id", "grpc-req-1"}, {"x-team", "vision"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y, (std::vector<float>{2.5f, 3.0f, 4.5f}));
  EXPECT_EQ(r.tier, "primary");
  EXPECT_EQ(r.request_id, "grpc-req-1");
  auto stats = sim_stats(sim(sims[0]).port).at("grpc");
  EXPECT_EQ(stats.at("requests"), 1);
  EXPECT_EQ(stats.at("last_request_id"), "grpc-req-1") << "x-request-id reaches the backend";

  auto model_stub = tfs::ModelService::NewStub(channel_);
  grpc::ClientContext status_context;
  tfs::GetModelStatusRequest status_request;
  status_request.mutable_model_spec()->set_name("half_plus_two");
  tfs::GetModelStatusResponse status_response;
  ASSERT_TRUE(model_stub->GetModelStatus(&status_context, status_request, &status_response).ok());
  ASSERT_EQ(status_response.model_version_status_size(), 1);
  EXPECT_EQ(status_response.model_version_status(0).state(), tfs::ModelVersionStatus::AVAILABLE);

  auto prediction_stub = tfs::PredictionService::NewStub(channel_);
  grpc::ClientContext metadata_context;
  tfs::GetModelMetadataRequest metadata_request;
  metadata_request.mutable_model_spec()->set_name("half_plus_two");
  metadata_request.add_metadata_field("signature_def");
  tfs::GetModelMetadataResponse metadata_response;
  ASSERT_TRUE(
      prediction_stub->GetModelMetadata(&metadata_context, metadata_request, &metadata_response).ok());
  EXPECT_EQ(metadata_response.model_spec().name(), "half_plus_two");
  EXPECT_TRUE(metadata_response.metadata().contains("signature_def"));
}

// listeners.grpc.metadata: the allowlist and denylist decide which client metadata reaches
// the backend; hop metadata never does, and x-request-id / traceparent are fusebox's own.
TEST_F(GrpcProxyTest, MetadataAllowAndDenyListsDecideWhatIsForwarded) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  config.routes.push_back({});
  config.grpc_lines = {"metadata: {allow: [x-tenant, x-team-*], deny: [x-team-secret]}"};
  start_grpc_gateway(config);

  auto r = predict("half_plus_two", {1}, std::chrono::seconds(10),
                   {{"x-tenant", "acme"}, {"x-team-name", "vision"}, {"x-team-secret", "s3"},
                    {"x-other", "dropped"}, {"authorization", "Bearer t"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  auto keys = sim_stats(sim(sims[0]).port).at("grpc").at("last_metadata_keys");
  auto has = [&](const std::string& key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  EXPECT_TRUE(has("x-tenant")) << keys.dump();
  EXPECT_TRUE(has("x-team-name")) << keys.dump();
  EXPECT_FALSE(has("x-team-secret")) << keys.dump();
  EXPECT_FALSE(has("x-other")) << keys.dump();
  EXPECT_FALSE(has("authorization")) << keys.dump();
  EXPECT_TRUE(has("x-request-id")) << "fusebox always sends its request id: " << keys.dump();
  EXPECT_TRUE(has("traceparent")) << keys.dump();
}

TEST_F(GrpcProxyTest, WithoutListsEveryEndToEndKeyIsForwarded) {
  auto sims = start_single_grpc_route();
  ASSERT_TRUE(predict("half_plus_two", {1}, std::chrono::seconds(10),
                      {{"x-other", "kept"}, {"authorization", "Bearer t"}})
                  .status.ok());
  auto keys = sim_stats(sim(sims[0]).port).at("grpc").at("last_metadata_keys");
  EXPECT_NE(std::find(keys.begin(), keys.end(), "x-other"), keys.end()) << keys.dump();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "authorization"), keys.end()) << keys.dump();
}

TEST_F(GrpcProxyTest, GatewayMadeErrorsUseTfServingStatuses) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  config.pools.push_back({"rest_only", {sim(sims[0]).port}});
  config.routes.push_back({});
  config.routes.push_back({"other", "other", "rest_only", "5s", {}});
  start_grpc_gateway(config);

  auto r = predict("resnet", {1});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(r.status.error_message(), "Servable not found for request: Latest(resnet)");

  r = predict("other", {1});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(r.status.error_message().find("has a grpc_port"), std::string::npos)
      << r.status.error_message();

  r = predict("", {1});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::GenericStub stub(channel_);
  grpc::Slice empty("");
  grpc::ByteBuffer in(&empty, 1), out;
  grpc::ClientContext context;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
                 grpc::StubOptions(), &in, &out, [&](grpc::Status s) { done.set_value(s); });
  auto status = done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(status.error_message().find("HandleReloadConfigRequest"), std::string::npos)
      << status.error_message();
}

TEST_F(GrpcProxyTest, ClientDeadlineIsHonouredShortenedAndPropagated) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  config.routes.push_back({"half_plus_two", "half_plus_two", "primary", "3s", {std::string(kSingleAttempt)}});
  start_grpc_gateway(config);

  ASSERT_TRUE(predict("half_plus_two", {1}, std::chrono::milliseconds(1500)).status.ok());
  auto seen = sim_stats(sim(sims[0]).port).at("grpc").at("last_deadline_ms").get<double>();
  EXPECT_LE(seen, 1600) << "the client's 1.5s reaches the backend";
  EXPECT_GT(seen, 1000);

  ASSERT_TRUE(predict("half_plus_two", {1}, std::chrono::seconds(60)).status.ok());
  seen = sim_stats(sim(sims[0]).port).at("grpc").at("last_deadline_ms").get<double>();
  EXPECT_LE(seen, 3100) << "shortened to the route's 3s";

  set_sim_faults(sim(sims[0]).port, {{"hang", true}});
  auto start = std::chrono::steady_clock::now();
  auto r = predict("half_plus_two", {1}, std::chrono::milliseconds(400));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(GrpcProxyTest, RetriesAndBreakersProtectGrpcLikeRest) {
  auto sims = start_grpc_sims(2);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.extra.push_back("circuit_breaker: {consecutive_failures: 2, open_duration: 30s}");
  pool.health_check = kHealthChecksOff;
  config.pools.push_back(pool);
  config.routes.push_back({});
  start_grpc_gateway(config);
  set_sim_faults(sim(sims[0]).port, {{"error_rate", 1.0}, {"error_status", 503}});

  for (int i = 0; i < 20; ++i) {
    auto r = predict("half_plus_two", {1, 2, 5});
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
    EXPECT_EQ(r.y, (std::vector<float>{2.5f, 3.0f, 4.5f}));
  }
  EXPECT_EQ(backend_json("primary", 0).at("circuit_breaker").at("state"), "open");
  EXPECT_LE(sim_stats(sim(sims[0]).port).at("grpc").at("requests").get<int>(), 3)
      << "the open breaker keeps calls away from the failing backend";
}

TEST_F(GrpcProxyTest, HalfUnavailableBackendIsAbsorbedByRetries) {
  auto sims = start_grpc_sims(2);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.health_check = kHealthChecksOff;
  pool.extra.push_back(std::string(kBreakerOff));  // retries alone, no ejection
  config.pools.push_back(pool);
  RouteSpec route;
  route.extra = {"retry: {max_attempts: 3, backoff: {base: 1ms, max: 5ms}}"};
  config.routes.push_back(route);
  start_grpc_gateway(config);
  set_sim_faults(sim(sims[0]).port, {{"error_rate", 0.5}, {"error_status", 503}});
  int ok = 0;
  for (int i = 0; i < 40; ++i) ok += predict("half_plus_two", {1}).status.ok();
  EXPECT_EQ(ok, 40) << "each UNAVAILABLE was retried on the healthy backend";
  EXPECT_GT(sim_stats(sim(sims[0]).port).at("grpc").at("faults").at("errors").get<int>(), 0)
      << "the fault did fire";
}

TEST_F(GrpcProxyTest, HedgingCutsTheTailOfASlowBackend) {
  auto sims = start_grpc_sims(2);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.health_check = kHealthChecksOff;  // the injected latency would fail the probes too
  config.pools.push_back(pool);
  RouteSpec route;
  route.extra = {"hedge: {delay: 50ms}"};
  config.routes.push_back(route);
  start_grpc_gateway(config);
  set_sim_faults(sim(sims[0]).port, {{"latency_ms", 1000}});
  for (int i = 0; i < 4; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = predict("half_plus_two", {1});
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    // Whichever backend the first attempt picks, the answer does not wait for the slow one.
    EXPECT_LT(took, std::chrono::milliseconds(800)) << "call " << i;
  }
  EXPECT_GE(metric_value(metrics_text(), R"(fusebox_retries_total{pool="primary",reason="hedge"})")
                .value_or(0),
            1);
}

TEST_F(GrpcProxyTest, KilledBackendIsRetriedOnAnother) {
  auto sims = start_grpc_sims(2);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.health_check = kHealthChecksOff;  // only the data path notices the dead backend
  config.pools.push_back(pool);
  config.routes.push_back({});
  start_grpc_gateway(config);
  ASSERT_TRUE(predict("half_plus_two", {1}).status.ok());
  kill_sim(sims[1]);
  int ok = 0;
  for (int i = 0; i < 20; ++i) ok += predict("half_plus_two", {1}).status.ok();
  EXPECT_EQ(ok, 20) << "connect failures are retried on the live backend";
  EXPECT_GE(metric_value(metrics_text(), "fusebox_retries_total{pool=\"primary\",reason=\"connect_failure\"}")
                .value_or(0),
            1);
}

TEST_F(GrpcProxyTest, DegradationChainAnswersFromTheLightModel) {
  auto primary = start_grpc_sims(1);
  auto light = start_grpc_sims(1, {"--model", "light:half_plus_three"});
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", primary));
  config.pools.push_back(grpc_pool("light", light));
  RouteSpec route;
  route.extra = {"fallbacks:", "  - {tier: model, pool: light, model: light, timeout: 1s}",
                 "  - {tier: default, status: 503, body: {error: \"try again later\"}}"};
  config.routes.push_back(route);
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));

  kill_sim(primary[0]);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  auto r = predict("half_plus_two", {1, 2, 5});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y, (std::vector<float>{3.5f, 4.0f, 5.5f})) << "the light model answered";
  EXPECT_EQ(r.tier, "model:light");
  EXPECT_EQ(r.reason, "no_healthy_backend");
  EXPECT_EQ(sim_stats(sim(light[0]).port).at("grpc").at("requests_by_model").at("light"), 1);

  kill_sim(light[0]);
  ASSERT_TRUE(wait_backend_health("light", 0, "unhealthy"));
  r = predict("half_plus_two", {1});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(r.status.error_message(), "try again later");
  EXPECT_EQ(r.tier, "default");
  const auto metrics = metrics_text();
  EXPECT_EQ(metric_value(metrics,
                         R"(fusebox_responses_total{route="half_plus_two",tier="model:light",reason="no_healthy_backend",protocol="grpc"})"),
            1);
  EXPECT_EQ(metric_value(metrics,
                         R"(fusebox_responses_total{route="half_plus_two",tier="model:light",reason="no_healthy_backend",protocol="rest"})"),
            0);
  EXPECT_EQ(metric_value(metrics,
                         R"(fusebox_grpc_requests_total{route="half_plus_two",method="Predict",code="OK"})"),
            1);
  EXPECT_EQ(metric_value(metrics,
                         R"(fusebox_grpc_requests_total{route="half_plus_two",method="Predict",code="UNAVAILABLE"})"),
            1);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_grpc_request_duration_seconds_count{route="half_plus_two"})"),
            2);
}

TEST_F(GrpcProxyTest, CacheAndRulesTiersAnswerInTheModelsShape) {
  auto primary = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", primary));
  RouteSpec route;
  route.extra = {
      "cache: {mode: fallback, ttl: 60s}",
      "fallbacks:",
      "  - {tier: cache}",
      "  - tier: rules",
      "    grpc_output: y",
      "    rules:",
      "      - {name: small_x, instance_when: [{pointer: '', op: range, max: 10}], prediction: 0}",
      "  - {tier: default, status: 503, body: {error: \"no answer\"}}",
  };
  config.routes.push_back(route);
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));

  auto r = predict("half_plus_two", {1, 2, 5});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tier, "primary");

  kill_sim(primary[0]);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  // Seen before: the primary's answer from the cache, encoded by another client the same way.
  r = predict("half_plus_two", {1, 2, 5});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y, (std::vector<float>{2.5f, 3.0f, 4.5f}));
  EXPECT_EQ(r.tier, "cache");
  EXPECT_EQ(r.reason, "no_healthy_backend");

  // Never seen, every x small: the rule answers one prediction per instance, as tensor "y".
  r = predict("half_plus_two", {7, 8});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y, (std::vector<float>{0.0f, 0.0f})) << "batch of 2 kept";
  EXPECT_EQ(r.tier, "rules");

  // A rule does not cover x = 50: the default answers.
  r = predict("half_plus_two", {50});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(r.status.error_message(), "no answer");
  EXPECT_EQ(r.tier, "default");
}

TEST_F(GrpcProxyTest, DefaultTierAnswersWithItsConfiguredPredictResponse) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  RouteSpec route;
  route.extra = {
      "fallbacks:",
      "  - tier: default",
      "    status: 200",
      "    body: {predictions: []}",
      "    grpc_response: {outputs: {y: {dtype: DT_FLOAT, tensorShape: {dim: [{size: 1}]}, "
      "floatVal: [0.25]}}}",
  };
  config.routes.push_back(route);
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));
  kill_sim(sims[0]);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  auto r = predict("half_plus_two", {1});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y, (std::vector<float>{0.25f}));
  EXPECT_EQ(r.tier, "default");
  EXPECT_EQ(r.reason, "no_healthy_backend");
}

TEST_F(GrpcProxyTest, CacheFirstServesRepeatedCallsWithoutTheBackend) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  RouteSpec route;
  route.extra = {"cache: {mode: first, ttl: 60s}"};
  config.routes.push_back(route);
  start_grpc_gateway(config);
  for (int i = 0; i < 5; ++i) {
    auto r = predict("half_plus_two", {1, 2, 5});
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.y, (std::vector<float>{2.5f, 3.0f, 4.5f}));
    EXPECT_EQ(r.tier, i == 0 ? "primary" : "cache");
  }
  EXPECT_EQ(sim_stats(sim(sims[0]).port).at("grpc").at("requests"), 1);
  // A REST call with the same numbers is another request: it is not answered from gRPC's entry.
  auto rest = client().post(kPredict, kThreeInstances);
  EXPECT_EQ(rest.header("X-Fusebox-Cache"), "miss");
}

TEST_F(GrpcProxyTest, LargeMessagesPassAndTheLimitIsExplicit) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  config.routes.push_back({});
  config.grpc_lines.push_back("max_message_bytes: 16MiB");
  start_grpc_gateway(config);

  std::vector<float> big(10 * 1024 * 1024 / sizeof(float), 1.0f);  // 10 MiB, over gRPC's 4 MiB
  auto r = predict("half_plus_two", big, std::chrono::seconds(30));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.y.size(), big.size());
  EXPECT_EQ(r.y.front(), 2.5f);

  std::vector<float> too_big(20 * 1024 * 1024 / sizeof(float), 1.0f);
  r = predict("half_plus_two", too_big, std::chrono::seconds(30));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// SIGTERM with calls in flight on one connection: they are all answered, and fusebox exits 0
// once they are (the connection gets a GOAWAY and closes after its last answer).
TEST_F(GrpcProxyTest, DrainAnswersCallsInFlightThenExits) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  config.routes.push_back({});
  config.drain_timeout = "10s";
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));
  ASSERT_TRUE(predict("half_plus_two", {1.0f}).status.ok());  // the connection is up
  const auto before = grpc_predicts(sim(sims[0]).port);
  set_sim_faults(sim(sims[0]).port, {{"latency_ms", 1000}});
  std::vector<std::future<Predicted>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [this] {
      return predict("half_plus_two", {1.0f, 2.0f});
    }));
  }
  ASSERT_TRUE(wait_until([&] { return grpc_predicts(sim(sims[0]).port) >= before + 4; }));
  for (auto& c : calls) {
    ASSERT_NE(c.wait_for(std::chrono::seconds(0)), std::future_status::ready) << "in flight";
  }
  EXPECT_EQ(gateway().stop(Millis{15000}), 0);
  for (auto& c : calls) {
    auto r = c.get();
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.y, (std::vector<float>{2.5f, 3.0f}));
  }
}

// A call still running when drain.timeout ends is cut off: the client gets an error at once,
// and fusebox exits cleanly (the call's state is torn down with the worker, in order).
TEST_F(GrpcProxyTest, DrainTimeoutCutsOffAStuckCallAndExitsCleanly) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  config.pools.push_back(grpc_pool("primary", sims));
  RouteSpec route;
  route.timeout = "30s";
  config.routes.push_back(route);
  config.drain_timeout = "300ms";
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));
  const auto before = grpc_predicts(sim(sims[0]).port);
  set_sim_faults(sim(sims[0]).port, {{"latency_ms", 20000}});
  auto call = std::async(std::launch::async, [this] {
    return predict("half_plus_two", {1.0f}, std::chrono::seconds(30));
  });
  ASSERT_TRUE(wait_until([&] { return grpc_predicts(sim(sims[0]).port) >= before + 1; }));
  EXPECT_EQ(gateway().stop(Millis{15000}), 0) << gateway().stderr_text();
  // Answered by the cut, not by the backend 20 s later.
  ASSERT_EQ(call.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(call.get().status.ok());
}

TEST_F(GrpcProxyTest, HealthServiceFollowsReadiness) {
  auto sims = start_single_grpc_route();

  EXPECT_EQ(health("").second, 1) << "SERVING";
  EXPECT_EQ(health("half_plus_two").second, 1);
  EXPECT_EQ(health("tensorflow.serving.PredictionService").second, 1);
  EXPECT_EQ(health("resnet").first.error_code(), grpc::StatusCode::NOT_FOUND);

  set_sim_faults(sim(sims[0]).port, {{"model_state", "LOADING"}});
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  EXPECT_EQ(health("").second, 2) << "NOT_SERVING";
  EXPECT_EQ(health("half_plus_two").second, 2);
}

// A model that is LOADING (the backend answers its status call, OK, with state LOADING) is taken
// out by the health probes: gRPC calls go to the other backend only, and come back when it is
// AVAILABLE again. The breaker never sees a failure.
TEST_F(GrpcProxyTest, LoadingBackendIsTakenOutByHealthProbes) {
  auto sims = start_grpc_sims(2);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.health_check =
      "{interval: 100ms, unhealthy_interval: 100ms, timeout: 80ms, healthy_threshold: 1, "
      "unhealthy_threshold: 2}";
  config.pools.push_back(pool);
  config.routes.push_back({});
  start_grpc_gateway(config);
  ASSERT_TRUE(wait_all_backends_health("healthy"));

  set_sim_faults(sim(sims[0]).port, {{"model_state", "LOADING"}});
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  const auto before = sim_stats(sim(sims[0]).port).at("grpc").at("requests").get<int>();
  for (int i = 0; i < 20; ++i) {
    auto r = predict("half_plus_two", {1});
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
  }
  EXPECT_EQ(sim_stats(sim(sims[0]).port).at("grpc").at("requests").get<int>(), before)
      << "no call reaches the LOADING backend";
  EXPECT_EQ(sim_stats(sim(sims[1]).port).at("grpc").at("requests").get<int>(), 20);
  EXPECT_EQ(backend_json("primary", 0).at("circuit_breaker").at("state"), "closed");

  set_sim_faults(sim(sims[0]).port, json::object());
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(predict("half_plus_two", {1}).status.ok());
  EXPECT_GT(sim_stats(sim(sims[0]).port).at("grpc").at("requests").get<int>(), before)
      << "traffic returns once the model is AVAILABLE";
}

// Every backend answers UNAVAILABLE after 100 ms: the retry budget (10 % of active calls, at
// least one retry in flight) keeps upstream calls near one per client call instead of three,
// and clients promptly get UNAVAILABLE. Breakers and probes are off so that only the budget
// limits retries. Eight client threads make ten calls each.
TEST_F(GrpcProxyTest, RetryBudgetStopsARetryStorm) {
  auto sims = start_grpc_sims(3);
  GatewayConfig config;
  PoolSpec pool = grpc_pool("primary", sims);
  pool.health_check = kHealthChecksOff;
  pool.extra = {std::string(kBreakerOff), "retry_budget: {budget_percent: 10, min_concurrency: 1}"};
  config.pools.push_back(pool);
  RouteSpec route;
  route.extra = {"retry: {max_attempts: 3, retry_on: [503]}"};
  config.routes.push_back(route);
  config.threads = 2;
  start_grpc_gateway(config);
  for (auto i : sims) {
    set_sim_faults(sim(i).port, {{"error_rate", 1.0}, {"error_status", 503}, {"latency_ms", 100}});
  }

  constexpr int kThreads = 8, kPerThread = 10, kCalls = kThreads * kPerThread;
  std::vector<std::future<std::vector<grpc::StatusCode>>> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.push_back(std::async(std::launch::async, [this] {
      std::vector<grpc::StatusCode> codes;
      for (int i = 0; i < kPerThread; ++i) codes.push_back(predict("half_plus_two", {1}).status.error_code());
      return codes;
    }));
  }
  int unavailable = 0;
  for (auto& client : clients) {
    for (auto code : client.get()) unavailable += code == grpc::StatusCode::UNAVAILABLE;
  }
  EXPECT_EQ(unavailable, kCalls);

  std::int64_t upstream = 0;
  for (auto i : sims) upstream += sim_stats(sim(i).port).at("grpc").at("requests").get<std::int64_t>();
  const auto metrics = metrics_text();
  const double retries =
      metric_value(metrics, R"(fusebox_retries_total{pool="primary",reason="status"})").value_or(0);
  EXPECT_EQ(static_cast<double>(upstream), kCalls + retries)
      << "every upstream call beyond the first of each client call is a counted retry";
  EXPECT_LE(upstream, kCalls + kCalls / 2)
      << "at most one retry in flight; without a budget it approaches 3 x " << kCalls;
  EXPECT_GT(metric_value(metrics, R"(fusebox_retry_budget_exhausted_total{pool="primary"})")
                .value_or(0),
            0);
}

TEST_F(GrpcProxyTest, GrpcOnlyBackendsAreProbedOverGrpcAndLeftOutWhileLoading) {
  auto sims = start_grpc_only_route(2);

  const auto shown = backend_json("primary", 1);
  EXPECT_EQ(shown.at("name"), "127.0.0.1:" + std::to_string(sim(sims[1]).grpc_port));
  EXPECT_EQ(shown.at("port"), nullptr) << "no REST port";
  EXPECT_EQ(shown.at("grpc_port"), sim(sims[1]).grpc_port);
  EXPECT_EQ(shown.at("reachable"), true);
  EXPECT_EQ(shown.at("last_health_check").at("result"), "passed");
  EXPECT_EQ(shown.at("last_health_check").at("detail"), "model half_plus_two: version 1 AVAILABLE");
  for (auto i : sims) {
    const auto stats = sim_stats(sim(i).port);
    EXPECT_GT(stats.at("grpc").at("probe_requests"), 0) << "probes use ModelService over gRPC";
    EXPECT_EQ(stats.at("grpc").at("requests"), 0) << "probes are not client traffic";
    EXPECT_EQ(stats.at("probe_requests"), 0) << "nothing probes the REST port";
  }

  // Loading: GetModelStatus still answers OK, with state LOADING; the probe reads it.
  set_sim_faults(sim(sims[1]).port, {{"model_state", "LOADING"}});
  ASSERT_TRUE(wait_backend_health("primary", 1, "unhealthy"));
  const auto loading = backend_json("primary", 1).at("last_health_check");
  EXPECT_EQ(loading.at("result"), "not_available");
  EXPECT_EQ(loading.at("detail"), "model half_plus_two: version 1 LOADING");
  EXPECT_EQ(backend_json("primary", 0).at("health"), "healthy");

  const int before0 = grpc_predicts(sim(sims[0]).port);
  const int before1 = grpc_predicts(sim(sims[1]).port);
  for (int i = 0; i < 10; ++i) {
    auto r = predict("half_plus_two", {1, 2, 5});
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  EXPECT_EQ(grpc_predicts(sim(sims[0]).port) - before0, 10);
  EXPECT_EQ(grpc_predicts(sim(sims[1]).port) - before1, 0) << "an unhealthy backend gets nothing";

  // Recovered: traffic returns.
  set_sim_faults(sim(sims[1]).port, json::object());
  ASSERT_TRUE(wait_backend_health("primary", 1, "healthy"));
  for (int i = 0; i < 10; ++i) {
    auto r = predict("half_plus_two", {1, 2, 5});
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  EXPECT_GT(grpc_predicts(sim(sims[1]).port) - before1, 0);
  EXPECT_EQ(grpc_predicts(sim(sims[0]).port) + grpc_predicts(sim(sims[1]).port) - before0 - before1,
            20);
}

TEST_F(GrpcProxyTest, GrpcProbeFailuresSayWhy) {
  auto sims = start_grpc_sims(1);
  GatewayConfig config;
  auto pool = grpc_only_pool("primary", sims);
  pool.extra.emplace_back("circuit_breaker: {mode: disabled}");
  config.pools.push_back(pool);
  // Probes ask for a model the backend does not serve: NOT_FOUND.
  auto missing = grpc_only_pool("missing", sims);
  missing.health_check.insert(missing.health_check.size() - 1, ", models: [absent]");
  config.pools.push_back(missing);
  config.routes.push_back({});
  start_grpc_gateway(config);

  ASSERT_TRUE(wait_backend_health("missing", 0, "unhealthy"));
  auto failed = backend_json("missing", 0).at("last_health_check");
  EXPECT_EQ(failed.at("result"), "grpc_error");
  EXPECT_EQ(failed.at("detail"),
            "model absent: gRPC NOT_FOUND: Could not find any versions of model absent");

  // A backend that never answers: the call's deadline is health_check.timeout.
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  set_sim_faults(sim(sims[0]).port, {{"hang", true}});
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  failed = backend_json("primary", 0).at("last_health_check");
  EXPECT_EQ(failed.at("result"), "timeout");
  EXPECT_EQ(failed.at("detail"),
            "model half_plus_two: no answer within 150ms (gRPC DEADLINE_EXCEEDED)");
  EXPECT_NE(
      metrics_text().find(R"(fusebox_health_checks_total{pool="missing",backend="127.0.0.1:)" +
                          std::to_string(sim(sims[0]).grpc_port) + R"(",result="grpc_error"})"),
      std::string::npos);

  // A backend that is gone: the connect fails.
  set_sim_faults(sim(sims[0]).port, json::object());
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  kill_sim(sims[0]);
  ASSERT_TRUE(wait_backend_health("primary", 0, "unhealthy"));
  // The call on the connection that broke may fail first (UNAVAILABLE); the next cannot connect.
  ASSERT_TRUE(wait_until([&] {
    return backend_json("primary", 0).at("last_health_check").at("result") == "connect_failure";
  })) << backend_json("primary", 0);
  EXPECT_EQ(backend_json("primary", 0).at("reachable"), false);
}

TEST_F(GrpcProxyTest, RestRequestToAGrpcOnlyPoolIsA503) {
  auto sims = start_grpc_only_route(1);

  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(fusebox_test::json_of(r).at("error"),
            R"(no backend in pool "primary" has a REST port)");
  EXPECT_EQ(sim_stats(sim(sims[0]).port).at("requests"), 0) << "nothing reached the REST port";
  // gRPC calls to the same route are served.
  EXPECT_TRUE(predict("half_plus_two", {1}).status.ok());
}

}  // namespace
}  // namespace fusebox_it
