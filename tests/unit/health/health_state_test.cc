#include <gtest/gtest.h>

#include <string>

#include "fusebox/health/health_checker.h"

namespace fusebox::health {
namespace {

using std::chrono::milliseconds;

// Probe results as letters: P passed, N not_available, M version_mismatch, H http_error,
// B bad_response, C connect_failure, T timeout.
ProbeResult result_of(char c) {
  switch (c) {
    case 'P':
      return ProbeResult::passed;
    case 'N':
      return ProbeResult::not_available;
    case 'M':
      return ProbeResult::version_mismatch;
    case 'H':
      return ProbeResult::http_error;
    case 'B':
      return ProbeResult::bad_response;
    case 'C':
      return ProbeResult::connect_failure;
    case 'T':
      return ProbeResult::timeout;
  }
  ADD_FAILURE() << "bad result letter " << c;
  return ProbeResult::passed;
}

// Statuses as letters: ? unknown, h healthy, u unhealthy, v version_mismatch.
char letter_of(HealthStatus s) {
  switch (s) {
    case HealthStatus::unknown:
      return '?';
    case HealthStatus::healthy:
      return 'h';
    case HealthStatus::unhealthy:
      return 'u';
    case HealthStatus::version_mismatch:
      return 'v';
  }
  return '!';
}

struct ThresholdCase {
  std::string name;
  std::uint32_t healthy_threshold;
  std::uint32_t unhealthy_threshold;
  std::string results;   // one letter per probe
  std::string statuses;  // status after each probe
};

class HealthStateThresholdTest : public testing::TestWithParam<ThresholdCase> {};

TEST_P(HealthStateThresholdTest, FollowsSequence) {
  const auto& c = GetParam();
  ASSERT_EQ(c.results.size(), c.statuses.size());
  config::HealthCheckConfig cfg;
  cfg.healthy_threshold = c.healthy_threshold;
  cfg.unhealthy_threshold = c.unhealthy_threshold;
  HealthState state(cfg);
  EXPECT_EQ(state.status(), HealthStatus::unknown);
  std::string got;
  char previous = '?';
  for (char r : c.results) {
    const bool changed = state.on_probe(result_of(r));
    const char now = letter_of(state.status());
    EXPECT_EQ(changed, now != previous) << "after probe " << got.size() + 1 << " of " << c.results;
    previous = now;
    got += now;
  }
  EXPECT_EQ(got, c.statuses) << "results " << c.results;
}

INSTANTIATE_TEST_SUITE_P(
    Table, HealthStateThresholdTest,
    testing::Values(
        ThresholdCase{"first_pass_decides_from_unknown", 2, 2, "PPP", "hhh"},
        ThresholdCase{"first_failure_decides_then_threshold", 3, 2, "CPPP", "uuuh"},
        ThresholdCase{"first_failure_decides_from_unknown", 2, 2, "CC", "uu"},
        ThresholdCase{"threshold_one_changes_at_once", 1, 1, "PNPC", "huhu"},
        ThresholdCase{"threshold_zero_acts_as_one", 0, 0, "PN", "hu"},
        ThresholdCase{"healthy_to_unhealthy_after_consecutive_failures", 2, 3, "PPNNN", "hhhhu"},
        ThresholdCase{"pass_resets_failure_count", 2, 3, "PPNNPNNPNN", "hhhhhhhhhh"},
        ThresholdCase{"failure_resets_pass_count", 3, 2, "CCPPCPPP", "uuuuuuuh"},
        ThresholdCase{"all_failure_kinds_count", 1, 5, "PNHBCT", "hhhhhu"},
        ThresholdCase{"unhealthy_back_to_healthy", 2, 2, "NNPPN", "uuuhh"},
        ThresholdCase{"mismatch_is_immediate_from_unknown", 3, 3, "M", "v"},
        ThresholdCase{"mismatch_is_immediate_from_healthy", 1, 5, "PM", "hv"},
        ThresholdCase{"mismatch_is_immediate_from_unhealthy", 1, 1, "CM", "uv"},
        ThresholdCase{"mismatch_back_to_healthy_after_threshold", 2, 2, "MPPP", "vvhh"},
        ThresholdCase{"mismatch_then_pass_then_mismatch", 2, 2, "MPMPP", "vvvvh"},
        ThresholdCase{"mismatch_then_real_failures_become_unhealthy", 2, 2, "MCC", "vvu"},
        ThresholdCase{"mismatch_resets_failure_count", 2, 2, "PPCMC", "hhhvv"},
        ThresholdCase{"long_failure_run_stays_unhealthy", 2, 2, "CCCCCCCCCCP", "uuuuuuuuuuu"}),
    [](const testing::TestParamInfo<ThresholdCase>& info) { return info.param.name; });

struct DelayCase {
  std::string name;
  bool make_healthy;
  double jitter_percent;
  double fraction;  // the random draw, in [0, 1)
  std::int64_t expected_ms;
};

class HealthStateDelayTest : public testing::TestWithParam<DelayCase> {};

TEST_P(HealthStateDelayTest, IntervalWithJitter) {
  const auto& c = GetParam();
  config::HealthCheckConfig cfg;
  cfg.interval = milliseconds(5000);
  cfg.unhealthy_interval = milliseconds(1000);
  cfg.jitter_percent = c.jitter_percent;
  cfg.healthy_threshold = 1;
  HealthState state(cfg);
  if (c.make_healthy) state.on_probe(ProbeResult::passed);
  ScriptedRandom random({ScriptedRandom::of_fraction(c.fraction)});
  EXPECT_EQ(state.next_delay(random).count(), c.expected_ms);
}

INSTANTIATE_TEST_SUITE_P(
    Table, HealthStateDelayTest,
    testing::Values(
        // Unknown probes at the faster (unhealthy) interval until the backend is known healthy.
        DelayCase{"unknown_no_jitter", false, 0, 0.9, 1000},
        DelayCase{"healthy_no_jitter", true, 0, 0.9, 5000},
        DelayCase{"healthy_middle_draw", true, 10, 0.5, 5000},
        DelayCase{"healthy_lowest_draw", true, 10, 0.0, 4500},
        DelayCase{"healthy_high_draw", true, 10, 0.75, 5250},
        DelayCase{"healthy_top_draw", true, 10, 0.999999, 5500},
        DelayCase{"unknown_low_draw", false, 20, 0.25, 900},
        DelayCase{"full_jitter_lowest_draw_is_at_least_1ms", false, 100, 0.0, 1},
        DelayCase{"jitter_above_100_is_clamped", true, 250, 0.0, 1}),
    [](const testing::TestParamInfo<DelayCase>& info) { return info.param.name; });

TEST(HealthStateDelay, UnhealthyUsesUnhealthyIntervalAndHealthyUsesInterval) {
  config::HealthCheckConfig cfg;
  cfg.interval = milliseconds(300);
  cfg.unhealthy_interval = milliseconds(40);
  cfg.jitter_percent = 0;
  cfg.healthy_threshold = 1;
  cfg.unhealthy_threshold = 1;
  HealthState state(cfg);
  ScriptedRandom random({0});
  state.on_probe(ProbeResult::timeout);
  EXPECT_EQ(state.next_delay(random), milliseconds(40));
  state.on_probe(ProbeResult::passed);
  EXPECT_EQ(state.next_delay(random), milliseconds(300));
  state.on_probe(ProbeResult::version_mismatch);
  EXPECT_EQ(state.next_delay(random), milliseconds(40));
}

TEST(HealthStateDelay, StaysWithinBoundsForManyDraws) {
  config::HealthCheckConfig cfg;
  cfg.interval = milliseconds(2000);
  cfg.jitter_percent = 15;
  cfg.healthy_threshold = 1;
  HealthState state(cfg);
  state.on_probe(ProbeResult::passed);
  FastRandom random(42);
  std::int64_t lo = 1'000'000, hi = 0;
  for (int i = 0; i < 10'000; ++i) {
    const auto d = state.next_delay(random).count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GE(lo, 1700);
  EXPECT_LE(hi, 2300);
  // The draws do spread over the range (jitter is really applied).
  EXPECT_LT(lo, 1720);
  EXPECT_GT(hi, 2280);
}

TEST(HealthStatusNames, AreStable) {
  EXPECT_STREQ(to_string(HealthStatus::unknown), "unknown");
  EXPECT_STREQ(to_string(HealthStatus::healthy), "healthy");
  EXPECT_STREQ(to_string(HealthStatus::unhealthy), "unhealthy");
  EXPECT_STREQ(to_string(HealthStatus::version_mismatch), "version_mismatch");
  EXPECT_TRUE(eligible(HealthStatus::unknown));
  EXPECT_TRUE(eligible(HealthStatus::healthy));
  EXPECT_FALSE(eligible(HealthStatus::unhealthy));
  EXPECT_FALSE(eligible(HealthStatus::version_mismatch));
}

}  // namespace
}  // namespace fusebox::health

namespace fusebox::health {
namespace {

// A backend carried over by a reload: one failed probe must not take a healthy backend out
// (unknown would, since the first check decides at once), and an unhealthy one needs
// healthy_threshold passes to come back.
TEST(HealthStateResume, KeepsTheCarriedStatusUnderTheThresholds) {
  config::HealthCheckConfig config;
  config.healthy_threshold = 2;
  config.unhealthy_threshold = 3;
  HealthState healthy(config);
  healthy.resume(HealthStatus::healthy);
  EXPECT_FALSE(healthy.on_probe(ProbeResult::timeout));
  EXPECT_FALSE(healthy.on_probe(ProbeResult::timeout));
  EXPECT_EQ(healthy.status(), HealthStatus::healthy);
  EXPECT_TRUE(healthy.on_probe(ProbeResult::timeout));
  EXPECT_EQ(healthy.status(), HealthStatus::unhealthy);

  HealthState unhealthy(config);
  unhealthy.resume(HealthStatus::unhealthy);
  EXPECT_FALSE(unhealthy.on_probe(ProbeResult::passed));
  EXPECT_TRUE(unhealthy.on_probe(ProbeResult::passed));
  EXPECT_EQ(unhealthy.status(), HealthStatus::healthy);
}

}  // namespace
}  // namespace fusebox::health
