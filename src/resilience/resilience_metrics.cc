#include "fusebox/resilience/resilience_metrics.h"

#include "fusebox/health/health_checker.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::resilience {

namespace {
using prometheus::MetricType;

constexpr const char* kRetryReasons[kRetryReasonCount] = {"connect_failure", "reset", "timeout",
                                                          "status", "hedge"};

std::size_t count_backends(const std::vector<upstream::PoolState>& pools) {
  std::size_t n = 0;
  for (const auto& p : pools) n += p.backends.size();
  return n;
}
}  // namespace

ResilienceMetrics::ResilienceMetrics(const std::vector<upstream::PoolState>& pools,
                                     std::size_t shards)
    : pools_(pools),
      backends_(count_backends(pools)),
      transitions_(shards, count_backends(pools) * kBreakerStateCount * kBreakerStateCount),
      rejected_(shards, count_backends(pools)),
      health_checks_(shards, count_backends(pools) * kProbeResultCount),
      retries_(shards, pools.size() * kRetryReasonCount),
      budget_exhausted_(shards, pools.size()),
      no_backend_(shards, pools.size()) {
  std::size_t offset = 0;
  for (const auto& p : pools) {
    backend_offset_.push_back(offset);
    offset += p.backends.size();
  }
}

void ResilienceMetrics::record_transition(std::size_t shard, const upstream::BackendState& b,
                                          BreakerState from, BreakerState to) {
  auto cell = (backend_cell(b) * kBreakerStateCount + static_cast<std::size_t>(from)) *
                  kBreakerStateCount +
              static_cast<std::size_t>(to);
  transitions_.add(shard, cell);
}

void ResilienceMetrics::record_rejected(std::size_t shard, const upstream::BackendState& b) {
  rejected_.add(shard, backend_cell(b));
}

void ResilienceMetrics::record_health_check(std::size_t shard, const upstream::BackendState& b,
                                            std::size_t probe_result) {
  health_checks_.add(shard, backend_cell(b) * kProbeResultCount + probe_result);
}

void ResilienceMetrics::record_retry(std::size_t shard, std::size_t pool, RetryReason reason) {
  retries_.add(shard, pool * kRetryReasonCount + static_cast<std::size_t>(reason));
}

void ResilienceMetrics::record_budget_exhausted(std::size_t shard, std::size_t pool) {
  budget_exhausted_.add(shard, pool);
}

void ResilienceMetrics::record_no_backend(std::size_t shard, std::size_t pool) {
  no_backend_.add(shard, pool);
}

void ResilienceMetrics::collect(std::vector<prometheus::MetricFamily>& out) const {
  using metrics::add_counter;
  using metrics::add_gauge;
  using metrics::make_family;
  // collect() appends several families: build each completely before starting the next.
  auto state = make_family("fusebox_circuit_breaker_state",
                           "Circuit breaker state per backend: 0 closed, 1 open, 2 half-open, 3 "
                           "forced open, 4 disabled, 5 metrics-only.",
                           MetricType::Gauge);
  auto transitions = make_family("fusebox_circuit_breaker_transitions_total",
                                 "Circuit breaker state changes per backend.", MetricType::Counter);
  auto rejected = make_family("fusebox_circuit_breaker_rejected_total",
                              "Requests a backend's open breaker turned away.", MetricType::Counter);
  auto healthy = make_family("fusebox_backend_healthy",
                             "1 when the backend's active health check passes (or has not run "
                             "yet), else 0.",
                             MetricType::Gauge);
  auto checks = make_family("fusebox_health_checks_total",
                            "Active health check rounds per backend, by result.",
                            MetricType::Counter);
  for (const auto& pool : pools_) {
    for (const auto& bp : pool.backends) {
      const auto& b = *bp;
      metrics::Labels labels{{"pool", b.pool_name}, {"backend", b.label}};
      add_gauge(state, labels, static_cast<double>(b.breaker ? static_cast<int>(b.breaker->state()) : 0));
      for (std::size_t from = 0; from < kBreakerStateCount; ++from) {
        for (std::size_t to = 0; to < kBreakerStateCount; ++to) {
          auto cell = (backend_cell(b) * kBreakerStateCount + from) * kBreakerStateCount + to;
          auto n = transitions_.sum(cell);
          if (n == 0) continue;  // 36 combinations per backend; most never happen
          auto with = labels;
          with.push_back({"from", to_string(static_cast<BreakerState>(from))});
          with.push_back({"to", to_string(static_cast<BreakerState>(to))});
          add_counter(transitions, std::move(with), static_cast<double>(n));
        }
      }
      add_counter(rejected, labels, static_cast<double>(rejected_.sum(backend_cell(b))));
      auto status = static_cast<health::HealthStatus>(b.health.load(std::memory_order_relaxed));
      add_gauge(healthy, labels, health::eligible(status) ? 1 : 0);
      for (std::size_t r = 0; r < kProbeResultCount; ++r) {
        auto n = health_checks_.sum(backend_cell(b) * kProbeResultCount + r);
        auto with = labels;
        with.push_back({"result", health::to_string(static_cast<health::ProbeResult>(r))});
        add_counter(checks, std::move(with), static_cast<double>(n));
      }
    }
  }
  auto retries = make_family("fusebox_retries_total",
                             "Upstream attempts after the first (retries and hedges), by reason.",
                             MetricType::Counter);
  auto exhausted = make_family("fusebox_retry_budget_exhausted_total",
                               "Retries not made because the pool's retry budget was spent.",
                               MetricType::Counter);
  auto no_backend = make_family("fusebox_no_eligible_backend_total",
                                "Requests that found no healthy backend with a closed breaker.",
                                MetricType::Counter);
  for (std::size_t p = 0; p < pools_.size(); ++p) {
    metrics::Labels labels{{"pool", pools_[p].config->name}};
    for (std::size_t r = 0; r < kRetryReasonCount; ++r) {
      auto with = labels;
      with.push_back({"reason", kRetryReasons[r]});
      add_counter(retries, std::move(with),
                  static_cast<double>(retries_.sum(p * kRetryReasonCount + r)));
    }
    add_counter(exhausted, labels, static_cast<double>(budget_exhausted_.sum(p)));
    add_counter(no_backend, labels, static_cast<double>(no_backend_.sum(p)));
  }
  for (auto* f : {&state, &transitions, &rejected, &healthy, &checks, &retries, &exhausted,
                  &no_backend}) {
    out.push_back(std::move(*f));
  }
}

}  // namespace fusebox::resilience
