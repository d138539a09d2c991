#pragma once
// A backend's circuit breaker as the worker threads share it. The published state is an atomic,
// so the common case (closed, disabled, metrics_only: admit) takes no lock; everything else
// (recording a result, open/half-open admission) takes this backend's own lock, held for a few
// hundred nanoseconds. No lock is shared between backends or taken per request globally.

#include <atomic>
#include <mutex>
#include <vector>

#include "fusebox/resilience/circuit_breaker.h"

namespace fusebox::resilience {

class SharedBreaker {
 public:
  SharedBreaker(const config::CircuitBreakerConfig& config, const Clock& clock,
                std::uint64_t seed);

  // Whether a call may go to this backend now; transitions it caused (open -> half_open) are
  // appended to `transitions`.
  Admission try_acquire(std::vector<Transition>& transitions);
  void release(const Admission& admission);
  // Records an admitted call; returns the transitions it caused (to log and count).
  std::vector<Transition> record(const Admission& admission, CallOutcome outcome,
                                 std::chrono::nanoseconds latency, const EjectionGuard& guard);
  std::vector<Transition> on_health_check(bool passed);
  std::vector<Transition> set_operator_state(std::optional<BreakerState> state);

  // Lock-free reads (any thread).
  BreakerState state() const { return published_.load(std::memory_order_acquire); }
  // True when this backend counts as ejected for max_ejection_percent.
  bool ejected() const {
    auto s = state();
    return s == BreakerState::open || s == BreakerState::forced_open;
  }
  WindowStats stats() const;

 private:
  std::vector<Transition> publish_locked();

  mutable std::mutex mutex_;
  FastRandom random_;
  CircuitBreaker breaker_;
  std::atomic<BreakerState> published_{BreakerState::closed};
};

}  // namespace fusebox::resilience
