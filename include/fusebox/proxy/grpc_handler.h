#pragma once
// The gRPC data path of one worker thread: TF Serving gRPC call -> route (by the ModelSpec read
// from the request bytes) -> the worker's resilience pipeline -> response, with the model and
// default tiers of the degradation chain. The request message is forwarded as received; only a
// model tier rewrites its ModelSpec.
//
// Single-threaded: one instance per worker, sharing that worker's Pipeline with the REST
// handler, so both protocols see the same breakers, health, balancing and budgets.

#include <boost/asio/io_context.hpp>
#include <memory>

#include "fusebox/common/live_counter.h"
#include "fusebox/http/proxy_headers.h"
#include "fusebox/proxy/runtime.h"
#include "fusebox/resilience/pipeline.h"
#include "fusebox/server/grpc_listener.h"

namespace fusebox::proxy {

class GrpcHandler {
 public:
  GrpcHandler(Runtime& runtime, resilience::Pipeline& pipeline, std::size_t shard);
  ~GrpcHandler();

  // Serves one call; call->finish() is called exactly once, on this worker's thread.
  void handle(server::GrpcCall* call);
  // Calls of this handler still referenced anywhere.
  std::size_t calls_alive() const { return calls_.count(); }

  struct Call;

 private:
  // Admission control (admission_control.h), as for REST; refusals map to UNAUTHENTICATED,
  // PERMISSION_DENIED, RESOURCE_EXHAUSTED or UNAVAILABLE.
  void refuse(const std::shared_ptr<Call>& call, AdmissionDecision&& decision);
  void send_primary(const std::shared_ptr<Call>& call);
  void on_result(const std::shared_ptr<Call>& call, resilience::GrpcPipelineResult&& result);
  void next_tier(const std::shared_ptr<Call>& call);
  void answer_failure(const std::shared_ptr<Call>& call, resilience::GrpcPipelineResult&& result);
  void finish(const std::shared_ptr<Call>& call, const grpc::Status& status,
              const SharedBytes* response);

  Runtime& runtime_;
  resilience::Pipeline& pipeline_;
  std::size_t shard_;
  http::IdGenerator ids_;
  ParkingLot<std::shared_ptr<Call>> parking_;  // calls waiting for a concurrency slot
  LiveCounter calls_;
};

}  // namespace fusebox::proxy
