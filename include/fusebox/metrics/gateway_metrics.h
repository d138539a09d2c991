#pragma once
// Every metric the gateway data path records, declared in one place.
//
// Recording is lock-free and contention-free: each worker thread writes only its own shard
// (cache-line aligned, relaxed atomics); a scrape sums the shards. Label values are bounded:
// route and pool/backend names come from the configuration, never from requests.
// Exposition is the Prometheus text format produced by prometheus-cpp's TextSerializer.

#include <prometheus/metric_family.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fusebox::metrics {

enum class HttpMethod : std::uint8_t { get, post, other };  // label values "GET", "POST", "other"

// What happened to one upstream attempt. Label values are the enumerator names.
enum class UpstreamOutcome : std::uint8_t {
  success,          // a response arrived with status < 500
  http_5xx,         // a response arrived with status >= 500
  connect_failure,  // TCP connect refused / unreachable / connect timeout
  reset,            // connection reset or closed before a full response
  timeout,          // no full response within the request timeout
  protocol_error,   // unparsable or oversized response
};
inline constexpr std::size_t kUpstreamOutcomeCount = 6;

struct PoolLayout {
  std::string name;
  std::vector<std::string> backends;  // backend label values, e.g. "127.0.0.1:8501"
};

// Gauges of the process rather than of one configuration: shared by every GatewayMetrics built
// across config reloads, so requests and connections that began under an older configuration
// are still counted. Written by every thread.
struct ProcessGauges {
  alignas(64) std::atomic<std::int64_t> inflight{0};
  alignas(64) std::atomic<std::int64_t> downstream_connections{0};
};

class GatewayMetrics {
 public:
  // `route_names` from the config in order; index route_names.size() is route="unmatched".
  // `shards` is the number of recording threads (workers + 1 for everything else).
  // `gauges`: the process's (shared across reloads); a fresh set when none is given.
  GatewayMetrics(std::vector<std::string> route_names, std::vector<PoolLayout> pools,
                 std::size_t shards, std::string version,
                 std::shared_ptr<ProcessGauges> gauges = std::make_shared<ProcessGauges>());
  ~GatewayMetrics();
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  std::size_t unmatched_route() const;
  std::size_t shard_count() const;

  // Hot path. `shard` < shards; only one thread should use a given shard (a shared shard stays
  // exact, only slower). Indices out of range are programming errors (assert in debug builds).
  // fusebox_requests_total{route,method,code} and fusebox_request_duration_seconds{route}.
  // `status` outside 100..999 is counted as code="other", like a code that finds its
  // (route, method) table full (ShardedCodeCounter::kCapacity distinct codes per shard).
  void record_request(std::size_t shard, std::size_t route, HttpMethod method, unsigned status,
                      double seconds);
  // fusebox_upstream_requests_total{pool,backend,outcome} and
  // fusebox_upstream_request_duration_seconds{pool,backend} (all outcomes).
  void record_upstream(std::size_t shard, std::size_t pool, std::size_t backend,
                       UpstreamOutcome outcome, double seconds);
  // Gauges, any thread: fusebox_inflight_requests, fusebox_downstream_connections.
  void add_inflight(std::int64_t delta);
  void add_downstream_connections(std::int64_t delta);

  // Appends the families of all the above plus fusebox_build_info{version}, so a /metrics
  // handler can serialize them together with other modules' families. Any thread.
  void collect(std::vector<prometheus::MetricFamily>& out) const;

  // Prometheus text exposition format 0.0.4 of collect()'s families. Any thread.
  std::string expose() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "GET" -> get, "POST" -> post, anything else (case-sensitive, as methods are) -> other.
HttpMethod method_label(std::string_view method);

}  // namespace fusebox::metrics
