#pragma once
// The resilience pipeline of one worker thread: given a request for a pool, it chooses a
// backend (health, circuit breaker, load balancer, slow start), sends the request through that
// worker's connection pool, and on a retryable failure tries again on a different backend after
// a jittered backoff, within the pool's retry budget and the request's deadline. Optionally it
// hedges: when the first attempt has not answered after hedge.delay, a second one races it on
// another backend and the first good answer wins.
//
// Single-threaded (one per worker); shared state lives in the atomics of PoolState and
// BackendState and in each backend's SharedBreaker.

#include <algorithm>
#include <array>
#include <string_view>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "fusebox/common/live_counter.h"
#include "fusebox/balancer/load_balancer.h"
#include "fusebox/common/clock.h"
#include "fusebox/common/inline_function.h"
#include "fusebox/metrics/gateway_metrics.h"
#include "fusebox/resilience/resilience_metrics.h"
#include "fusebox/upstream/connection_pool.h"
#include "fusebox/upstream/grpc_client.h"
#include "fusebox/upstream/grpc_upstream.h"

namespace fusebox::resilience {

// One pipeline, two protocols: REST requests travel over the worker's HTTP/1.1 connection
// pools, gRPC requests over the backends' gRPC channels; backend choice, breakers, retries,
// budgets, hedging and deadlines are the same code. gRPC answers are judged in HTTP terms
// (upstream::http_status_for), so retry_on statuses and breaker failure_statuses apply to both.
enum class PipelineOutcome : std::uint8_t {
  response,           // `upstream` holds the answer to relay (any status)
  upstream_failure,   // the last attempt failed without a response (see upstream.outcome)
  deadline_exceeded,  // the request's deadline passed
  no_backend,         // no healthy backend with a closed breaker (nothing was sent)
};

template <class Result>
struct BasicPipelineResult {
  using Kind = PipelineOutcome;
  Kind kind = Kind::response;
  Result upstream;
  upstream::BackendState* backend = nullptr;  // the backend of the last attempt, if any
  unsigned attempts = 0;                      // attempts started (retries and hedges included)
  std::string error;                          // message for the client when not `response`
};

// A request's W3C trace id (32 hex digits), copied: the pipeline call may outlive the request
// (a hedge's loser), and breaker events name the request whose outcome moved the breaker.
struct TraceId {
  std::array<char, 32> hex{};
  std::uint8_t size = 0;
  void assign(std::string_view id) {
    size = static_cast<std::uint8_t>(std::min(id.size(), hex.size()));
    std::copy_n(id.data(), size, hex.data());
  }
  std::string_view view() const { return {hex.data(), size}; }
};

template <class Request>
struct BasicPipelineRequest {
  Request* request = nullptr;                // REST: forwarded as is, plus X-Fusebox-Timeout-Ms
  const config::RouteConfig* route = nullptr;
  std::size_t pool = 0;
  TimePoint deadline{};                      // gRPC: also the upstream call's deadline
  bool idempotent = false;                   // may be hedged
  TraceId trace;                             // for breaker events
};

using PipelineResult = BasicPipelineResult<upstream::UpstreamResult>;
using PipelineRequest = BasicPipelineRequest<upstream::Request>;
using PipelineHandler = InlineFunction<void(PipelineResult&&)>;
using GrpcPipelineResult = BasicPipelineResult<upstream::GrpcResult>;
using GrpcPipelineRequest = BasicPipelineRequest<upstream::GrpcRequest>;
using GrpcPipelineHandler = InlineFunction<void(GrpcPipelineResult&&)>;

// Breaker transitions and health changes are reported here (logging, metrics, slow start).
class TransitionSink {
 public:
  virtual ~TransitionSink() = default;
  // `trace_id`: the request whose admission or outcome caused them; empty for probes and
  // operator actions.
  virtual void on_breaker_transitions(std::size_t shard, upstream::BackendState& backend,
                                      const std::vector<Transition>& transitions,
                                      std::string_view trace_id = {}) = 0;
};

class Pipeline {
 public:
  Pipeline(boost::asio::io_context& ioc, std::vector<upstream::PoolState>& pools,
           metrics::GatewayMetrics& gateway_metrics, ResilienceMetrics& metrics,
           TransitionSink& transitions, std::size_t shard, std::size_t workers);
  ~Pipeline();

  // Runs the request; `done` is called exactly once on this worker's thread. A gRPC request
  // goes only to backends with a grpc_port.
  void execute(const PipelineRequest& request, PipelineHandler done);
  void execute(const GrpcPipelineRequest& request, GrpcPipelineHandler done);
  void close_idle_upstreams();
  // Drops the gRPC calls still in flight, without their callbacks (a worker going away while
  // calls run, at the end of a drain): done before the handlers their callbacks point into go.
  void abandon_grpc_calls();
  boost::asio::io_context& io_context() { return ioc_; }
  // This worker's connections to `backend` (the gRPC one only when it has a grpc_port).
  upstream::ConnectionPool& rest_upstream(const upstream::BackendState& backend) {
    return *connections_[backend.pool_index][backend.backend_index];
  }
  upstream::GrpcClient& grpc_upstream(const upstream::BackendState& backend) {
    return *grpc_clients_[backend.pool_index][backend.backend_index];
  }
  // Calls (REST and gRPC) still running: retries, hedges and timers included.
  std::size_t calls_alive() const { return calls_.count(); }

  template <class Protocol>
  class Call;

 private:
  template <class Protocol>
  friend class Call;
  boost::asio::io_context& ioc_;
  std::vector<upstream::PoolState>& pools_;
  metrics::GatewayMetrics& gateway_metrics_;
  ResilienceMetrics& metrics_;
  TransitionSink& transitions_;
  std::size_t shard_;
  FastRandom random_;
  std::vector<std::unique_ptr<balancer::LoadBalancer>> balancers_;                  // per pool
  // Declared before the upstreams: calls they drop on destruction still hold tokens of it.
  LiveCounter calls_;
  std::vector<std::vector<std::unique_ptr<upstream::ConnectionPool>>> connections_;  // [pool][backend]
  // gRPC connections to the backends with a grpc_port (null for the others): [pool][backend].
  std::vector<std::vector<std::unique_ptr<upstream::GrpcClient>>> grpc_clients_;
  std::vector<balancer::Candidate> scratch_;
};

}  // namespace fusebox::resilience
