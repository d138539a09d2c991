// tfs-sim's gRPC side as a process: TF Serving's PredictionService and ModelService through the
// generated C++ stubs, the faults set over the REST control API, the gRPC counters of
// /sim/stats. Each test starts its own tfs-sim with REST and gRPC on free ports.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fusebox_test/http_client.h"
#include "fusebox_test/process.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace {

namespace tf = tensorflow;
namespace tfs = tensorflow::serving;
using fusebox_test::HttpClient;
using fusebox_test::json_of;
using fusebox_test::Millis;
using fusebox_test::start_tfs_sim;
using fusebox_test::TfsSim;
using Clock = std::chrono::steady_clock;

constexpr auto kCallTimeout = std::chrono::seconds(10);

tf::TensorProto float_val_tensor(const std::vector<std::int64_t>& shape,
                                 const std::vector<float>& values) {
  tf::TensorProto t;
  t.set_dtype(tf::DT_FLOAT);
  for (const auto d : shape) t.mutable_tensor_shape()->add_dim()->set_size(d);
  for (const float v : values) t.add_float_val(v);
  return t;
}

tf::TensorProto content_tensor(const std::vector<std::int64_t>& shape,
                               const std::vector<float>& values) {
  tf::TensorProto t;
  t.set_dtype(tf::DT_FLOAT);
  for (const auto d : shape) t.mutable_tensor_shape()->add_dim()->set_size(d);
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());  // x86 and ARM: little-endian
  t.set_tensor_content(std::move(bytes));
  return t;
}

// The values of a DT_FLOAT tensor, from whichever field carries them.
std::vector<float> values_of(const tf::TensorProto& t) {
  if (!t.tensor_content().empty()) {
    std::vector<float> out(t.tensor_content().size() / sizeof(float));
    std::memcpy(out.data(), t.tensor_content().data(), out.size() * sizeof(float));
    return out;
  }
  return {t.float_val().begin(), t.float_val().end()};
}

std::vector<std::int64_t> shape_of(const tf::TensorProto& t) {
  std::vector<std::int64_t> out;
  for (const auto& d : t.tensor_shape().dim()) out.push_back(d.size());
  return out;
}

std::vector<float> linear(const std::vector<float>& xs, float intercept) {
  std::vector<float> out;
  for (const float x : xs) out.push_back(0.5f * x + intercept);
  return out;
}

tfs::PredictRequest predict_request(const std::string& model, tf::TensorProto x) {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name(model);
  (*r.mutable_inputs())["x"] = std::move(x);
  return r;
}

class TfsSimGrpcTest : public testing::Test {
 protected:
  void start(std::vector<std::string> args = {}) {
    args.push_back("--grpc-port");
    args.push_back("0");
    sim_.emplace(start_tfs_sim(args));
    ASSERT_NE(sim_->grpc_port, 0);
    grpc::ChannelArguments channel_args;
    // The client's default receive limit is 4 MB; the large-message test needs more.
    channel_args.SetMaxReceiveMessageSize(INT_MAX);
    channel_args.SetMaxSendMessageSize(INT_MAX);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(sim_->grpc_port),
                                         grpc::InsecureChannelCredentials(), channel_args);
    prediction_ = tfs::PredictionService::NewStub(channel_);
    models_ = tfs::ModelService::NewStub(channel_);
  }

  // A context with a deadline, so a broken simulator fails the test instead of hanging it.
  static std::unique_ptr<grpc::ClientContext> context(
      std::chrono::milliseconds timeout = kCallTimeout) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }

  grpc::Status predict(const tfs::PredictRequest& request, tfs::PredictResponse& response) {
    return prediction_->Predict(context().get(), request, &response);
  }

  grpc::Status status_of(const std::string& model, tfs::GetModelStatusResponse& response) {
    tfs::GetModelStatusRequest request;
    request.mutable_model_spec()->set_name(model);
    return models_->GetModelStatus(context().get(), request, &response);
  }

  // Predict x = 1 on half_plus_two with a deadline `timeout` away, timed.
  struct TimedCall {
    grpc::Status status;
    Clock::duration elapsed;
    tfs::PredictResponse response;
  };
  TimedCall timed_predict(std::chrono::milliseconds timeout) {
    TimedCall call;
    const auto begin = Clock::now();
    call.status = prediction_->Predict(
        context(timeout).get(), predict_request("half_plus_two", float_val_tensor({1}, {1.0f})),
        &call.response);
    call.elapsed = Clock::now() - begin;
    return call;
  }

  void set_faults(const std::string& json) {
    const auto r = HttpClient(sim_->port).post("/sim/faults", json);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  nlohmann::json stats() { return json_of(HttpClient(sim_->port).get("/sim/stats")); }

  std::optional<TfsSim> sim_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<tfs::PredictionService::Stub> prediction_;
  std::unique_ptr<tfs::ModelService::Stub> models_;
};

TEST_F(TfsSimGrpcTest, PredictFloatVal) {
  start({"--version", "3"});
  const std::vector<float> xs = {1.0f, 2.0f, 5.0f};
  tfs::PredictResponse response;
  const auto status =
      predict(predict_request("half_plus_two", float_val_tensor({3}, xs)), response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs().count("y"), 1u);
  const auto& y = response.outputs().at("y");
  EXPECT_EQ(y.dtype(), tf::DT_FLOAT);
  EXPECT_EQ(shape_of(y), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(y.float_val_size(), 3);  // outputs use float_val, like TF Serving
  EXPECT_TRUE(y.tensor_content().empty());
  EXPECT_EQ(values_of(y), (std::vector<float>{2.5f, 3.0f, 4.5f}));
  EXPECT_EQ(response.model_spec().name(), "half_plus_two");
  EXPECT_EQ(response.model_spec().version().value(), 3);
  EXPECT_EQ(response.model_spec().signature_name(), "serving_default");
}

TEST_F(TfsSimGrpcTest, PredictTensorContentKeepsTheBatchShape) {
  start({"--model", "main", "--model", "light:half_plus_three"});
  const std::vector<float> xs = {1.0f, -2.0f, 0.25f, 7.0f, 1e6f, -0.5f};
  for (const auto& [model, intercept] : {std::pair{"main", 2.0f}, std::pair{"light", 3.0f}}) {
    tfs::PredictResponse response;
    const auto status = predict(predict_request(model, content_tensor({2, 3}, xs)), response);
    ASSERT_TRUE(status.ok()) << model << ": " << status.error_message();
    const auto& y = response.outputs().at("y");
    EXPECT_EQ(shape_of(y), (std::vector<std::int64_t>{2, 3})) << model;
    EXPECT_EQ(values_of(y), linear(xs, intercept)) << model;
  }
}

TEST_F(TfsSimGrpcTest, PredictFloatValBroadcastsLikeTensorFlow) {
  start();
  // One value for a [2, 2] tensor fills it; fewer values repeat the last.
  tfs::PredictResponse response;
  ASSERT_TRUE(
      predict(predict_request("half_plus_two", float_val_tensor({2, 2}, {4.0f})), response).ok());
  EXPECT_EQ(values_of(response.outputs().at("y")), (std::vector<float>{4.0f, 4.0f, 4.0f, 4.0f}));
  response.Clear();
  ASSERT_TRUE(
      predict(predict_request("half_plus_two", float_val_tensor({3}, {0.0f, 2.0f})), response)
          .ok());
  EXPECT_EQ(values_of(response.outputs().at("y")), (std::vector<float>{2.0f, 3.0f, 3.0f}));
}

TEST_F(TfsSimGrpcTest, UnknownModelOrVersionIsNotFound) {
  start();
  tfs::PredictResponse response;
  auto request = predict_request("nope", float_val_tensor({1}, {1.0f}));
  auto status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "Servable not found for request: Latest(nope)");
  request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  request.mutable_model_spec()->mutable_version()->set_value(9);
  status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "Servable not found for request: Specific(half_plus_two, 9)");
  request.mutable_model_spec()->set_version_label("nope");
  status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "Unrecognized servable version label: nope");
  request.mutable_model_spec()->set_version_label("stable");
  EXPECT_TRUE(predict(request, response).ok());
}

TEST_F(TfsSimGrpcTest, BadInputsAreInvalidArgument) {
  start();
  tfs::PredictResponse response;
  auto request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  (*request.mutable_inputs())["z"] = float_val_tensor({1}, {1.0f});
  auto status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
            "Missing but required: {}.");

  auto bad_size = content_tensor({3}, {1.0f, 2.0f});  // 8 bytes for 3 elements
  status = predict(predict_request("half_plus_two", bad_size), response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "tensor parsing error: x");

  auto doubles = float_val_tensor({1}, {});
  doubles.set_dtype(tf::DT_DOUBLE);
  doubles.add_double_val(1.0);
  status = predict(predict_request("half_plus_two", doubles), response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "Expects arg[0] to be float but double is provided");

  request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  request.mutable_model_spec()->set_signature_name("other");
  status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "Serving signature name: \"other\" not found in signature def");
}

TEST_F(TfsSimGrpcTest, GetModelStatusAndMetadata) {
  start({"--version", "7"});
  tfs::GetModelStatusResponse status_response;
  auto status = status_of("half_plus_two", status_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(status_response.model_version_status_size(), 1);
  const auto& version = status_response.model_version_status(0);
  EXPECT_EQ(version.version(), 7);
  EXPECT_EQ(version.state(), tfs::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(version.status().error_code(), tf::error::OK);
  status = status_of("nope", status_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "Could not find any versions of model nope");

  tfs::GetModelMetadataRequest request;
  request.mutable_model_spec()->set_name("half_plus_two");
  request.add_metadata_field("signature_def");
  tfs::GetModelMetadataResponse metadata;
  status = prediction_->GetModelMetadata(context().get(), request, &metadata);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(metadata.model_spec().name(), "half_plus_two");
  EXPECT_EQ(metadata.model_spec().version().value(), 7);
  ASSERT_EQ(metadata.metadata().count("signature_def"), 1u);
  const auto& any = metadata.metadata().at("signature_def");
  EXPECT_EQ(any.type_url(), "type.googleapis.com/tensorflow.serving.SignatureDefMap");
  tfs::SignatureDefMap signatures;
  ASSERT_TRUE(any.UnpackTo(&signatures));
  ASSERT_EQ(signatures.signature_def().count("serving_default"), 1u);
  const auto& def = signatures.signature_def().at("serving_default");
  EXPECT_EQ(def.method_name(), "tensorflow/serving/predict");
  EXPECT_EQ(def.inputs().at("x").dtype(), tf::DT_FLOAT);
  EXPECT_EQ(def.inputs().at("x").name(), "x:0");
  EXPECT_EQ(def.inputs().at("x").tensor_shape().dim(0).size(), -1);
  EXPECT_EQ(def.outputs().at("y").dtype(), tf::DT_FLOAT);

  request.clear_metadata_field();
  status = prediction_->GetModelMetadata(context().get(), request, &metadata);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(TfsSimGrpcTest, RegressAndClassifyOverExamples) {
  start();
  tfs::RegressionRequest request;
  request.mutable_model_spec()->set_name("half_plus_two");
  for (const float x : {1.0f, 2.0f}) {
    auto* example = request.mutable_input()->mutable_example_list()->add_examples();
    (*example->mutable_features()->mutable_feature())["x"].mutable_float_list()->add_value(x);
  }
  tfs::RegressionResponse response;
  auto status = prediction_->Regress(context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.result().regressions_size(), 2);
  EXPECT_EQ(response.result().regressions(0).value(), 2.5f);
  EXPECT_EQ(response.result().regressions(1).value(), 3.0f);

  tfs::ClassificationRequest classify;
  *classify.mutable_model_spec() = request.model_spec();
  *classify.mutable_input() = request.input();
  tfs::ClassificationResponse classes;
  status = prediction_->Classify(context().get(), classify, &classes);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(classes.result().classifications_size(), 2);
  EXPECT_EQ(classes.result().classifications(1).classes(0).score(), 3.0f);

  // An int64 feature is rejected as by the real model; MultiInference is not served.
  auto* bad = request.mutable_input()->mutable_example_list()->add_examples();
  (*bad->mutable_features()->mutable_feature())["x"].mutable_int64_list()->add_value(1);
  status = prediction_->Regress(context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  tfs::MultiInferenceRequest multi;
  tfs::MultiInferenceResponse multi_response;
  status = prediction_->MultiInference(context().get(), multi, &multi_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(TfsSimGrpcTest, ErrorFaultsMapToTheGrpcCode) {
  start();
  const auto request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  tfs::PredictResponse response;
  set_faults(R"({"error_rate": 1, "error_status": 429})");
  auto status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "The batch scheduling queue to which this task was submitted is full");
  set_faults(R"({"error_rate": 1, "error_status": 503, "error_message": "try later"})");
  status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "try later");
  tfs::GetModelStatusResponse status_response;
  EXPECT_EQ(status_of("half_plus_two", status_response).error_code(),
            grpc::StatusCode::UNAVAILABLE);  // faults cover status calls too
  set_faults(R"({"reset_rate": 1})");
  EXPECT_EQ(predict(request, response).error_code(), grpc::StatusCode::UNAVAILABLE);
  set_faults("{}");
  EXPECT_TRUE(predict(request, response).ok());
  const auto j = stats()["grpc"];
  EXPECT_EQ(j["faults"]["errors"], 3);
  EXPECT_EQ(j["faults"]["resets"], 1);
  EXPECT_EQ(j["errors"], 4);
}

TEST_F(TfsSimGrpcTest, FaultsApplyOnlyToListedModels) {
  start({"--model", "main", "--model", "light:half_plus_three"});
  set_faults(R"({"error_rate": 1, "models": ["light"]})");
  tfs::PredictResponse response;
  EXPECT_EQ(predict(predict_request("light", float_val_tensor({1}, {1.0f})), response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(predict(predict_request("main", float_val_tensor({1}, {1.0f})), response).ok());
}

TEST_F(TfsSimGrpcTest, LatencyFaultDelaysTheAnswer) {
  start();
  set_faults(R"({"latency_ms": 200})");
  const auto call = timed_predict(kCallTimeout);
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  EXPECT_EQ(values_of(call.response.outputs().at("y")), (std::vector<float>{2.5f}));
  EXPECT_GE(call.elapsed, std::chrono::milliseconds(200));  // no upper bound: CI machines stall
  EXPECT_EQ(stats()["grpc"]["faults"]["delayed"], 1);
}

TEST_F(TfsSimGrpcTest, LatencyLongerThanTheDeadlineEndsAtTheDeadline) {
  start();
  set_faults(R"({"latency_ms": 60000})");
  const auto call = timed_predict(std::chrono::milliseconds(300));
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(call.elapsed, std::chrono::seconds(30));
  // The delayed call is cancelled, not left behind: the process still exits cleanly (under the
  // sanitizers a leaked reactor would make the exit status non-zero).
  EXPECT_EQ(sim_->process.stop(SIGTERM), 0);
}

TEST_F(TfsSimGrpcTest, HangEndsAtTheClientDeadline) {
  start();
  set_faults(R"({"hang": true})");
  const auto call = timed_predict(std::chrono::milliseconds(300));
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(call.elapsed, std::chrono::milliseconds(300));
  // The simulator noticed the cancellation and finished the call (bounded wait for it).
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  nlohmann::json j;
  while (Clock::now() < deadline) {
    j = stats()["grpc"];
    if (j["responses_by_code"].contains("CANCELLED")) break;
  }
  EXPECT_EQ(j["faults"]["hangs"], 1);
  EXPECT_EQ(j["responses_by_code"]["CANCELLED"], 1);
  set_faults("{}");
  EXPECT_TRUE(timed_predict(kCallTimeout).status.ok());
  EXPECT_EQ(sim_->process.stop(SIGTERM), 0);
}

TEST_F(TfsSimGrpcTest, ShutdownEndsCallsThatHang) {
  start();
  set_faults(R"({"hang": true})");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  const auto request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  tfs::PredictResponse response;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> result;
  prediction_->async()->Predict(&ctx, &request, &response, [&](grpc::Status status) {
    std::lock_guard lock(mu);
    result = status;
    cv.notify_all();
  });
  // Wait (bounded) until the simulator holds the call, then stop it.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline && stats()["grpc"]["faults"]["hangs"] != 1) {
  }
  ASSERT_EQ(stats()["grpc"]["faults"]["hangs"], 1);
  EXPECT_EQ(sim_->process.stop(SIGTERM), 0);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return result.has_value(); }));
  EXPECT_FALSE(result->ok());
}

TEST_F(TfsSimGrpcTest, ModelStateLoading) {
  start();
  set_faults(R"({"model_state": "LOADING"})");
  tfs::GetModelStatusResponse status_response;
  ASSERT_TRUE(status_of("half_plus_two", status_response).ok());  // OK while loading, like TF
  EXPECT_EQ(status_response.model_version_status(0).state(), tfs::ModelVersionStatus::LOADING);
  tfs::PredictResponse response;
  const auto request = predict_request("half_plus_two", float_val_tensor({1}, {1.0f}));
  auto status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "Servable not available for request: Latest(half_plus_two) (model state: LOADING)");
  set_faults(R"({"model_state": "LOADING", "not_available_status": 404})");
  status = predict(request, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "Servable not found for request: Latest(half_plus_two)");
}

TEST_F(TfsSimGrpcTest, TenMegabyteRequestPasses) {
  start();
  constexpr std::size_t kCount = 10u << 20 >> 2;  // 10 MiB of floats
  std::vector<float> xs(kCount);
  for (std::size_t i = 0; i < kCount; ++i) xs[i] = static_cast<float>(i % 1000);
  tfs::PredictResponse response;
  const auto status = predict(
      predict_request("half_plus_two", content_tensor({static_cast<std::int64_t>(kCount)}, xs)),
      response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto ys = values_of(response.outputs().at("y"));
  ASSERT_EQ(ys.size(), kCount);
  EXPECT_EQ(ys.front(), 2.0f);
  EXPECT_EQ(ys[999], 0.5f * 999.0f + 2.0f);
  EXPECT_EQ(ys.back(), 0.5f * static_cast<float>((kCount - 1) % 1000) + 2.0f);
}

TEST_F(TfsSimGrpcTest, StatsCountCallsAndRecordDeadlineAndRequestId) {
  start({"--model", "main", "--model", "light:half_plus_three"});
  const auto request = predict_request("main", float_val_tensor({1}, {1.0f}));
  tfs::PredictResponse response;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(predict(request, response).ok());
  EXPECT_EQ(predict(predict_request("other", float_val_tensor({1}, {1.0f})), response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  tfs::GetModelStatusResponse status_response;
  ASSERT_TRUE(status_of("light", status_response).ok());

  auto j = stats();
  EXPECT_EQ(j["requests"], 0);  // the REST counters see no gRPC traffic
  const auto& g = j["grpc"];
  EXPECT_EQ(g["requests"], 5);
  EXPECT_EQ(g["requests_by_method"]["Predict"], 4);
  EXPECT_EQ(g["requests_by_method"]["GetModelStatus"], 1);
  EXPECT_EQ(g["requests_by_method"]["Regress"], 0);
  EXPECT_EQ(g["requests_by_model"]["main"], 3);
  EXPECT_EQ(g["requests_by_model"]["light"], 1);
  EXPECT_EQ(g["requests_other_models"], 1);
  EXPECT_EQ(g["responses_by_code"]["OK"], 4);
  EXPECT_EQ(g["responses_by_code"]["NOT_FOUND"], 1);
  EXPECT_EQ(g["errors"], 1);
  // The last call had a 10 s deadline: the sim saw most of it left. gRPC sends the timeout in
  // the grpc-timeout header, rounded up to a few significant digits (10 s may arrive as 10.1 s).
  ASSERT_TRUE(g["last_deadline_ms"].is_number()) << g.dump();
  EXPECT_GT(g["last_deadline_ms"].get<std::int64_t>(), 1000);
  EXPECT_LE(g["last_deadline_ms"].get<std::int64_t>(), 11000);
  EXPECT_TRUE(g["last_request_id"].is_null());

  // A call with x-request-id and without a deadline.
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "req-42");
  ASSERT_TRUE(prediction_->Predict(&ctx, request, &response).ok());
  j = stats()["grpc"];
  EXPECT_TRUE(j["last_deadline_ms"].is_null()) << j.dump();
  EXPECT_EQ(j["last_request_id"], "req-42");

  // A gateway health check (user-agent fusebox-health-check...) is counted apart.
  grpc::ChannelArguments probe_args;
  probe_args.SetUserAgentPrefix("fusebox-health-check/0.1");
  auto probe_channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(sim_->grpc_port),
                                                 grpc::InsecureChannelCredentials(), probe_args);
  tfs::GetModelStatusRequest probe;
  probe.mutable_model_spec()->set_name("main");
  ASSERT_TRUE(tfs::ModelService::NewStub(probe_channel)
                  ->GetModelStatus(context().get(), probe, &status_response)
                  .ok());
  j = stats()["grpc"];
  EXPECT_EQ(j["probe_requests"], 1);
  EXPECT_EQ(j["requests"], 6);
  EXPECT_EQ(j["requests_by_method"]["GetModelStatus"], 1);
  EXPECT_EQ(j["responses_by_code"]["OK"], 5);
  EXPECT_EQ(j["last_request_id"], "req-42");

  j = json_of(HttpClient(sim_->port).post("/sim/stats/reset", ""))["grpc"];
  EXPECT_EQ(j["requests"], 0);
  EXPECT_EQ(j["requests_by_method"]["Predict"], 0);
  EXPECT_TRUE(j["responses_by_code"].empty());
  EXPECT_TRUE(j["last_request_id"].is_null());
}

TEST(TfsSimGrpcCommandLine, BusyGrpcPortExitsOne) {
  auto first = start_tfs_sim({"--grpc-port", "0"});
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto p = fusebox_test::ChildProcess::spawn(
      fusebox_test::tfs_sim_path(),
      {"--rest-port", "0", "--grpc-port", std::to_string(first.grpc_port)}, options);
  EXPECT_EQ(p.wait_exit(), 1);
  EXPECT_TRUE(p.wait_for_stderr("cannot listen")) << p.stderr_text();
}

}  // namespace
