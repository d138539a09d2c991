// Cost of the per-request bookkeeping on the proxy path: the retry-budget check before a retry
// or hedge, classifying a TF Serving REST path and finding its route, and recording the request
// and upstream metrics. Run: build/bin/micro_bench --benchmark_filter='Retry|Rest|Route|Record'
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/config/config.h"
#include "fusebox/http/rest_path.h"
#include "fusebox/metrics/gateway_metrics.h"
#include "fusebox/proxy/route_table.h"
#include "fusebox/resilience/retry.h"

namespace {

using namespace fusebox;

// --- retry budget -------------------------------------------------------------------------

// The bare rule, over a spread of pool loads so that neither branch is always taken.
void BM_RetryBudgetAllows(benchmark::State& state) {
  config::RetryBudgetConfig budget;  // 20%, at least 3 in flight
  std::int64_t active = 0, retries = 0;
  for (auto _ : state) {
    active = (active + 7) & 255;
    retries = (retries + 3) & 63;
    benchmark::DoNotOptimize(active);
    benchmark::DoNotOptimize(retries);
    benchmark::DoNotOptimize(resilience::retry_budget_allows(budget, active, retries));
  }
}
BENCHMARK(BM_RetryBudgetAllows);

// As the pipeline reserves and releases a slot: two relaxed loads of the pool's counters, the
// rule, then an increment and a decrement of the retries in flight. With 2 threads the counters
// are shared, as they are between the workers of one pool.
void BM_RetryBudgetReserveRelease(benchmark::State& state) {
  static std::atomic<std::int64_t> active_requests{100};
  static std::atomic<std::int64_t> retries_in_flight{0};
  config::RetryBudgetConfig budget;
  for (auto _ : state) {
    bool allowed = resilience::retry_budget_allows(
        budget, active_requests.load(std::memory_order_relaxed),
        retries_in_flight.load(std::memory_order_relaxed));
    if (allowed) {
      retries_in_flight.fetch_add(1, std::memory_order_relaxed);
      retries_in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
    benchmark::DoNotOptimize(allowed);
  }
}
BENCHMARK(BM_RetryBudgetReserveRelease)->ThreadRange(1, 2);

// --- REST path classification and routing -------------------------------------------------

constexpr std::array<std::string_view, 5> kTargets = {
    "/v1/models/half_plus_two:predict",              // 0: the common case
    "/v1/models/resnet_50/versions/2:predict",       // 1: a pinned version
    "/v1/models/resnet_50/labels/stable:classify",   // 2: a label
    "/v1/models/my%20model:predict?debug=1",         // 3: escaped name and a query string
    "/v1/models/half_plus_two/versions/x:predict",   // 4: malformed (400, builds the message)
};

void BM_RestPathParse(benchmark::State& state) {
  const std::string_view target = kTargets[static_cast<std::size_t>(state.range(0))];
  for (auto _ : state) {
    auto parsed = http::parse_rest_path("POST", target);
    benchmark::DoNotOptimize(parsed);
  }
}
BENCHMARK(BM_RestPathParse)->DenseRange(0, static_cast<int>(kTargets.size()) - 1);

// `routes` exact routes model0..model{n-1}, optionally followed by a "*" route.
config::Config routes_config(std::size_t routes, bool wildcard) {
  config::Config config;
  for (std::size_t i = 0; i < routes; ++i) {
    config::RouteConfig route;
    route.name = "route" + std::to_string(i);
    route.match.model = "model" + std::to_string(i);
    route.pool = "sim";
    config.routes.push_back(std::move(route));
  }
  if (wildcard) {
    config::RouteConfig route;
    route.name = "any";
    route.match.model = "*";
    route.pool = "sim";
    config.routes.push_back(std::move(route));
  }
  return config;
}

// What the proxy does before anything else: classify the path, then look the model up.
// Args: number of routes; whether the model is one of them (else it falls to "*").
void BM_RestPathParseAndRoute(benchmark::State& state) {
  const auto routes = static_cast<std::size_t>(state.range(0));
  const bool known = state.range(1) != 0;
  const auto config = routes_config(routes, /*wildcard=*/true);
  const proxy::RouteTable table(config);
  const std::string target =
      "/v1/models/" + (known ? "model" + std::to_string(routes / 2) : std::string("other")) +
      ":predict";
  for (auto _ : state) {
    auto parsed = http::parse_rest_path("POST", target);
    auto route = table.find(parsed.target->model);
    benchmark::DoNotOptimize(route);
  }
}
BENCHMARK(BM_RestPathParseAndRoute)->ArgsProduct({{1, 16, 256}, {1, 0}});

// The route lookup alone (the gRPC path has the model name without a REST path to parse).
void BM_RouteFind(benchmark::State& state) {
  const auto routes = static_cast<std::size_t>(state.range(0));
  const auto config = routes_config(routes, /*wildcard=*/true);
  const proxy::RouteTable table(config);
  const std::string model = "model" + std::to_string(routes / 2);
  for (auto _ : state) benchmark::DoNotOptimize(table.find(model));
}
BENCHMARK(BM_RouteFind)->Arg(1)->Arg(16)->Arg(256);

// --- metrics recording --------------------------------------------------------------------

metrics::GatewayMetrics& gateway_metrics() {
  // Four routes and one pool of three backends; one shard per benchmark thread plus one.
  static metrics::GatewayMetrics m({"a", "b", "c", "d"},
                                   {{"sim", {"127.0.0.1:8501", "127.0.0.1:8502", "127.0.0.1:8503"}}},
                                   3, "bench");
  return m;
}

// fusebox_requests_total and fusebox_request_duration_seconds, as deliver() records an answer.
void BM_RecordRequest(benchmark::State& state) {
  auto& m = gateway_metrics();
  const auto shard = static_cast<std::size_t>(state.thread_index());
  double seconds = 0.0021;
  for (auto _ : state) {
    m.record_request(shard, 1, metrics::method_label("POST"), 200, seconds);
    seconds = seconds < 1 ? seconds * 1.01 : 0.0021;  // walk the histogram's buckets
  }
}
BENCHMARK(BM_RecordRequest)->ThreadRange(1, 2);

// Everything one proxied request records on the happy path: the in-flight gauge up and down,
// one upstream attempt and the request itself.
void BM_RecordProxiedRequest(benchmark::State& state) {
  auto& m = gateway_metrics();
  const auto shard = static_cast<std::size_t>(state.thread_index());
  std::size_t backend = 0;
  double seconds = 0.0021;
  for (auto _ : state) {
    m.add_inflight(1);
    m.record_upstream(shard, 0, backend, metrics::UpstreamOutcome::success, seconds * 0.9);
    m.record_request(shard, 1, metrics::method_label("POST"), 200, seconds);
    m.add_inflight(-1);
    backend = backend == 2 ? 0 : backend + 1;
    seconds = seconds < 1 ? seconds * 1.01 : 0.0021;
  }
}
BENCHMARK(BM_RecordProxiedRequest)->ThreadRange(1, 2);

}  // namespace
