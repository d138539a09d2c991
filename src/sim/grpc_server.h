#pragma once
// tfs-sim's gRPC server: TF Serving's PredictionService and ModelService over the callback API,
// answered by GrpcApi with the same FaultState and SimStats as the REST side.
//
// One reactor per call. Faults are applied per call from the fault snapshot of its arrival, in
// the REST order: hang (no answer until the call is cancelled: client deadline, client
// cancellation or server shutdown), latency (a grpc::Alarm, no thread waits), reset_rate
// (UNAVAILABLE), error_rate (the gRPC code of error_status), then the normal answer where
// model_state / version apply. Messages up to INT_MAX bytes are accepted and sent, as TF
// Serving does.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "sim/faults.h"
#include "sim/grpc_api.h"
#include "sim/stats.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace tfs_sim {

// Everything the calls need; owned by main() and outliving the server.
struct GrpcServerContext {
  const GrpcApi& api;
  FaultState& faults;
  SimStats& stats;
  std::optional<std::uint64_t> seed;  // fault dice; per-thread generators derive from it
};

class GrpcServer {
 public:
  // Binds address:port (port 0: any free port) and starts serving. nullptr, with `error` set,
  // when the port cannot be bound (SO_REUSEPORT is off, so a busy port is an error).
  static std::unique_ptr<GrpcServer> start(const std::string& address, std::uint16_t port,
                                           const GrpcServerContext& ctx, std::string& error);

  ~GrpcServer();  // shutdown(0) if not done yet
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  std::uint16_t port() const { return port_; }

  // Stops accepting calls, lets calls in flight finish for up to `grace`, then cancels the rest
  // (hanging calls included) and waits until every reactor is done.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Services;
  explicit GrpcServer(const GrpcServerContext& ctx);

  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  std::uint16_t port_ = 0;
};

}  // namespace tfs_sim
