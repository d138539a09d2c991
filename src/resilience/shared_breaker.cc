#include "fusebox/resilience/shared_breaker.h"

namespace fusebox::resilience {

SharedBreaker::SharedBreaker(const config::CircuitBreakerConfig& config, const Clock& clock,
                             std::uint64_t seed)
    : random_(seed), breaker_(config, clock, random_) {
  published_.store(breaker_.state(), std::memory_order_release);
  breaker_.take_transitions();  // the configured starting mode is not a change
}

Admission SharedBreaker::try_acquire(std::vector<Transition>& transitions) {
  switch (state()) {
    case BreakerState::closed:
    case BreakerState::disabled:
      return {true, false};
    case BreakerState::forced_open:
      return {false, false};
    default:
      break;  // open (the period may be over), half_open (permits), metrics_only (shadow)
  }
  std::lock_guard lock(mutex_);
  auto admission = breaker_.try_acquire();
  transitions = publish_locked();  // open -> half_open happens here
  return admission;
}

void SharedBreaker::release(const Admission& admission) {
  if (!admission.probe) return;
  std::lock_guard lock(mutex_);
  breaker_.release(admission);
}

std::vector<Transition> SharedBreaker::record(const Admission& admission, CallOutcome outcome,
                                              std::chrono::nanoseconds latency,
                                              const EjectionGuard& guard) {
  if (state() == BreakerState::disabled) return {};
  std::lock_guard lock(mutex_);
  breaker_.record(admission, outcome, latency, guard);
  return publish_locked();
}

std::vector<Transition> SharedBreaker::on_health_check(bool passed) {
  std::lock_guard lock(mutex_);
  breaker_.on_health_check(passed);
  return publish_locked();
}

std::vector<Transition> SharedBreaker::set_operator_state(std::optional<BreakerState> state) {
  std::lock_guard lock(mutex_);
  breaker_.set_operator_state(state);
  return publish_locked();
}

WindowStats SharedBreaker::stats() const {
  std::lock_guard lock(mutex_);
  return breaker_.stats();
}

std::vector<Transition> SharedBreaker::publish_locked() {
  published_.store(breaker_.state(), std::memory_order_release);
  return breaker_.take_transitions();
}

}  // namespace fusebox::resilience
