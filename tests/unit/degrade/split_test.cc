#include "fusebox/degrade/split.h"

#include <gtest/gtest.h>

#include <map>

#include "fusebox/common/clock.h"

namespace fusebox::degrade {
namespace {

config::SplitConfig split_of(std::vector<std::pair<std::string, double>> canaries,
                             std::string sticky_header = "") {
  config::SplitConfig split;
  for (auto& [name, weight] : canaries) {
    config::SplitTargetConfig target;
    target.name = name;
    target.pool = "canary";
    target.weight_percent = weight;
    split.canaries.push_back(std::move(target));
  }
  split.sticky_header = std::move(sticky_header);
  return split;
}

TEST(SplitTarget, PositionSlicesFollowTheWeightsInOrder) {
  auto split = split_of({{"a", 10}, {"b", 5}});
  struct Case {
    double position;
    std::size_t expected;
  } cases[] = {
      {0.0, 1}, {0.0999, 1}, {0.10, 2}, {0.1499, 2}, {0.15, kStableTarget}, {0.9999, kStableTarget},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(choose_split_target(split, "", std::nullopt, c.position), c.expected)
        << "position " << c.position;
  }
}

TEST(SplitTarget, NoCanariesOrZeroWeightsAlwaysChooseStable) {
  config::SplitConfig none;
  EXPECT_EQ(choose_split_target(none, "always", std::nullopt, 0.0), kStableTarget);
  auto zero = split_of({{"a", 0}});
  for (double p : {0.0, 0.5, 0.999}) {
    EXPECT_EQ(choose_split_target(zero, "", std::nullopt, p), kStableTarget);
  }
}

TEST(SplitTarget, OverrideHeaderValues) {
  auto split = split_of({{"a", 10}, {"b", 30}});
  struct Case {
    std::string_view value;
    double position;
    std::size_t expected;
  } cases[] = {
      {"never", 0.0, kStableTarget},   // would have been canary a
      {"stable", 0.05, kStableTarget},
      {"always", 0.99, 2},             // among canaries by weight: 0.99 * 40 = 39.6 -> b
      {"always", 0.10, 1},             // 4.0 -> a
      {"b", 0.0, 2},
      {"a", 0.9, 1},
      {"Always", 0.9, kStableTarget},  // unknown values are ignored (case-sensitive)
      {"c", 0.05, 1},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(choose_split_target(split, c.value, std::nullopt, c.position), c.expected)
        << c.value << " at " << c.position;
  }
  auto zero = split_of({{"only", 0}});
  EXPECT_EQ(choose_split_target(zero, "always", std::nullopt, 0.5), 1u);
}

TEST(SplitTarget, StickyKeysKeepTheirTargetAndIgnoreTheDice) {
  auto split = split_of({{"canary", 10}}, "x-user-id");
  for (int i = 0; i < 200; ++i) {
    std::string key = "user-" + std::to_string(i);
    auto first = choose_split_target(split, "", key, 0.0);
    for (double dice : {0.3, 0.7, 0.99}) {
      EXPECT_EQ(choose_split_target(split, "", key, dice), first) << key;
    }
    EXPECT_EQ(first, sticky_position(key) < 0.10 ? 1u : kStableTarget);
  }
}

TEST(SplitTarget, StickinessNeedsAConfiguredHeader) {
  auto split = split_of({{"canary", 50}});  // no sticky_header
  EXPECT_EQ(choose_split_target(split, "", std::string_view("k"), 0.1), 1u);
  EXPECT_EQ(choose_split_target(split, "", std::string_view("k"), 0.9), kStableTarget);
}

TEST(SplitTarget, RaisingAWeightOnlyMovesStickyKeysTowardsTheCanary) {
  auto small = split_of({{"canary", 10}}, "x-user-id");
  auto large = split_of({{"canary", 30}}, "x-user-id");
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string key = "k" + std::to_string(i);
    auto before = choose_split_target(small, "", key, 0);
    auto after = choose_split_target(large, "", key, 0);
    if (before == 1) {
      EXPECT_EQ(after, 1u) << key;
    }
    moved += before != after;
  }
  // About 20% of the keys move from stable to the canary.
  EXPECT_GT(moved, 300);
  EXPECT_LT(moved, 500);
}

TEST(SplitTarget, WeightsHoldOverManyDraws) {
  auto split = split_of({{"a", 10}, {"b", 25}});
  FastRandom random(42);
  std::map<std::size_t, int> counts;
  constexpr int kDraws = 100'000;
  for (int i = 0; i < kDraws; ++i) ++counts[choose_split_target(split, "", std::nullopt, random.next_double())];
  EXPECT_NEAR(counts[1] / double(kDraws), 0.10, 0.01);
  EXPECT_NEAR(counts[2] / double(kDraws), 0.25, 0.01);
  EXPECT_NEAR(counts[kStableTarget] / double(kDraws), 0.65, 0.01);
}

TEST(SplitTarget, StickyPositionsAreSpreadEvenly) {
  int below_tenth = 0;
  constexpr int kKeys = 20'000;
  for (int i = 0; i < kKeys; ++i) {
    double p = sticky_position("session-" + std::to_string(i));
    ASSERT_GE(p, 0.0);
    ASSERT_LT(p, 1.0);
    below_tenth += p < 0.1;
  }
  EXPECT_NEAR(below_tenth / double(kKeys), 0.10, 0.01);
}

TEST(SplitTarget, Names) {
  auto split = split_of({{"v2", 10}});
  EXPECT_EQ(split_target_name(split, kStableTarget), "stable");
  EXPECT_EQ(split_target_name(split, 1), "v2");
}

}  // namespace
}  // namespace fusebox::degrade
