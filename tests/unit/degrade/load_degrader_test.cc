#include "fusebox/degrade/load_degrader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <latch>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace fusebox::degrade {

// Readable gtest failures (found by argument-dependent lookup, so outside the unnamed namespace).
void PrintTo(LoadDegradePhase phase, std::ostream* os) { *os << to_string(phase); }
void PrintTo(SignalLevel level, std::ostream* os) {
  static constexpr const char* kNames[] = {"off", "no_samples", "calm", "band", "over"};
  *os << kNames[static_cast<int>(level)];
}

namespace {

using namespace std::chrono_literals;
using config::LoadDegradeConfig;

// max_latency 800ms (calm below 640ms), max_inflight 100 (calm below 80), step 25, cap 90,
// three calm intervals per step down, alpha 0.5.
LoadDegradeConfig both_signals() {
  return {.max_inflight = 100,
          .max_latency = 800ms,
          .interval = 1s,
          .step_percent = 25,
          .max_percent = 90,
          .recover_ratio = 0.8,
          .recover_intervals = 3,
          .latency_ewma_alpha = 0.5};
}

LoadDegradeConfig latency_only() {
  LoadDegradeConfig c = both_signals();
  c.max_inflight = 0;
  return c;
}

LoadDegradeConfig inflight_only() {
  LoadDegradeConfig c = both_signals();
  c.max_latency = 0ms;
  return c;
}

LoadObservation seen(std::uint64_t inflight, std::optional<double> mean_ms = std::nullopt) {
  LoadObservation o;
  o.inflight = inflight;
  if (mean_ms) o.mean_latency = LatencyMs(*mean_ms);
  return o;
}

// Readings against both_signals(): over both, each alone, calm, band, and no samples.
const LoadObservation kOverBoth = seen(130, 950);
const LoadObservation kOverLatency = seen(10, 950);
const LoadObservation kOverInflight = seen(130);
const LoadObservation kCalm = seen(10, 100);
const LoadObservation kBandInflight = seen(90);
const LoadObservation kIdle = seen(0);

LoadDegradeState run(const LoadDegradeConfig& config, const std::vector<LoadObservation>& seq,
                     LoadDegradeState state = {}) {
  for (const auto& o : seq) state = next_state(state, config, o);
  return state;
}

std::vector<LoadObservation> times(int n, LoadObservation o) { return std::vector(n, o); }

std::vector<LoadObservation> operator+(std::vector<LoadObservation> a,
                                       const std::vector<LoadObservation>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// --- next_state -------------------------------------------------------------------------------

struct StepCase {
  const char* name;
  LoadDegradeConfig config;
  std::vector<LoadObservation> observations;
  LoadDegradePhase phase;
  double percent;
  std::uint32_t calm_intervals;
  SignalLevel latency_level;
  SignalLevel inflight_level;
};

TEST(LoadDegradeNextState, Table) {
  using P = LoadDegradePhase;
  using L = SignalLevel;
  const auto over = [](int n) { return times(n, kOverBoth); };
  const auto calm = [](int n) { return times(n, kCalm); };
  // clang-format off
  const std::vector<StepCase> cases = {
      {"nothing observed yet is normal", both_signals(), {}, P::normal, 0, 0, L::off, L::off},
      {"calm stays normal", both_signals(), calm(5), P::normal, 0, 0, L::calm, L::calm},
      {"latency over steps up", latency_only(), {seen(0, 950)}, P::degrading, 25, 0, L::over,
       L::off},
      {"inflight over steps up", inflight_only(), {seen(130)}, P::degrading, 25, 0, L::off,
       L::over},
      {"both over is one step", both_signals(), {kOverBoth}, P::degrading, 25, 0, L::over,
       L::over},
      {"latency over alone is enough", both_signals(), {kOverLatency}, P::degrading, 25, 0,
       L::over, L::calm},
      {"inflight over alone is enough", both_signals(), {seen(130, 100)}, P::degrading, 25, 0,
       L::calm, L::over},
      {"over wins over band", both_signals(), {seen(90, 950)}, P::degrading, 25, 0, L::over,
       L::band},
      {"at the threshold is not over", inflight_only(), {seen(100)}, P::normal, 0, 0, L::off,
       L::band},
      {"one above the threshold is over", inflight_only(), {seen(101)}, P::degrading, 25, 0,
       L::off, L::over},
      {"latency at the threshold is not over", latency_only(), {seen(0, 800)}, P::normal, 0, 0,
       L::band, L::off},
      {"a disabled signal is ignored", latency_only(), {seen(100000, 100)}, P::normal, 0, 0,
       L::calm, L::off},
      {"each over interval is a step", both_signals(), over(3), P::degrading, 75, 0, L::over,
       L::over},
      {"capped at max_percent", both_signals(), over(4), P::degrading, 90, 0, L::over, L::over},
      {"stays at the cap", both_signals(), over(9), P::degrading, 90, 0, L::over, L::over},
      {"band holds", both_signals(), over(2) + std::vector{kBandInflight}, P::holding, 50, 0,
       L::no_samples, L::band},
      {"band holds for long", both_signals(), over(2) + times(20, kBandInflight), P::holding,
       50, 0, L::no_samples, L::band},
      {"band at 0 is normal", both_signals(), {kBandInflight}, P::normal, 0, 0, L::no_samples,
       L::band},
      {"calm bound itself is band", inflight_only(), over(1) + std::vector{seen(80)}, P::holding,
       25, 0, L::off, L::band},
      {"just under the calm bound is calm", inflight_only(), over(1) + std::vector{seen(79)},
       P::recovering, 25, 1, L::off, L::calm},
      {"latency band holds", latency_only(), {seen(0, 950), seen(0, 330)}, P::holding, 25, 0,
       L::band, L::off},  // ewma 640: the calm bound is band
      {"one calm interval is not a step", both_signals(), over(2) + calm(1), P::recovering, 50,
       1, L::calm, L::calm},
      {"two calm intervals are not a step", both_signals(), over(2) + calm(2), P::recovering,
       50, 2, L::calm, L::calm},
      {"three calm intervals step down", both_signals(), over(2) + calm(3), P::recovering, 25, 0,
       L::calm, L::calm},
      {"each step down needs three more", both_signals(), over(2) + calm(5), P::recovering, 25,
       2, L::calm, L::calm},
      {"the last step down is normal", both_signals(), over(2) + calm(6), P::normal, 0, 0,
       L::calm, L::calm},
      {"band restarts the calm count", both_signals(),
       over(2) + calm(2) + std::vector{kBandInflight} + calm(2), P::recovering, 50, 2, L::calm,
       L::calm},
      {"over restarts the calm count", both_signals(), over(1) + calm(2) + over(1) + calm(2),
       P::recovering, 50, 2, L::calm, L::calm},
      {"one step down from the cap", both_signals(), over(4) + calm(3), P::recovering, 65, 0,
       L::calm, L::calm},
      {"floored at 0", both_signals(), over(4) + calm(12), P::normal, 0, 0, L::calm, L::calm},
      {"stays at 0", both_signals(), over(4) + calm(20), P::normal, 0, 0, L::calm, L::calm},
      {"recover_intervals 1 steps every calm interval",
       [] { auto c = both_signals(); c.recover_intervals = 1; return c; }(),
       over(3) + calm(2), P::recovering, 25, 0, L::calm, L::calm},
      {"odd steps still reach exactly 0",
       [] { auto c = inflight_only(); c.step_percent = 0.1; c.recover_intervals = 1; return c; }(),
       times(3, kOverInflight) + times(3, kCalm), P::normal, 0, 0, L::off, L::calm},
      {"no samples is not over", latency_only(), {kIdle}, P::normal, 0, 0, L::no_samples,
       L::off},
      {"no samples counts as calm", latency_only(), std::vector{seen(0, 950)} + times(2, kIdle),
       P::recovering, 25, 2, L::no_samples, L::off},
      {"no samples steps down a stale ewma", latency_only(),
       std::vector{seen(0, 950)} + times(3, kIdle), P::normal, 0, 0, L::no_samples, L::off},
      {"inflight still decides without samples", both_signals(),
       over(1) + std::vector{kBandInflight}, P::holding, 25, 0, L::no_samples, L::band},
  };
  // clang-format on
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const LoadDegradeState s = run(c.config, c.observations);
    EXPECT_EQ(s.phase, c.phase);
    EXPECT_DOUBLE_EQ(s.diverted_percent, c.percent);
    EXPECT_EQ(s.calm_intervals, c.calm_intervals);
    EXPECT_EQ(s.latency_level, c.latency_level);
    EXPECT_EQ(s.inflight_level, c.inflight_level);
  }
}

TEST(LoadDegradeNextState, FullShareProbesThePrimaryAfterAStepDown) {
  LoadDegradeConfig c = latency_only();
  c.step_percent = 50;
  c.max_percent = 100;
  LoadDegradeState s = run(c, {seen(0, 2000), seen(0, 2000)});
  ASSERT_DOUBLE_EQ(s.diverted_percent, 100);
  // Everything is diverted: no primary samples, the ewma stays 2000ms, yet the share comes down.
  s = run(c, times(3, kIdle), s);
  EXPECT_DOUBLE_EQ(s.diverted_percent, 50);
  EXPECT_DOUBLE_EQ(s.latency_ewma->count(), 2000);
  // The probing half is still slow: ewma (2000 + 1000) / 2 = 1500 > 800, back up.
  s = next_state(s, c, seen(0, 1000));
  EXPECT_EQ(s.phase, LoadDegradePhase::degrading);
  EXPECT_DOUBLE_EQ(s.diverted_percent, 100);
}

TEST(LoadDegradeNextState, LatencyEwma) {
  struct Case {
    const char* name;
    double alpha;
    std::vector<std::optional<double>> means;
    std::optional<double> ewma;
  } cases[] = {
      {"none before the first sample", 0.5, {}, std::nullopt},
      {"none while there are no samples", 0.5, {std::nullopt, std::nullopt}, std::nullopt},
      {"the first sample is the ewma", 0.2, {std::nullopt, 300}, 300},
      {"half and half", 0.5, {100, 300}, 200},
      {"alpha weighs the newest", 0.2, {100, 600}, 200},
      {"three samples", 0.5, {100, 300, 600}, 400},
      {"no samples leave it unchanged", 0.5, {100, 300, std::nullopt, std::nullopt}, 200},
      {"and it goes on from there", 0.5, {100, 300, std::nullopt, 600}, 400},
      {"alpha 1 is the last interval", 1.0, {100, 900, 42}, 42},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    LoadDegradeConfig config = latency_only();
    config.latency_ewma_alpha = c.alpha;
    LoadDegradeState s;
    for (const auto& m : c.means) s = next_state(s, config, seen(0, m));
    ASSERT_EQ(s.latency_ewma.has_value(), c.ewma.has_value());
    if (c.ewma) {
      EXPECT_NEAR(s.latency_ewma->count(), *c.ewma, 1e-9);
    }
  }
}

TEST(LoadDegradeNextState, ThresholdAppliesToTheEwmaNotTheIntervalMean) {
  const LoadDegradeConfig c = latency_only();
  // ewma 400, then an interval of 1100ms: ewma 750, in the band, not over.
  LoadDegradeState s = run(c, {seen(0, 300), seen(0, 500), seen(0, 1100)});
  EXPECT_DOUBLE_EQ(s.latency_ewma->count(), 750);
  EXPECT_EQ(s.latency_level, SignalLevel::band);
  EXPECT_DOUBLE_EQ(s.diverted_percent, 0);
  // A second slow interval: ewma 925, over.
  s = next_state(s, c, seen(0, 1100));
  EXPECT_EQ(s.latency_level, SignalLevel::over);
  EXPECT_DOUBLE_EQ(s.diverted_percent, 25);
}

TEST(LoadDegradeNextState, RecordsTheReadings) {
  const LoadDegradeState s = run(both_signals(), {kOverBoth});
  EXPECT_EQ(s.inflight, 130u);
  EXPECT_DOUBLE_EQ(s.latency_ewma->count(), 950);
  EXPECT_DOUBLE_EQ(s.fraction(), 0.25);
}

TEST(LoadDegradeNextState, DisabledConfigIsTheInitialState) {
  LoadDegradeState s = run(both_signals(), times(3, kOverBoth));
  s = next_state(s, LoadDegradeConfig{}, kOverBoth);
  EXPECT_EQ(s.phase, LoadDegradePhase::normal);
  EXPECT_DOUBLE_EQ(s.diverted_percent, 0);
  EXPECT_FALSE(s.latency_ewma);
}

TEST(LoadDegradeDescribe, NamesTheSignalsThatDecided) {
  struct Case {
    const char* name;
    LoadDegradeConfig config;
    std::vector<LoadObservation> observations;
    std::string reason;
  };
  // clang-format off
  const std::vector<Case> cases = {
      {"never evaluated", both_signals(), {}, ""},
      {"latency over", both_signals(), {kOverLatency}, "latency ewma 950ms > 800ms"},
      {"inflight over", both_signals(), {seen(130, 100)}, "inflight 130 > 100"},
      {"both over", both_signals(), {kOverBoth},
       "latency ewma 950ms > 800ms, inflight 130 > 100"},
      {"over beats band", both_signals(), {seen(90, 950)}, "latency ewma 950ms > 800ms"},
      {"band", both_signals(), {kBandInflight}, "inflight 90 between 80 and 100"},
      {"latency band", latency_only(), {seen(0, 712.5)},
       "latency ewma 712.5ms between 640ms and 800ms"},
      {"calm", both_signals(), {kCalm}, "latency ewma 100ms < 640ms, inflight 10 < 80"},
      {"no samples", both_signals(), {kIdle}, "no primary latency samples, inflight 0 < 80"},
      {"fractional bound", [] { auto c = inflight_only(); c.max_inflight = 101; return c; }(),
       {seen(3)}, "inflight 3 < 80.8"},
  };
  // clang-format on
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(describe(run(c.config, c.observations), c.config), c.reason);
  }
}

TEST(LoadDegradeDescribe, PhaseNames) {
  EXPECT_STREQ(to_string(LoadDegradePhase::normal), "normal");
  EXPECT_STREQ(to_string(LoadDegradePhase::degrading), "degrading");
  EXPECT_STREQ(to_string(LoadDegradePhase::holding), "holding");
  EXPECT_STREQ(to_string(LoadDegradePhase::recovering), "recovering");
}

// --- LoadDegrader -----------------------------------------------------------------------------

constexpr std::uint64_t kOver = 130;  // inflight over both_signals()' 100
constexpr std::uint64_t kQuiet = 10;  // inflight calm

struct Harness {
  explicit Harness(const LoadDegradeConfig& config, std::size_t shards = 4)
      : degrader(config, clock, shards,
                 [this](const LoadDegradeChange& c) { changes.push_back(c); }) {}

  // Lets one interval pass and evaluates it with `inflight`.
  double step(std::uint64_t inflight) {
    clock.advance(1s);
    return degrader.fraction(inflight);
  }

  // With inflight over the threshold: 1ms before the interval ends the share is still
  // `current` and nothing was evaluated; at its end one evaluation moves it to `next`.
  void expect_evaluation_one_interval_later(double current, double next) {
    const std::uint64_t evaluations = degrader.snapshot().evaluations;
    clock.advance(999ms);
    EXPECT_DOUBLE_EQ(degrader.fraction(kOver), current);
    EXPECT_EQ(degrader.snapshot().evaluations, evaluations);
    clock.advance(1ms);
    EXPECT_DOUBLE_EQ(degrader.fraction(kOver), next);
    EXPECT_EQ(degrader.snapshot().evaluations, evaluations + 1);
  }

  ManualClock clock;
  std::vector<LoadDegradeChange> changes;
  LoadDegrader degrader;
};

TEST(LoadDegrader, NothingIsEvaluatedBeforeTheIntervalHasPassed) {
  Harness h(both_signals());
  EXPECT_EQ(h.degrader.fraction(kOver), 0);
  h.expect_evaluation_one_interval_later(0, 0.25);
  // The next interval starts at the evaluation.
  EXPECT_DOUBLE_EQ(h.degrader.fraction(kOver), 0.25);
  h.expect_evaluation_one_interval_later(0.25, 0.5);
}

TEST(LoadDegrader, ALongIdleGapIsOneEvaluation) {
  Harness h(both_signals());
  EXPECT_DOUBLE_EQ(h.step(kOver), 0.25);
  h.clock.advance(1h);
  // One step, not 3600 catch-up steps (which would sit at the 0.9 cap).
  EXPECT_DOUBLE_EQ(h.degrader.fraction(kOver), 0.5);
  EXPECT_EQ(h.degrader.snapshot().evaluations, 2u);
  // And the next evaluation is one interval after this one, not on the old grid.
  h.expect_evaluation_one_interval_later(0.5, 0.75);
}

TEST(LoadDegrader, AggregatesLatencyAcrossShards) {
  Harness h(latency_only());
  h.degrader.record_latency(0, 100ms);
  h.degrader.record_latency(0, 200ms);
  h.degrader.record_latency(1, 300ms);
  h.degrader.record_latency(3, std::chrono::microseconds(400'000));
  h.step(0);
  // The interval's mean over all shards: (100 + 200 + 300 + 400) / 4.
  ASSERT_TRUE(h.degrader.snapshot().latency_ewma_ms);
  EXPECT_DOUBLE_EQ(*h.degrader.snapshot().latency_ewma_ms, 250);
  // An interval without samples leaves it.
  h.step(0);
  EXPECT_DOUBLE_EQ(*h.degrader.snapshot().latency_ewma_ms, 250);
  // Only the new samples make the next interval: 0.5 * 50 + 0.5 * 250.
  h.degrader.record_latency(2, 20ms);
  h.degrader.record_latency(1, 80ms);
  h.step(0);
  EXPECT_DOUBLE_EQ(*h.degrader.snapshot().latency_ewma_ms, 150);
  // Negative latencies count as 0: mean (0 + 300) / 2 = 150.
  h.degrader.record_latency(0, -5ms);
  h.degrader.record_latency(0, 300ms);
  h.step(0);
  EXPECT_DOUBLE_EQ(*h.degrader.snapshot().latency_ewma_ms, 150);
}

TEST(LoadDegrader, LatencyOverTheThresholdDiverts) {
  Harness h(latency_only());
  for (int i = 0; i < 10; ++i) h.degrader.record_latency(i % 4, 900ms);
  EXPECT_DOUBLE_EQ(h.step(0), 0.25);
  EXPECT_EQ(h.changes.at(0).reason, "latency ewma 900ms > 800ms");
}

TEST(LoadDegrader, ChangeHookFiresOncePerChange) {
  Harness h(both_signals());
  h.degrader.record_latency(0, 950ms);
  h.step(kOver);   // 0 -> 0.25, degrading
  h.step(kOver);   // 0.25 -> 0.5
  h.step(90);      // band: holding, share unchanged
  h.step(90);      // still holding: no change
  h.step(kQuiet);  // calm 1: recovering
  h.step(kQuiet);  // calm 2: no change
  h.step(kQuiet);  // calm 3: 0.5 -> 0.25
  ASSERT_EQ(h.changes.size(), 5u);

  using P = LoadDegradePhase;
  const struct {
    P from, to;
    double from_fraction, to_fraction;
    std::uint64_t inflight;
    const char* reason;
  } expected[] = {
      {P::normal, P::degrading, 0, 0.25, kOver, "latency ewma 950ms > 800ms, inflight 130 > 100"},
      {P::degrading, P::degrading, 0.25, 0.5, kOver, "inflight 130 > 100"},
      {P::degrading, P::holding, 0.5, 0.5, 90, "inflight 90 between 80 and 100"},
      {P::holding, P::recovering, 0.5, 0.5, kQuiet, "no primary latency samples, inflight 10 < 80"},
      {P::recovering, P::recovering, 0.5, 0.25, kQuiet,
       "no primary latency samples, inflight 10 < 80"},
  };
  for (std::size_t i = 0; i < h.changes.size(); ++i) {
    SCOPED_TRACE(i);
    const LoadDegradeChange& c = h.changes[i];
    EXPECT_EQ(c.from_phase, expected[i].from);
    EXPECT_EQ(c.to_phase, expected[i].to);
    EXPECT_DOUBLE_EQ(c.from_fraction, expected[i].from_fraction);
    EXPECT_DOUBLE_EQ(c.to_fraction, expected[i].to_fraction);
    EXPECT_EQ(c.state.inflight, expected[i].inflight);
    EXPECT_EQ(c.reason, expected[i].reason);
    ASSERT_TRUE(c.state.latency_ewma);
    EXPECT_DOUBLE_EQ(c.state.latency_ewma->count(), 950);
  }
  EXPECT_EQ(h.degrader.snapshot().evaluations, 7u);
}

TEST(LoadDegrader, Snapshot) {
  Harness h(both_signals());
  LoadDegradeSnapshot s = h.degrader.snapshot();
  EXPECT_STREQ(s.state, "normal");
  EXPECT_EQ(s.fraction, 0);
  EXPECT_FALSE(s.latency_ewma_ms);
  EXPECT_EQ(s.reason, "");

  h.degrader.record_latency(2, 950ms);
  h.step(kOver);
  h.step(kQuiet);
  s = h.degrader.snapshot();
  EXPECT_STREQ(s.state, "recovering");
  EXPECT_DOUBLE_EQ(s.fraction, 0.25);
  ASSERT_TRUE(s.latency_ewma_ms);
  EXPECT_DOUBLE_EQ(*s.latency_ewma_ms, 950);
  EXPECT_EQ(s.inflight, kQuiet);
  EXPECT_EQ(s.calm_intervals, 1u);
  EXPECT_EQ(s.evaluations, 2u);
  EXPECT_EQ(s.reason, "no primary latency samples, inflight 10 < 80");
}

TEST(LoadDegrader, DivertShareMatchesFraction) {
  Harness h(both_signals());
  h.step(kOver);
  ASSERT_DOUBLE_EQ(h.degrader.fraction(kOver), 0.25);
  // Evenly spread draws: exactly a quarter.
  constexpr int kDraws = 100'000;
  int diverted = 0;
  for (int i = 0; i < kDraws; ++i) diverted += h.degrader.divert(kOver, (i + 0.5) / kDraws);
  EXPECT_EQ(diverted, kDraws / 4);
  // Pseudo-random draws (fixed seed): within half a percent.
  FastRandom random(42);
  diverted = 0;
  for (int i = 0; i < kDraws; ++i) diverted += h.degrader.divert(kOver, random.next_double());
  EXPECT_NEAR(static_cast<double>(diverted) / kDraws, 0.25, 0.005);
  // The boundary: [0, fraction) is diverted.
  EXPECT_TRUE(h.degrader.divert(kOver, 0.2499));
  EXPECT_FALSE(h.degrader.divert(kOver, 0.25));
  EXPECT_EQ(h.degrader.snapshot().evaluations, 1u);  // no time passed while drawing
}

TEST(LoadDegrader, DisabledConfigNeverDivertsNorEvaluates) {
  Harness h(LoadDegradeConfig{});
  ASSERT_FALSE(h.degrader.enabled());
  h.degrader.record_latency(0, 10s);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.step(1'000'000), 0);
  EXPECT_FALSE(h.degrader.divert(1'000'000, 0.0));
  const LoadDegradeSnapshot s = h.degrader.snapshot();
  EXPECT_STREQ(s.state, "disabled");
  EXPECT_EQ(s.evaluations, 0u);
  EXPECT_FALSE(s.latency_ewma_ms);
  EXPECT_TRUE(h.changes.empty());
}

// ManualClock for several threads: readers may run while the test moves time. Reading it yields
// the processor, which widens the window between a caller seeing that the evaluation time has
// passed and claiming the evaluation: a claim that is not atomic shows up as a second step.
class SharedManualClock final : public Clock {
 public:
  TimePoint now() const override {
    std::this_thread::yield();
    return TimePoint(TimePoint::duration(ticks_.load(std::memory_order_acquire)));
  }
  void advance(std::chrono::nanoseconds d) {
    ticks_.fetch_add(std::chrono::duration_cast<TimePoint::duration>(d).count(),
                     std::memory_order_release);
  }

 private:
  std::atomic<TimePoint::rep> ticks_{std::chrono::duration_cast<TimePoint::duration>(1h).count()};
};

TEST(LoadDegrader, ConcurrentCallersEvaluateOnce) {
  constexpr int kThreads = 4;
  constexpr int kCallsEach = 2'000;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    SharedManualClock clock;
    std::atomic<int> hook_calls{0};
    LoadDegrader degrader(both_signals(), clock, kThreads,
                          [&](const LoadDegradeChange&) { hook_calls.fetch_add(1); });
    clock.advance(999'999'999ns);  // 1ns before the boundary

    std::latch before(kThreads + 1);
    std::latch go(kThreads + 1);
    std::atomic<int> early_diverts{0};
    std::atomic<int> wrong_after{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) {
          if (degrader.fraction(kOver) != 0) early_diverts.fetch_add(1);
          degrader.record_latency(t, 10ms);
        }
        before.arrive_and_wait();
        go.arrive_and_wait();  // all start together, right at the boundary
        for (int i = 0; i < kCallsEach; ++i) {
          degrader.record_latency(t, 10ms);
          const double f = degrader.fraction(kOver);
          // Before the single evaluation: 0; after it: 0.25; never a second step.
          if (f != 0 && f != 0.25) wrong_after.fetch_add(1);
        }
      });
    }
    before.arrive_and_wait();
    clock.advance(1ns);
    go.arrive_and_wait();
    for (auto& thread : threads) thread.join();

    EXPECT_EQ(early_diverts.load(), 0);
    EXPECT_EQ(wrong_after.load(), 0);
    EXPECT_EQ(hook_calls.load(), 1);
    EXPECT_DOUBLE_EQ(degrader.fraction(kOver), 0.25);
    EXPECT_EQ(degrader.snapshot().evaluations, 1u);
  }
}

}  // namespace
}  // namespace fusebox::degrade
