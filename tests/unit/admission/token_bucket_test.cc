#include "fusebox/admission/token_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace fusebox::admission {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

TEST(TokenBucket, StartsFullAndRefillsUpToTheBurst) {
  ManualClock clock;
  const TokenBucketRule rule{.rate_per_second = 10, .burst = 5};
  TokenBucket bucket(rule, clock.now());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(rule, clock.now()).allowed) << i;
  const TakeResult refused = bucket.try_take(rule, clock.now());
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, 100ms);

  clock.advance(99ms);
  EXPECT_FALSE(bucket.try_take(rule, clock.now()).allowed);
  clock.advance(1ms);
  EXPECT_TRUE(bucket.try_take(rule, clock.now()).allowed);

  clock.advance(1h);  // refills to the burst, not beyond
  EXPECT_DOUBLE_EQ(bucket.tokens(rule, clock.now()), 5.0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(rule, clock.now()).allowed) << i;
  EXPECT_FALSE(bucket.try_take(rule, clock.now()).allowed);
}

TEST(TokenBucket, RetryAfterIsTheExactWaitForTheMissingTokens) {
  struct Case {
    const char* name;
    TokenBucketRule rule;
    std::uint32_t drained;           // tokens taken first, at t0
    std::chrono::nanoseconds after;  // then time passes
    std::uint32_t asked;
    nanoseconds expected;  // retry_after of the refused take
  };
  const nanoseconds never = nanoseconds::max();
  // clang-format off
  const std::vector<Case> cases = {
      {"one token at 2/s",          {2, 1},   1, 0ms,   1, 500ms},
      {"partly refilled",           {2, 1},   1, 200ms, 1, 300ms},
      {"slow rate",                 {0.5, 1}, 1, 0ms,   1, 2s},
      {"rounded up to the ns",      {3, 1},   1, 0ms,   1, nanoseconds(333'333'334)},
      {"several tokens",            {10, 5},  5, 0ms,   3, 300ms},
      {"several, partly refilled",  {10, 5},  5, 150ms, 3, 150ms},
      {"more than the burst",       {10, 5},  0, 0ms,   6, never},
      {"no refill",                 {0, 2},   2, 1h,    1, never},
  };
  // clang-format on
  for (const Case& row : cases) {
    SCOPED_TRACE(row.name);
    ManualClock clock;
    TokenBucket bucket(row.rule, clock.now());
    if (row.drained > 0) {
      ASSERT_TRUE(bucket.try_take(row.rule, clock.now(), row.drained).allowed);
    }
    clock.advance(row.after);
    const TakeResult result = bucket.try_take(row.rule, clock.now(), row.asked);
    EXPECT_FALSE(result.allowed);
    EXPECT_EQ(result.retry_after, row.expected);
    if (row.expected != never) {  // and waiting exactly that long is enough
      clock.advance(row.expected);
      EXPECT_TRUE(bucket.try_take(row.rule, clock.now(), row.asked).allowed);
    }
  }
}

TEST(TokenBucket, CountsExactlyOverAScriptedSeries) {
  struct Case {
    TokenBucketRule rule;
    std::chrono::milliseconds step;
    std::chrono::milliseconds duration;
    int expected_allowed;  // burst + rate * duration (both ends included)
  };
  const std::vector<Case> cases = {
      {{10, 5}, 1ms, 10s, 5 + 100},
      {{3, 5}, 1ms, 9s, 5 + 27},
      {{100, 1}, 1ms, 10s, 1 + 1000},
      {{10, 5}, 50ms, 10s, 5 + 100},
  };
  for (const Case& row : cases) {
    SCOPED_TRACE(std::to_string(row.rule.rate_per_second) + "/s burst " +
                 std::to_string(row.rule.burst));
    ManualClock clock;
    const TimePoint end = clock.now() + row.duration;
    TokenBucket bucket(row.rule, clock.now());
    int allowed = 0;
    for (;;) {
      // A client asking as fast as it is told to: several times per step while allowed.
      while (bucket.try_take(row.rule, clock.now()).allowed) ++allowed;
      if (clock.now() >= end) break;
      clock.advance(row.step);
    }
    EXPECT_EQ(allowed, row.expected_allowed);
  }
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothingAndAShrunkBurstCaps) {
  ManualClock clock;
  TokenBucketRule rule{.rate_per_second = 10, .burst = 5};
  TokenBucket bucket(rule, clock.now());
  ASSERT_TRUE(bucket.try_take(rule, clock.now(), 5).allowed);
  EXPECT_FALSE(bucket.try_take(rule, clock.now() - 10s).allowed);
  EXPECT_DOUBLE_EQ(bucket.tokens(rule, clock.now()), 0.0);
  clock.advance(10s);
  rule.burst = 2;  // a reloaded rule applies to the existing bucket
  EXPECT_DOUBLE_EQ(bucket.tokens(rule, clock.now()), 2.0);
  EXPECT_TRUE(bucket.try_take(rule, clock.now(), 2).allowed);
  EXPECT_FALSE(bucket.try_take(rule, clock.now()).allowed);
}

// --- RateLimiterTable ------------------------------------------------------------------------

RateLimiterTableOptions table_options(std::size_t max_clients, std::size_t shards = 16) {
  return {.max_clients = max_clients, .idle_eviction = 60s, .shards = shards};
}

TEST(RateLimiterTable, KeysHaveIndependentBuckets) {
  ManualClock clock;
  RateLimiterTable table(table_options(100), clock);
  const TokenBucketRule rule{.rate_per_second = 1, .burst = 2};
  EXPECT_TRUE(table.try_take("key-a", rule).allowed);
  EXPECT_TRUE(table.try_take("key-a", rule).allowed);
  const TakeResult refused = table.try_take("key-a", rule);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, 1s);
  EXPECT_TRUE(table.try_take("key-b", rule).allowed);
  EXPECT_TRUE(table.try_take("10.0.0.7", rule).allowed);
  EXPECT_EQ(table.size(), 3u);
  clock.advance(1s);
  EXPECT_TRUE(table.try_take("key-a", rule).allowed);
  EXPECT_FALSE(table.try_take("key-a", rule).allowed);
}

TEST(RateLimiterTable, ManyDistinctClientsStayWithinTheBound) {
  ManualClock clock;
  RateLimiterTable table(table_options(1000), clock);
  const TokenBucketRule rule{.rate_per_second = 1, .burst = 1};
  for (int i = 0; i < 100'000; ++i) {
    // All active (just drained): only the LRU bound keeps the table small.
    ASSERT_TRUE(table.try_take("client-" + std::to_string(i), rule).allowed);
    if (i % 997 == 0) {
      ASSERT_LE(table.size(), 1000u) << i;
    }
    if (i % 100 == 0) clock.advance(1ms);
  }
  EXPECT_LE(table.size(), 1000u);
  EXPECT_GE(table.size(), 900u);  // the shards share the bound: none stays nearly empty
}

TEST(RateLimiterTable, EvictsTheLeastRecentlyUsedWhenFull) {
  ManualClock clock;
  RateLimiterTable table(table_options(2, 1), clock);
  const TokenBucketRule rule{.rate_per_second = 0.001, .burst = 1};
  ASSERT_TRUE(table.try_take("a", rule).allowed);
  ASSERT_TRUE(table.try_take("b", rule).allowed);
  EXPECT_FALSE(table.try_take("a", rule).allowed);  // a is now the most recently used
  ASSERT_TRUE(table.try_take("c", rule).allowed);   // evicts b
  EXPECT_EQ(table.size(), 2u);
  EXPECT_FALSE(table.try_take("a", rule).allowed);  // a kept its drained bucket
  EXPECT_TRUE(table.try_take("b", rule).allowed);   // b starts again, full
}

TEST(RateLimiterTable, ForgetsBucketsFullForTheIdlePeriod) {
  ManualClock clock;
  RateLimiterTableOptions o = table_options(100, 1);
  o.idle_eviction = 10s;
  RateLimiterTable table(o, clock);
  const TokenBucketRule rule{.rate_per_second = 1, .burst = 5};
  ASSERT_TRUE(table.try_take("x", rule, 5).allowed);  // full again 5s later
  ASSERT_TRUE(table.try_take("y", rule, 1).allowed);  // full again 1s later
  clock.advance(10s);
  EXPECT_EQ(table.evict_idle(), 0u);  // y was full for 9s only, x for 5s
  clock.advance(1s);
  EXPECT_EQ(table.evict_idle(), 1u);  // y
  EXPECT_EQ(table.size(), 1u);
  clock.advance(4s);
  // Without a sweep: the next take drops the idle bucket at the LRU end on its way.
  ASSERT_TRUE(table.try_take("z", rule).allowed);
  EXPECT_EQ(table.size(), 1u);
}

TEST(RateLimiterTable, ShardsClampToTheBound) {
  ManualClock clock;
  EXPECT_EQ(RateLimiterTable(table_options(4, 16), clock).shard_count(), 4u);
  EXPECT_EQ(RateLimiterTable(table_options(0, 16), clock).shard_count(), 1u);
  EXPECT_EQ(RateLimiterTable(table_options(1000, 0), clock).shard_count(), 1u);
}

TEST(RateLimiterTable, ConcurrentTakesNeverExceedTheBurst) {
  ManualClock clock;  // time stands still: only the burst is available
  RateLimiterTable table(table_options(1000), clock);
  const TokenBucketRule rule{.rate_per_second = 1, .burst = 1000};
  constexpr int kThreads = 4;
  std::atomic<int> allowed_shared{0};
  std::atomic<int> allowed_own{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "own-" + std::to_string(t);
      start.arrive_and_wait();
      for (int i = 0; i < 2000; ++i) {
        if (table.try_take("shared", rule).allowed) allowed_shared.fetch_add(1);
        if (table.try_take(own, rule).allowed) allowed_own.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allowed_shared.load(), 1000);
  EXPECT_EQ(allowed_own.load(), kThreads * 1000);
}

}  // namespace
}  // namespace fusebox::admission
