#include "fusebox/proxy/runtime.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <algorithm>
#include <stdexcept>

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

std::vector<std::string> route_names(const config::Config& config) {
  std::vector<std::string> names;
  for (const auto& r : config.routes) names.push_back(r.name);
  return names;
}

std::vector<metrics::PoolLayout> pool_layouts(const config::Config& config) {
  std::vector<metrics::PoolLayout> layouts;
  for (const auto& p : config.pools) {
    metrics::PoolLayout layout{p.name, {}};
    for (const auto& e : p.endpoints) layout.backends.push_back(e.address + ":" + std::to_string(e.port));
    layouts.push_back(std::move(layout));
  }
  return layouts;
}

}  // namespace

Runtime::Runtime(std::shared_ptr<const config::Config> cfg, std::size_t shards)
    : config(std::move(cfg)),
      routes(*config),
      pools(config->pools.size()),
      metrics(route_names(*config), pool_layouts(*config), shards, FUSEBOX_VERSION) {
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
      backend->label = backend->endpoint.address + ":" + std::to_string(backend->endpoint.port);
      backend->resolved = resolve(backend->endpoint);
      backend->breaker = std::make_unique<resilience::SharedBreaker>(
          pool_config.circuit_breaker, SteadyClock::instance(),
          0xb4ea6e4ull ^ (p << 32) ^ b ^ static_cast<std::uint64_t>(
              std::chrono::steady_clock::now().time_since_epoch().count()));
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
    for (std::size_t r = 0; r < config->routes.size(); ++r) {
      const auto& model = config->routes[r].match.model;
      if (route_pool[r] == p && model != "*" &&
          std::find(models.begin(), models.end(), model) == models.end()) {
        models.push_back(model);
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
    cache = cache::make_memory_cache(cache_config, SteadyClock::instance());
  }
}

}  // namespace fusebox::proxy
