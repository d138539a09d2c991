#pragma once
// What fusebox does when a breaker changes state or a health check changes its verdict: one
// log line with the numbers behind the decision, the metrics, the slow-start clock of a backend
// that returns to rotation, and health results passed to the breaker (require_health_check).
// Called from worker threads (breakers) and the admin thread (health checks).

#include "fusebox/health/health_checker.h"
#include "fusebox/resilience/pipeline.h"
#include "fusebox/resilience/resilience_metrics.h"

namespace fusebox::resilience {

class ResilienceEvents final : public TransitionSink, public health::HealthListener {
 public:
  // `health_shard`: the metrics shard of the thread that runs the health checks.
  ResilienceEvents(ResilienceMetrics& metrics, std::size_t health_shard)
      : metrics_(metrics), health_shard_(health_shard) {}

  void on_breaker_transitions(std::size_t shard, upstream::BackendState& backend,
                              const std::vector<Transition>& transitions,
                              std::string_view trace_id = {}) override;
  void on_probe(upstream::BackendState& backend, health::ProbeResult result,
                const std::string& detail) override;
  void on_status_change(upstream::BackendState& backend, health::HealthStatus from,
                        health::HealthStatus to, const std::string& detail) override;

 private:
  ResilienceMetrics& metrics_;
  std::size_t health_shard_;
};

}  // namespace fusebox::resilience
