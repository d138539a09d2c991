#pragma once
// Everything the data path shares across worker threads for one configuration: the config
// snapshot, the route table, backend state and metrics. Immutable after construction except
// for the atomics inside BackendState and the metrics.

#include <atomic>
#include <nlohmann/json.hpp>
#include <memory>
#include <vector>

#include "fusebox/config/config.h"
#include "fusebox/metrics/gateway_metrics.h"
#include "fusebox/metrics/grpc_metrics.h"
#include "fusebox/cache/response_cache.h"
#include "fusebox/degrade/chain.h"
#include "fusebox/degrade/load_degrader.h"
#include "fusebox/degrade/rules.h"
#include "fusebox/degrade/split.h"
#include "fusebox/replay/idempotency_store.h"
#include "fusebox/proxy/admission_control.h"
#include "fusebox/proxy/route_table.h"
#include "fusebox/resilience/events.h"
#include "fusebox/resilience/pipeline.h"
#include "fusebox/resilience/resilience_metrics.h"
#include "fusebox/upstream/backend.h"

namespace fusebox::proxy {

// Why a route's primary failed, as X-Fusebox-Degraded-Reason says it. With no backend to send
// to: breaker_open when a healthy backend (with a gRPC port, for gRPC) is kept out by its
// breaker, else no_healthy_backend.
degrade::Reason primary_failure_reason(const upstream::PoolState& pool,
                                       resilience::PipelineOutcome kind,
                                       metrics::UpstreamOutcome outcome, bool grpc);

// One configuration's worth of serving state. A hot reload builds a new Runtime from the new
// configuration and the one it replaces (`previous`), then swaps it in; requests in flight
// finish on the Runtime they started with.
//
// What a reload keeps, for a backend with the same pool name and endpoint (address, ports and
// weight) in both configurations: its circuit breaker when the pool's circuit_breaker settings
// are unchanged, its gRPC channel when the pool's gRPC settings are, and (carry_backend_state(),
// at the swap) its health, reachability and slow-start start time when its health_check
// settings are. The response cache and the idempotency store are kept when their settings are
// unchanged. Everything else starts afresh.
struct Runtime {
  // `shards`: number of recording threads (workers + 1). Resolves endpoint host names
  // (blocking: call it off the I/O threads) and throws std::runtime_error when one cannot be
  // resolved. `previous`, when given, is only read (its atomics and shared members), so it may
  // keep serving on other threads meanwhile.
  Runtime(std::shared_ptr<const config::Config> config, std::size_t shards,
          std::shared_ptr<metrics::ProcessGauges> gauges = std::make_shared<metrics::ProcessGauges>(),
          const Runtime* previous = nullptr);

  // Copies health status, reachability, slow-start time and the last probe report of the
  // backends that continue one of `previous` (see above). Call it on the health checker's
  // thread, after stopping `previous`'s checker and before starting this one's.
  void carry_backend_state(const Runtime& previous);
  // Backends of this configuration that continue one of `previous`, and how much of each.
  struct Carried {
    std::size_t breakers = 0;
  };
  Carried carried;
  cache::MemoryCacheConfig cache_settings;      // what `cache` was built with

  std::shared_ptr<const config::Config> config;
  RouteTable routes;
  std::vector<upstream::PoolState> pools;       // parallel to config->pools
  std::vector<std::size_t> route_pool;          // route index -> pool index
  std::vector<std::vector<std::size_t>> tier_pool;  // [route][fallback]: pool of a model tier
  std::vector<std::vector<degrade::RuleSet>> tier_rules;  // [route][fallback]: a rules tier's rules
  std::vector<std::vector<std::string>> health_models;  // per pool: models the probes check
  metrics::GatewayMetrics metrics;
  metrics::GrpcMetrics grpc_metrics;
  // The configuration as /admin/config shows it (secrets redacted), rendered once: reloads
  // compare sections of it to tell what changed.
  const nlohmann::json config_json;
  std::unique_ptr<resilience::ResilienceMetrics> resilience_metrics;
  std::unique_ptr<resilience::ResilienceEvents> events;  // health events on shard `shards - 1`
  std::unique_ptr<degrade::DegradeMetrics> degrade_metrics;
  std::shared_ptr<cache::ResponseCacheStore> cache;  // null when no route caches
  std::vector<std::unique_ptr<degrade::LoadDegrader>> load_degraders;  // per route; null = off
  std::unique_ptr<std::atomic<std::uint64_t>[]> load_degrade_changes;  // per route
  std::vector<std::vector<std::size_t>> split_pool;  // [route][canary]: the canary's pool
  std::unique_ptr<degrade::SplitMetrics> split_metrics;
  std::shared_ptr<replay::IdempotencyStore> idempotency;  // null when no route uses it
  std::unique_ptr<AdmissionControl> admission;  // auth, priorities, limits (every route)

  // Every family of /metrics (gateway, resilience, degradation, cache, split, replay).
  void collect_metrics(std::vector<prometheus::MetricFamily>& out) const;
  // /admin/routes: per route, load-aware degradation state, split and replay settings.
  nlohmann::json routes_json() const;
};

}  // namespace fusebox::proxy
