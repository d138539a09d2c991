#pragma once
// The degradation chain's pure parts: why a request degraded, what each tier is called in
// headers and metrics, and how a request is rewritten for a model tier. The data path that
// walks the chain lives in proxy::ProxyHandler.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "fusebox/config/config.h"
#include "fusebox/http/rest_path.h"
#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::degrade {

// Values of X-Fusebox-Degraded-Reason (and the metrics' `reason` label; `none` = primary).
enum class Reason : std::uint8_t {
  none,
  breaker_open,
  no_healthy_backend,
  upstream_error,
  timeout,
  overload,
};
inline constexpr std::size_t kReasonCount = 6;
const char* to_string(Reason reason);

// The request target for a model tier: /v1/models/<tier.model>[/versions/<v>|/labels/<l>]:<verb>
// (the tier's version or label; none when the tier sets neither), plus the original query.
std::string rewrite_target(const http::RestTarget& original, std::string_view original_target,
                           const config::FallbackTier& tier);
// The same for any target: `version` > 0 or a non-empty `label` (else none), then the verb.
std::string rewrite_target(const http::RestTarget& original, std::string_view original_target,
                           std::string_view model, std::int64_t version, std::string_view label);

// With tier.signature set, the request body with "signature_name" replaced; nullopt when the
// body is not a JSON object (the tier then sends the body unchanged).
std::optional<std::string> rewrite_signature(std::string_view body, std::string_view signature);

// Tier names as in X-Fusebox-Tier: "primary", "model:<model>", "cache", "rules", "default".
std::string tier_name(const config::FallbackTier& tier);

// The protocol a request arrived by, for metrics labels.
enum class Protocol : std::uint8_t { rest, grpc };
inline constexpr std::size_t kProtocolCount = 2;
const char* to_string(Protocol protocol);

// fusebox_responses_total{route,tier,reason,protocol} and the once-per-change log of a route's
// tier (whichever protocol). grpc series exist only when the gRPC listener is on.
class DegradeMetrics {
 public:
  DegradeMetrics(const config::Config& config, std::size_t shards);

  // `tier`: 0 = primary, i + 1 = routes[route].fallbacks[i]. Logs when the route's tier changes.
  void record(std::size_t shard, std::size_t route, std::size_t tier, Reason reason,
              Protocol protocol);
  void collect(std::vector<prometheus::MetricFamily>& out) const;

 private:
  struct RouteTiers {
    std::string route;
    std::vector<std::string> tiers;  // names, index 0 = primary
    std::size_t offset = 0;          // first cell
  };
  std::vector<RouteTiers> routes_;
  std::size_t protocols_ = 1;            // rest only, or rest and grpc
  metrics::ShardedCounterArray counts_;  // [route][tier][reason][protocol]
  std::unique_ptr<std::atomic<std::uint32_t>[]> last_tier_;  // per route: tier*kReasonCount+reason
};

}  // namespace fusebox::degrade
