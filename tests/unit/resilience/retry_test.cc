#include "fusebox/resilience/retry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fusebox::resilience {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

config::RetryConfig backoff_config(milliseconds base, milliseconds max) {
  config::RetryConfig c;
  c.backoff_base = base;
  c.backoff_max = max;
  return c;
}

// --- Backoff --------------------------------------------------------------------------------

struct BackoffCase {
  milliseconds base;
  milliseconds max;
  std::uint32_t retry;
  double fraction;  // the scripted next_double()
  milliseconds expected;
};

TEST(Backoff, ExactDelaysWithScriptedRandom) {
  // floor(fraction * min(max, base * 2^(retry - 1))) milliseconds.
  // clang-format off
  const std::vector<BackoffCase> cases = {
      {25ms, 250ms, 1, 0.0, 0ms},     {25ms, 250ms, 1, 0.5, 12ms},
      {25ms, 250ms, 1, 0.999, 24ms},  {25ms, 250ms, 2, 0.5, 25ms},
      {25ms, 250ms, 3, 0.5, 50ms},    {25ms, 250ms, 4, 0.5, 100ms},
      {25ms, 250ms, 4, 0.999, 199ms}, {25ms, 250ms, 5, 0.5, 125ms},
      {25ms, 250ms, 5, 0.999, 249ms}, {25ms, 250ms, 64, 0.999, 249ms},
      {25ms, 250ms, 4000000000u, 0.5, 125ms},
      {25ms, 250ms, 0, 0.5, 12ms},  // retry 0 is treated as the first
      {100ms, 30ms, 1, 0.5, 15ms},  // max caps even the first
      {0ms, 250ms, 3, 0.5, 0ms},    {25ms, 0ms, 3, 0.5, 0ms},
      {1ms, 1000ms, 1, 0.999, 0ms}, {1ms, 1000ms, 11, 0.999, 999ms},
  };
  // clang-format on
  for (const BackoffCase& row : cases) {
    SCOPED_TRACE("base " + std::to_string(row.base.count()) + " max " +
                 std::to_string(row.max.count()) + " retry " + std::to_string(row.retry) +
                 " fraction " + std::to_string(row.fraction));
    ScriptedRandom random({ScriptedRandom::of_fraction(row.fraction)});
    EXPECT_EQ(backoff_delay(backoff_config(row.base, row.max), row.retry, random), row.expected);
  }
}

TEST(Backoff, FullJitterStaysWithinBoundsOverManyDraws) {
  const auto config = backoff_config(25ms, 250ms);
  FastRandom random(1234);
  const std::vector<milliseconds> ceilings = {25ms, 50ms, 100ms, 200ms, 250ms, 250ms};
  for (std::uint32_t retry = 1; retry <= ceilings.size(); ++retry) {
    SCOPED_TRACE("retry " + std::to_string(retry));
    const milliseconds ceiling = ceilings[retry - 1];
    milliseconds lowest = 1h, highest = -1ms;
    double sum = 0;
    constexpr int kDraws = 10000;
    for (int i = 0; i < kDraws; ++i) {
      const milliseconds delay = backoff_delay(config, retry, random);
      ASSERT_GE(delay, 0ms);
      ASSERT_LT(delay, ceiling);
      lowest = std::min(lowest, delay);
      highest = std::max(highest, delay);
      sum += static_cast<double>(delay.count());
    }
    EXPECT_EQ(lowest, 0ms);
    EXPECT_EQ(highest, ceiling - 1ms);
    // Uniform over 0..ceiling-1: mean (ceiling - 1) / 2, within 5% of the ceiling.
    const double mean = sum / kDraws;
    EXPECT_NEAR(mean, (static_cast<double>(ceiling.count()) - 1) / 2,
                0.05 * static_cast<double>(ceiling.count()));
  }
}

// --- Budget ---------------------------------------------------------------------------------

struct BudgetCase {
  double percent;
  std::uint32_t min_concurrency;
  std::int64_t active;
  std::int64_t retries_in_flight;
  bool allowed;
};

TEST(RetryBudget, ArithmeticTable) {
  // Allowed iff retries_in_flight + 1 <= max(min_concurrency, percent% of active).
  // clang-format off
  const std::vector<BudgetCase> cases = {
      {20, 3, 0, 0, true},      {20, 3, 0, 2, true},      {20, 3, 0, 3, false},
      {20, 3, 10, 2, true},     {20, 3, 10, 3, false},    {20, 3, 12, 2, true},
      {20, 3, 12, 3, false},    {20, 3, 100, 19, true},   {20, 3, 100, 20, false},
      {20, 3, 1000, 199, true}, {20, 3, 1000, 200, false},
      {20, 0, 12, 1, true},     {20, 0, 12, 2, false},  // 2.4 allowed: 2 may run, not 3
      {20, 0, 4, 0, false},     {20, 0, 5, 0, true},    {20, 0, 0, 0, false},
      {100, 0, 5, 4, true},     {100, 0, 5, 5, false},
      {0, 1, 1000, 0, true},    {0, 1, 1000, 1, false},
      {12.5, 0, 16, 1, true},   {12.5, 0, 16, 2, false},
      {20, 3, -5, 2, true},     {20, 3, -5, 3, false},  // negative counts are zero
      {20, 3, 10, -1, true},
  };
  // clang-format on
  for (const BudgetCase& row : cases) {
    SCOPED_TRACE(std::to_string(row.percent) + "% min " + std::to_string(row.min_concurrency) +
                 " active " + std::to_string(row.active) + " retries " +
                 std::to_string(row.retries_in_flight));
    config::RetryBudgetConfig config;
    config.budget_percent = row.percent;
    config.min_concurrency = row.min_concurrency;
    EXPECT_EQ(retry_budget_allows(config, row.active, row.retries_in_flight), row.allowed);
  }
}

// --- Deadlines ------------------------------------------------------------------------------

struct DeadlineCase {
  const char* name;
  milliseconds timeout;
  milliseconds max_timeout;
  std::optional<std::string_view> header;
  std::optional<milliseconds> expected;  // from now; nullopt: the header is rejected
};

TEST(Deadline, RequestDeadlineTable) {
  // clang-format off
  const std::vector<DeadlineCase> cases = {
      {"no header", 30s, 0ms, std::nullopt, 30s},
      {"no header, larger max", 30s, 60s, std::nullopt, 30s},
      {"shorter", 30s, 0ms, "5000", 5s},
      {"equal to the timeout", 30s, 0ms, "30000", 30s},
      {"longer is capped at the timeout", 30s, 0ms, "60000", 30s},
      {"longer than timeout, within max", 30s, 60s, "45000", 45s},
      {"longer than max", 30s, 60s, "90000", 60s},
      {"zero", 30s, 0ms, "0", 0ms},
      {"leading zeros", 30s, 0ms, "007", 7ms},
      {"ten digits", 30s, 0ms, "9999999999", 30s},
      {"ten digits within a huge max", 30s, 10'000'000'000ms, "9999999999",
       9'999'999'999ms},
      {"eleven digits", 30s, 0ms, "10000000000", std::nullopt},
      {"overflow", 30s, 0ms, "99999999999999999999999", std::nullopt},
      {"empty", 30s, 0ms, "", std::nullopt},
      {"negative", 30s, 0ms, "-5", std::nullopt},
      {"plus sign", 30s, 0ms, "+5", std::nullopt},
      {"unit", 30s, 0ms, "5s", std::nullopt},
      {"space", 30s, 0ms, " 5", std::nullopt},
      {"fraction", 30s, 0ms, "1.5", std::nullopt},
      {"hex", 30s, 0ms, "0x10", std::nullopt},
      {"garbage", 30s, 0ms, "soon", std::nullopt},
  };
  // clang-format on
  const TimePoint now = TimePoint{} + 1h;
  for (const DeadlineCase& row : cases) {
    SCOPED_TRACE(row.name);
    config::RouteConfig route;
    route.timeout = row.timeout;
    route.max_timeout = row.max_timeout;
    const auto deadline = request_deadline(route, now, row.header);
    ASSERT_EQ(deadline.has_value(), row.expected.has_value());
    if (deadline) {
      EXPECT_EQ(*deadline - now, *row.expected);
    }
  }
}

struct AttemptCase {
  milliseconds per_try;
  milliseconds deadline_in;
  milliseconds expected_in;
};

TEST(Deadline, AttemptDeadlineTable) {
  // clang-format off
  const std::vector<AttemptCase> cases = {
      {0ms, 10s, 10s},    // no per-try timeout: the remaining deadline
      {2s, 10s, 2s},      // per-try inside the deadline
      {2s, 1500ms, 1500ms},  // never past the deadline
      {2s, 2s, 2s},
      {2s, 0ms, 0ms},     // deadline already here
      {2s, -1s, -1s},     // already past: still the deadline
  };
  // clang-format on
  const TimePoint now = TimePoint{} + 1h;
  for (const AttemptCase& row : cases) {
    SCOPED_TRACE("per try " + std::to_string(row.per_try.count()) + "ms, deadline in " +
                 std::to_string(row.deadline_in.count()) + "ms");
    config::RetryConfig config;
    config.per_try_timeout = row.per_try;
    EXPECT_EQ(attempt_deadline(config, now, now + row.deadline_in) - now, row.expected_in);
  }
}

// --- What may be retried --------------------------------------------------------------------

struct RetryableCase {
  const char* name;
  AttemptFailure failure;
  unsigned status;
  bool with_defaults;
  bool with_everything_off;  // all flags false, no statuses
};

TEST(RetryOn, RetryableTable) {
  // clang-format off
  const std::vector<RetryableCase> cases = {
      {"connect failure", AttemptFailure::connect_failure, 0, true, false},
      {"reset", AttemptFailure::reset, 0, true, false},
      {"per-try timeout", AttemptFailure::timeout, 0, true, false},
      {"protocol error", AttemptFailure::protocol_error, 0, false, false},
      {"502", AttemptFailure::status, 502, true, false},
      {"503", AttemptFailure::status, 503, true, false},
      {"504", AttemptFailure::status, 504, true, false},
      {"500", AttemptFailure::status, 500, false, false},
      {"429", AttemptFailure::status, 429, false, false},
      {"400", AttemptFailure::status, 400, false, false},
      {"404", AttemptFailure::status, 404, false, false},
      {"200", AttemptFailure::status, 200, false, false},
  };
  // clang-format on
  const config::RetryOn defaults;
  config::RetryOn off;
  off.connect_failure = off.reset = off.timeout = false;
  off.statuses.clear();
  for (const RetryableCase& row : cases) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(retryable(defaults, row.failure, row.status), row.with_defaults);
    EXPECT_EQ(retryable(off, row.failure, row.status), row.with_everything_off);
  }
}

TEST(RetryOn, FlagsAreIndependentAndStatusesConfigurable) {
  config::RetryOn retry_on;
  retry_on.reset = false;
  retry_on.statuses = {429, 503};
  EXPECT_TRUE(retryable(retry_on, AttemptFailure::connect_failure));
  EXPECT_FALSE(retryable(retry_on, AttemptFailure::reset));
  EXPECT_TRUE(retryable(retry_on, AttemptFailure::timeout));
  EXPECT_TRUE(retryable(retry_on, AttemptFailure::status, 429));
  EXPECT_TRUE(retryable(retry_on, AttemptFailure::status, 503));
  EXPECT_FALSE(retryable(retry_on, AttemptFailure::status, 502));
  EXPECT_FALSE(retryable(retry_on, AttemptFailure::protocol_error, 503));
}

}  // namespace
}  // namespace fusebox::resilience
