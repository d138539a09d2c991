#pragma once
// The adaptive concurrency limit of one route: the limit follows the upstream latency, in the
// gradient style of Envoy's adaptive concurrency filter and Netflix's concurrency-limits.
//
// Two phases:
// - measuring_min_rtt: the limit is pinned to min_rtt_limit so queues at the backends drain,
//   until min_rtt_samples latencies have arrived; their sample_percentile becomes the baseline
//   (the "minimum RTT": what a request costs when the backends are not congested). The limit
//   then returns to where it was. This runs at start and again every min_rtt_interval, so the
//   baseline follows a backend that became faster or slower for good (new model, new hardware).
// - tracking: every update() with at least min_samples latencies in the window:
//     sample   = sample_percentile of the window's latencies
//     gradient = clamp(baseline * tolerance / sample, 0.5, 1.0)   (0.5 if drops are frequent)
//     target   = limit * gradient + sqrt(limit)                   (the headroom lets it grow)
//     limit    = (1 - smoothing) * limit + smoothing * target, within [min_limit, max_limit]
//   At latencies up to tolerance * baseline the limit grows (by smoothing * sqrt(limit) per
//   update); above, it falls towards 1 / (1 - gradient)^2 (16 at twice the tolerated latency).
//   Fewer samples than min_samples hold the limit (a quiet route keeps what it had).
//
// dry_run: the controller computes exactly the same; LimitUpdate::apply is false and the reason
// starts with "dry run: ". The integrator then only reports the limit (gauge, log line) and
// keeps the configured static limit on the gate. The latencies it sees come from the static
// limit, so the numbers show what the controller would do from there, not a closed loop (and
// the min-RTT phase pins nothing, so its baseline may read high under load).
//
// Threading: record() and update() may be called from any thread; one mutex per controller
// guards the window (record() is a store into a preallocated ring under it).

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace fusebox::admission {

struct AdaptiveLimitOptions {
  std::uint32_t initial_limit = 20;
  std::uint32_t min_limit = 2;    // >= 1
  std::uint32_t max_limit = 500;  // >= min_limit
  // Which percentile of a window's latencies is its sample (0.5: the median), in (0, 1].
  double sample_percentile = 0.5;
  // Latency up to baseline * tolerance counts as uncongested (gradient 1).
  double tolerance = 1.5;
  // Weight of the new target per update, in (0, 1]; 1: no smoothing.
  double smoothing = 0.2;
  // A window with at least this share of drops (timeouts, overload answers) backs off at the
  // minimum gradient 0.5 whatever the latency; 0 disables.
  double drop_ratio = 0.05;
  std::uint32_t min_samples = 20;    // per window, to move the limit
  std::uint32_t max_samples = 1000;  // window storage (the most recent are kept)
  std::chrono::milliseconds min_rtt_interval{60'000};
  std::uint32_t min_rtt_samples = 50;
  std::uint32_t min_rtt_limit = 3;  // the pinned limit while measuring (clamped to the bounds)
  bool dry_run = false;
};

enum class AdaptivePhase : std::uint8_t { measuring_min_rtt, tracking };
const char* to_string(AdaptivePhase phase);

enum class SampleKind : std::uint8_t {
  ok,       // a completed upstream call (any answer the backend gave in time)
  dropped,  // timed out or refused for overload: also a latency (until it gave up) and a drop
};

struct LimitUpdate {
  std::uint32_t limit = 0;     // the limit to set on the gate (unless !apply)
  std::uint32_t previous = 0;  // the limit before this update
  AdaptivePhase phase = AdaptivePhase::measuring_min_rtt;
  bool apply = true;  // false in dry_run
  // The numbers behind it, for the log line, e.g. "limit 40 -> 46: p50 10.0ms, min rtt 10.0ms
  // x 1.50, gradient 1.00, headroom 6.3, drops 0/120".
  std::string reason;
  bool changed() const { return limit != previous; }
};

class AdaptiveConcurrencyLimit {
 public:
  // Starts measuring the baseline; the first update() after min_rtt_samples arrive ends it.
  explicit AdaptiveConcurrencyLimit(const AdaptiveLimitOptions& options);

  // One finished upstream call. Negative latencies count as 0.
  void record(std::chrono::nanoseconds latency, SampleKind kind = SampleKind::ok);

  // Once per interval (e.g. every second, on a timer): consumes the window and returns the
  // limit to apply. `now` schedules the periodic baseline re-measure.
  LimitUpdate update(std::chrono::steady_clock::time_point now);

  std::uint32_t limit() const;
  // The baseline; zero before the first measurement ends.
  std::chrono::nanoseconds min_rtt() const;
  AdaptivePhase phase() const;

 private:
  // The caller holds mutex_.
  std::chrono::nanoseconds window_percentile();
  void clear_window();
  std::uint32_t rounded_limit() const;

  const AdaptiveLimitOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::chrono::nanoseconds> window_;  // ring of the most recent max_samples
  std::uint64_t window_count_ = 0;                // recorded since the window opened
  std::uint64_t window_drops_ = 0;
  AdaptivePhase phase_ = AdaptivePhase::measuring_min_rtt;
  double limit_;  // tracking limit (kept while measuring)
  std::chrono::nanoseconds min_rtt_{0};
  std::chrono::steady_clock::time_point next_min_rtt_{};
};

}  // namespace fusebox::admission
