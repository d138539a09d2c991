#pragma once
// The circuit breaker of one backend: a pure, single-threaded state machine with an injected
// clock and random source. The data path shares one per backend between worker threads through
// resilience::SharedBreaker (atomic state for the common "closed" check, a per-backend lock
// for recording), never through a global lock.
//
//   closed --(consecutive failures | failure rate | slow-call rate, guard permits)--> open
//   open --(open period over [and a passing health check, if required])--> half_open
//   half_open --(K successes)--> closed;  half_open --(any failure)--> open (period doubles)
//
// Operator states: forced_open (rejects all), disabled (admits all, records nothing),
// metrics_only (computes and reports transitions, admits all).
//
// Details the diagram leaves open:
// - Open period: min(max_open_duration, open_duration * 2^(trips-1)), then times (1 + u) with
//   u = j * (2 * random.next_double() - 1), j = open_jitter_percent / 100, rounded to the
//   nearest millisecond and capped again at max_open_duration (no draw when j is 0).
// - Rates compare 100.0 * count / calls (product first, so 29 of 100 is exactly 29%) with >=.
//   Trigger order when several hold: consecutive_failures, failure_rate, slow_call_rate.
// - Time window: a call expires once now - its time >= window_duration.
// - Half-open: only probes of the current half-open period count; results of calls admitted
//   before the breaker opened are ignored while open or half-open. Probe results enter the
//   (cleared) window so the transition that ends half-open reports them. A slow probe success
//   is a success. half_open_max_calls 0 behaves as 1.
// - require_health_check: the latest on_health_check() since opening must be a pass (a later
//   failure withdraws an earlier pass).
// - metrics_only: admits everything and never hands out probes. The shadow machine moves to
//   half_open in try_acquire() once the period (and health check) allow, and in half_open
//   every counted call is a "probe": K successes close it, any failure re-opens it. Trips
//   still ask the EjectionGuard, so "ejection_cap" is reported as it would happen.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"

namespace fusebox::resilience {

// Numeric values are those of fusebox_circuit_breaker_state.
enum class BreakerState : std::uint8_t {
  closed = 0,
  open = 1,
  half_open = 2,
  forced_open = 3,
  disabled = 4,
  metrics_only = 5,
};
const char* to_string(BreakerState state);

// What the breaker was told about one finished call.
enum class CallOutcome : std::uint8_t {
  success,  // counts as a good call (may still be slow)
  failure,  // connect failure, reset, timeout or a failure status
  ignored,  // not the backend's fault (client error, cancelled hedge): not counted at all
};

// Window statistics at the time of a transition, for the log line.
struct WindowStats {
  std::uint32_t calls = 0;
  std::uint32_t failures = 0;
  std::uint32_t slow_calls = 0;
  std::uint32_t consecutive_failures = 0;
  double failure_rate_percent = 0;
  double slow_rate_percent = 0;
  // 99th percentile latency of the calls in the window; filled in for transitions only (it
  // costs a selection over the window).
  std::chrono::microseconds p99_latency{0};
};

struct Transition {
  BreakerState from;
  BreakerState to;
  std::string reason;       // "consecutive_failures", "failure_rate", "slow_call_rate",
                            // "open_period_elapsed", "probe_failed", "probes_succeeded",
                            // "operator", "ejection_cap" (a trip the guard refused: from == to)
  WindowStats stats;
  std::chrono::milliseconds open_for{0};  // when `to` is open: how long it stays open
};

// Asked before the breaker opens: may this backend be ejected now? (max_ejection_percent)
class EjectionGuard {
 public:
  virtual ~EjectionGuard() = default;
  virtual bool may_eject() const = 0;
};

// A permission to send one call, returned by try_acquire(). Half-open probes hold a permit.
struct Admission {
  bool allowed = false;
  bool probe = false;  // a half-open probe: its result decides the state
  // Which half-open period issued the probe: a probe that outlives its period (the breaker
  // re-opened meanwhile) frees no slot and decides nothing in a later one.
  std::uint64_t generation = 0;
};

class CircuitBreaker {
 public:
  CircuitBreaker(const config::CircuitBreakerConfig& config, const Clock& clock, Random& random);

  // Whether a call may be sent now. In open state, moves to half_open when the open period has
  // passed (and, with require_health_check, a passing probe was reported since it opened).
  // In half_open, admits at most half_open_max_calls concurrent probes.
  Admission try_acquire();
  // An admitted call that was not sent after all (another backend was chosen).
  void release(const Admission& admission);
  // Records the result of an admitted call. `latency` decides slow calls.
  void record(const Admission& admission, CallOutcome outcome, std::chrono::nanoseconds latency,
              const EjectionGuard& guard);
  // Active health check results (for require_health_check).
  void on_health_check(bool passed);

  // Operator control: forced_open, disabled, metrics_only or closed (auto mode, reset);
  // nullopt ("auto") returns to the configured mode, closed. Every call resets the automatic
  // machine (window, counters, trips) and reports one "operator" transition. open and
  // half_open are not operator states and are ignored.
  void set_operator_state(std::optional<BreakerState> state);

  BreakerState state() const { return state_; }
  // The automatic machine's state: state() in auto mode; in metrics_only what the breaker
  // would be; closed while forced_open or disabled (the machine is reset and idle).
  BreakerState shadow_state() const { return shadow_; }
  WindowStats stats() const;
  std::uint32_t consecutive_trips() const { return trips_; }

  // Transitions since the last call, oldest first (for logs and metrics).
  std::vector<Transition> take_transitions();

 private:
  struct Call {
    TimePoint at;
    bool failure;
    bool slow;
    std::chrono::microseconds latency{0};
  };
  // Counts a finished call in the window and the consecutive failures; returns the time it
  // was counted at (the clock is read once per record).
  TimePoint count_call(bool failure, bool slow, std::chrono::nanoseconds latency);
  void add_to_window(bool failure, bool slow, std::chrono::nanoseconds latency, TimePoint now);
  WindowStats transition_stats(TimePoint now) const;  // stats_at() plus the window's p99
  void expire_window(TimePoint now);  // drops the calls a time window no longer holds at `now`
  void trip(const char* reason, const EjectionGuard& guard);
  void move_to(BreakerState to, std::string reason, std::chrono::milliseconds open_for = {});
  std::chrono::milliseconds next_open_period();

  bool auto_mode() const;               // state_ follows shadow_ (no operator or dry-run mode)
  bool machine_runs() const;            // auto or metrics_only: the automatic machine sees calls
  void enter_open(const char* reason);  // trips_ already counts this trip
  void clear_counters();
  void record_closed(bool failure, bool slow, std::chrono::nanoseconds latency,
                     const EjectionGuard& guard);
  void record_half_open(bool failure, bool slow, std::chrono::nanoseconds latency);
  std::uint32_t probe_limit() const;
  bool expired(const Call& call, TimePoint now) const;
  WindowStats stats_at(TimePoint now) const;

  config::CircuitBreakerConfig config_;
  const Clock& clock_;
  Random& random_;
  BreakerState state_ = BreakerState::closed;   // what admission obeys
  BreakerState shadow_ = BreakerState::closed;  // the automatic state machine's state
  std::deque<Call> window_;
  std::uint32_t window_failures_ = 0;
  std::uint32_t window_slow_ = 0;
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t trips_ = 0;                     // consecutive trips without closing
  TimePoint open_until_{};
  bool health_passed_since_open_ = false;
  std::uint32_t probes_in_flight_ = 0;
  std::uint32_t probe_successes_ = 0;
  std::uint64_t generation_ = 0;                // bumped on every state change
  std::vector<Transition> transitions_;
};

}  // namespace fusebox::resilience
