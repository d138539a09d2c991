#pragma once
// Load-aware degradation (a route's `degrade_on_load`): past a threshold on the primary pool, a
// share of the route's requests goes straight to its first model tier (reason `overload`).
// next_state() is the pure policy, tested by tables; LoadDegrader applies it once per interval
// for all worker threads of a route.
//
// One step per evaluation interval (signals whose threshold is 0 are off and take no part):
// - any signal over its threshold (strictly greater)     -> share += step, capped at max_percent
// - every signal calm (below recover_ratio * threshold)   -> one more calm interval; after
//   recover_intervals of them in a row: share -= step, floored at 0, and the count restarts
// - otherwise (a signal in the hysteresis band)           -> hold; the calm count restarts
// The latency signal is the EWMA of the per-interval mean primary latency. An interval in which
// no primary call completed leaves the EWMA as it was and counts as calm for latency: at a 100%
// share there are no samples, and only a step down lets traffic probe the primary again.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"
#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::degrade {

using LatencyMs = std::chrono::duration<double, std::milli>;

// What the controller is doing; the names are those of /admin and the log line.
enum class LoadDegradePhase : std::uint8_t {
  normal,      // nothing diverted
  degrading,   // a signal was over its threshold: the share went up (or stays at the cap)
  holding,     // a signal is in the hysteresis band: the share stays
  recovering,  // every signal is calm: counting calm intervals, stepping the share down
};
const char* to_string(LoadDegradePhase phase);

// One signal's reading in the last interval.
enum class SignalLevel : std::uint8_t {
  off,         // threshold 0 (or never evaluated)
  no_samples,  // latency only: no primary call completed in the interval (counts as calm)
  calm,        // below recover_ratio * threshold
  band,        // between recover_ratio * threshold and the threshold (both included)
  over,        // above the threshold
};

// One evaluation interval as the data path saw it.
struct LoadObservation {
  std::uint64_t inflight = 0;             // requests in flight to the primary pool, now
  std::optional<LatencyMs> mean_latency;  // mean primary latency of the interval; none: no calls
};

struct LoadDegradeState {
  LoadDegradePhase phase = LoadDegradePhase::normal;
  double diverted_percent = 0;            // 0..max_percent
  std::uint32_t calm_intervals = 0;       // calm intervals in a row since the last step
  std::optional<LatencyMs> latency_ewma;  // none until the first primary sample
  // The last interval's readings: which signal decided, and its numbers (for the log line).
  std::uint64_t inflight = 0;
  SignalLevel latency_level = SignalLevel::off;
  SignalLevel inflight_level = SignalLevel::off;

  double fraction() const { return diverted_percent / 100.0; }
};

// The step of one evaluation interval. Pure. A disabled config gives the initial state.
LoadDegradeState next_state(const LoadDegradeState& state, const config::LoadDegradeConfig& config,
                            const LoadObservation& observation);

// Why the state is what it is, naming the signals that decided: "latency ewma 950ms > 800ms",
// "inflight 130 > 100" (degrading: the signals over), "inflight 90 between 80 and 100"
// (holding: the signals in the band), "latency ewma 500ms < 640ms, inflight 3 < 80" (calm).
// "" before the first evaluation.
std::string describe(const LoadDegradeState& state, const config::LoadDegradeConfig& config);

// Passed to the change hook whenever an evaluation changes the diverted share or the phase.
struct LoadDegradeChange {
  LoadDegradePhase from_phase = LoadDegradePhase::normal;
  LoadDegradePhase to_phase = LoadDegradePhase::normal;
  double from_fraction = 0;  // [0, 1]
  double to_fraction = 0;    // [0, 1]
  LoadDegradeState state;    // after the step, with the readings that decided
  std::string reason;        // describe(state, config)
};

// For /admin.
struct LoadDegradeSnapshot {
  const char* state = "disabled";         // to_string(phase), or "disabled" (config off)
  double fraction = 0;                    // diverted share, [0, 1]
  std::optional<double> latency_ewma_ms;  // none until the first primary sample
  std::uint64_t inflight = 0;             // at the last evaluation
  std::uint32_t calm_intervals = 0;
  std::uint64_t evaluations = 0;  // intervals evaluated since construction
  std::string reason;             // describe() of the last evaluation; "" before it
};

// The controller of one route, shared by all worker threads.
//
// Threading: record_latency() and fraction()/divert() may be called from any thread at any time.
// record_latency() is a relaxed add to the caller's own shard (no lock, no allocation, no throw).
// fraction() is an atomic load and a clock read; when the evaluation time has passed, exactly one
// caller (the one that wins a compare-and-swap on the next evaluation time) evaluates: it reads
// the shard totals, runs next_state(), publishes the share, and calls the change hook. While it
// evaluates no other caller can start an evaluation, so hooks never overlap and arrive in order.
// Intervals missed while idle count as one: the next evaluation is one interval after this one.
class LoadDegrader {
 public:
  // Called by the evaluating thread, once per change of share or phase; must not throw or block
  // (it runs on a worker thread: log asynchronously, set gauges, count).
  using ChangeHook = std::function<void(const LoadDegradeChange&)>;

  // `shards` >= 1: recording threads, each with its own shard index.
  LoadDegrader(const config::LoadDegradeConfig& config, const Clock& clock, std::size_t shards,
               ChangeHook on_change = {});

  LoadDegrader(const LoadDegrader&) = delete;
  LoadDegrader& operator=(const LoadDegrader&) = delete;

  // A completed primary-tier call's latency (negative counts as 0). shard < shards.
  void record_latency(std::size_t shard, std::chrono::nanoseconds latency) noexcept {
    if (!enabled_) return;
    // Count before sum, and the evaluation reads sum before count: a call racing an evaluation
    // may be counted in one interval and its latency summed in the next, but is never lost.
    latency_.add(shard, kCountCell);
    latency_.add(shard, kSumNsCell,
                 latency.count() > 0 ? static_cast<std::uint64_t>(latency.count()) : 0);
  }

  // The share of the route's requests to divert now, in [0, 1]; `inflight` is the number of
  // requests in flight to the primary pool (read by the evaluation, if this call runs one).
  // Always 0 when the config is disabled.
  double fraction(std::uint64_t inflight);

  // Whether to divert one request: `uniform01` is a uniform draw in [0, 1).
  bool divert(std::uint64_t inflight, double uniform01) { return uniform01 < fraction(inflight); }

  // Any thread; takes a lock shared only with the evaluating thread's publication.
  LoadDegradeSnapshot snapshot() const;

  bool enabled() const { return enabled_; }

 private:
  static constexpr std::size_t kCountCell = 0;
  static constexpr std::size_t kSumNsCell = 1;
  // next_evaluation_ns_ while a caller evaluates: no clock reading reaches it.
  static constexpr std::int64_t kEvaluating = INT64_MAX;

  void evaluate(TimePoint now, std::uint64_t inflight);
  std::optional<LatencyMs> take_interval_mean();

  const config::LoadDegradeConfig config_;
  const bool enabled_;
  const Clock& clock_;
  const ChangeHook on_change_;
  metrics::ShardedCounterArray latency_;  // per shard: calls, sum of latencies (ns); only grow

  std::atomic<std::int64_t> next_evaluation_ns_;  // clock epoch based; kEvaluating: busy
  std::atomic<double> fraction_{0};

  // Owned by the evaluating caller (exclusive through next_evaluation_ns_).
  LoadDegradeState state_;
  std::uint64_t taken_count_ = 0;  // shard totals already folded into an interval
  std::uint64_t taken_sum_ns_ = 0;

  mutable std::mutex published_mutex_;  // guards the two below
  LoadDegradeState published_;
  std::uint64_t evaluations_ = 0;
};

}  // namespace fusebox::degrade
