#include "fusebox/metrics/gateway_metrics.h"

#include <array>
#include <atomic>
#include <cassert>
#include <string_view>

#include "fusebox/metrics/family_builder.h"
#include "fusebox/metrics/sharded_code_counter.h"
#include "fusebox/metrics/sharded_counter.h"
#include "fusebox/metrics/sharded_histogram.h"

namespace fusebox::metrics {
namespace {

using prometheus::MetricType;

constexpr std::size_t kMethodCount = 3;
constexpr std::array<std::string_view, kMethodCount> kMethodNames = {"GET", "POST", "other"};
constexpr std::array<std::string_view, kUpstreamOutcomeCount> kOutcomeNames = {
    "success", "http_5xx", "connect_failure", "reset", "timeout", "protocol_error"};

constexpr std::string_view kUnmatchedRoute = "unmatched";

}  // namespace

struct GatewayMetrics::Impl {
  Impl(std::vector<std::string> route_names, std::vector<PoolLayout> pool_layouts,
       std::size_t shard_count, std::string build_version)
      : routes(std::move(route_names)),
        pools(std::move(pool_layouts)),
        version(std::move(build_version)),
        shards(shard_count),
        backend_offsets(index_backends(pools)),
        requests(shards, (routes.size() + 1) * kMethodCount),
        request_seconds(shards, routes.size() + 1),
        upstream_requests(shards, backend_offsets.back() * kUpstreamOutcomeCount),
        upstream_seconds(shards, backend_offsets.back()) {
    routes.emplace_back(kUnmatchedRoute);
  }

  // backend_offsets[p] is the flat index of pool p's first backend; back() is the total.
  static std::vector<std::size_t> index_backends(const std::vector<PoolLayout>& pools) {
    std::vector<std::size_t> offsets{0};
    for (const PoolLayout& pool : pools) offsets.push_back(offsets.back() + pool.backends.size());
    return offsets;
  }

  std::size_t backend_index(std::size_t pool, std::size_t backend) const {
    assert(pool < pools.size() && backend < pools[pool].backends.size());
    return backend_offsets[pool] + backend;
  }

  std::vector<std::string> routes;  // configured routes, then "unmatched"
  std::vector<PoolLayout> pools;
  std::string version;
  std::size_t shards;
  std::vector<std::size_t> backend_offsets;

  ShardedCodeCounter requests;             // key: route * kMethodCount + method
  ShardedHistogramArray request_seconds;   // series: route
  ShardedCounterArray upstream_requests;   // cell: backend * kUpstreamOutcomeCount + outcome
  ShardedHistogramArray upstream_seconds;  // series: backend
  std::shared_ptr<ProcessGauges> gauges;
};

GatewayMetrics::GatewayMetrics(std::vector<std::string> route_names, std::vector<PoolLayout> pools,
                               std::size_t shards, std::string version,
                               std::shared_ptr<ProcessGauges> gauges)
    : impl_(std::make_unique<Impl>(std::move(route_names), std::move(pools), shards,
                                   std::move(version))) {
  impl_->gauges = std::move(gauges);
}

GatewayMetrics::~GatewayMetrics() = default;

std::size_t GatewayMetrics::unmatched_route() const { return impl_->routes.size() - 1; }

std::size_t GatewayMetrics::shard_count() const { return impl_->shards; }

void GatewayMetrics::record_request(std::size_t shard, std::size_t route, HttpMethod method,
                                    unsigned status, double seconds) {
  assert(route < impl_->routes.size());
  const std::size_t key = route * kMethodCount + static_cast<std::size_t>(method);
  if (status >= 100 && status <= 999) {
    impl_->requests.add(shard, key, static_cast<std::uint16_t>(status));
  } else {
    impl_->requests.add_overflow(shard, key);
  }
  impl_->request_seconds.observe(shard, route, seconds);
}

void GatewayMetrics::record_upstream(std::size_t shard, std::size_t pool, std::size_t backend,
                                     UpstreamOutcome outcome, double seconds) {
  const std::size_t index = impl_->backend_index(pool, backend);
  impl_->upstream_requests.add(shard,
                               index * kUpstreamOutcomeCount + static_cast<std::size_t>(outcome));
  impl_->upstream_seconds.observe(shard, index, seconds);
}

void GatewayMetrics::add_inflight(std::int64_t delta) {
  impl_->gauges->inflight.fetch_add(delta, std::memory_order_relaxed);
}

void GatewayMetrics::add_downstream_connections(std::int64_t delta) {
  impl_->gauges->downstream_connections.fetch_add(delta, std::memory_order_relaxed);
}

void GatewayMetrics::collect(std::vector<prometheus::MetricFamily>& out) const {
  const Impl& m = *impl_;
  // References to families are held while later ones are appended: no reallocation allowed.
  constexpr std::size_t kFamilyCount = 7;
  out.reserve(out.size() + kFamilyCount);

  auto& requests = out.emplace_back(make_family(
      "fusebox_requests_total",
      "Downstream requests answered, by route, method and HTTP status code (code=\"other\": "
      "status outside 100-999 or too many distinct codes).",
      MetricType::Counter));
  for (std::size_t route = 0; route < m.routes.size(); ++route) {
    for (std::size_t method = 0; method < kMethodCount; ++method) {
      const auto totals = m.requests.totals(route * kMethodCount + method);
      const auto labels = [&](std::string code) {
        return Labels{{"route", m.routes[route]},
                      {"method", std::string(kMethodNames[method])},
                      {"code", std::move(code)}};
      };
      for (const auto& [code, count] : totals.codes) {
        add_counter(requests, labels(std::to_string(code)), static_cast<double>(count));
      }
      if (totals.overflow != 0) {
        add_counter(requests, labels("other"), static_cast<double>(totals.overflow));
      }
    }
  }

  auto& request_seconds = out.emplace_back(
      make_family("fusebox_request_duration_seconds",
                  "Time from reading a downstream request to finishing its response, by route.",
                  MetricType::Histogram));
  for (std::size_t route = 0; route < m.routes.size(); ++route) {
    add_histogram(request_seconds, {{"route", m.routes[route]}}, m.request_seconds.snapshot(route));
  }

  auto& upstream = out.emplace_back(make_family(
      "fusebox_upstream_requests_total",
      "Attempts sent to a backend, by pool, backend and outcome (one request may make several).",
      MetricType::Counter));
  auto& upstream_seconds = out.emplace_back(make_family(
      "fusebox_upstream_request_duration_seconds",
      "Time of one backend attempt, from sending the request to its outcome, all outcomes.",
      MetricType::Histogram));
  for (std::size_t pool = 0; pool < m.pools.size(); ++pool) {
    for (std::size_t backend = 0; backend < m.pools[pool].backends.size(); ++backend) {
      const std::size_t index = m.backend_index(pool, backend);
      const std::string& pool_name = m.pools[pool].name;
      const std::string& backend_name = m.pools[pool].backends[backend];
      for (std::size_t outcome = 0; outcome < kUpstreamOutcomeCount; ++outcome) {
        add_counter(
            upstream,
            {{"pool", pool_name},
             {"backend", backend_name},
             {"outcome", std::string(kOutcomeNames[outcome])}},
            static_cast<double>(m.upstream_requests.sum(index * kUpstreamOutcomeCount + outcome)));
      }
      add_histogram(upstream_seconds, {{"pool", pool_name}, {"backend", backend_name}},
                    m.upstream_seconds.snapshot(index));
    }
  }

  auto& inflight = out.emplace_back(make_family("fusebox_inflight_requests",
                                                "Downstream requests currently being handled.",
                                                MetricType::Gauge));
  add_gauge(inflight, {}, static_cast<double>(m.gauges->inflight.load(std::memory_order_relaxed)));

  auto& connections =
      out.emplace_back(make_family("fusebox_downstream_connections",
                                   "Open downstream (client) connections.", MetricType::Gauge));
  add_gauge(connections, {},
            static_cast<double>(m.gauges->downstream_connections.load(std::memory_order_relaxed)));

  auto& build = out.emplace_back(make_family(
      "fusebox_build_info", "Always 1; the version label tells which fusebox build is running.",
      MetricType::Gauge));
  add_gauge(build, {{"version", m.version}}, 1);
}

std::string GatewayMetrics::expose() const {
  std::vector<prometheus::MetricFamily> families;
  collect(families);
  return serialize(families);
}

HttpMethod method_label(std::string_view method) {
  if (method == "GET") return HttpMethod::get;
  if (method == "POST") return HttpMethod::post;
  return HttpMethod::other;
}

}  // namespace fusebox::metrics
