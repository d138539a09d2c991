#include "fusebox/resilience/events.h"

#include "fusebox/logging/logging.h"

namespace fusebox::resilience {
namespace {

void mark_back_in_rotation(upstream::BackendState& backend) {
  auto now = std::chrono::steady_clock::now().time_since_epoch();
  backend.in_rotation_since_ns.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
      std::memory_order_relaxed);
}

}  // namespace

void ResilienceEvents::on_breaker_transitions(std::size_t shard, upstream::BackendState& backend,
                                              const std::vector<Transition>& transitions,
                                              std::string_view trace_id) {
  // The request whose outcome moved the breaker, to find it in the access log and traces.
  const std::string trace = trace_id.empty() ? std::string() : " trace_id=" + std::string(trace_id);
  for (const auto& t : transitions) {
    const auto& s = t.stats;
    if (t.from == t.to) {
      logging::log().warn(
          "circuit breaker pool={} backend={} stays {}: {} (max_ejection_percent reached) "
          "calls={} failures={} failure_rate={:.1f}% slow_rate={:.1f}% consecutive_failures={}{}",
          backend.pool_name, backend.label, to_string(t.to), t.reason, s.calls, s.failures,
          s.failure_rate_percent, s.slow_rate_percent, s.consecutive_failures, trace);
      continue;
    }
    metrics_.record_transition(shard, backend, t.from, t.to);
    auto level = t.to == BreakerState::open ? spdlog::level::warn : spdlog::level::info;
    logging::log().log(level,
                       "circuit breaker pool={} backend={} {} -> {} reason={} calls={} failures={} "
                       "slow_calls={} failure_rate={:.1f}% slow_rate={:.1f}% "
                       "consecutive_failures={} p99={:.1f}ms open_for={}ms{}",
                       backend.pool_name, backend.label, to_string(t.from), to_string(t.to),
                       t.reason, s.calls, s.failures, s.slow_calls, s.failure_rate_percent,
                       s.slow_rate_percent, s.consecutive_failures,
                       static_cast<double>(s.p99_latency.count()) / 1e3, t.open_for.count(),
                       trace);
    if (t.to == BreakerState::closed && t.from != BreakerState::disabled &&
        t.from != BreakerState::metrics_only) {
      mark_back_in_rotation(backend);
    }
  }
}

void ResilienceEvents::on_probe(upstream::BackendState& backend, health::ProbeResult result,
                                const std::string&) {
  metrics_.record_health_check(health_shard_, backend, static_cast<std::size_t>(result));
  auto transitions = backend.breaker->on_health_check(result == health::ProbeResult::passed);
  if (!transitions.empty()) on_breaker_transitions(health_shard_, backend, transitions);
}

void ResilienceEvents::on_status_change(upstream::BackendState& backend,
                                        health::HealthStatus from, health::HealthStatus to,
                                        const std::string& detail) {
  bool now_eligible = health::eligible(to);
  auto level = now_eligible ? spdlog::level::info : spdlog::level::warn;
  logging::log().log(level, "health check pool={} backend={} {} -> {}{}{}", backend.pool_name,
                     backend.label, health::to_string(from), health::to_string(to),
                     detail.empty() ? "" : ": ", detail);
  if (now_eligible && !health::eligible(from)) mark_back_in_rotation(backend);
}

}  // namespace fusebox::resilience
