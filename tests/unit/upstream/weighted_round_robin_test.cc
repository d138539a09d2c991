#include "fusebox/upstream/weighted_round_robin.h"

#include <gtest/gtest.h>

#include <string>

namespace fusebox::upstream {
namespace {

std::string sequence(WeightedRoundRobin& wrr, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += static_cast<char>('a' + *wrr.pick());
  return out;
}

TEST(WeightedRoundRobin, SpreadsPicksSmoothly) {
  WeightedRoundRobin wrr({5, 1, 1});
  EXPECT_EQ(sequence(wrr, 14), "aabacaaaabacaa");
}

TEST(WeightedRoundRobin, EqualWeightsAreRoundRobin) {
  WeightedRoundRobin wrr({1, 1, 1});
  EXPECT_EQ(sequence(wrr, 7), "abcabca");
}

TEST(WeightedRoundRobin, EachBackendGetsItsSharePerCycle) {
  WeightedRoundRobin wrr({3, 7, 1, 9});
  int counts[4] = {};
  for (int cycle = 0; cycle < 5; ++cycle)
    for (int i = 0; i < 20; ++i) ++counts[*wrr.pick()];
  EXPECT_EQ(counts[0], 15);
  EXPECT_EQ(counts[1], 35);
  EXPECT_EQ(counts[2], 5);
  EXPECT_EQ(counts[3], 45);
}

TEST(WeightedRoundRobin, SkipsIneligibleBackends) {
  WeightedRoundRobin wrr({1, 1, 1});
  std::string out;
  for (int i = 0; i < 6; ++i) out += static_cast<char>('a' + *wrr.pick([](std::size_t b) { return b != 1; }));
  EXPECT_EQ(out, "acacac");
  EXPECT_FALSE(wrr.pick([](std::size_t) { return false; }).has_value());
}

}  // namespace
}  // namespace fusebox::upstream
