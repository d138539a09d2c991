#include "fusebox/server/grpc_listener.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "fusebox/common/address.h"
#include "fusebox/rpc/tensor_answers.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/model_service.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.pb.h"

namespace fusebox::server {
namespace {

constexpr std::string_view kHealthCheck = "/grpc.health.v1.Health/Check";
constexpr std::string_view kHealthWatch = "/grpc.health.v1.Health/Watch";

// grpc.health.v1.HealthCheckRequest is one string field (service = 1). Hand-read: the listener
// needs nothing else from protobuf. nullopt when the bytes are not such a message.
std::optional<std::string> health_service(const std::string& bytes) {
  std::string service;
  std::size_t i = 0;
  auto varint = [&](std::uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && i < bytes.size(); shift += 7) {
      auto byte = static_cast<unsigned char>(bytes[i++]);
      out |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    std::uint64_t tag = 0;
    if (!varint(tag)) return std::nullopt;
    auto wire = tag & 7;
    std::uint64_t n = 0;
    if (wire == 0) {
      if (!varint(n)) return std::nullopt;
    } else if (wire == 2) {
      if (!varint(n) || n > bytes.size() - i) return std::nullopt;
      if ((tag >> 3) == 1) service.assign(bytes, i, n);
      i += n;
    } else if (wire == 1 || wire == 5) {
      std::size_t skip = wire == 1 ? 8 : 4;
      if (skip > bytes.size() - i) return std::nullopt;
      i += skip;
    } else {
      return std::nullopt;
    }
  }
  return service;
}

int clamp_int(std::uint64_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); }

}  // namespace

std::string flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

namespace {

namespace tfs = tensorflow::serving;

// Calls between creation and OnDone, for the drain. The mutex is taken only when the count
// drops to zero, so a waiter between its check and its wait cannot miss the notification.
class CallCounter {
 public:
  void add() { active_.fetch_add(1, std::memory_order_relaxed); }
  void remove() {
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);
      idle_.notify_all();
    }
  }
  bool wait_idle(std::chrono::system_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return idle_.wait_until(lock, deadline, [this] { return active_.load() == 0; });
  }

 private:
  std::atomic<std::size_t> active_{0};
  std::mutex mutex_;
  std::condition_variable idle_;
};

// Linking gRPC's reflection library registers its plugin with every ServerBuilder (a static
// initializer does it); this option takes it out again when reflection is turned off.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) {
      return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin*>(plugin.get()) != nullptr;
    });
  }
};

struct ListenerCore {
  GrpcListener::Dispatch dispatch;
  GrpcListener::Health health;
  CallCounter calls;
};

// One proxied unary call: gRPC has read the request before the reactor exists, so the call
// goes to a worker at once and the reactor only has to finish it.
class UnaryCall final : public grpc::ServerUnaryReactor, public GrpcCall {
 public:
  UnaryCall(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
            grpc::ByteBuffer* response, const std::string& method, ListenerCore& core)
      : ctx_(ctx), request_(*request), response_(response), method_(method), core_(core) {
    core_.calls.add();
  }

  // Hands the call to a worker. Operations the worker starts before gRPC has bound this
  // reactor to the call are queued by gRPC and run once it is.
  UnaryCall* start() {
    core_.dispatch(this);
    return this;
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override {
    auto& core = core_;
    delete this;
    core.calls.remove();
  }

  const std::string& method() const override { return method_; }
  grpc::ByteBuffer& request() override { return request_; }
  std::chrono::system_clock::time_point deadline() const override { return ctx_->deadline(); }
  const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata() const override {
    return ctx_->client_metadata();
  }
  std::string peer() const override { return ctx_->peer(); }
  bool cancelled() const override { return cancelled_.load(std::memory_order_relaxed); }

  void finish(const grpc::Status& status, grpc::ByteBuffer* response,
              const Metadata& trailing) override {
    for (const auto& [key, value] : trailing) ctx_->AddTrailingMetadata(key, value);
    if (status.ok() && response != nullptr) *response_ = std::move(*response);
    Finish(status);
  }

 private:
  grpc::CallbackServerContext* ctx_;
  grpc::ByteBuffer request_;   // shares the slices of gRPC's copy
  grpc::ByteBuffer* response_;  // gRPC's, sent by Finish
  const std::string& method_;
  ListenerCore& core_;
  std::atomic<bool> cancelled_{false};
};

// The method names, as the data path sees them (static storage: calls refer to them).
const std::string kPredict{rpc::kPredictMethod};
const std::string kClassify{rpc::kClassifyMethod};
const std::string kRegress{rpc::kRegressMethod};
const std::string kMultiInference{rpc::kMultiInferenceMethod};
const std::string kGetModelMetadata{rpc::kGetModelMetadataMethod};
const std::string kGetModelStatus{rpc::kGetModelStatusMethod};

// TF Serving's services with every method taken as raw bytes ("raw callback" methods): the
// services are registered by name, so server reflection lists them, and nothing is parsed.
using PredictionBase = tfs::PredictionService::WithRawCallbackMethod_Classify<
    tfs::PredictionService::WithRawCallbackMethod_Regress<
        tfs::PredictionService::WithRawCallbackMethod_Predict<
            tfs::PredictionService::WithRawCallbackMethod_MultiInference<
                tfs::PredictionService::WithRawCallbackMethod_GetModelMetadata<
                    tfs::PredictionService::Service>>>>>;

class PredictionService final : public PredictionBase {
 public:
  explicit PredictionService(ListenerCore& core) : core_(core) {}

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kClassify, core_))->start();
  }
  grpc::ServerUnaryReactor* Regress(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kRegress, core_))->start();
  }
  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                    grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kPredict, core_))->start();
  }
  grpc::ServerUnaryReactor* MultiInference(grpc::CallbackServerContext* ctx,
                                           const grpc::ByteBuffer* req,
                                           grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kMultiInference, core_))->start();
  }
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* ctx,
                                             const grpc::ByteBuffer* req,
                                             grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kGetModelMetadata, core_))->start();
  }

 private:
  ListenerCore& core_;
};

class ModelService final
    : public tfs::ModelService::WithRawCallbackMethod_GetModelStatus<tfs::ModelService::Service> {
 public:
  explicit ModelService(ListenerCore& core) : core_(core) {}

  grpc::ServerUnaryReactor* GetModelStatus(grpc::CallbackServerContext* ctx,
                                           const grpc::ByteBuffer* req,
                                           grpc::ByteBuffer* resp) override {
    return (new UnaryCall(ctx, req, resp, kGetModelStatus, core_))->start();
  }

 private:
  ListenerCore& core_;
};

// Everything else: grpc.health.v1.Health/Check, answered here, and UNIMPLEMENTED with the
// method's name for any other method.
class FallbackService final : public grpc::CallbackGenericService {
 public:
  explicit FallbackService(ListenerCore& core) : core_(core) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(ctx, core_);
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(grpc::GenericCallbackServerContext* ctx, ListenerCore& core) : ctx_(ctx), core_(core) {
      core_.calls.add();
      const auto& method = ctx_->method();
      // Anything but Check is refused at once, without waiting for (streamed) requests.
      if (method == kHealthWatch) {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "fusebox answers grpc.health.v1.Health/Check only"));
      } else if (method != kHealthCheck) {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fusebox does not serve " + method));
      } else {
        StartRead(&request_);
      }
    }

    void OnReadDone(bool ok) override {
      if (!ok) {
        // The client half-closed without a message, or went away.
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
      }
      answer_health();
    }

    void OnDone() override {
      auto& core = core_;
      delete this;
      core.calls.remove();
    }

   private:
    void answer_health() {
      auto service = health_service(flatten(request_));
      if (!service) {
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "not a grpc.health.v1.HealthCheckRequest"));
      }
      auto status = core_.health(*service);
      if (status == GrpcServingStatus::unknown) {
        return Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   "unknown service \"" + *service + "\""));
      }
      // HealthCheckResponse { ServingStatus status = 1; }
      const char bytes[2] = {0x08, static_cast<char>(status)};
      grpc::Slice slice(bytes, sizeof bytes);
      response_ = grpc::ByteBuffer(&slice, 1);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    }

    grpc::GenericCallbackServerContext* ctx_;
    ListenerCore& core_;
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
  };

  ListenerCore& core_;
};

}  // namespace

// Reflection answers from protobuf's generated descriptor pool. The files declaring the services
// sit in object files of the static proto library that nothing else references, so the linker
// would leave them out: this table (external linkage, so always emitted) names their
// descriptors, which keeps them, and through them the files they import, linked and registered.
extern const void* const kReflectedServiceFiles[];
const void* const kReflectedServiceFiles[] = {
    &descriptor_table_tensorflow_5fserving_2fapis_2fprediction_5fservice_2eproto,
    &descriptor_table_tensorflow_5fserving_2fapis_2fmodel_5fservice_2eproto};

struct GrpcListener::Services {
  explicit Services(Dispatch dispatch, Health health)
      : core{std::move(dispatch), std::move(health), {}}, prediction(core), model(core),
        fallback(core) {}
  ListenerCore core;
  PredictionService prediction;
  ModelService model;
  FallbackService fallback;
};

GrpcListener::GrpcListener(const config::GrpcListenerConfig& config, Dispatch dispatch,
                           Health health)
    : config_(config),
      services_(std::make_unique<Services>(std::move(dispatch), std::move(health))) {}

GrpcListener::~GrpcListener() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

void GrpcListener::start() {
  grpc::ServerBuilder builder;
  if (!config_.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  const auto address = host_port(config_.address, config_.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&services_->prediction);
  builder.RegisterService(&services_->model);
  builder.RegisterCallbackGenericService(&services_->fallback);
  builder.SetMaxReceiveMessageSize(clamp_int(config_.max_message_bytes));
  builder.SetMaxSendMessageSize(clamp_int(config_.max_message_bytes));
  // A port already in use is an error, not a second listener sharing it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw std::runtime_error("cannot listen for gRPC on " + address);
  }
}

void GrpcListener::shutdown(std::chrono::system_clock::time_point deadline) {
  if (!server_) return;
  // grpc::Server::Shutdown(deadline) also waits for idle client connections to go away, which
  // keeps a drain waiting for nothing: wait for the calls in flight here, then shut down at once
  // (cancelling whatever is still running at the deadline).
  services_->core.calls.wait_idle(deadline);
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
}

}  // namespace fusebox::server
