#include "fusebox/metrics/sharded_histogram.h"

#include <cmath>

namespace fusebox::metrics {
namespace {

std::uint64_t to_nanoseconds(double seconds) {
  if (!(seconds > 0)) return 0;  // negative or NaN
  if (seconds > ShardedHistogramArray::kMaxObservationSeconds) {
    seconds = ShardedHistogramArray::kMaxObservationSeconds;
  }
  return static_cast<std::uint64_t>(std::llround(seconds * 1e9));
}

}  // namespace

ShardedHistogramArray::ShardedHistogramArray(std::size_t shards, std::size_t series,
                                             std::vector<double> upper_bounds_seconds)
    : upper_bounds_(std::move(upper_bounds_seconds)),
      series_(series),
      cells_(shards, series * (upper_bounds_.size() + 2)) {
  bounds_ns_.reserve(upper_bounds_.size());
  for (double bound : upper_bounds_) {
    assert(std::isfinite(bound) && bound > 0);
    assert(bounds_ns_.empty() || to_nanoseconds(bound) > bounds_ns_.back());
    bounds_ns_.push_back(to_nanoseconds(bound));
  }
}

ShardedHistogramArray::ShardedHistogramArray(std::size_t shards, std::size_t series)
    : ShardedHistogramArray(shards, series,
                            {kLatencyBucketsSeconds.begin(), kLatencyBucketsSeconds.end()}) {}

void ShardedHistogramArray::observe(std::size_t shard, std::size_t series,
                                    double seconds) noexcept {
  assert(series < series_);
  const std::uint64_t ns = to_nanoseconds(seconds);
  // Linear scan: 15 bounds, and most requests stop in the first few. Integer comparison makes
  // "exactly on the bound" deterministic (le is inclusive).
  std::size_t bucket = 0;
  while (bucket < bounds_ns_.size() && ns > bounds_ns_[bucket]) ++bucket;
  const std::size_t base = series * cells_per_series();
  cells_.add(shard, base + bucket);
  cells_.add(shard, base + bounds_ns_.size() + 1, ns);
}

HistogramSnapshot ShardedHistogramArray::snapshot(std::size_t series) const {
  assert(series < series_);
  HistogramSnapshot snap;
  snap.upper_bounds = upper_bounds_;
  snap.cumulative.reserve(bounds_ns_.size());
  const std::size_t base = series * cells_per_series();
  std::uint64_t running = 0;
  for (std::size_t bucket = 0; bucket < bounds_ns_.size(); ++bucket) {
    running += cells_.sum(base + bucket);
    snap.cumulative.push_back(running);
  }
  snap.count = running + cells_.sum(base + bounds_ns_.size());
  snap.sum_seconds = static_cast<double>(cells_.sum(base + bounds_ns_.size() + 1)) / 1e9;
  return snap;
}

}  // namespace fusebox::metrics
