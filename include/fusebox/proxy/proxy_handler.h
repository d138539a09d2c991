#pragma once
// The data path for one worker thread: TF Serving REST request -> route -> resilience pipeline
// (backend choice, retries, hedging) -> response.
//
//   session --handle()--> ProxyHandler --execute()--> resilience::Pipeline --> ConnectionPool
//                               <------PipelineResult------
// Gateway-made errors use TF Serving's JSON error shape. Single-threaded: one instance per
// worker, owning that worker's upstream connection pools.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <unordered_map>
#include <vector>

#include "fusebox/common/live_counter.h"
#include "fusebox/http/proxy_headers.h"
#include "fusebox/proxy/runtime.h"
#include "fusebox/server/http_session.h"
#include "fusebox/resilience/pipeline.h"

namespace fusebox::proxy {

class ProxyHandler final : public server::RequestHandler {
 public:
  // `shard` is this worker's metrics shard; `workers` divides per-backend connection limits.
  ProxyHandler(boost::asio::io_context& ioc, Runtime& runtime, std::size_t shard,
               std::size_t workers);
  ~ProxyHandler() override;

  void handle(server::Request&& request, const server::ConnectionInfo& connection,
              server::Clock::time_point start,
              std::shared_ptr<server::ResponseSink> sink) override;
  void on_rejected(const server::ConnectionInfo& connection,
                   const server::RejectedRequest& rejected) override;

  // Closes idle upstream connections (shutdown).
  void close_idle_upstreams();
  // This worker's pipeline, shared with its gRPC handler.
  resilience::Pipeline& pipeline() { return pipeline_; }
  // Requests of this handler still referenced anywhere (answered or not).
  std::size_t calls_alive() const { return calls_.count(); }

  struct Call;

 private:
  // Admission control (admission_control.h): false when the request was answered (401/403,
  // 429, or 503/degraded).
  bool admit(const std::shared_ptr<Call>& call, const server::ConnectionInfo& connection);
  void refuse(const std::shared_ptr<Call>& call, AdmissionDecision&& decision);
  void send_upstream(const std::shared_ptr<Call>& call);  // primary or canary
  // Idempotency-Key / coalescing: false when the request was answered (or will be, by the
  // request it joined) and must not be sent.
  bool begin_replay(const std::shared_ptr<Call>& call);
  void send_to_primary(const std::shared_ptr<Call>& call);
  // A traffic split chose a canary: its pool (and version or label); stable when it fails.
  void send_to_canary(const std::shared_ptr<Call>& call);
  void on_pipeline_result(const std::shared_ptr<Call>& call, resilience::PipelineResult&& result);
  // The degradation chain: tries routes[].fallbacks after call->tier in order.
  void next_tier(const std::shared_ptr<Call>& call);
  degrade::Reason degraded_reason(const std::shared_ptr<Call>& call,
                                  const resilience::PipelineResult& result) const;
  void respond_from_cache(const std::shared_ptr<Call>& call,
                          const cache::ResponseCacheStore::Hit& hit, const char* cache_header);
  void answer_failure(const std::shared_ptr<Call>& call, resilience::PipelineResult&& result);
  void respond_local(const std::shared_ptr<Call>& call, unsigned status, std::string_view message);
  // Adds the tier, split and request-id headers, publishes a replay lead's answer, delivers.
  void finish(const std::shared_ptr<Call>& call, server::Response&& response,
              unsigned upstream_status);
  void publish_replay(const std::shared_ptr<Call>& call, const server::Response& response);
  // Another request's answer (joined or replayed), marked with `marker: true`.
  void deliver_shared(const std::shared_ptr<Call>& call, const replay::StoredResponse& stored,
                      const char* marker);
  // Metrics, access log, send.
  void deliver(const std::shared_ptr<Call>& call, server::Response&& response,
               unsigned upstream_status);

  boost::asio::io_context& ioc_;
  Runtime& runtime_;
  std::size_t shard_;
  resilience::Pipeline pipeline_;
  http::IdGenerator ids_;
  FastRandom random_;
  // Requests that joined another's call, until its answer arrives (this worker's thread only).
  std::unordered_map<const Call*, std::shared_ptr<Call>> waiting_;
  ParkingLot<std::shared_ptr<Call>> parking_;  // requests waiting for a concurrency slot
  LiveCounter calls_;  // declared last: the calls in waiting_ release their tokens first
};

}  // namespace fusebox::proxy
