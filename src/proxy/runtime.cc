#include "fusebox/proxy/runtime.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <algorithm>
#include <stdexcept>

#include "fusebox/config/loader.h"
#include "fusebox/health/health_checker.h"
#include "fusebox/logging/logging.h"
#include "fusebox/upstream/grpc_upstream.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::vector<tcp::endpoint> resolve(const config::EndpointConfig& endpoint) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(endpoint.address, ec);
  if (!ec) return {tcp::endpoint(address, endpoint.port)};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(endpoint.address, std::to_string(endpoint.port), ec);
  if (ec || results.empty()) {
    throw std::runtime_error("cannot resolve backend address \"" + endpoint.address +
                             "\": " + ec.message());
  }
  std::vector<tcp::endpoint> out;
  for (const auto& r : results) out.push_back(r.endpoint());
  return out;
}

std::size_t pool_index(const config::Config& config, std::string_view name, std::size_t fallback) {
  for (std::size_t p = 0; p < config.pools.size(); ++p) {
    if (config.pools[p].name == name) return p;
  }
  return fallback;
}

std::vector<std::string> route_names(const config::Config& config) {
  std::vector<std::string> names;
  for (const auto& r : config.routes) names.push_back(r.name);
  return names;
}

std::vector<metrics::PoolLayout> pool_layouts(const config::Config& config) {
  std::vector<metrics::PoolLayout> layouts;
  for (const auto& p : config.pools) {
    metrics::PoolLayout layout{p.name, {}};
    for (const auto& e : p.endpoints) layout.backends.push_back(config::endpoint_label(e));
    layouts.push_back(std::move(layout));
  }
  return layouts;
}

bool same_endpoint(const config::EndpointConfig& a, const config::EndpointConfig& b) {
  return a.address == b.address && a.port == b.port && a.grpc_port == b.grpc_port &&
         a.weight == b.weight;
}

// The backend of `previous` that a backend of the new configuration continues: same pool name,
// same endpoint. Null when there is none.
const upstream::BackendState* predecessor(const Runtime* previous, const std::string& pool,
                                          const config::EndpointConfig& endpoint) {
  if (!previous) return nullptr;
  for (const auto& p : previous->pools) {
    if (p.config->name != pool) continue;
    for (const auto& b : p.backends) {
      if (same_endpoint(b->endpoint, endpoint)) return b.get();
    }
  }
  return nullptr;
}

// A section of a pool's settings as /admin/config renders it, for "unchanged by the reload".
nlohmann::json pool_section(const nlohmann::json& config_json, const std::string& pool,
                            const char* section) {
  const auto& pools = config_json.at("pools");
  return pools.contains(pool) ? pools.at(pool).value(section, nlohmann::json()) : nlohmann::json();
}

bool same_cache_settings(const cache::MemoryCacheConfig& a, const cache::MemoryCacheConfig& b) {
  return a.max_bytes == b.max_bytes && a.ttl == b.ttl && a.stale_if_error == b.stale_if_error &&
         a.shards == b.shards;
}

}  // namespace

Runtime::Runtime(std::shared_ptr<const config::Config> cfg, std::size_t shards,
                 std::shared_ptr<metrics::ProcessGauges> gauges, const Runtime* previous)
    : config(std::move(cfg)),
      routes(*config),
      pools(config->pools.size()),
      metrics(route_names(*config), pool_layouts(*config), shards, FUSEBOX_VERSION,
              std::move(gauges)),
      grpc_metrics(route_names(*config), shards),
      config_json(config::config_to_json(*config)) {
  auto unchanged = [&](const std::string& pool, const char* section) {
    return previous && pool_section(config_json, pool, section) ==
                           pool_section(previous->config_json, pool, section);
  };
  for (std::size_t p = 0; p < config->pools.size(); ++p) {
    const auto& pool_config = config->pools[p];
    auto& pool = pools[p];
    pool.index = p;
    pool.config = &pool_config;
    for (std::size_t b = 0; b < pool_config.endpoints.size(); ++b) {
      auto backend = std::make_unique<upstream::BackendState>();
      backend->pool_index = p;
      backend->backend_index = b;
      backend->pool_name = pool_config.name;
      backend->endpoint = pool_config.endpoints[b];
      backend->label = config::endpoint_label(backend->endpoint);
      const auto* before = predecessor(previous, pool_config.name, backend->endpoint);
      // A gRPC-only backend is never reached over REST; its channel resolves its own name.
      if (backend->has_rest_port()) {
        backend->resolved = before ? before->resolved : resolve(backend->endpoint);
      }
      if (before && unchanged(pool_config.name, "circuit_breaker")) {
        backend->breaker = before->breaker;
        ++carried.breakers;
      } else {
        backend->breaker = std::make_shared<resilience::SharedBreaker>(
            pool_config.circuit_breaker, SteadyClock::instance(),
            0xb4ea6e4ull ^ (p << 32) ^ b ^ static_cast<std::uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count()));
      }
      pool.backends.push_back(std::move(backend));
    }
  }
  for (const auto& route : config->routes) {
    for (std::size_t p = 0; p < config->pools.size(); ++p) {
      if (config->pools[p].name == route.pool) route_pool.push_back(p);
    }
  }
  if (route_pool.size() != config->routes.size()) {
    throw std::runtime_error("a route names a pool that does not exist");  // validated earlier
  }
  for (const auto& route : config->routes) {
    auto& pools_of_tiers = tier_pool.emplace_back();
    auto& rules_of_tiers = tier_rules.emplace_back();
    for (const auto& tier : route.fallbacks) {
      rules_of_tiers.push_back(degrade::compile_rules(tier.rules));
      std::size_t index = 0;
      for (std::size_t p = 0; p < config->pools.size(); ++p) {
        if (config->pools[p].name == tier.pool) index = p;
      }
      pools_of_tiers.push_back(index);  // only model tiers use it; validated at load
    }
  }
  health_models.resize(pools.size());
  for (std::size_t p = 0; p < pools.size(); ++p) {
    const auto& configured = config->pools[p].health_check.models;
    auto& models = health_models[p];
    if (!configured.empty()) {
      models = configured;
      continue;
    }
    // Every model this pool is asked for: routes' primaries, model tiers and canaries.
    auto add = [&models](const std::string& model) {
      if (model != "*" && std::find(models.begin(), models.end(), model) == models.end()) {
        models.push_back(model);
      }
    };
    for (std::size_t r = 0; r < config->routes.size(); ++r) {
      const auto& route = config->routes[r];
      if (route_pool[r] == p) add(route.match.model);
      for (std::size_t t = 0; t < route.fallbacks.size(); ++t) {
        if (route.fallbacks[t].kind == config::TierKind::model && tier_pool[r][t] == p) {
          add(route.fallbacks[t].model);
        }
      }
      for (const auto& canary : route.split.canaries) {
        const auto& pool_name = canary.pool.empty() ? route.pool : canary.pool;
        if (pool_name == config->pools[p].name) {
          add(canary.model.empty() ? route.match.model : canary.model);
        }
      }
    }
  }
  resilience_metrics = std::make_unique<resilience::ResilienceMetrics>(pools, shards);
  events = std::make_unique<resilience::ResilienceEvents>(*resilience_metrics, shards - 1);
  degrade_metrics = std::make_unique<degrade::DegradeMetrics>(*config, shards);
  bool caching = false;
  for (const auto& r : config->routes) caching = caching || r.cache.mode != config::CacheMode::off;
  if (caching) {
    cache::MemoryCacheConfig cache_config;
    cache_config.max_bytes = config->cache.max_bytes;
    cache_config.shards = config->cache.shards;
    // TTLs are per route: the store keeps entries for the longest ttl + stale_if_error, and each
    // route judges a hit by its age against its own ttl and stale_if_error.
    cache_config.ttl = std::chrono::milliseconds(0);
    cache_config.stale_if_error = std::chrono::milliseconds(0);
    for (const auto& r : config->routes) {
      if (r.cache.mode == config::CacheMode::off) continue;
      cache_config.ttl = std::max(cache_config.ttl, r.cache.ttl + r.cache.stale_if_error);
    }
    cache_settings = cache_config;
    if (previous && previous->cache && same_cache_settings(previous->cache_settings, cache_config)) {
      cache = previous->cache;
    } else {
      cache = cache::make_memory_cache(cache_config, SteadyClock::instance());
    }
  }

  load_degrade_changes = std::make_unique<std::atomic<std::uint64_t>[]>(config->routes.size());
  for (std::size_t r = 0; r < config->routes.size(); ++r) {
    const auto& route = config->routes[r];
    auto& degrader = load_degraders.emplace_back();
    if (route.degrade_on_load.enabled()) {
      auto* changes = &load_degrade_changes[r];
      degrader = std::make_unique<degrade::LoadDegrader>(
          route.degrade_on_load, SteadyClock::instance(), shards,
          [name = route.name, changes,
           dry_run = route.degrade_on_load.dry_run](const degrade::LoadDegradeChange& change) {
            changes->fetch_add(1, std::memory_order_relaxed);
            auto level = change.to_fraction > change.from_fraction ? spdlog::level::warn
                                                                   : spdlog::level::info;
            logging::log().log(level,
                               "route {} load-aware degradation {} -> {}: {}diverting {:.0f}% "
                               "(was {:.0f}%) to the first model tier; {}",
                               name, degrade::to_string(change.from_phase),
                               degrade::to_string(change.to_phase),
                               dry_run ? "dry run, would be " : "", change.to_fraction * 100,
                               change.from_fraction * 100, change.reason);
          });
    }
    auto& canary_pools = split_pool.emplace_back();
    for (const auto& canary : route.split.canaries) {
      canary_pools.push_back(canary.pool.empty() ? route_pool[r]
                                                 : pool_index(*config, canary.pool, route_pool[r]));
    }
  }
  split_metrics = std::make_unique<degrade::SplitMetrics>(*config, shards);
  bool replaying = std::any_of(config->routes.begin(), config->routes.end(),
                               [](const auto& r) { return r.idempotency.enabled; });
  if (replaying) {
    if (previous && previous->idempotency &&
        config_json.at("idempotency") == previous->config_json.at("idempotency")) {
      idempotency = previous->idempotency;
    } else {
      idempotency = std::make_shared<replay::IdempotencyStore>(config->idempotency,
                                                               SteadyClock::instance());
    }
  }
  admission = std::make_unique<AdmissionControl>(*config, shards, SteadyClock::instance());
}

void Runtime::carry_backend_state(const Runtime& previous) {
  for (auto& pool : pools) {
    const auto& name = pool.config->name;
    if (pool_section(config_json, name, "health_check") !=
        pool_section(previous.config_json, name, "health_check")) {
      continue;
    }
    for (auto& backend : pool.backends) {
      const auto* before = predecessor(&previous, name, backend->endpoint);
      if (!before) continue;
      backend->health.store(before->health.load());
      backend->reachable.store(before->reachable.load());
      backend->in_rotation_since_ns.store(before->in_rotation_since_ns.load());
      auto probe = before->last_probe();
      backend->set_last_probe(std::move(probe.result), std::move(probe.detail));
    }
  }
}

degrade::Reason primary_failure_reason(const upstream::PoolState& pool,
                                       resilience::PipelineOutcome kind,
                                       metrics::UpstreamOutcome outcome, bool grpc) {
  using Kind = resilience::PipelineOutcome;
  switch (kind) {
    case Kind::no_backend:
      for (const auto& b : pool.backends) {
        if (grpc && b->endpoint.grpc_port == 0) continue;
        auto health = static_cast<health::HealthStatus>(b->health.load(std::memory_order_relaxed));
        auto state = b->breaker->state();
        bool kept_out = state == resilience::BreakerState::open ||
                        state == resilience::BreakerState::half_open ||
                        state == resilience::BreakerState::forced_open;
        if (health::eligible(health) && kept_out) return degrade::Reason::breaker_open;
      }
      return degrade::Reason::no_healthy_backend;
    case Kind::deadline_exceeded:
      return degrade::Reason::timeout;
    case Kind::upstream_failure:
      return outcome == metrics::UpstreamOutcome::timeout ? degrade::Reason::timeout
                                                          : degrade::Reason::upstream_error;
    case Kind::response:
      return degrade::Reason::upstream_error;
  }
  return degrade::Reason::upstream_error;
}

void Runtime::collect_metrics(std::vector<prometheus::MetricFamily>& families) const {
  using prometheus::MetricType;
  metrics.collect(families);
  if (config->listeners.grpc.enabled) grpc_metrics.collect(families);
  resilience_metrics->collect(families);
  degrade_metrics->collect(families);
  split_metrics->collect(families);
  admission->collect(families);
  auto single = [&](const char* name, const char* help, MetricType type, double v) {
    auto& f = families.emplace_back(metrics::make_family(name, help, type));
    if (type == MetricType::Counter) {
      metrics::add_counter(f, {}, v);
    } else {
      metrics::add_gauge(f, {}, v);
    }
  };
  if (cache) {
    auto stats = cache->stats();
    single("fusebox_cache_hits_total", "Response cache lookups that found an entry (stale included).",
           MetricType::Counter, static_cast<double>(stats.hits));
    single("fusebox_cache_misses_total", "Response cache lookups that found nothing usable.",
           MetricType::Counter, static_cast<double>(stats.misses));
    single("fusebox_cache_evictions_total", "Entries removed to stay within the byte budget.",
           MetricType::Counter, static_cast<double>(stats.evictions));
    single("fusebox_cache_bytes", "Bytes held by the response cache.", MetricType::Gauge,
           static_cast<double>(stats.bytes));
    single("fusebox_cache_entries", "Entries in the response cache.", MetricType::Gauge,
           static_cast<double>(stats.entries));
  }
  if (idempotency) {
    auto stats = idempotency->stats();
    auto& outcomes = families.emplace_back(metrics::make_family(
        "fusebox_idempotency_requests_total",
        "Requests with an idempotency key or coalesced, by outcome: lead (sent upstream), "
        "joined (shared an in-flight call), replay (stored answer), mismatch (422).",
        MetricType::Counter));
    metrics::add_counter(outcomes, {{"outcome", "lead"}}, static_cast<double>(stats.leads));
    metrics::add_counter(outcomes, {{"outcome", "joined"}}, static_cast<double>(stats.joins));
    metrics::add_counter(outcomes, {{"outcome", "replay"}}, static_cast<double>(stats.replays));
    metrics::add_counter(outcomes, {{"outcome", "mismatch"}},
                         static_cast<double>(stats.mismatches));
    single("fusebox_idempotency_evictions_total",
           "Stored answers removed early to stay within idempotency.max_bytes.",
           MetricType::Counter, static_cast<double>(stats.evictions));
    single("fusebox_idempotency_untracked_total",
           "Requests run without replay protection because the store was full of calls in flight.",
           MetricType::Counter, static_cast<double>(stats.overflows));
    single("fusebox_idempotency_bytes", "Bytes held by the idempotency store.", MetricType::Gauge,
           static_cast<double>(stats.bytes));
    single("fusebox_idempotency_entries", "Keys held by the idempotency store (in flight and stored).",
           MetricType::Gauge, static_cast<double>(stats.entries));
  }
  bool any_load = std::any_of(load_degraders.begin(), load_degraders.end(),
                              [](const auto& d) { return d != nullptr; });
  if (any_load) {
    auto& fraction = families.emplace_back(metrics::make_family(
        "fusebox_load_degradation_fraction",
        "Share of a route's requests sent straight to its first model tier because of load.",
        MetricType::Gauge));
    auto& changes = families.emplace_back(metrics::make_family(
        "fusebox_load_degradation_changes_total",
        "Changes of a route's load-aware degradation share or phase.", MetricType::Counter));
    for (std::size_t r = 0; r < load_degraders.size(); ++r) {
      if (!load_degraders[r]) continue;
      const auto& name = config->routes[r].name;
      metrics::add_gauge(fraction, {{"route", name}}, load_degraders[r]->snapshot().fraction);
      metrics::add_counter(changes, {{"route", name}},
                           static_cast<double>(load_degrade_changes[r].load()));
    }
  }
}

nlohmann::json Runtime::routes_json() const {
  auto routes_out = nlohmann::json::array();
  for (std::size_t r = 0; r < config->routes.size(); ++r) {
    const auto& route = config->routes[r];
    nlohmann::json entry = {{"name", route.name},
                            {"model", route.match.model},
                            {"pool", route.pool}};
    auto tiers = nlohmann::json::array({"primary"});
    for (const auto& tier : route.fallbacks) tiers.push_back(degrade::tier_name(tier));
    entry["tiers"] = std::move(tiers);
    if (const auto& degrader = load_degraders[r]) {
      auto snap = degrader->snapshot();
      nlohmann::json load = {{"state", snap.state},
                             {"dry_run", route.degrade_on_load.dry_run},
                             {"fraction", snap.fraction},
                             {"inflight", snap.inflight},
                             {"calm_intervals", snap.calm_intervals},
                             {"evaluations", snap.evaluations},
                             {"reason", snap.reason}};
      load["latency_ewma_ms"] =
          snap.latency_ewma_ms ? nlohmann::json(*snap.latency_ewma_ms) : nlohmann::json(nullptr);
      entry["degrade_on_load"] = std::move(load);
    }
    if (!route.split.canaries.empty()) {
      auto targets = nlohmann::json::array();
      double canary_total = 0;
      for (std::size_t c = 0; c < route.split.canaries.size(); ++c) {
        const auto& canary = route.split.canaries[c];
        canary_total += canary.weight_percent;
        targets.push_back({{"name", canary.name},
                           {"pool", config->pools[split_pool[r][c]].name},
                           {"weight_percent", canary.weight_percent}});
      }
      targets.insert(targets.begin(), nlohmann::json{{"name", "stable"},
                                                     {"pool", route.pool},
                                                     {"weight_percent", 100 - canary_total}});
      entry["split"] = {{"targets", std::move(targets)},
                        {"override_header", route.split.override_header},
                        {"sticky_header", route.split.sticky_header}};
    }
    admission->describe(r, entry);
    if (route.idempotency.enabled) {
      entry["idempotency"] = {{"header", route.idempotency.header},
                              {"coalesce_identical", route.idempotency.coalesce_identical}};
    }
    routes_out.push_back(std::move(entry));
  }
  return {{"routes", std::move(routes_out)}};
}

}  // namespace fusebox::proxy
