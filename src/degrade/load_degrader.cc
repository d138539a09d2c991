#include "fusebox/degrade/load_degrader.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace fusebox::degrade {

const char* to_string(LoadDegradePhase phase) {
  switch (phase) {
    case LoadDegradePhase::normal:
      return "normal";
    case LoadDegradePhase::degrading:
      return "degrading";
    case LoadDegradePhase::holding:
      return "holding";
    case LoadDegradePhase::recovering:
      return "recovering";
  }
  return "normal";
}

namespace {

// Shares that do not add up exactly in binary (step 0.1) still come back to exactly 0.
constexpr double kZeroPercent = 1e-9;

SignalLevel classify(double value, double threshold, double recover_ratio) {
  if (value > threshold) return SignalLevel::over;
  if (value < recover_ratio * threshold) return SignalLevel::calm;
  return SignalLevel::band;
}

// Off and sample-less signals have no vote against recovery.
bool calm(SignalLevel level) { return level != SignalLevel::band && level != SignalLevel::over; }

LoadDegradePhase resting_phase(double percent, LoadDegradePhase active) {
  return percent > 0 ? active : LoadDegradePhase::normal;
}

// "950", "12.5": one decimal at most, none when it is 0.
std::string number(double value) {
  std::string text = fmt::format("{:.1f}", value);
  if (text.size() > 2 && text.compare(text.size() - 2, 2, ".0") == 0) text.resize(text.size() - 2);
  return text;
}

// One signal's reading as it appears in the reason: "<what> <value> <relation to thresholds>".
std::string reading(const char* what, double value, SignalLevel level, double threshold,
                    double recover_ratio, const char* unit) {
  const std::string v = number(value) + unit;
  const std::string high = number(threshold) + unit;
  const std::string low = number(recover_ratio * threshold) + unit;
  switch (level) {
    case SignalLevel::over:
      return fmt::format("{} {} > {}", what, v, high);
    case SignalLevel::band:
      return fmt::format("{} {} between {} and {}", what, v, low, high);
    case SignalLevel::calm:
      return fmt::format("{} {} < {}", what, v, low);
    case SignalLevel::off:
    case SignalLevel::no_samples:
      break;
  }
  return {};
}

std::int64_t nanoseconds_since_epoch(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

LoadDegradeState next_state(const LoadDegradeState& state, const config::LoadDegradeConfig& config,
                            const LoadObservation& observation) {
  if (!config.enabled()) return {};
  LoadDegradeState next = state;
  next.inflight = observation.inflight;
  if (observation.mean_latency) {
    const double alpha = config.latency_ewma_alpha;
    next.latency_ewma = state.latency_ewma
                            ? alpha * *observation.mean_latency + (1 - alpha) * *state.latency_ewma
                            : *observation.mean_latency;
  }

  const double ratio = config.recover_ratio;
  if (config.max_latency.count() == 0) {
    next.latency_level = SignalLevel::off;
  } else if (!observation.mean_latency) {
    next.latency_level = SignalLevel::no_samples;
  } else {
    next.latency_level =
        classify(next.latency_ewma->count(), LatencyMs(config.max_latency).count(), ratio);
  }
  next.inflight_level =
      config.max_inflight == 0
          ? SignalLevel::off
          : classify(static_cast<double>(observation.inflight), config.max_inflight, ratio);

  const double step = config.step_percent;
  if (next.latency_level == SignalLevel::over || next.inflight_level == SignalLevel::over) {
    next.diverted_percent = std::min(config.max_percent, state.diverted_percent + step);
    next.calm_intervals = 0;
    next.phase = LoadDegradePhase::degrading;
  } else if (calm(next.latency_level) && calm(next.inflight_level)) {
    // Nothing to recover at 0: the count starts with the first calm interval after a step up.
    next.calm_intervals = state.diverted_percent > 0 ? state.calm_intervals + 1 : 0;
    if (next.calm_intervals >= std::max<std::uint32_t>(config.recover_intervals, 1)) {
      next.diverted_percent = state.diverted_percent - step;
      if (next.diverted_percent < kZeroPercent) next.diverted_percent = 0;
      next.calm_intervals = 0;
    }
    next.phase = resting_phase(next.diverted_percent, LoadDegradePhase::recovering);
  } else {
    next.calm_intervals = 0;
    next.phase = resting_phase(next.diverted_percent, LoadDegradePhase::holding);
  }
  return next;
}

std::string describe(const LoadDegradeState& state, const config::LoadDegradeConfig& config) {
  const SignalLevel levels[] = {state.latency_level, state.inflight_level};
  // The signals that decided: those over, else those in the band, else all of them (calm).
  SignalLevel deciding = SignalLevel::calm;
  for (SignalLevel level : levels) {
    if (level == SignalLevel::over || (level == SignalLevel::band && deciding != SignalLevel::over))
      deciding = level;
  }
  const auto decided = [&](SignalLevel level) {
    return level != SignalLevel::off &&
           (deciding == SignalLevel::calm ? calm(level) : level == deciding);
  };

  std::string out;
  const auto append = [&out](const std::string& part) {
    if (!out.empty()) out += ", ";
    out += part;
  };
  if (decided(state.latency_level)) {
    if (state.latency_level == SignalLevel::no_samples || !state.latency_ewma) {
      append("no primary latency samples");
    } else {
      append(reading("latency ewma", state.latency_ewma->count(), state.latency_level,
                     LatencyMs(config.max_latency).count(), config.recover_ratio, "ms"));
    }
  }
  if (decided(state.inflight_level)) {
    append(reading("inflight", static_cast<double>(state.inflight), state.inflight_level,
                   config.max_inflight, config.recover_ratio, ""));
  }
  return out;
}

LoadDegrader::LoadDegrader(const config::LoadDegradeConfig& config, const Clock& clock,
                           std::size_t shards, ChangeHook on_change)
    : config_(config),
      enabled_(config.enabled()),
      clock_(clock),
      on_change_(std::move(on_change)),
      latency_(std::max<std::size_t>(shards, 1), 2),
      next_evaluation_ns_(nanoseconds_since_epoch(clock.now() + config.interval)) {}

double LoadDegrader::fraction(std::uint64_t inflight) {
  if (!enabled_) return 0;
  std::int64_t next = next_evaluation_ns_.load(std::memory_order_relaxed);
  const TimePoint now = clock_.now();
  // Acquire pairs with the release at the end of the previous evaluation: its state_ is ours.
  if (nanoseconds_since_epoch(now) >= next &&
      next_evaluation_ns_.compare_exchange_strong(next, kEvaluating, std::memory_order_acquire,
                                                  std::memory_order_relaxed)) {
    evaluate(now, inflight);
  }
  return fraction_.load(std::memory_order_relaxed);
}

std::optional<LatencyMs> LoadDegrader::take_interval_mean() {
  const std::uint64_t sum_ns = latency_.sum(kSumNsCell);
  const std::uint64_t count = latency_.sum(kCountCell);
  // Differences of growing totals; modulo 2^64, so a wrapped total still gives the interval.
  const std::uint64_t calls = count - taken_count_;
  // No call: a racing sum, if any, stays for the interval that counts its call.
  if (calls == 0) return std::nullopt;
  const std::uint64_t interval_sum_ns = sum_ns - taken_sum_ns_;
  taken_count_ = count;
  taken_sum_ns_ = sum_ns;
  return std::chrono::duration<double, std::nano>(static_cast<double>(interval_sum_ns) /
                                                  static_cast<double>(calls));
}

void LoadDegrader::evaluate(TimePoint now, std::uint64_t inflight) {
  const LoadDegradeState before = state_;
  state_ = next_state(state_, config_, LoadObservation{inflight, take_interval_mean()});
  fraction_.store(state_.fraction(), std::memory_order_relaxed);
  {
    std::lock_guard lock(published_mutex_);
    published_ = state_;
    ++evaluations_;
  }
  const bool changed =
      state_.phase != before.phase || state_.diverted_percent != before.diverted_percent;
  if (changed && on_change_) {
    on_change_(LoadDegradeChange{before.phase, state_.phase, before.fraction(), state_.fraction(),
                                 state_, describe(state_, config_)});
  }
  // Idle intervals are not caught up: the next evaluation is one interval from now. Releasing
  // the time also ends this caller's exclusive hold on state_.
  next_evaluation_ns_.store(nanoseconds_since_epoch(now + config_.interval),
                            std::memory_order_release);
}

LoadDegradeSnapshot LoadDegrader::snapshot() const {
  LoadDegradeState state;
  LoadDegradeSnapshot out;
  {
    std::lock_guard lock(published_mutex_);
    state = published_;
    out.evaluations = evaluations_;
  }
  out.state = enabled_ ? to_string(state.phase) : "disabled";
  out.fraction = state.fraction();
  if (state.latency_ewma) out.latency_ewma_ms = state.latency_ewma->count();
  out.inflight = state.inflight;
  out.calm_intervals = state.calm_intervals;
  out.reason = describe(state, config_);
  return out;
}

}  // namespace fusebox::degrade
