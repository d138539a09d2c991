#include "fusebox/admission/load_shedder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fusebox::admission {
namespace {

using namespace std::chrono_literals;

TEST(ShedLevels, OneLevelAboveTheThresholdThenOnePerStep) {
  struct Case {
    std::uint64_t value;
    std::uint64_t threshold;
    std::uint32_t step_percent;
    std::uint32_t expected;
  };
  // clang-format off
  const std::vector<Case> cases = {
      {0, 1000, 10, 0},    {1000, 1000, 10, 0}, {1001, 1000, 10, 1}, {1100, 1000, 10, 1},
      {1101, 1000, 10, 2}, {1200, 1000, 10, 2}, {1201, 1000, 10, 3}, {1800, 1000, 10, 8},
      {1801, 1000, 10, 9}, {5000, 1000, 10, 9}, {UINT64_MAX, 1000, 10, 9},
      {1000, 0, 10, 0},    {UINT64_MAX, 0, 10, 0},                     // signal off
      {1250, 1000, 25, 1}, {1251, 1000, 25, 2},                        // another step
      {11, 10, 10, 1},     {12, 10, 10, 2},      {11, 10, 0, 9},       // step 0 counts as 1%
      {(1ull << 40) + 1, 1ull << 40, 10, 1},                           // memory-sized values
  };
  // clang-format on
  for (const Case& row : cases) {
    SCOPED_TRACE(std::to_string(row.value) + " of " + std::to_string(row.threshold) + " step " +
                 std::to_string(row.step_percent) + "%");
    EXPECT_EQ(shed_levels_for(row.value, row.threshold, row.step_percent), row.expected);
  }
}

LoadShedderOptions inflight_only() {
  return {.max_inflight = 1000,
          .max_memory_bytes = 0,
          .step_percent = 10,
          .hysteresis_percent = 5,
          .min_hold = 5s};
}

TEST(LoadShedder, RisesAtOnceAndAdmitsOnlyTheHigherPriorities) {
  ManualClock clock;
  LoadShedder shedder(inflight_only(), clock);
  EXPECT_TRUE(shedder.enabled());
  EXPECT_EQ(shedder.update({.inflight = 900}), std::nullopt);
  EXPECT_TRUE(shedder.admits(9));

  const auto change = shedder.update({.inflight = 1350});
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->from_levels, 0u);
  EXPECT_EQ(change->to_levels, 4u);
  EXPECT_EQ(change->reason, "shedding priorities 6-9: inflight 1350 > 1000 (135%)");
  EXPECT_EQ(shedder.lowest_admitted(), 5);
  for (Priority p = 0; p <= kLowestPriority; ++p) EXPECT_EQ(shedder.admits(p), p <= 5) << int(p);

  // Far above: everything but priority 0.
  ASSERT_TRUE(shedder.update({.inflight = 100'000}).has_value());
  EXPECT_EQ(shedder.shed_levels(), 9u);
  EXPECT_TRUE(shedder.admits(0));
  EXPECT_FALSE(shedder.admits(1));
}

// A scripted series, one reading per second: the level after each.
TEST(LoadShedder, FallsOneLevelPerHoldOnceClearOfTheBand) {
  ManualClock clock;
  LoadShedder shedder(inflight_only(), clock);
  struct Step {
    std::uint64_t inflight;
    std::uint32_t expected_levels;
  };
  // clang-format off
  const std::vector<Step> series = {
      {1150, 2},                    // t=0: up to 2 at once
      {1090, 2}, {1060, 2},         // 1 level's band: 1060 + 50 > 1100 is not clear
      {1040, 2}, {1040, 2},         // clear of 2 (1040 + 50 <= 1100), but held until t=5s
      {1040, 1},                    // t=5s: one level down
      {990, 1}, {990, 1}, {990, 1}, // within 5% of the threshold: stays
      {940, 1},                     // clear of 1, but held until t=10s
      {940, 0},
      {1001, 1},                    // rises again at once, without waiting
  };
  // clang-format on
  for (std::size_t i = 0; i < series.size(); ++i) {
    SCOPED_TRACE("t=" + std::to_string(i) + "s inflight " + std::to_string(series[i].inflight));
    shedder.update({.inflight = series[i].inflight});
    EXPECT_EQ(shedder.shed_levels(), series[i].expected_levels);
    clock.advance(1s);
  }
}

TEST(LoadShedder, AWobblingReadingDoesNotFlap) {
  ManualClock clock;
  LoadShedder shedder(inflight_only(), clock);
  int changes = 0;
  for (int i = 0; i < 100; ++i) {
    if (shedder.update({.inflight = i % 2 == 0 ? 1005u : 985u})) ++changes;
    clock.advance(1s);
  }
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(shedder.shed_levels(), 1u);
}

TEST(LoadShedder, TheWorseSignalDecides) {
  ManualClock clock;
  LoadShedderOptions o = inflight_only();
  o.max_memory_bytes = 1024ull << 20;
  LoadShedder shedder(o, clock);
  auto change = shedder.update({.inflight = 500, .rss_bytes = 1300ull << 20});  // 126%
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->to_levels, 3u);
  EXPECT_EQ(change->reason,
            "shedding priorities 7-9: inflight 500 <= 1000 (50%), memory 1300MiB > 1024MiB "
            "(126%)");
  change = shedder.update({.inflight = 1150, .rss_bytes = 1300ull << 20});
  EXPECT_FALSE(change.has_value());  // inflight asks for 2, memory still for 3
  clock.advance(5s);
  change = shedder.update({.inflight = 900, .rss_bytes = 512ull << 20});
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->to_levels, 2u);
  EXPECT_EQ(change->reason,
            "shedding priorities 8-9: inflight 900 <= 1000 (90%), memory 512MiB <= 1024MiB "
            "(50%)");
  for (int i = 0; i < 2; ++i) {
    clock.advance(5s);
    change = shedder.update({.inflight = 900, .rss_bytes = 512ull << 20});
  }
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->reason,
            "shedding stopped: inflight 900 <= 1000 (90%), memory 512MiB <= 1024MiB (50%)");
}

TEST(LoadShedder, DisabledShedsNothing) {
  ManualClock clock;
  LoadShedder shedder(LoadShedderOptions{}, clock);
  EXPECT_FALSE(shedder.enabled());
  EXPECT_EQ(shedder.update({.inflight = UINT64_MAX, .rss_bytes = UINT64_MAX}), std::nullopt);
  EXPECT_TRUE(shedder.admits(kLowestPriority));
}

TEST(Statm, ParsesTheResidentField) {
  struct Case {
    std::string_view text;
    std::optional<std::uint64_t> expected;
  };
  const std::vector<Case> cases = {
      {"12345 678 90 1 0 2000 0\n", 678 * 4096},
      {"1 2", 2 * 4096},
      {"  7   3 1", 3 * 4096},
      {"", std::nullopt},
      {"123", std::nullopt},
      {"abc def", std::nullopt},
      {"12 x", std::nullopt},
  };
  for (const Case& row : cases) {
    SCOPED_TRACE(std::string(row.text));
    EXPECT_EQ(parse_statm_rss_bytes(row.text, 4096), row.expected);
  }
}

TEST(Statm, ReadsThisProcess) {
  const std::optional<std::uint64_t> rss = read_rss_bytes();
  ASSERT_TRUE(rss.has_value());
  EXPECT_GT(*rss, 1u << 20);  // a test binary holds more than a MiB
  EXPECT_LT(*rss, 64ull << 30);
}

}  // namespace
}  // namespace fusebox::admission
