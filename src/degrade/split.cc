#include "fusebox/degrade/split.h"

#include "fusebox/cache/response_cache.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::degrade {
namespace {

std::size_t canary_at(const config::SplitConfig& split, double position_percent) {
  double end = 0;
  for (std::size_t i = 0; i < split.canaries.size(); ++i) {
    end += split.canaries[i].weight_percent;
    if (position_percent < end) return i + 1;
  }
  return kStableTarget;
}

std::size_t cells(const config::Config& config) {
  std::size_t n = 0;
  for (const auto& r : config.routes) n += 1 + r.split.canaries.size();
  return n;
}

}  // namespace

double sticky_position(std::string_view key) {
  // The top 53 bits of the hash, as a fraction: uniform for a good hash.
  return static_cast<double>(cache::hash64(key) >> 11) * 0x1.0p-53;
}

std::size_t choose_split_target(const config::SplitConfig& split, std::string_view override_value,
                                std::optional<std::string_view> sticky_value, double uniform01) {
  if (split.canaries.empty()) return kStableTarget;
  double position = sticky_value && !split.sticky_header.empty() ? sticky_position(*sticky_value)
                                                                 : uniform01;
  if (!override_value.empty()) {
    if (override_value == "never" || override_value == "stable") return kStableTarget;
    if (override_value == "always") {
      double total = 0;
      for (const auto& c : split.canaries) total += c.weight_percent;
      if (total <= 0) return 1;
      return canary_at(split, position * total);
    }
    for (std::size_t i = 0; i < split.canaries.size(); ++i) {
      if (split.canaries[i].name == override_value) return i + 1;
    }
  }
  return canary_at(split, position * 100);
}

std::string_view split_target_name(const config::SplitConfig& split, std::size_t target) {
  if (target == kStableTarget || target > split.canaries.size()) return "stable";
  return split.canaries[target - 1].name;
}

SplitMetrics::SplitMetrics(const config::Config& config, std::size_t shards)
    : responses_(shards, cells(config)), handoffs_(shards, cells(config)) {
  std::size_t offset = 0;
  for (const auto& r : config.routes) {
    RouteTargets rt{r.name, {"stable"}, offset};
    for (const auto& c : r.split.canaries) rt.targets.push_back(c.name);
    offset += rt.targets.size();
    routes_.push_back(std::move(rt));
  }
}

void SplitMetrics::record_response(std::size_t shard, std::size_t route, std::size_t target) {
  responses_.add(shard, routes_[route].offset + target);
}

void SplitMetrics::record_handoff(std::size_t shard, std::size_t route, std::size_t target) {
  handoffs_.add(shard, routes_[route].offset + target);
}

void SplitMetrics::collect(std::vector<prometheus::MetricFamily>& out) const {
  auto responses = metrics::make_family(
      "fusebox_split_responses_total",
      "Answers of routes with a traffic split, by the target that gave them (stable or a canary).",
      prometheus::MetricType::Counter);
  auto handoffs = metrics::make_family(
      "fusebox_split_handoffs_total",
      "Canary requests handed to the stable target because the canary could not answer.",
      prometheus::MetricType::Counter);
  for (const auto& rt : routes_) {
    if (rt.targets.size() == 1) continue;  // no split on this route
    for (std::size_t t = 0; t < rt.targets.size(); ++t) {
      metrics::add_counter(responses, {{"route", rt.route}, {"target", rt.targets[t]}},
                           static_cast<double>(responses_.sum(rt.offset + t)));
      if (t == 0) continue;
      metrics::add_counter(handoffs, {{"route", rt.route}, {"canary", rt.targets[t]}},
                           static_cast<double>(handoffs_.sum(rt.offset + t)));
    }
  }
  out.push_back(std::move(responses));
  out.push_back(std::move(handoffs));
}

}  // namespace fusebox::degrade
