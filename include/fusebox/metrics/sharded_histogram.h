#pragma once
// A family of latency histograms (one per label combination, "series"), sharded per recording
// thread like ShardedCounterArray (same threading contract). Replaces prometheus::Histogram on
// the data path, whose Observe() takes a mutex.
//
// Per series and shard: one non-cumulative counter per bucket plus one for +Inf, and the sum
// as integer nanoseconds (exact, no floating-point atomics). The count is not stored: a
// snapshot derives it from the buckets, so count == +Inf bucket in every exposition.

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::metrics {

// The project's latency buckets (seconds, le): 1 ms .. 60 s.
inline constexpr std::array<double, 15> kLatencyBucketsSeconds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

// Aggregated state of one series, as Prometheus wants it.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;       // seconds, finite bounds only
  std::vector<std::uint64_t> cumulative;  // observations <= upper_bounds[i]
  std::uint64_t count = 0;                // all observations (the +Inf bucket)
  double sum_seconds = 0;
};

class ShardedHistogramArray {
 public:
  // `upper_bounds_seconds`: strictly increasing, finite, > 0 (checked with assert).
  ShardedHistogramArray(std::size_t shards, std::size_t series,
                        std::vector<double> upper_bounds_seconds);
  ShardedHistogramArray(std::size_t shards, std::size_t series);  // kLatencyBucketsSeconds

  // Hot path. Negative and NaN durations count as 0; durations above kMaxObservationSeconds
  // count in +Inf and add kMaxObservationSeconds to the sum (keeps the uint64 sum from
  // overflowing on a garbage value).
  void observe(std::size_t shard, std::size_t series, double seconds) noexcept;

  HistogramSnapshot snapshot(std::size_t series) const;

  const std::vector<double>& upper_bounds() const noexcept { return upper_bounds_; }
  std::size_t series() const noexcept { return series_; }

  static constexpr double kMaxObservationSeconds = 1e6;  // ~11.6 days

 private:
  std::size_t cells_per_series() const noexcept { return bounds_ns_.size() + 2; }

  std::vector<double> upper_bounds_;
  std::vector<std::uint64_t> bounds_ns_;  // upper_bounds_ in nanoseconds (rounded)
  std::size_t series_;
  ShardedCounterArray cells_;  // per series: buckets..., +Inf, sum_ns
};

}  // namespace fusebox::metrics
