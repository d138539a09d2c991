#include "fusebox/resilience/circuit_breaker.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace fusebox::resilience {
namespace {

using namespace std::chrono_literals;
using config::CircuitBreakerConfig;
using std::chrono::milliseconds;

class TestGuard final : public EjectionGuard {
 public:
  bool may_eject() const override {
    ++asked;
    return allow;
  }
  bool allow = true;
  mutable int asked = 0;
};

// Only the trigger under test is on; no jitter (the script's 0.5 gives u = 0 anyway).
CircuitBreakerConfig quiet_config() {
  CircuitBreakerConfig c;
  c.consecutive_failures = 0;
  c.failure_rate_percent = 0;
  c.slow_call_rate_percent = 0;
  c.minimum_calls = 1;
  c.window_size = 10;
  c.slow_call_duration = 1s;
  c.open_duration = 5s;
  c.max_open_duration = 60s;
  c.open_jitter_percent = 0;
  c.half_open_max_calls = 1;
  return c;
}

CircuitBreakerConfig trips_on_first_failure() {
  CircuitBreakerConfig c = quiet_config();
  c.consecutive_failures = 1;
  return c;
}

struct Harness {
  explicit Harness(const CircuitBreakerConfig& config,
                   std::vector<std::uint64_t> script = {ScriptedRandom::of_fraction(0.5)})
      : random(std::move(script)), breaker(config, clock, random) {}

  // One call through the breaker. Call symbols: F failure, S success, f slow failure,
  // s slow success, e success exactly at the slow threshold, i ignored.
  void call(char symbol) {
    const Admission admission = breaker.try_acquire();
    ASSERT_TRUE(admission.allowed) << "call '" << symbol << "' was rejected";
    record(admission, symbol);
  }
  void record(const Admission& admission, char symbol) {
    CallOutcome outcome = CallOutcome::success;
    std::chrono::nanoseconds latency = 10ms;
    switch (symbol) {
      case 'F':
        outcome = CallOutcome::failure;
        break;
      case 'S':
        break;
      case 'f':
        outcome = CallOutcome::failure;
        latency = 1500ms;
        break;
      case 's':
        latency = 1500ms;
        break;
      case 'e':
        latency = 1s;
        break;
      case 'i':
        outcome = CallOutcome::ignored;
        break;
      default:
        FAIL() << "unknown call symbol " << symbol;
    }
    breaker.record(admission, outcome, latency, guard);
  }
  void calls(std::string_view symbols) {
    for (char c : symbols) call(c);
  }
  // Opens the breaker (which must trip on one failure) and lets the period pass, so that the
  // next try_acquire() moves it to half_open.
  void open_and_wait() {
    call('F');
    ASSERT_EQ(breaker.state(), BreakerState::open);
    clock.advance(last_transition().open_for);
  }
  Transition last_transition() {
    auto taken = breaker.take_transitions();
    for (auto& t : taken) seen.push_back(t);
    if (seen.empty()) {
      ADD_FAILURE() << "no transition";
      return {};
    }
    return seen.back();
  }
  std::vector<Transition> transitions() {
    auto taken = breaker.take_transitions();
    for (auto& t : taken) seen.push_back(t);
    return seen;
  }

  ManualClock clock;
  ScriptedRandom random;
  TestGuard guard;
  CircuitBreaker breaker;
  std::vector<Transition> seen;
};

// --- Triggers -------------------------------------------------------------------------------

struct TriggerCase {
  const char* name;
  std::function<void(CircuitBreakerConfig&)> configure;
  std::string calls;
  int trips_at;  // index of the call that opens it; -1: stays closed
  const char* reason;
  WindowStats stats;  // expected in the open transition (rates checked too)
};

TEST(CircuitBreakerTriggers, Table) {
  // clang-format off
  const std::vector<TriggerCase> cases = {
      {"five consecutive failures", [](auto& c) { c.consecutive_failures = 5; }, "FFFFF", 4,
       "consecutive_failures", {5, 5, 0, 5, 100, 0}},
      {"four are not enough", [](auto& c) { c.consecutive_failures = 5; }, "FFFF", -1, "", {}},
      {"a success resets the count", [](auto& c) { c.consecutive_failures = 5; }, "FFFFSFFFF",
       -1, "", {}},
      {"ignored does not reset the count", [](auto& c) { c.consecutive_failures = 5; },
       "FFFFiF", 5, "consecutive_failures", {5, 5, 0, 5, 100, 0}},
      {"ignored does not count as failure", [](auto& c) { c.consecutive_failures = 5; },
       "FFFFiiii", -1, "", {}},
      {"failure rate waits for minimum calls",
       [](auto& c) {
         c.failure_rate_percent = 50;
         c.minimum_calls = 10;
       },
       "FSFSFSFSFS", 9, "failure_rate", {10, 5, 0, 0, 50, 0}},
      {"failure rate below threshold",
       [](auto& c) {
         c.failure_rate_percent = 50;
         c.minimum_calls = 10;
       },
       "FSSFSSFSSFSS", -1, "", {}},
      {"failure rate without minimum calls",
       [](auto& c) {
         c.failure_rate_percent = 50;
         c.minimum_calls = 0;
       },
       "SF", 1, "failure_rate", {2, 1, 0, 1, 50, 0}},
      {"29 of 100 is 29 percent",
       [](auto& c) {
         c.failure_rate_percent = 29;
         c.minimum_calls = 100;
         c.window_size = 100;
       },
       std::string(71, 'S') + std::string(29, 'F'), 99, "failure_rate",
       {100, 29, 0, 29, 29, 0}},
      {"count window forgets old successes",
       [](auto& c) {
         c.failure_rate_percent = 75;
         c.minimum_calls = 4;
         c.window_size = 4;
       },
       "SSSSSSFFF", 8, "failure_rate", {4, 3, 0, 3, 75, 0}},
      {"slow-call rate",
       [](auto& c) {
         c.slow_call_rate_percent = 50;
         c.minimum_calls = 4;
       },
       "sSsS", 3, "slow_call_rate", {4, 0, 2, 0, 0, 50}},
      {"slow failures are slow calls",
       [](auto& c) {
         c.slow_call_rate_percent = 50;
         c.minimum_calls = 4;
       },
       "fSfS", 3, "slow_call_rate", {4, 2, 2, 0, 50, 50}},
      {"latency at the threshold is not slow",
       [](auto& c) {
         c.slow_call_rate_percent = 50;
         c.minimum_calls = 4;
       },
       "eeeeeeee", -1, "", {}},
      {"slow-call rate waits for minimum calls",
       [](auto& c) {
         c.slow_call_rate_percent = 50;
         c.minimum_calls = 5;
       },
       "ssssS", 4, "slow_call_rate", {5, 0, 4, 0, 0, 80}},
      {"consecutive wins over rate",
       [](auto& c) {
         c.consecutive_failures = 3;
         c.failure_rate_percent = 50;
         c.minimum_calls = 3;
       },
       "FFF", 2, "consecutive_failures", {3, 3, 0, 3, 100, 0}},
      {"failure rate wins over slow rate",
       [](auto& c) {
         c.failure_rate_percent = 50;
         c.slow_call_rate_percent = 50;
         c.minimum_calls = 4;
       },
       "ffff", 3, "failure_rate", {4, 4, 4, 4, 100, 100}},
      {"all triggers off", [](auto&) {}, "FFFFFFFFFFFFffff", -1, "", {}},
  };
  // clang-format on
  for (const TriggerCase& row : cases) {
    SCOPED_TRACE(row.name);
    CircuitBreakerConfig config = quiet_config();
    row.configure(config);
    Harness h(config);
    for (std::size_t i = 0; i < row.calls.size(); ++i) {
      h.call(row.calls[i]);
      const bool should_be_open = row.trips_at >= 0 && static_cast<int>(i) >= row.trips_at;
      ASSERT_EQ(h.breaker.state(), should_be_open ? BreakerState::open : BreakerState::closed)
          << "after call " << i;
      if (should_be_open) break;
    }
    const auto transitions = h.transitions();
    if (row.trips_at < 0) {
      EXPECT_TRUE(transitions.empty());
      continue;
    }
    ASSERT_EQ(transitions.size(), 1u);
    const Transition& t = transitions[0];
    EXPECT_EQ(t.from, BreakerState::closed);
    EXPECT_EQ(t.to, BreakerState::open);
    EXPECT_EQ(t.reason, row.reason);
    EXPECT_EQ(t.open_for, 5s);
    EXPECT_EQ(t.stats.calls, row.stats.calls);
    EXPECT_EQ(t.stats.failures, row.stats.failures);
    EXPECT_EQ(t.stats.slow_calls, row.stats.slow_calls);
    EXPECT_EQ(t.stats.consecutive_failures, row.stats.consecutive_failures);
    EXPECT_DOUBLE_EQ(t.stats.failure_rate_percent, row.stats.failure_rate_percent);
    EXPECT_DOUBLE_EQ(t.stats.slow_rate_percent, row.stats.slow_rate_percent);
    // Every state change clears the window.
    EXPECT_EQ(h.breaker.stats().calls, 0u);
    EXPECT_EQ(h.breaker.stats().consecutive_failures, 0u);
  }
}

TEST(CircuitBreakerWindow, CountWindowKeepsTheLastCalls) {
  CircuitBreakerConfig config = quiet_config();
  config.window_size = 4;
  Harness h(config);
  h.calls("FFF");
  EXPECT_EQ(h.breaker.stats().calls, 3u);
  EXPECT_EQ(h.breaker.stats().failures, 3u);
  h.calls("sSSS");
  const WindowStats stats = h.breaker.stats();
  EXPECT_EQ(stats.calls, 4u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.slow_calls, 1u);
  EXPECT_DOUBLE_EQ(stats.slow_rate_percent, 25);
}

TEST(CircuitBreakerWindow, IgnoredCallsChangeNothing) {
  CircuitBreakerConfig config = quiet_config();
  Harness h(config);
  h.calls("FFsF");
  h.calls("iiii");
  const WindowStats stats = h.breaker.stats();
  EXPECT_EQ(stats.calls, 4u);
  EXPECT_EQ(stats.failures, 3u);
  EXPECT_EQ(stats.slow_calls, 1u);
  EXPECT_EQ(stats.consecutive_failures, 1u);
}

struct TimedCall {
  milliseconds advance_before;
  char call;
};

struct TimeWindowCase {
  const char* name;
  std::vector<TimedCall> calls;
  bool trips;
  std::uint32_t calls_in_window;  // after the last call (if it did not trip)
};

TEST(CircuitBreakerWindow, TimeWindowExpiresCallsAsTheClockMoves) {
  // clang-format off
  const std::vector<TimeWindowCase> cases = {
      {"all within the window", {{0ms, 'F'}, {0ms, 'F'}, {0ms, 'S'}, {9999ms, 'S'}}, true, 4},
      {"first three expired at exactly the duration",
       {{0ms, 'F'}, {0ms, 'F'}, {0ms, 'S'}, {10s, 'S'}}, false, 1},
      {"expired failures do not count",
       {{0ms, 'F'}, {0ms, 'F'}, {10s, 'S'}, {0ms, 'S'}, {0ms, 'S'}, {0ms, 'F'}}, false, 4},
      {"a sliding mix",
       {{0ms, 'F'}, {4s, 'F'}, {4s, 'S'}, {4s, 'F'}, {1s, 'S'}}, true, 4},
  };
  // clang-format on
  for (const TimeWindowCase& row : cases) {
    SCOPED_TRACE(row.name);
    CircuitBreakerConfig config = quiet_config();
    config.window_type = config::WindowType::time;
    config.window_duration = 10s;
    config.window_size = 2;  // ignored by the time window
    config.minimum_calls = 4;
    config.failure_rate_percent = 50;
    Harness h(config);
    for (const TimedCall& c : row.calls) {
      h.clock.advance(c.advance_before);
      h.call(c.call);
    }
    EXPECT_EQ(h.breaker.state(), row.trips ? BreakerState::open : BreakerState::closed);
    if (!row.trips) {
      EXPECT_EQ(h.breaker.stats().calls, row.calls_in_window);
    }
  }
}

TEST(CircuitBreakerWindow, StatsExpireWithoutNewCalls) {
  CircuitBreakerConfig config = quiet_config();
  config.window_type = config::WindowType::time;
  config.window_duration = 10s;
  Harness h(config);
  h.calls("FF");
  h.clock.advance(5s);
  h.calls("sS");
  EXPECT_EQ(h.breaker.stats().calls, 4u);
  h.clock.advance(5s);
  WindowStats stats = h.breaker.stats();
  EXPECT_EQ(stats.calls, 2u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.slow_calls, 1u);
  EXPECT_EQ(stats.consecutive_failures, 0u);
  h.clock.advance(5s);
  EXPECT_EQ(h.breaker.stats().calls, 0u);
  EXPECT_DOUBLE_EQ(h.breaker.stats().failure_rate_percent, 0);
}

// --- Open period ----------------------------------------------------------------------------

TEST(CircuitBreakerOpenPeriod, DoublesPerConsecutiveTripUpToTheCap) {
  Harness h(trips_on_first_failure());
  const std::vector<milliseconds> expected = {5s, 10s, 20s, 40s, 60s, 60s};
  h.call('F');
  for (std::size_t trip = 0; trip < expected.size(); ++trip) {
    SCOPED_TRACE("trip " + std::to_string(trip + 1));
    const Transition t = h.last_transition();
    EXPECT_EQ(t.to, BreakerState::open);
    EXPECT_EQ(t.reason, trip == 0 ? "consecutive_failures" : "probe_failed");
    EXPECT_EQ(t.open_for, expected[trip]);
    EXPECT_EQ(h.breaker.consecutive_trips(), trip + 1);
    // Rejected until exactly the end of the period.
    h.clock.advance(expected[trip] - 1ms);
    EXPECT_FALSE(h.breaker.try_acquire().allowed);
    EXPECT_EQ(h.breaker.state(), BreakerState::open);
    h.clock.advance(1ms);
    const Admission probe = h.breaker.try_acquire();
    ASSERT_TRUE(probe.allowed);
    EXPECT_TRUE(probe.probe);
    EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
    EXPECT_EQ(h.last_transition().reason, "open_period_elapsed");
    h.record(probe, 'F');
  }
}

TEST(CircuitBreakerOpenPeriod, ClosingResetsTheGrowth) {
  Harness h(trips_on_first_failure());
  h.open_and_wait();
  h.call('F');  // probe fails: 10s
  EXPECT_EQ(h.last_transition().open_for, 10s);
  h.clock.advance(10s);
  h.call('S');  // the one probe succeeds
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.breaker.consecutive_trips(), 0u);
  h.call('F');
  EXPECT_EQ(h.last_transition().open_for, 5s);
}

struct JitterCase {
  std::uint32_t trips;
  double fraction;  // the scripted next_double()
  milliseconds expected;
};

TEST(CircuitBreakerOpenPeriod, JitterIsScaledRoundedAndCapped) {
  // u = 0.1 * (2 * fraction - 1); period * (1 + u) rounded to the nearest ms; capped at 60s.
  // clang-format off
  const std::vector<JitterCase> cases = {
      {1, 0.0, 4500ms},     {1, 0.5, 5000ms},    {1, 0.75, 5250ms},   {1, 0.25, 4750ms},
      {1, 0.99999, 5500ms}, {1, 0.5004, 5000ms}, {1, 0.5006, 5001ms}, {1, 0.4996, 5000ms},
      {2, 0.0, 9000ms},     {3, 0.75, 21000ms},  {5, 0.0, 54000ms},   {5, 0.75, 60000ms},
      {8, 0.99, 60000ms},
  };
  // clang-format on
  for (const JitterCase& row : cases) {
    SCOPED_TRACE(std::to_string(row.trips) + " trips, fraction " + std::to_string(row.fraction));
    CircuitBreakerConfig config = trips_on_first_failure();
    config.open_jitter_percent = 10;
    Harness h(config, {ScriptedRandom::of_fraction(row.fraction)});
    h.call('F');
    for (std::uint32_t trip = 1; trip < row.trips; ++trip) {
      h.clock.advance(h.last_transition().open_for);
      h.call('F');
    }
    EXPECT_EQ(h.breaker.consecutive_trips(), row.trips);
    EXPECT_EQ(h.last_transition().open_for, row.expected);
  }
}

TEST(CircuitBreakerOpenPeriod, JitterStaysWithinBoundsOverManyDraws) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.open_jitter_percent = 10;
  ManualClock clock;
  FastRandom random(7);
  TestGuard guard;
  milliseconds lowest = 1h, highest = 0ms;
  for (int i = 0; i < 2000; ++i) {
    CircuitBreaker breaker(config, clock, random);
    breaker.record(breaker.try_acquire(), CallOutcome::failure, 1ms, guard);
    const auto transitions = breaker.take_transitions();
    ASSERT_EQ(transitions.size(), 1u);
    const milliseconds period = transitions[0].open_for;
    ASSERT_GE(period, 4500ms);
    ASSERT_LE(period, 5500ms);
    lowest = std::min(lowest, period);
    highest = std::max(highest, period);
  }
  // The draws actually spread over the range.
  EXPECT_LT(lowest, 4550ms);
  EXPECT_GT(highest, 5450ms);
}

// --- Half-open ------------------------------------------------------------------------------

TEST(CircuitBreakerHalfOpen, AdmitsAtMostKConcurrentProbes) {
  for (std::uint32_t k = 1; k <= 5; ++k) {
    SCOPED_TRACE("K = " + std::to_string(k));
    CircuitBreakerConfig config = trips_on_first_failure();
    config.half_open_max_calls = k;
    Harness h(config);
    h.open_and_wait();
    std::vector<Admission> probes;
    for (std::uint32_t i = 0; i < k; ++i) {
      probes.push_back(h.breaker.try_acquire());
      ASSERT_TRUE(probes.back().allowed);
      EXPECT_TRUE(probes.back().probe);
    }
    EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
    EXPECT_FALSE(h.breaker.try_acquire().allowed) << "K+1th while K are in flight";
    // A released probe frees its slot, once.
    h.breaker.release(probes[0]);
    const Admission again = h.breaker.try_acquire();
    EXPECT_TRUE(again.allowed);
    EXPECT_TRUE(again.probe);
    EXPECT_FALSE(h.breaker.try_acquire().allowed);
    // A recorded probe frees its slot too (and K - 1 successes do not close it yet).
    if (k > 1) {
      h.record(probes[1], 'S');
      EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
      EXPECT_TRUE(h.breaker.try_acquire().allowed);
      EXPECT_FALSE(h.breaker.try_acquire().allowed);
    }
  }
}

TEST(CircuitBreakerHalfOpen, KSuccessesClose) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.half_open_max_calls = 3;
  Harness h(config);
  h.open_and_wait();
  const Admission a = h.breaker.try_acquire();
  const Admission b = h.breaker.try_acquire();
  const Admission c = h.breaker.try_acquire();
  h.breaker.release(a);  // released: neither success nor failure
  const Admission d = h.breaker.try_acquire();
  ASSERT_TRUE(d.allowed);
  h.record(b, 's');  // slow, but a success
  h.record(c, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
  h.record(d, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.breaker.consecutive_trips(), 0u);
  const Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::half_open);
  EXPECT_EQ(t.to, BreakerState::closed);
  EXPECT_EQ(t.reason, "probes_succeeded");
  EXPECT_EQ(t.stats.calls, 3u);
  EXPECT_EQ(t.stats.failures, 0u);
  EXPECT_EQ(t.stats.slow_calls, 1u);
  EXPECT_EQ(h.breaker.stats().calls, 0u);
  // Closed again: everything is admitted, not as probes.
  const Admission normal = h.breaker.try_acquire();
  EXPECT_TRUE(normal.allowed);
  EXPECT_FALSE(normal.probe);
}

TEST(CircuitBreakerHalfOpen, IgnoredProbeFreesItsSlotAndCountsAsNeither) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.half_open_max_calls = 2;
  Harness h(config);
  h.open_and_wait();
  const Admission a = h.breaker.try_acquire();
  const Admission b = h.breaker.try_acquire();
  EXPECT_FALSE(h.breaker.try_acquire().allowed);
  h.record(a, 'i');
  EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
  EXPECT_EQ(h.breaker.stats().calls, 0u);
  const Admission c = h.breaker.try_acquire();
  ASSERT_TRUE(c.allowed);
  h.record(b, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::half_open);  // one success of two
  h.record(c, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
}

TEST(CircuitBreakerHalfOpen, ProbeFailureReopensWithDoubledPeriod) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.half_open_max_calls = 2;
  Harness h(config);
  h.open_and_wait();
  const Admission a = h.breaker.try_acquire();
  const Admission b = h.breaker.try_acquire();
  h.record(a, 'S');
  h.record(b, 'F');
  EXPECT_EQ(h.breaker.state(), BreakerState::open);
  EXPECT_EQ(h.breaker.consecutive_trips(), 2u);
  const Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::half_open);
  EXPECT_EQ(t.to, BreakerState::open);
  EXPECT_EQ(t.reason, "probe_failed");
  EXPECT_EQ(t.open_for, 10s);
  EXPECT_EQ(t.stats.calls, 2u);
  EXPECT_EQ(t.stats.failures, 1u);
  EXPECT_FALSE(h.breaker.try_acquire().allowed);
  h.clock.advance(9999ms);
  EXPECT_FALSE(h.breaker.try_acquire().allowed);
  h.clock.advance(1ms);
  EXPECT_TRUE(h.breaker.try_acquire().allowed);
}

TEST(CircuitBreakerHalfOpen, StaleProbesDecideNothingInALaterPeriod) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.half_open_max_calls = 2;
  Harness h(config);
  h.open_and_wait();
  const Admission old_failing = h.breaker.try_acquire();
  const Admission old_slow = h.breaker.try_acquire();
  h.record(old_failing, 'F');  // re-opens for 10s
  h.clock.advance(10s);
  const Admission a = h.breaker.try_acquire();
  const Admission b = h.breaker.try_acquire();
  ASSERT_TRUE(a.allowed && b.allowed);
  h.record(old_slow, 'S');  // from the previous half-open period
  EXPECT_FALSE(h.breaker.try_acquire().allowed) << "a stale probe freed a slot";
  h.breaker.release(old_slow);
  EXPECT_FALSE(h.breaker.try_acquire().allowed) << "a stale release freed a slot";
  h.record(a, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::half_open) << "the stale success counted";
  h.record(b, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
}

TEST(CircuitBreakerHalfOpen, CallsAdmittedBeforeOpeningAreIgnoredWhileOpen) {
  CircuitBreakerConfig config = trips_on_first_failure();
  Harness h(config);
  const Admission early = h.breaker.try_acquire();
  const Admission late = h.breaker.try_acquire();
  h.record(early, 'F');
  ASSERT_EQ(h.breaker.state(), BreakerState::open);
  h.record(late, 'F');  // finished after the trip: no second trip, no growth
  EXPECT_EQ(h.breaker.consecutive_trips(), 1u);
  EXPECT_EQ(h.transitions().size(), 1u);
  h.clock.advance(5s);
  const Admission probe = h.breaker.try_acquire();
  ASSERT_TRUE(probe.probe);
  const Admission not_a_probe{true, false};
  h.record(not_a_probe, 'F');  // a non-probe result in half-open decides nothing
  EXPECT_EQ(h.breaker.state(), BreakerState::half_open);
  h.record(probe, 'S');
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
}

// --- require_health_check -------------------------------------------------------------------

struct HealthCase {
  const char* name;
  std::vector<bool> checks_before_open;  // reported while still closed
  std::vector<bool> checks_while_open;   // reported after the trip, before the period ends
  bool admitted_after_period;
};

TEST(CircuitBreakerHealthCheck, HalfOpenOnlyAfterAPassingCheckSinceOpening) {
  // clang-format off
  const std::vector<HealthCase> cases = {
      {"no check", {}, {}, false},
      {"a pass", {}, {true}, true},
      {"a failure", {}, {false}, false},
      {"failure then pass", {}, {false, true}, true},
      {"a later failure withdraws the pass", {}, {true, false}, false},
      {"a pass before opening does not count", {true}, {}, false},
  };
  // clang-format on
  for (const HealthCase& row : cases) {
    SCOPED_TRACE(row.name);
    CircuitBreakerConfig config = trips_on_first_failure();
    config.require_health_check = true;
    Harness h(config);
    for (bool passed : row.checks_before_open) h.breaker.on_health_check(passed);
    h.call('F');
    ASSERT_EQ(h.breaker.state(), BreakerState::open);
    for (bool passed : row.checks_while_open) h.breaker.on_health_check(passed);
    h.clock.advance(5s);
    const Admission admission = h.breaker.try_acquire();
    EXPECT_EQ(admission.allowed, row.admitted_after_period);
    EXPECT_EQ(h.breaker.state(),
              row.admitted_after_period ? BreakerState::half_open : BreakerState::open);
  }
}

TEST(CircuitBreakerHealthCheck, APassAfterThePeriodAdmitsAtOnce) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.require_health_check = true;
  Harness h(config);
  h.call('F');
  h.clock.advance(1min);
  EXPECT_FALSE(h.breaker.try_acquire().allowed);
  h.breaker.on_health_check(true);
  EXPECT_TRUE(h.breaker.try_acquire().probe);
}

// --- Ejection guard -------------------------------------------------------------------------

TEST(CircuitBreakerEjectionGuard, RefusedTripStaysClosedAndAsksAgain) {
  CircuitBreakerConfig config = quiet_config();
  config.consecutive_failures = 3;
  Harness h(config);
  h.guard.allow = false;
  h.calls("FF");
  EXPECT_EQ(h.guard.asked, 0);
  h.call('F');
  EXPECT_EQ(h.guard.asked, 1);
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  auto transitions = h.transitions();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, BreakerState::closed);
  EXPECT_EQ(transitions[0].to, BreakerState::closed);
  EXPECT_EQ(transitions[0].reason, "ejection_cap");
  EXPECT_EQ(transitions[0].stats.consecutive_failures, 3u);
  EXPECT_EQ(transitions[0].stats.calls, 3u);
  EXPECT_EQ(h.breaker.stats().calls, 3u) << "the window is kept";

  h.call('F');  // still failing: asks again
  EXPECT_EQ(h.guard.asked, 2);
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.transitions().size(), 2u);

  h.guard.allow = true;
  h.call('F');
  EXPECT_EQ(h.guard.asked, 3);
  EXPECT_EQ(h.breaker.state(), BreakerState::open);
  const Transition t = h.last_transition();
  EXPECT_EQ(t.reason, "consecutive_failures");
  EXPECT_EQ(t.stats.consecutive_failures, 5u);
  EXPECT_EQ(t.open_for, 5s);
  EXPECT_EQ(h.breaker.consecutive_trips(), 1u) << "refused trips are not trips";
}

TEST(CircuitBreakerEjectionGuard, ASuccessAfterARefusalResetsTheConsecutiveCount) {
  CircuitBreakerConfig config = quiet_config();
  config.consecutive_failures = 3;
  Harness h(config);
  h.guard.allow = false;
  h.calls("FFF");
  h.guard.allow = true;
  h.calls("SFF");
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.guard.asked, 1);
}

// --- Operator states ------------------------------------------------------------------------

TEST(CircuitBreakerOperator, ForcedOpenRejectsEverythingUntilAuto) {
  Harness h(trips_on_first_failure());
  h.calls("SS");
  h.breaker.set_operator_state(BreakerState::forced_open);
  EXPECT_EQ(h.breaker.state(), BreakerState::forced_open);
  Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::closed);
  EXPECT_EQ(t.to, BreakerState::forced_open);
  EXPECT_EQ(t.reason, "operator");
  EXPECT_EQ(t.stats.calls, 2u);
  for (int i = 0; i < 3; ++i) {
    h.clock.advance(1h);
    EXPECT_FALSE(h.breaker.try_acquire().allowed);
  }
  h.breaker.set_operator_state(std::nullopt);
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::forced_open);
  EXPECT_EQ(t.to, BreakerState::closed);
  EXPECT_EQ(t.reason, "operator");
  EXPECT_TRUE(h.breaker.try_acquire().allowed);
}

TEST(CircuitBreakerOperator, DisabledAdmitsAllAndRecordsNothing) {
  Harness h(trips_on_first_failure());
  h.breaker.set_operator_state(BreakerState::disabled);
  EXPECT_EQ(h.breaker.state(), BreakerState::disabled);
  h.transitions();
  h.calls("FFFFFFFFFFffff");
  EXPECT_EQ(h.breaker.state(), BreakerState::disabled);
  EXPECT_EQ(h.breaker.stats().calls, 0u);
  EXPECT_EQ(h.guard.asked, 0);
  EXPECT_EQ(h.transitions().size(), 1u) << "only the operator's";
}

TEST(CircuitBreakerOperator, ClosedResetsAnOpenBreaker) {
  Harness h(trips_on_first_failure());
  h.open_and_wait();
  h.call('F');  // probe fails: second trip
  ASSERT_EQ(h.breaker.consecutive_trips(), 2u);
  h.breaker.set_operator_state(BreakerState::closed);
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.breaker.consecutive_trips(), 0u);
  const Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::open);
  EXPECT_EQ(t.to, BreakerState::closed);
  EXPECT_EQ(t.reason, "operator");
  EXPECT_TRUE(h.breaker.try_acquire().allowed);
  h.call('F');
  EXPECT_EQ(h.last_transition().open_for, 5s) << "growth restarts";
}

TEST(CircuitBreakerOperator, AutomaticStatesAreNotOperatorStates) {
  Harness h(trips_on_first_failure());
  h.breaker.set_operator_state(BreakerState::open);
  h.breaker.set_operator_state(BreakerState::half_open);
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_TRUE(h.transitions().empty());
}

struct ModeCase {
  config::BreakerMode mode;
  BreakerState configured;
};

TEST(CircuitBreakerOperator, ConfiguredModeAppliesAtStartAndAfterAuto) {
  // clang-format off
  const std::vector<ModeCase> cases = {
      {config::BreakerMode::auto_, BreakerState::closed},
      {config::BreakerMode::disabled, BreakerState::disabled},
      {config::BreakerMode::metrics_only, BreakerState::metrics_only},
  };
  // clang-format on
  for (const ModeCase& row : cases) {
    SCOPED_TRACE(to_string(row.configured));
    CircuitBreakerConfig config = trips_on_first_failure();
    config.mode = row.mode;
    Harness h(config);
    EXPECT_EQ(h.breaker.state(), row.configured);
    EXPECT_EQ(h.breaker.shadow_state(), BreakerState::closed);
    EXPECT_TRUE(h.transitions().empty()) << "the starting mode is not a transition";
    h.breaker.set_operator_state(BreakerState::forced_open);
    h.breaker.set_operator_state(std::nullopt);
    EXPECT_EQ(h.breaker.state(), row.configured);
    const Transition t = h.last_transition();
    EXPECT_EQ(t.from, BreakerState::forced_open);
    EXPECT_EQ(t.to, row.configured);
    // `closed` is auto mode, whatever the configuration says.
    h.breaker.set_operator_state(BreakerState::closed);
    h.call('F');
    EXPECT_EQ(h.breaker.state(), BreakerState::open);
  }
}

TEST(CircuitBreakerMetricsOnly, ShadowMachineRunsButNeverBlocks) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.mode = config::BreakerMode::metrics_only;
  config.half_open_max_calls = 2;
  Harness h(config);

  h.call('F');
  EXPECT_EQ(h.breaker.state(), BreakerState::metrics_only);
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::open);
  Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::closed);
  EXPECT_EQ(t.to, BreakerState::open);
  EXPECT_EQ(t.reason, "consecutive_failures");
  EXPECT_EQ(t.open_for, 5s);
  EXPECT_EQ(h.guard.asked, 1);

  // Open in the shadow: still admitted, and results of those calls decide nothing.
  h.calls("FFFSSS");
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::open);
  EXPECT_EQ(h.transitions().size(), 1u);

  h.clock.advance(5s);
  const Admission a = h.breaker.try_acquire();
  EXPECT_TRUE(a.allowed);
  EXPECT_FALSE(a.probe) << "metrics_only hands out no probes";
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::half_open);
  EXPECT_EQ(h.last_transition().reason, "open_period_elapsed");

  // Shadow half-open: every counted call is a would-be probe, without a permit limit.
  std::vector<Admission> admitted;
  for (int i = 0; i < 5; ++i) {
    admitted.push_back(h.breaker.try_acquire());
    EXPECT_TRUE(admitted.back().allowed);
  }
  h.record(admitted[0], 'i');
  h.record(admitted[1], 'S');
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::half_open);
  h.record(admitted[2], 'F');
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::open);
  t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::half_open);
  EXPECT_EQ(t.to, BreakerState::open);
  EXPECT_EQ(t.reason, "probe_failed");
  EXPECT_EQ(t.open_for, 10s);
  EXPECT_TRUE(h.breaker.try_acquire().allowed);

  h.clock.advance(10s);
  h.calls("SS");
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::closed);
  EXPECT_EQ(h.last_transition().reason, "probes_succeeded");
  EXPECT_EQ(h.breaker.state(), BreakerState::metrics_only);
  EXPECT_EQ(h.breaker.consecutive_trips(), 0u);
}

TEST(CircuitBreakerMetricsOnly, ReportsEjectionCapAndHonoursHealthChecks) {
  CircuitBreakerConfig config = trips_on_first_failure();
  config.require_health_check = true;
  Harness h(config);
  h.breaker.set_operator_state(BreakerState::metrics_only);
  EXPECT_EQ(h.last_transition().to, BreakerState::metrics_only);
  h.guard.allow = false;
  h.call('F');
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::closed);
  EXPECT_EQ(h.last_transition().reason, "ejection_cap");
  h.guard.allow = true;
  h.call('F');
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::open);
  h.clock.advance(5s);
  EXPECT_TRUE(h.breaker.try_acquire().allowed);
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::open) << "no health check passed yet";
  h.breaker.on_health_check(true);
  EXPECT_TRUE(h.breaker.try_acquire().allowed);
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::half_open);
}

TEST(CircuitBreakerMetricsOnly, SwitchingModesResetsTheShadow) {
  Harness h(trips_on_first_failure());
  h.breaker.set_operator_state(BreakerState::metrics_only);
  h.call('F');
  ASSERT_EQ(h.breaker.shadow_state(), BreakerState::open);
  h.breaker.set_operator_state(std::nullopt);  // back to auto: closed, fresh
  EXPECT_EQ(h.breaker.state(), BreakerState::closed);
  EXPECT_EQ(h.breaker.shadow_state(), BreakerState::closed);
  EXPECT_EQ(h.breaker.consecutive_trips(), 0u);
  const Transition t = h.last_transition();
  EXPECT_EQ(t.from, BreakerState::metrics_only);
  EXPECT_EQ(t.to, BreakerState::closed);
  EXPECT_EQ(t.reason, "operator");
}

TEST(CircuitBreakerState, NamesMatchTheMetricLabels) {
  EXPECT_STREQ(to_string(BreakerState::closed), "closed");
  EXPECT_STREQ(to_string(BreakerState::open), "open");
  EXPECT_STREQ(to_string(BreakerState::half_open), "half_open");
  EXPECT_STREQ(to_string(BreakerState::forced_open), "forced_open");
  EXPECT_STREQ(to_string(BreakerState::disabled), "disabled");
  EXPECT_STREQ(to_string(BreakerState::metrics_only), "metrics_only");
  EXPECT_EQ(static_cast<int>(BreakerState::metrics_only), 5);
}

}  // namespace
}  // namespace fusebox::resilience
