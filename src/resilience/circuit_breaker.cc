#include "fusebox/resilience/circuit_breaker.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace fusebox::resilience {
namespace {

using std::chrono::milliseconds;

BreakerState configured_state(config::BreakerMode mode) {
  switch (mode) {
    case config::BreakerMode::disabled:
      return BreakerState::disabled;
    case config::BreakerMode::metrics_only:
      return BreakerState::metrics_only;
    case config::BreakerMode::auto_:
      break;
  }
  return BreakerState::closed;
}

// Product first: 100.0 * 29 / 100 is exactly 29, while 29.0 / 100 * 100 is 28.999...
double percent_of(std::uint32_t part, std::uint32_t whole) {
  return whole == 0 ? 0.0 : 100.0 * part / whole;
}

}  // namespace

const char* to_string(BreakerState state) {
  switch (state) {
    case BreakerState::closed:
      return "closed";
    case BreakerState::open:
      return "open";
    case BreakerState::half_open:
      return "half_open";
    case BreakerState::forced_open:
      return "forced_open";
    case BreakerState::disabled:
      return "disabled";
    case BreakerState::metrics_only:
      return "metrics_only";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(const config::CircuitBreakerConfig& config, const Clock& clock,
                               Random& random)
    : config_(config), clock_(clock), random_(random), state_(configured_state(config.mode)) {}

bool CircuitBreaker::auto_mode() const {
  return state_ == BreakerState::closed || state_ == BreakerState::open ||
         state_ == BreakerState::half_open;
}

bool CircuitBreaker::machine_runs() const {
  return auto_mode() || state_ == BreakerState::metrics_only;
}

std::uint32_t CircuitBreaker::probe_limit() const {
  return std::max<std::uint32_t>(1, config_.half_open_max_calls);
}

Admission CircuitBreaker::try_acquire() {
  if (state_ == BreakerState::forced_open) return {};
  if (state_ == BreakerState::disabled) return {true, false};

  if (shadow_ == BreakerState::open && clock_.now() >= open_until_ &&
      (!config_.require_health_check || health_passed_since_open_)) {
    move_to(BreakerState::half_open, "open_period_elapsed");
  }
  // Dry run: the shadow machine decides nothing about admission.
  if (state_ == BreakerState::metrics_only) return {true, false};

  switch (shadow_) {
    case BreakerState::closed:
      return {true, false};
    case BreakerState::half_open:
      if (probes_in_flight_ >= probe_limit()) return {};
      ++probes_in_flight_;
      return {true, true, generation_};
    default:
      return {};
  }
}

void CircuitBreaker::release(const Admission& admission) {
  if (admission.probe && auto_mode() && shadow_ == BreakerState::half_open &&
      admission.generation == generation_ && probes_in_flight_ > 0) {
    --probes_in_flight_;
  }
}

void CircuitBreaker::record(const Admission& admission, CallOutcome outcome,
                            std::chrono::nanoseconds latency, const EjectionGuard& guard) {
  if (!admission.allowed || !machine_runs()) return;
  const bool current_probe = auto_mode() && shadow_ == BreakerState::half_open && admission.probe &&
                             admission.generation == generation_;
  if (current_probe && probes_in_flight_ > 0) --probes_in_flight_;
  if (outcome == CallOutcome::ignored) return;

  const bool failure = outcome == CallOutcome::failure;
  const bool slow = latency > config_.slow_call_duration;
  switch (shadow_) {
    case BreakerState::closed:
      record_closed(failure, slow, latency, guard);
      break;
    case BreakerState::half_open:
      if (current_probe || state_ == BreakerState::metrics_only) record_half_open(failure, slow, latency);
      break;
    default:
      break;  // open: calls admitted before it opened decide nothing
  }
}

void CircuitBreaker::record_closed(bool failure, bool slow, std::chrono::nanoseconds latency,
                                   const EjectionGuard& guard) {
  const TimePoint now = count_call(failure, slow, latency);
  if (config_.consecutive_failures > 0 && consecutive_failures_ >= config_.consecutive_failures) {
    trip("consecutive_failures", guard);
    return;
  }
  const WindowStats stats = stats_at(now);
  if (stats.calls < config_.minimum_calls) return;
  if (config_.failure_rate_percent > 0 &&
      stats.failure_rate_percent >= config_.failure_rate_percent) {
    trip("failure_rate", guard);
  } else if (config_.slow_call_rate_percent > 0 &&
             stats.slow_rate_percent >= config_.slow_call_rate_percent) {
    trip("slow_call_rate", guard);
  }
}

void CircuitBreaker::record_half_open(bool failure, bool slow,
                                      std::chrono::nanoseconds latency) {
  count_call(failure, slow, latency);
  if (failure) {
    ++trips_;
    enter_open("probe_failed");
  } else if (++probe_successes_ >= probe_limit()) {
    trips_ = 0;
    move_to(BreakerState::closed, "probes_succeeded");
  }
}

void CircuitBreaker::trip(const char* reason, const EjectionGuard& guard) {
  if (!guard.may_eject()) {
    // Stays closed and keeps counting: the next call that still meets a trigger asks again.
    transitions_.push_back(Transition{shadow_, shadow_, "ejection_cap", transition_stats(clock_.now())});
    return;
  }
  ++trips_;
  enter_open(reason);
}

void CircuitBreaker::enter_open(const char* reason) {
  const milliseconds period = next_open_period();
  open_until_ = clock_.now() + period;
  move_to(BreakerState::open, reason, period);
}

milliseconds CircuitBreaker::next_open_period() {
  const milliseconds cap = config_.max_open_duration;
  milliseconds period = std::max(config_.open_duration, milliseconds::zero());
  for (std::uint32_t trip = 1; trip < trips_ && period < cap && period.count() > 0; ++trip) {
    period *= 2;
  }
  period = std::min(period, cap);
  if (config_.open_jitter_percent > 0) {
    const double spread = config_.open_jitter_percent / 100.0;
    const double u = spread * (2.0 * random_.next_double() - 1.0);
    const long long jittered = std::llround(static_cast<double>(period.count()) * (1.0 + u));
    period = milliseconds(std::min<long long>(jittered, cap.count()));
  }
  return std::max(period, milliseconds::zero());
}

void CircuitBreaker::move_to(BreakerState to, std::string reason, milliseconds open_for) {
  transitions_.push_back(
      Transition{shadow_, to, std::move(reason), transition_stats(clock_.now()), open_for});
  shadow_ = to;
  if (auto_mode()) state_ = to;
  clear_counters();
  ++generation_;
  if (to == BreakerState::open) health_passed_since_open_ = false;
}

void CircuitBreaker::clear_counters() {
  window_.clear();
  window_failures_ = 0;
  window_slow_ = 0;
  consecutive_failures_ = 0;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
}

void CircuitBreaker::on_health_check(bool passed) {
  if (machine_runs() && shadow_ == BreakerState::open) health_passed_since_open_ = passed;
}

void CircuitBreaker::set_operator_state(std::optional<BreakerState> state) {
  BreakerState to = configured_state(config_.mode);
  if (state) {
    switch (*state) {
      case BreakerState::closed:
      case BreakerState::forced_open:
      case BreakerState::disabled:
      case BreakerState::metrics_only:
        to = *state;
        break;
      case BreakerState::open:
      case BreakerState::half_open:
        return;  // states of the automatic machine, not operator states
    }
  }
  transitions_.push_back(Transition{state_, to, "operator", transition_stats(clock_.now())});
  state_ = to;
  shadow_ = BreakerState::closed;
  clear_counters();
  trips_ = 0;
  ++generation_;
  open_until_ = {};
  health_passed_since_open_ = false;
}

TimePoint CircuitBreaker::count_call(bool failure, bool slow, std::chrono::nanoseconds latency) {
  const TimePoint now = clock_.now();  // one reading for the whole record
  expire_window(now);
  add_to_window(failure, slow, latency, now);
  consecutive_failures_ = failure ? consecutive_failures_ + 1 : 0;
  return now;
}

void CircuitBreaker::add_to_window(bool failure, bool slow, std::chrono::nanoseconds latency,
                                   TimePoint now) {
  window_.push_back(
      Call{now, failure, slow, std::chrono::duration_cast<std::chrono::microseconds>(latency)});
  window_failures_ += failure;
  window_slow_ += slow;
  if (config_.window_type == config::WindowType::count) {
    const std::size_t size = std::max<std::uint32_t>(1, config_.window_size);
    while (window_.size() > size) {
      window_failures_ -= window_.front().failure;
      window_slow_ -= window_.front().slow;
      window_.pop_front();
    }
  }
}

bool CircuitBreaker::expired(const Call& call, TimePoint now) const {
  return config_.window_type == config::WindowType::time &&
         now - call.at >= config_.window_duration;
}

void CircuitBreaker::expire_window(TimePoint now) {
  while (!window_.empty() && expired(window_.front(), now)) {
    window_failures_ -= window_.front().failure;
    window_slow_ -= window_.front().slow;
    window_.pop_front();
  }
}

WindowStats CircuitBreaker::stats_at(TimePoint now) const {
  WindowStats stats;
  stats.calls = static_cast<std::uint32_t>(window_.size());
  stats.failures = window_failures_;
  stats.slow_calls = window_slow_;
  // stats() is const: leave expired calls in place and just not count them.
  for (const Call& call : window_) {
    if (!expired(call, now)) break;
    --stats.calls;
    stats.failures -= call.failure;
    stats.slow_calls -= call.slow;
  }
  stats.consecutive_failures = consecutive_failures_;
  stats.failure_rate_percent = percent_of(stats.failures, stats.calls);
  stats.slow_rate_percent = percent_of(stats.slow_calls, stats.calls);
  return stats;
}

WindowStats CircuitBreaker::stats() const { return stats_at(clock_.now()); }

WindowStats CircuitBreaker::transition_stats(TimePoint now) const {
  WindowStats stats = stats_at(now);
  std::vector<std::chrono::microseconds> latencies;
  latencies.reserve(window_.size());
  for (const Call& call : window_) {
    if (!expired(call, now)) latencies.push_back(call.latency);
  }
  if (!latencies.empty()) {
    // Nearest-rank percentile: the smallest latency with at least 99% of calls at or below it.
    auto rank = (latencies.size() * 99 + 99) / 100;
    auto nth = latencies.begin() + static_cast<std::ptrdiff_t>(rank - 1);
    std::nth_element(latencies.begin(), nth, latencies.end());
    stats.p99_latency = *nth;
  }
  return stats;
}

std::vector<Transition> CircuitBreaker::take_transitions() {
  return std::exchange(transitions_, {});
}

}  // namespace fusebox::resilience
