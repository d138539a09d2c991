#pragma once
// The gRPC listener: TF Serving's PredictionService and ModelService, grpc.health.v1.Health/Check
// and server reflection, served over fusebox's own HTTP/2 (h2::Connection) on the worker that
// accepted the connection. A call goes from the socket to the worker's GrpcHandler and back
// without leaving the worker's thread, as a REST request does.
//
//   socket --frames--> GrpcSession (h2::Connection) --GrpcCall--> proxy::GrpcHandler
//   --GrpcCall::finish()--> response frames --> socket
//
// Every TF Serving method is proxied as bytes; nothing is parsed here but the gRPC framing.

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fusebox/common/io.h"
#include "fusebox/common/shared_bytes.h"
#include "fusebox/config/config.h"

namespace fusebox::rpc {
class ReflectionService;
}

namespace fusebox::server {

// A metadata entry viewing bytes its owner keeps alive: the call's own for client metadata,
// the caller's until finish() returns for trailing metadata.
struct MetadataRef {
  std::string_view key;
  std::string_view value;
};
using MetadataRefs = std::span<const MetadataRef>;

// One client call as the data path sees it. Valid until finish() is called; finish() must be
// called exactly once, on the session's worker thread, also when the client has gone away.
class GrpcCall {
 public:
  virtual ~GrpcCall() = default;
  virtual const std::string& method() const = 0;                       // "/package.Service/Method"
  virtual const SharedBytes& request() const = 0;                      // the request message
  virtual std::chrono::system_clock::time_point deadline() const = 0;  // max() when none
  virtual MetadataRefs client_metadata() const = 0;  // in the order received
  virtual std::string peer() const = 0;  // "ipv4:127.0.0.1:5555"
  virtual bool cancelled() const = 0;    // the client went away
  // Sends `response` (only when status is OK) and `status`, with trailing metadata.
  virtual void finish(const grpc::Status& status, const SharedBytes* response,
                      MetadataRefs trailing) = 0;
};

// grpc.health.v1 answers for a service name: SERVING, NOT_SERVING, or unknown (NOT_FOUND).
enum class GrpcServingStatus : std::uint8_t { serving = 1, not_serving = 2, unknown = 3 };

class SessionTracker;

// What the gRPC sessions of one worker share. Outlives them.
struct GrpcServices {
  const config::GrpcListenerConfig* config = nullptr;
  // Serves a TF Serving call on the session's thread (the worker's GrpcHandler); must not block.
  std::function<void(GrpcCall*)> dispatch;
  // grpc.health.v1 answers for a service name; any thread.
  std::function<GrpcServingStatus(std::string_view service)> health;
  const rpc::ReflectionService* reflection = nullptr;  // null: reflection turned off
};

// Starts serving an accepted gRPC connection (already bound to its worker's executor), on that
// worker's thread. The session registers with `tracker`, which can drain it: GOAWAY, then
// closing once the calls in flight are answered.
void start_grpc_session(io::Socket socket, const GrpcServices& services, SessionTracker& tracker);

}  // namespace fusebox::server
