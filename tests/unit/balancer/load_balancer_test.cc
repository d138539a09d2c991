#include "fusebox/balancer/load_balancer.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace fusebox::balancer {
namespace {

using namespace std::chrono_literals;

std::vector<Candidate> weighted(std::initializer_list<double> weights) {
  std::vector<Candidate> out;
  for (double w : weights) out.push_back(Candidate{out.size(), w, 0});
  return out;
}

// Backend letters of `n` picks over the same candidates.
std::string sequence(LoadBalancer& lb, std::span<const Candidate> candidates, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const auto picked = lb.pick(candidates);
    if (!picked) return out + "-";
    out += static_cast<char>('a' + *picked);
  }
  return out;
}

// --- Smooth weighted round-robin ------------------------------------------------------------

struct SequenceCase {
  const char* name;
  std::vector<double> weights;
  std::string expected;
};

TEST(WeightedRoundRobinBalancer, ExactSequences) {
  // clang-format off
  const std::vector<SequenceCase> cases = {
      {"nginx's example", {5, 1, 1}, "aabacaa"},
      {"two cycles", {5, 1, 1}, "aabacaaaabacaa"},
      {"equal weights", {1, 1, 1}, "abcabcabc"},
      {"single backend", {3}, "aaaa"},
      {"two to one", {2, 1}, "abaaba"},
      {"three to one, ties to the first", {3, 1}, "aabaaaba"},
      {"heavy last", {1, 1, 4}, "cacbcccacb"},
      {"fractional weights", {0.5, 0.25, 0.25}, "abcaabca"},
      {"slow-started backend", {1, 0.5}, "abaaba"},
  };
  // clang-format on
  for (const SequenceCase& row : cases) {
    SCOPED_TRACE(row.name);
    auto lb = make_weighted_round_robin(row.weights.size());
    std::vector<Candidate> candidates;
    for (std::size_t i = 0; i < row.weights.size(); ++i)
      candidates.push_back({i, row.weights[i], 0});
    EXPECT_EQ(sequence(*lb, candidates, static_cast<int>(row.expected.size())), row.expected);
  }
}

TEST(WeightedRoundRobinBalancer, EachBackendGetsItsSharePerCycle) {
  auto lb = make_weighted_round_robin(4);
  const auto candidates = weighted({3, 7, 1, 9});
  std::array<int, 4> counts{};
  for (int i = 0; i < 5 * 20; ++i) ++counts[*lb->pick(candidates)];
  EXPECT_EQ(counts, (std::array<int, 4>{15, 35, 5, 45}));
}

TEST(WeightedRoundRobinBalancer, NonBinaryFractionsKeepTheirShare) {
  auto lb = make_weighted_round_robin(2);
  const auto candidates = weighted({0.3, 0.1});
  std::array<int, 2> counts{};
  for (int i = 0; i < 4000; ++i) ++counts[*lb->pick(candidates)];
  EXPECT_NEAR(counts[0], 3000, 1);
  EXPECT_NEAR(counts[1], 1000, 1);
}

TEST(WeightedRoundRobinBalancer, BackendsMissingFromCandidatesAreSkippedWithoutCredit) {
  auto lb = make_weighted_round_robin(3);
  const auto all = weighted({5, 1, 1});
  // Backend a (the heaviest) is ineligible for a while: it must not bank credit meanwhile.
  const std::vector<Candidate> without_a = {all[1], all[2]};
  EXPECT_EQ(sequence(*lb, without_a, 6), "bcbcbc");
  EXPECT_EQ(sequence(*lb, all, 7), "aabacaa");
  const std::vector<Candidate> without_b = {all[0], all[2]};
  EXPECT_EQ(sequence(*lb, without_b, 6), "aaacaa");
}

TEST(WeightedRoundRobinBalancer, NoCandidatesNoPick) {
  auto lb = make_weighted_round_robin(3);
  EXPECT_EQ(lb->pick({}), std::nullopt);
  // An index outside the pool is never chosen.
  const std::vector<Candidate> stray = {{7, 1, 0}};
  EXPECT_EQ(lb->pick(stray), std::nullopt);
  const std::vector<Candidate> mixed = {{7, 100, 0}, {2, 1, 0}};
  EXPECT_EQ(lb->pick(mixed), 2u);
}

// --- Weighted least request (power of two choices) ------------------------------------------

TEST(LeastRequestBalancer, OneCandidateIsReturnedAndNoneIsNothing) {
  ScriptedRandom random({ScriptedRandom::of_fraction(0.9)});
  auto lb = make_least_request(random);
  EXPECT_EQ(lb->pick({}), std::nullopt);
  const std::vector<Candidate> one = {{3, 1, 50}};
  EXPECT_EQ(lb->pick(one), 3u);
}

struct P2CCase {
  const char* name;
  std::vector<Candidate> candidates;
  double first_draw;   // fraction of the total weight
  double second_draw;  // fraction of the weight left without the first
  std::size_t expected;
};

TEST(LeastRequestBalancer, ExactChoicesWithScriptedRandom) {
  // clang-format off
  const std::vector<P2CCase> cases = {
      {"fewer in flight wins", {{0, 1, 0}, {1, 1, 5}}, 0.1, 0.5, 0},
      {"fewer in flight wins when drawn second", {{0, 1, 5}, {1, 1, 0}}, 0.1, 0.5, 1},
      {"tie keeps the first drawn (b)", {{0, 1, 2}, {1, 1, 2}}, 0.9, 0.5, 1},
      {"tie keeps the first drawn (a)", {{0, 1, 2}, {1, 1, 2}}, 0.1, 0.5, 0},
      // (2 + 1) / 2 = 1.5 against (0 + 1) / 1 = 1: b.
      {"per unit of weight", {{0, 2, 2}, {1, 1, 0}}, 0.1, 0.5, 1},
      // (2 + 1) / 4 = 0.75 against 1: a.
      {"heavier backend carries more", {{0, 4, 2}, {1, 1, 0}}, 0.1, 0.5, 0},
      // (2 + 1) / 3 = 1 against 1: a tie, the first drawn.
      {"weighted tie", {{0, 3, 2}, {1, 1, 0}}, 0.1, 0.5, 0},
      // Draws by weight: 0.74 of 4 falls in a (weight 3), 0.76 in b.
      {"first draw by weight (a)", {{0, 3, 0}, {1, 1, 0}, {2, 4, 9}}, 0.74 * 4 / 8, 0.99, 0},
      {"first draw by weight (b)", {{0, 3, 9}, {1, 1, 0}, {2, 4, 9}}, 3.5 / 8, 0.01, 1},
      // Second draw without b (weight 1): the rest is a (3) and c (4); 0.5 of 7 is in c.
      {"second draw skips the first", {{0, 3, 0}, {1, 1, 5}, {2, 4, 0}}, 3.5 / 8, 0.5, 2},
      {"second draw skips the first (a)", {{0, 3, 0}, {1, 1, 5}, {2, 4, 0}}, 3.5 / 8, 0.4, 0},
      // Indices are Candidate::backend, not positions.
      {"returns backend indices", {{7, 1, 3}, {4, 1, 1}}, 0.1, 0.5, 4},
  };
  // clang-format on
  for (const P2CCase& row : cases) {
    SCOPED_TRACE(row.name);
    ScriptedRandom random({ScriptedRandom::of_fraction(row.first_draw),
                           ScriptedRandom::of_fraction(row.second_draw)});
    auto lb = make_least_request(random);
    EXPECT_EQ(lb->pick(row.candidates), row.expected);
  }
}

TEST(LeastRequestBalancer, EqualWeightsAndLoadSpreadEvenly) {
  FastRandom random(42);
  auto lb = make_least_request(random);
  const auto candidates = weighted({1, 1, 1, 1});
  std::array<int, 4> counts{};
  constexpr int kPicks = 10000;
  for (int i = 0; i < kPicks; ++i) ++counts[*lb->pick(candidates)];
  for (std::size_t b = 0; b < 4; ++b) {
    SCOPED_TRACE("backend " + std::to_string(b));
    EXPECT_NEAR(counts[b], 0.25 * kPicks, 0.03 * kPicks);
  }
}

TEST(LeastRequestBalancer, BusyBackendGetsFewPicks) {
  FastRandom random(42);
  auto lb = make_least_request(random);
  auto candidates = weighted({1, 1, 1, 1});
  candidates[0].active = 40;
  for (std::size_t b = 1; b < 4; ++b) candidates[b].active = 2;
  std::array<int, 4> counts{};
  constexpr int kPicks = 10000;
  for (int i = 0; i < kPicks; ++i) ++counts[*lb->pick(candidates)];
  EXPECT_LT(counts[0], 0.01 * kPicks);
  for (std::size_t b = 1; b < 4; ++b) EXPECT_NEAR(counts[b], kPicks / 3.0, 0.03 * kPicks);
}

TEST(LeastRequestBalancer, FollowsTheLoadAsRequestsFinish) {
  // A closed loop: every pick adds a request, and backend b (the slow one) finishes its
  // requests a quarter as often as the others. The balancer must shift traffic away from it.
  FastRandom random(9);
  auto lb = make_least_request(random);
  auto candidates = weighted({1, 1, 1});
  std::array<int, 3> counts{};
  for (int i = 0; i < 30000; ++i) {
    const std::size_t b = *lb->pick(candidates);
    ++counts[b];
    ++candidates[b].active;
    for (auto& c : candidates) {
      const bool finishes = c.backend == 1 ? i % 4 == 0 : true;
      if (finishes && c.active > 0 && random.below(2) == 0) --c.active;
    }
  }
  EXPECT_LT(counts[1], counts[0] / 2);
  EXPECT_LT(counts[1], counts[2] / 2);
  EXPECT_NEAR(counts[0], counts[2], 0.05 * 30000);
}

TEST(LeastRequestBalancer, WeightedDrawsMatchTheExactProbabilities) {
  // All idle: the heavier of the two drawn wins, so P(i) sums, over the second draws j, of
  // w_i/W * w_j/(W - w_i) * [w_i >= w_j] + w_j/W * w_i/(W - w_j) * [w_i > w_j].
  const std::vector<double> w = {1, 2, 3, 4};
  double total = 0;
  for (double x : w) total += x;
  std::array<double, 4> expected{};
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 4; ++j) {
      if (i == j) continue;
      if (w[i] >= w[j]) expected[i] += w[i] / total * w[j] / (total - w[i]);
      if (w[i] > w[j]) expected[i] += w[j] / total * w[i] / (total - w[j]);
    }
  FastRandom random(3);
  auto lb = make_least_request(random);
  const auto candidates = weighted({1, 2, 3, 4});
  std::array<int, 4> counts{};
  constexpr int kPicks = 20000;
  for (int i = 0; i < kPicks; ++i) ++counts[*lb->pick(candidates)];
  for (std::size_t b = 0; b < 4; ++b) {
    SCOPED_TRACE("backend " + std::to_string(b));
    EXPECT_NEAR(counts[b], expected[b] * kPicks, 0.02 * kPicks);
  }
  EXPECT_LT(counts[0], counts[1]);
  EXPECT_LT(counts[2], counts[3]);
}

TEST(LeastRequestBalancer, LoadPerWeightDecidesUnderEqualActivity) {
  // Weight 3 with 2 in flight ((2+1)/3 = 1) against weight 1 with 1 in flight (2): the heavy
  // one wins every pick in which it is drawn.
  FastRandom random(11);
  auto lb = make_least_request(random);
  std::vector<Candidate> candidates = {{0, 3, 2}, {1, 1, 1}, {2, 1, 1}};
  std::array<int, 3> counts{};
  constexpr int kPicks = 10000;
  for (int i = 0; i < kPicks; ++i) ++counts[*lb->pick(candidates)];
  // a is in the pair unless the pair is {b, c}: P(b then c) + P(c then b) = 2 * 1/5 * 1/4.
  EXPECT_NEAR(counts[0], 0.9 * kPicks, 0.02 * kPicks);
  EXPECT_NEAR(counts[1] + counts[2], 0.1 * kPicks, 0.02 * kPicks);
}

// --- Factory --------------------------------------------------------------------------------

TEST(MakeLoadBalancer, PolicyChoosesTheAlgorithm) {
  // Backend a has many requests in flight: round-robin still starts with it, P2C never picks it.
  const std::vector<Candidate> candidates = {{0, 1, 100}, {1, 1, 0}};
  ScriptedRandom random({ScriptedRandom::of_fraction(0.1), ScriptedRandom::of_fraction(0.5)});
  config::LoadBalancingConfig config;
  config.policy = config::BalancerPolicy::weighted_round_robin;
  auto wrr = make_load_balancer(config, 2, random);
  EXPECT_EQ(sequence(*wrr, candidates, 4), "abab");
  config.policy = config::BalancerPolicy::least_request;
  auto p2c = make_load_balancer(config, 2, random);
  EXPECT_EQ(sequence(*p2c, candidates, 4), "bbbb");
}

// --- Slow start -----------------------------------------------------------------------------

struct SlowStartCase {
  const char* name;
  Duration window;
  double min_percent;
  std::chrono::milliseconds elapsed;  // now - since
  double expected;
};

TEST(SlowStart, FactorTable) {
  // clang-format off
  const std::vector<SlowStartCase> cases = {
      {"off", 0ms, 10, 0ms, 1.0},
      {"off, long ago", 0ms, 10, 1h, 1.0},
      {"just returned", 10s, 10, 0ms, 0.1},
      {"a quarter in", 10s, 10, 2500ms, 0.325},
      {"half way", 10s, 10, 5s, 0.55},
      {"almost there", 10s, 10, 9999ms, 0.1 + 0.9 * 0.9999},
      {"window over", 10s, 10, 10s, 1.0},
      {"long ago", 10s, 10, 1h, 1.0},
      {"since is in the future", 10s, 10, -1s, 1.0},
      {"from zero", 10s, 0, 0ms, 0.0},
      {"from zero, half way", 10s, 0, 5s, 0.5},
      {"from fifty", 30s, 50, 15s, 0.75},
      {"from a hundred", 10s, 100, 1s, 1.0},
  };
  // clang-format on
  const TimePoint now = TimePoint{} + 2h;
  for (const SlowStartCase& row : cases) {
    SCOPED_TRACE(row.name);
    config::LoadBalancingConfig config;
    config.slow_start = row.window;
    config.slow_start_min_weight_percent = row.min_percent;
    EXPECT_NEAR(slow_start_factor(config, now - row.elapsed, now), row.expected, 1e-12);
  }
}

TEST(SlowStart, RampIsMonotonic) {
  config::LoadBalancingConfig config;
  config.slow_start = 10s;
  const TimePoint since = TimePoint{} + 1h;
  double previous = 0;
  for (int ms = 0; ms <= 11000; ms += 100) {
    const double factor = slow_start_factor(config, since, since + std::chrono::milliseconds(ms));
    ASSERT_GE(factor, previous) << ms << "ms";
    ASSERT_LE(factor, 1.0);
    previous = factor;
  }
  EXPECT_EQ(previous, 1.0);
}

}  // namespace
}  // namespace fusebox::balancer
