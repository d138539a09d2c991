#pragma once
// The gRPC listener: TF Serving's PredictionService and ModelService (every method proxied as
// bytes: "raw" callback methods), grpc.health.v1.Health/Check, and server reflection, on gRPC's
// callback API with one reactor per call.
//
//   gRPC thread: request message read --dispatch--> a worker's io_context:
//   proxy::GrpcHandler runs the pipeline --GrpcCall::finish()--> the reactor finishes the call.
//
// gRPC owns its threads; nothing here blocks them. The data path runs on the workers, like
// REST requests, so both protocols share the workers' pipelines and upstream state.

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>
#include <grpcpp/support/string_ref.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fusebox/config/config.h"

namespace grpc {
class Server;
}

namespace fusebox::server {

using Metadata = std::vector<std::pair<std::string, std::string>>;

// One client call as the data path sees it. Valid until finish() is called; finish() must be
// called exactly once (from any thread), also when the client has gone away.
class GrpcCall {
 public:
  virtual ~GrpcCall() = default;
  virtual const std::string& method() const = 0;           // "/package.Service/Method"
  virtual grpc::ByteBuffer& request() = 0;                 // the request message
  virtual std::chrono::system_clock::time_point deadline() const = 0;  // max() when none
  virtual const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata() const = 0;
  virtual std::string peer() const = 0;                    // "ipv4:127.0.0.1:5555"
  virtual bool cancelled() const = 0;                      // the client went away
  // Sends `response` (only when status is OK) and `status`, with trailing metadata.
  virtual void finish(const grpc::Status& status, grpc::ByteBuffer* response,
                      const Metadata& trailing) = 0;
};

// The bytes of a message, in one string (a copy).
std::string flatten(const grpc::ByteBuffer& buffer);

// grpc.health.v1 answers for a service name: SERVING, NOT_SERVING, or unknown (NOT_FOUND).
enum class GrpcServingStatus : std::uint8_t { serving = 1, not_serving = 2, unknown = 3 };

class GrpcListener {
 public:
  using Dispatch = std::function<void(GrpcCall*)>;  // hands a call to a worker; must not block
  using Health = std::function<GrpcServingStatus(std::string_view service)>;  // any thread

  GrpcListener(const config::GrpcListenerConfig& config, Dispatch dispatch, Health health);
  ~GrpcListener();

  // Binds and starts serving. Throws std::runtime_error when the port cannot be bound.
  void start();
  std::uint16_t port() const { return port_; }
  // Stops accepting calls, lets calls in flight finish until `deadline`, then cancels the rest.
  // Blocks until every call has finished (their handlers must keep running meanwhile).
  void shutdown(std::chrono::system_clock::time_point deadline);

  struct Services;  // the registered services and what their calls share

 private:
  config::GrpcListenerConfig config_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace fusebox::server
