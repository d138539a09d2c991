#include "sim/grpc_server.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <climits>
#include <functional>
#include <string_view>
#include <utility>

#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace tfs_sim {

namespace tfs = tensorflow::serving;

namespace {

// Calls whose user-agent starts with this are fusebox's health checks (counted apart).
constexpr std::string_view kProbeUserAgent = "fusebox-health-check";

std::string_view view(const grpc::string_ref& s) { return {s.data(), s.size()}; }

grpc::Status to_grpc(const TfStatus& status) {
  if (status.ok()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(status.code), status.message};
}

// One call: applies the faults of its arrival, then answers through `answer` (which fills the
// response gRPC owns). Deletes itself once gRPC is done with it (OnDone) and no alarm callback
// is pending, whichever comes last.
class SimCall final : public grpc::ServerUnaryReactor {
 public:
  using Answer = std::function<TfStatus(const FaultSet&)>;

  static SimCall* start(grpc::CallbackServerContext* context, const GrpcServerContext& ctx,
                        GrpcMethod method, std::string_view model, Answer answer) {
    auto* call = new SimCall(ctx, std::move(answer));
    call->begin(context, method, model);
    return call;
  }

  // The client went away (its deadline passed, it cancelled, the connection dropped) or the
  // server is shutting down. A hanging or delayed call ends here.
  void OnCancel() override {
    finish(grpc::Status::CANCELLED);
    if (alarm_set_) alarm_.Cancel();  // no-op when it already fired
  }

  void OnDone() override { release(); }

 private:
  SimCall(const GrpcServerContext& ctx, Answer answer) : ctx_(ctx), answer_(std::move(answer)) {}

  void begin(grpc::CallbackServerContext* context, GrpcMethod method, std::string_view model) {
    GrpcCallInfo info;
    info.method = method;
    info.model = model;
    const auto deadline = context->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::system_clock::now());
      info.deadline_ms = std::max<std::int64_t>(0, left.count());
    }
    const auto& metadata = context->client_metadata();
    if (const auto it = metadata.find("x-request-id"); it != metadata.end()) {
      info.request_id = view(it->second);
    }
    if (const auto it = metadata.find("user-agent"); it != metadata.end()) {
      info.probe = view(it->second).starts_with(kProbeUserAgent);
    }
    if (!info.probe) {
      std::vector<std::string_view> keys;  // the multimap is sorted: equal keys are adjacent
      for (const auto& [key, value] : metadata) {
        if (keys.empty() || keys.back() != view(key)) keys.push_back(view(key));
      }
      for (const auto key : keys) {
        if (!info.metadata_keys.empty()) info.metadata_keys += ',';
        info.metadata_keys += key;
      }
    }
    probe_ = info.probe;
    ctx_.stats.on_grpc_call(info);

    faults_ = ctx_.faults.snapshot();
    faulted_ = faults_->applies_to(model);
    if (faulted_ && faults_->hang) {
      ctx_.stats.on_grpc_fault(InjectedFault::hang);
      return;  // OnCancel ends it
    }
    const auto delay =
        faulted_ ? faults_->latency.sample(thread_rng(ctx_.seed)) : std::chrono::microseconds(0);
    if (delay.count() > 0) {
      ctx_.stats.on_grpc_fault(InjectedFault::delay);
      refs_.fetch_add(1, std::memory_order_relaxed);
      alarm_set_ = true;  // before the call is handed to gRPC, so OnCancel sees it
      alarm_.Set(std::chrono::system_clock::now() + delay, [this](bool fired) {
        if (fired) answer_now();
        release();
      });
      return;
    }
    answer_now();
  }

  void answer_now() {
    auto& rng = thread_rng(ctx_.seed);
    if (faulted_ && roll(faults_->reset_rate, rng)) {
      ctx_.stats.on_grpc_fault(InjectedFault::reset);
      return finish(
          {grpc::StatusCode::UNAVAILABLE, "Connection reset by peer (tfs-sim injected fault)"});
    }
    if (faulted_ && roll(faults_->error_rate, rng)) {
      ctx_.stats.on_grpc_fault(InjectedFault::error);
      const int http_status = faults_->error_status;
      return finish({static_cast<grpc::StatusCode>(tf_code_for_http_status(http_status)),
                     faults_->error_message.empty() ? default_error_message(http_status)
                                                    : faults_->error_message});
    }
    finish(to_grpc(answer_(*faults_)));
  }

  // Finishes the call once: the alarm and OnCancel may race to it.
  void finish(const grpc::Status& status) {
    if (finished_.exchange(true, std::memory_order_acq_rel)) return;
    if (!probe_) ctx_.stats.on_grpc_response(static_cast<int>(status.error_code()));
    Finish(status);
  }

  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  const GrpcServerContext& ctx_;
  Answer answer_;
  std::shared_ptr<const FaultSet> faults_;
  bool faulted_ = false;
  bool probe_ = false;  // a gateway health check: counted apart
  grpc::Alarm alarm_;
  bool alarm_set_ = false;
  std::atomic<bool> finished_{false};
  std::atomic<int> refs_{1};  // OnDone, plus one while an alarm callback is pending
};

// Starts the reactor of one call that GrpcApi::*answer answers. Request and response belong to
// gRPC and live until the reactor is done.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* serve(grpc::CallbackServerContext* context, const GrpcServerContext& ctx,
                                GrpcMethod method, std::string_view model, const Request* request,
                                Response* response,
                                TfStatus (GrpcApi::*answer)(const Request&, const FaultSet&,
                                                            Response&) const) {
  return SimCall::start(context, ctx, method, model,
                        [&ctx, request, response, answer](const FaultSet& faults) {
                          return (ctx.api.*answer)(*request, faults, *response);
                        });
}

class PredictionService final : public tfs::PredictionService::CallbackService {
 public:
  explicit PredictionService(const GrpcServerContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const tfs::PredictRequest* request,
                                    tfs::PredictResponse* response) override {
    return serve(context, ctx_, GrpcMethod::predict, request->model_spec().name(), request,
                 response, &GrpcApi::predict);
  }

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const tfs::ClassificationRequest* request,
                                     tfs::ClassificationResponse* response) override {
    return serve(context, ctx_, GrpcMethod::classify, request->model_spec().name(), request,
                 response, &GrpcApi::classify);
  }

  grpc::ServerUnaryReactor* Regress(grpc::CallbackServerContext* context,
                                    const tfs::RegressionRequest* request,
                                    tfs::RegressionResponse* response) override {
    return serve(context, ctx_, GrpcMethod::regress, request->model_spec().name(), request,
                 response, &GrpcApi::regress);
  }

  grpc::ServerUnaryReactor* MultiInference(grpc::CallbackServerContext* context,
                                           const tfs::MultiInferenceRequest* request,
                                           tfs::MultiInferenceResponse* response) override {
    // TF Serving requires every task to name the same model: the first one names it.
    const std::string_view model =
        request->tasks().empty() ? std::string_view() : request->tasks(0).model_spec().name();
    return serve(context, ctx_, GrpcMethod::multi_inference, model, request, response,
                 &GrpcApi::multi_inference);
  }

  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const tfs::GetModelMetadataRequest* request,
                                             tfs::GetModelMetadataResponse* response) override {
    return serve(context, ctx_, GrpcMethod::get_model_metadata, request->model_spec().name(),
                 request, response, &GrpcApi::get_model_metadata);
  }

 private:
  const GrpcServerContext& ctx_;
};

class ModelService final : public tfs::ModelService::CallbackService {
 public:
  explicit ModelService(const GrpcServerContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* GetModelStatus(grpc::CallbackServerContext* context,
                                           const tfs::GetModelStatusRequest* request,
                                           tfs::GetModelStatusResponse* response) override {
    return serve(context, ctx_, GrpcMethod::get_model_status, request->model_spec().name(), request,
                 response, &GrpcApi::get_model_status);
  }

 private:
  const GrpcServerContext& ctx_;
};

}  // namespace

struct GrpcServer::Services {
  explicit Services(const GrpcServerContext& ctx) : prediction(ctx), model(ctx) {}
  PredictionService prediction;
  ModelService model;
};

GrpcServer::GrpcServer(const GrpcServerContext& ctx) : services_(std::make_unique<Services>(ctx)) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

std::unique_ptr<GrpcServer> GrpcServer::start(const std::string& address, std::uint16_t port,
                                              const GrpcServerContext& ctx, std::string& error) {
  std::unique_ptr<GrpcServer> server(new GrpcServer(ctx));
  const std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  int bound = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &bound);
  builder.RegisterService(&server->services_->prediction);
  builder.RegisterService(&server->services_->model);
  builder.SetMaxReceiveMessageSize(INT_MAX);
  builder.SetMaxSendMessageSize(INT_MAX);
  // gRPC turns SO_REUSEPORT on by default, which would let two simulators share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || bound == 0) {
    error = "cannot bind gRPC port " + host + ":" + std::to_string(port);
    if (server->server_) server->server_->Shutdown();
    return nullptr;
  }
  server->port_ = static_cast<std::uint16_t>(bound);
  return server;
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  server_.reset();
}

}  // namespace tfs_sim
