#pragma once
// gRPC calls from fusebox to one backend (a TF Serving process's gRPC port), forwarding the
// client's serialized request unchanged (generic calls: nothing is parsed here).
//
// GrpcChannel runs on gRPC's own library and threads: the health checker probes a backend's
// gRPC port with it (ModelService/GetModelStatus). Completions arrive on gRPC's threads and are
// posted to the caller's io_context. The data path uses GrpcClient (grpc_client.h) instead, which
// keeps each call on its worker's thread. The status mappings below serve both.

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fusebox/common/clock.h"
#include "fusebox/common/inline_function.h"
#include "fusebox/common/shared_bytes.h"
#include "fusebox/config/config.h"
#include "fusebox/metrics/gateway_metrics.h"

namespace fusebox::upstream {

struct GrpcRequest {
  std::string method;                 // "/tensorflow.serving.PredictionService/Predict"
  SharedBytes payload;                // the serialized request message
  std::vector<std::pair<std::string, std::string>> metadata;  // sent with every attempt
  std::string_view request_id;        // sent as x-request-id (the caller keeps it alive)
};

struct GrpcResult {
  metrics::UpstreamOutcome outcome = metrics::UpstreamOutcome::success;
  grpc::Status status;                // the call's status (OK, the backend's error, or local)
  SharedBytes response;               // the answer when status.ok()
  std::vector<std::pair<std::string, std::string>> trailing_metadata;
  std::string error;                  // a one-line reason when outcome is not success/http_5xx
};

// Where a call's result goes: runs once, on the caller's thread.
using GrpcResultHandler = InlineFunction<void(GrpcResult&&)>;

// The HTTP status TF Serving's REST API gives for a gRPC / TF status code (http_server.cc): the
// policies written in HTTP terms (retry_on statuses, breaker failure_statuses) judge gRPC
// answers through it. OK -> 200, UNAVAILABLE -> 503, DEADLINE_EXCEEDED -> 504,
// RESOURCE_EXHAUSTED -> 429, INTERNAL/UNKNOWN/DATA_LOSS -> 500, NOT_FOUND -> 404, ...
unsigned http_status_for(grpc::StatusCode code);
// The gRPC code for a gateway-made HTTP-style status (503 -> UNAVAILABLE, 504 ->
// DEADLINE_EXCEEDED, 429 -> RESOURCE_EXHAUSTED, 404 -> NOT_FOUND, 400 -> INVALID_ARGUMENT...).
grpc::StatusCode grpc_code_for(unsigned http_status);
const char* grpc_code_name(grpc::StatusCode code);

// The gRPC target of an endpoint: "address:grpc_port" ("[v6]:grpc_port" for an IPv6 literal).
std::string grpc_target(const config::EndpointConfig& endpoint);

class GrpcChannel {
 public:
  // `target` is "address:port". Channel arguments: message size limits and keepalive from
  // the pool's config, `user_agent` as the primary user agent ("" = "fusebox/<version>", the
  // data path's). The channel connects lazily.
  GrpcChannel(const std::string& target, const config::PoolConfig& pool,
              const std::string& user_agent = {});
  ~GrpcChannel();
  GrpcChannel(const GrpcChannel&) = delete;
  GrpcChannel& operator=(const GrpcChannel&) = delete;

  class Exchange;
  using ExchangeHandle = std::weak_ptr<Exchange>;

  // Starts one call ending by `deadline` and calls `done` exactly once on `ioc`'s thread.
  // `request`'s message is copied into the call (gRPC's library owns what it sends).
  ExchangeHandle send(const GrpcRequest& request, TimePoint deadline,
                      boost::asio::io_context& ioc, GrpcResultHandler done);

  // Cancels a call still in flight (its result comes back as reset, "cancelled"). Any thread.
  static void cancel(const ExchangeHandle& handle);
  // Cancels a call and drops its `done` on the calling thread, which is never called: for a
  // worker shutting down, whose io_context must not receive completions any more.
  static void abandon(const ExchangeHandle& handle);

  const std::string& target() const { return target_; }

 private:
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
};

}  // namespace fusebox::upstream
