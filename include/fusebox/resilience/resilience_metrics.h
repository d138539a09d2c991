#pragma once
// The metrics of breakers, health checks, retries and hedges, declared in one place. Counters
// are sharded per recording thread like the gateway's; states and health are read from the
// backends' atomics at scrape time.

#include <prometheus/metric_family.h>

#include <vector>

#include "fusebox/metrics/sharded_counter.h"
#include "fusebox/resilience/circuit_breaker.h"
#include "fusebox/upstream/backend.h"

namespace fusebox::resilience {

enum class RetryReason : std::uint8_t { connect_failure, reset, timeout, status, hedge };
inline constexpr std::size_t kRetryReasonCount = 5;
inline constexpr std::size_t kBreakerStateCount = 6;
inline constexpr std::size_t kProbeResultCount = 8;  // health::ProbeResult

class ResilienceMetrics {
 public:
  // `pools` must outlive this object; their backend lists must not change.
  ResilienceMetrics(const std::vector<upstream::PoolState>& pools, std::size_t shards);

  void record_transition(std::size_t shard, const upstream::BackendState& backend,
                         BreakerState from, BreakerState to);
  void record_rejected(std::size_t shard, const upstream::BackendState& backend);
  void record_health_check(std::size_t shard, const upstream::BackendState& backend,
                           std::size_t probe_result);
  void record_retry(std::size_t shard, std::size_t pool, RetryReason reason);
  void record_budget_exhausted(std::size_t shard, std::size_t pool);
  void record_no_backend(std::size_t shard, std::size_t pool);

  void collect(std::vector<prometheus::MetricFamily>& out) const;

 private:
  std::size_t backend_cell(const upstream::BackendState& b) const {
    return backend_offset_[b.pool_index] + b.backend_index;
  }
  const std::vector<upstream::PoolState>& pools_;
  std::vector<std::size_t> backend_offset_;
  std::size_t backends_ = 0;
  metrics::ShardedCounterArray transitions_;  // [backend][from][to]
  metrics::ShardedCounterArray rejected_;     // [backend]
  metrics::ShardedCounterArray health_checks_;  // [backend][result]
  metrics::ShardedCounterArray retries_;      // [pool][reason]
  metrics::ShardedCounterArray budget_exhausted_;  // [pool]
  metrics::ShardedCounterArray no_backend_;   // [pool]
};

}  // namespace fusebox::resilience
