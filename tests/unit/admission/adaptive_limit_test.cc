#include "fusebox/admission/adaptive_limit.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fusebox::admission {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

AdaptiveLimitOptions test_options() {
  return {.initial_limit = 20,
          .min_limit = 2,
          .max_limit = 200,
          .tolerance = 1.5,
          .smoothing = 0.2,
          .min_samples = 10,
          .min_rtt_interval = 3600s,  // out of the way; one test re-measures
          .min_rtt_samples = 10,
          .min_rtt_limit = 3};
}

// Drives the controller one update interval (1s) at a time.
class Driver {
 public:
  explicit Driver(const AdaptiveLimitOptions& options) : limit_(options) {}

  // One interval in which `calls` calls took `latency` each (`drops` of them dropped).
  LimitUpdate interval(nanoseconds latency, int calls = 50, int drops = 0) {
    for (int i = 0; i < calls; ++i) {
      limit_.record(latency, i < drops ? SampleKind::dropped : SampleKind::ok);
    }
    now_ += 1s;
    return limit_.update(now_);
  }

  // `count` intervals; returns the limit after each.
  std::vector<std::uint32_t> intervals(int count, nanoseconds latency) {
    std::vector<std::uint32_t> limits;
    for (int i = 0; i < count; ++i) limits.push_back(interval(latency).limit);
    return limits;
  }

  AdaptiveConcurrencyLimit& limit() { return limit_; }

 private:
  AdaptiveConcurrencyLimit limit_;
  std::chrono::steady_clock::time_point now_{};
};

bool non_decreasing(const std::vector<std::uint32_t>& v) {
  return std::is_sorted(v.begin(), v.end());
}
bool non_increasing(const std::vector<std::uint32_t>& v) {
  return std::is_sorted(v.rbegin(), v.rend());
}

TEST(AdaptiveConcurrencyLimit, MeasuresTheBaselineAtAPinnedLimitFirst) {
  Driver driver(test_options());
  EXPECT_EQ(driver.limit().phase(), AdaptivePhase::measuring_min_rtt);
  EXPECT_EQ(driver.limit().limit(), 3u);
  const LimitUpdate waiting = driver.interval(10ms, 4);
  EXPECT_EQ(waiting.limit, 3u);
  EXPECT_EQ(waiting.phase, AdaptivePhase::measuring_min_rtt);
  EXPECT_EQ(waiting.reason, "measuring min rtt at limit 3: 4/10 samples");

  const LimitUpdate measured = driver.interval(10ms, 6);
  EXPECT_EQ(measured.phase, AdaptivePhase::tracking);
  EXPECT_EQ(measured.previous, 3u);
  EXPECT_EQ(measured.limit, 20u);  // back to the initial limit
  EXPECT_TRUE(measured.changed());
  EXPECT_EQ(driver.limit().min_rtt(), 10ms);
  EXPECT_EQ(measured.reason, "min rtt 10.0ms (p50 of 10 samples at limit 3); limit back to 20");
}

TEST(AdaptiveConcurrencyLimit, StableLatencyGrowsTheLimitToTheMaximum) {
  Driver driver(test_options());
  driver.interval(10ms);                            // baseline 10ms
  const auto limits = driver.intervals(150, 12ms);  // within the tolerance (15ms)
  EXPECT_TRUE(non_decreasing(limits));
  EXPECT_GT(limits[0], 20u);
  EXPECT_EQ(limits.back(), 200u);
  // Growth is smoothing * sqrt(limit) per interval: from 20 to 200 takes about 97 intervals.
  EXPECT_LT(limits[80], 200u);
  EXPECT_EQ(limits[110], 200u);
}

TEST(AdaptiveConcurrencyLimit, LatencyDoublingLowersTheLimitAndItRecovers) {
  Driver driver(test_options());
  driver.interval(10ms);
  ASSERT_EQ(driver.intervals(150, 10ms).back(), 200u);

  // Latency doubled (20ms against 15ms tolerated): gradient 0.75, so the limit falls towards
  // the fixed point of L = 0.75 L + sqrt(L), 16, by smoothing 0.2 per interval.
  const auto doubled = driver.intervals(150, 20ms);
  EXPECT_TRUE(non_increasing(doubled));
  EXPECT_LT(doubled[0], 200u);
  EXPECT_LT(doubled[10], 140u);
  EXPECT_LE(doubled.back(), 19u);
  EXPECT_GE(doubled.back(), 16u);

  // Twice the tolerated latency: the minimum gradient 0.5, fixed point 4.
  const auto tripled = driver.intervals(150, 30ms);
  EXPECT_TRUE(non_increasing(tripled));
  EXPECT_EQ(tripled.back(), 4u);

  // The backend recovers: back to the maximum.
  const auto recovering = driver.intervals(150, 10ms);
  EXPECT_TRUE(non_decreasing(recovering));
  EXPECT_EQ(recovering.back(), 200u);
}

TEST(AdaptiveConcurrencyLimit, ReasonCarriesTheNumbers) {
  Driver driver(test_options());
  driver.interval(10ms);
  const LimitUpdate up = driver.interval(10ms, 20);
  // 20 * 1.0 + sqrt(20) = 24.47; 0.8 * 20 + 0.2 * 24.47 = 20.89
  EXPECT_EQ(up.reason,
            "limit 20 -> 21: p50 10.0ms, min rtt 10.0ms x 1.50, gradient 1.00, headroom 4.5, "
            "drops 0/20");
}

TEST(AdaptiveConcurrencyLimit, BoundsAreRespected) {
  AdaptiveLimitOptions o = test_options();
  o.min_limit = 8;
  o.max_limit = 30;
  o.smoothing = 1;
  Driver driver(o);
  EXPECT_EQ(driver.limit().limit(), 8u);  // min_rtt_limit 3 is clamped to the bounds
  driver.interval(10ms);
  for (std::uint32_t l : driver.intervals(100, 10ms)) EXPECT_LE(l, 30u);
  EXPECT_EQ(driver.limit().limit(), 30u);
  for (std::uint32_t l : driver.intervals(100, 500ms)) EXPECT_GE(l, 8u);
  EXPECT_EQ(driver.limit().limit(), 8u);
}

TEST(AdaptiveConcurrencyLimit, FrequentDropsBackOffWhateverTheLatency) {
  AdaptiveLimitOptions o = test_options();
  o.drop_ratio = 0.1;
  Driver driver(o);
  driver.interval(10ms);
  const LimitUpdate few = driver.interval(10ms, 50, 4);  // 8%: latency decides
  EXPECT_GT(few.limit, few.previous);
  const LimitUpdate many = driver.interval(10ms, 50, 5);  // 10%: minimum gradient
  EXPECT_LT(many.limit, many.previous);
  EXPECT_NE(many.reason.find("gradient 0.50 (drops), headroom 4.6, drops 5/50"), std::string::npos)
      << many.reason;
}

TEST(AdaptiveConcurrencyLimit, TooFewSamplesHoldTheLimitUntilTheWindowFills) {
  Driver driver(test_options());
  driver.interval(10ms);
  const LimitUpdate held = driver.interval(100ms, 6);
  EXPECT_FALSE(held.changed());
  EXPECT_EQ(held.reason, "limit 20 held: 6 samples < 10");
  // The 6 stay in the window: 4 more make 10 and the slow latencies count.
  const LimitUpdate moved = driver.interval(100ms, 4);
  EXPECT_LT(moved.limit, 20u);
}

TEST(AdaptiveConcurrencyLimit, ReMeasuresTheBaselinePeriodically) {
  AdaptiveLimitOptions o = test_options();
  o.min_rtt_interval = 30s;
  Driver driver(o);
  driver.interval(10ms);                           // t = 1s: baseline 10ms, next re-measure at 31s
  const auto before = driver.intervals(29, 10ms);  // t = 2s .. 30s
  EXPECT_EQ(driver.limit().phase(), AdaptivePhase::tracking);
  const std::uint32_t grown = before.back();
  EXPECT_GT(grown, 20u);

  // The backend got slower for good (a bigger model): 40ms. At t = 31s the controller pins
  // the limit and measures again.
  const LimitUpdate pinned = driver.interval(40ms);
  EXPECT_EQ(pinned.phase, AdaptivePhase::measuring_min_rtt);
  EXPECT_EQ(pinned.limit, 3u);
  EXPECT_EQ(pinned.reason, "re-measuring min rtt (every 30s, was 10.0ms): limit pinned to 3");
  const LimitUpdate measured = driver.interval(40ms);
  EXPECT_EQ(measured.phase, AdaptivePhase::tracking);
  EXPECT_EQ(driver.limit().min_rtt(), 40ms);
  EXPECT_EQ(measured.limit, grown);  // restored, then tracking resumes from there
  // 40ms is now normal: the limit grows instead of collapsing.
  const auto after = driver.intervals(20, 40ms);
  EXPECT_TRUE(non_decreasing(after));
  EXPECT_GT(after.back(), grown);
}

TEST(AdaptiveConcurrencyLimit, DryRunComputesTheSameButSaysNotToApply) {
  AdaptiveLimitOptions dry = test_options();
  dry.dry_run = true;
  Driver live_driver(test_options());
  Driver dry_driver(dry);
  for (const nanoseconds latency : {10ms, 10ms, 12ms, 40ms, 40ms, 10ms}) {
    const LimitUpdate live = live_driver.interval(latency);
    const LimitUpdate shadow = dry_driver.interval(latency);
    EXPECT_TRUE(live.apply);
    EXPECT_FALSE(shadow.apply);
    EXPECT_EQ(shadow.limit, live.limit);
    EXPECT_EQ(shadow.reason, "dry run: " + live.reason);
  }
}

TEST(AdaptiveConcurrencyLimit, UsesTheConfiguredPercentile) {
  AdaptiveLimitOptions o = test_options();
  o.sample_percentile = 0.9;
  o.min_rtt_samples = 10;
  AdaptiveConcurrencyLimit limit(o);
  for (int i = 1; i <= 10; ++i) limit.record(std::chrono::milliseconds(i));
  limit.update({});
  EXPECT_EQ(limit.min_rtt(), 9ms);  // the 9th of 10
}

}  // namespace
}  // namespace fusebox::admission
