#pragma once
// Traffic splits (gray release): which target of a route serves a request. Pure; the data path
// that sends the request and hands a failed canary's request to the stable target lives in
// proxy::ProxyHandler.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "fusebox/config/config.h"
#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::degrade {

inline constexpr std::size_t kStableTarget = 0;  // canaries[i] is target i + 1

// The target for one request: kStableTarget or 1 + the index of a canary.
// - `override_value` (the override header, "" when absent): "never" or "stable" -> stable;
//   "always" -> a canary, by weight among the canaries (the first when all weights are 0);
//   a canary's name -> that canary. Any other value is ignored. Case-sensitive.
// - Otherwise the request's position in [0, 1) decides: canary i takes the slice
//   [sum of earlier weights, + its weight) / 100, the stable target the rest. The position is
//   sticky_position(*sticky_value) when the split is sticky and the request has the key, else
//   `uniform01`.
std::size_t choose_split_target(const config::SplitConfig& split, std::string_view override_value,
                                std::optional<std::string_view> sticky_value, double uniform01);

// A stable position in [0, 1) for a stickiness key (the same key always lands on the same
// target while the weights stay the same; raising a canary's weight only moves keys towards it).
double sticky_position(std::string_view key);

// "stable" or the canary's name.
std::string_view split_target_name(const config::SplitConfig& split, std::size_t target);

// fusebox_split_responses_total{route,target} (the target that answered) and
// fusebox_split_handoffs_total{route,canary} (canary requests handed to the stable target).
class SplitMetrics {
 public:
  SplitMetrics(const config::Config& config, std::size_t shards);

  void record_response(std::size_t shard, std::size_t route, std::size_t target);
  void record_handoff(std::size_t shard, std::size_t route, std::size_t target);
  void collect(std::vector<prometheus::MetricFamily>& out) const;

 private:
  struct RouteTargets {
    std::string route;
    std::vector<std::string> targets;  // index 0 = stable
    std::size_t offset = 0;
  };
  std::vector<RouteTargets> routes_;  // parallel to config.routes
  metrics::ShardedCounterArray responses_;
  metrics::ShardedCounterArray handoffs_;
};

}  // namespace fusebox::degrade
