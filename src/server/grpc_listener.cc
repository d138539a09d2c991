#include "fusebox/server/grpc_listener.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "fusebox/logging/logging.h"

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

class GrpcListener::Service final : public grpc::CallbackGenericService {
 public:
  Service(Dispatch dispatch, Health health)
      : dispatch_(std::move(dispatch)), health_(std::move(health)) {}

  // Waits until no call is in flight, or until `deadline`; true when none is.
  bool wait_idle(std::chrono::system_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return idle_.wait_until(lock, deadline, [this] { return active_.load() == 0; });
  }

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(ctx, *this);
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor, public GrpcCall {
   public:
    Reactor(grpc::GenericCallbackServerContext* ctx, Service& service)
        : ctx_(ctx), service_(service) {
      service_.active_.fetch_add(1);
      StartRead(&request_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) {
        // The client half-closed without a message, or went away.
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
      }
      const auto& method = ctx_->method();
      if (method == kHealthCheck) return answer_health();
      if (method == kHealthWatch) {
        return Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                   "fusebox answers grpc.health.v1.Health/Check only"));
      }
      service_.dispatch_(this);
    }

    void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
    void OnDone() override {
      auto& service = service_;
      delete this;
      if (service.active_.fetch_sub(1) == 1) {
        // Notified under the lock, so a waiter between its check and its wait cannot miss it.
        std::lock_guard lock(service.mutex_);
        service.idle_.notify_all();
      }
    }

    const std::string& method() const override { return ctx_->method(); }
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
      if (status.ok() && response != nullptr) {
        response_ = std::move(*response);
        StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
      } else {
        Finish(status);
      }
    }

   private:
    void answer_health() {
      auto service = health_service(flatten(request_));
      if (!service) {
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "not a grpc.health.v1.HealthCheckRequest"));
      }
      auto status = service_.health_(*service);
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
    Service& service_;
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
    std::atomic<bool> cancelled_{false};
  };

  Dispatch dispatch_;
  Health health_;
  std::atomic<std::size_t> active_{0};  // calls between CreateReactor and OnDone
  std::mutex mutex_;                    // for idle_ only: taken when the count drops to zero
  std::condition_variable idle_;
};

GrpcListener::GrpcListener(const config::GrpcListenerConfig& config, Dispatch dispatch,
                           Health health)
    : config_(config), service_(std::make_unique<Service>(std::move(dispatch), std::move(health))) {}

GrpcListener::~GrpcListener() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
}

void GrpcListener::start() {
  grpc::ServerBuilder builder;
  const auto& address = config_.address;
  auto host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  builder.AddListeningPort(host + ":" + std::to_string(config_.port),
                           grpc::InsecureServerCredentials(), &port_);
  builder.RegisterCallbackGenericService(service_.get());
  builder.SetMaxReceiveMessageSize(clamp_int(config_.max_message_bytes));
  builder.SetMaxSendMessageSize(clamp_int(config_.max_message_bytes));
  // A port already in use is an error, not a second listener sharing it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw std::runtime_error("cannot listen for gRPC on " + host + ":" +
                             std::to_string(config_.port));
  }
}

void GrpcListener::shutdown(std::chrono::system_clock::time_point deadline) {
  if (!server_) return;
  // grpc::Server::Shutdown(deadline) also waits for idle client connections to go away, which
  // keeps a drain waiting for nothing: wait for the calls in flight here, then shut down at once
  // (cancelling whatever is still running at the deadline).
  service_->wait_idle(deadline);
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
}

}  // namespace fusebox::server
