#include "fusebox/admission/adaptive_limit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace fusebox::admission {
namespace {

constexpr double kMinGradient = 0.5;
constexpr double kMaxGradient = 1.0;

AdaptiveLimitOptions sanitized(AdaptiveLimitOptions o) {
  o.min_limit = std::max<std::uint32_t>(o.min_limit, 1);
  o.max_limit = std::max(o.max_limit, o.min_limit);
  o.initial_limit = std::clamp(o.initial_limit, o.min_limit, o.max_limit);
  o.min_rtt_limit = std::clamp(o.min_rtt_limit, o.min_limit, o.max_limit);
  o.sample_percentile = std::clamp(o.sample_percentile, 0.0, 1.0);
  if (!(o.smoothing > 0) || o.smoothing > 1) o.smoothing = 1;
  o.max_samples = std::max<std::uint32_t>(o.max_samples, 1);
  o.min_samples = std::max<std::uint32_t>(o.min_samples, 1);
  o.min_rtt_samples = std::max<std::uint32_t>(o.min_rtt_samples, 1);
  return o;
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

}  // namespace

const char* to_string(AdaptivePhase phase) {
  switch (phase) {
    case AdaptivePhase::measuring_min_rtt:
      return "measuring_min_rtt";
    case AdaptivePhase::tracking:
      return "tracking";
  }
  return "unknown";
}

AdaptiveConcurrencyLimit::AdaptiveConcurrencyLimit(const AdaptiveLimitOptions& options)
    : options_(sanitized(options)), limit_(options_.initial_limit) {
  window_.reserve(options_.max_samples);
}

void AdaptiveConcurrencyLimit::record(std::chrono::nanoseconds latency, SampleKind kind) {
  latency = std::max(latency, std::chrono::nanoseconds(0));
  std::lock_guard lock(mutex_);
  if (window_.size() < options_.max_samples) {
    window_.push_back(latency);
  } else {
    window_[window_count_ % options_.max_samples] = latency;
  }
  ++window_count_;
  if (kind == SampleKind::dropped) ++window_drops_;
}

LimitUpdate AdaptiveConcurrencyLimit::update(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  LimitUpdate update;
  update.previous =
      phase_ == AdaptivePhase::measuring_min_rtt ? options_.min_rtt_limit : rounded_limit();
  update.apply = !options_.dry_run;
  std::string reason;
  const int percentile = static_cast<int>(std::lround(options_.sample_percentile * 100));

  if (phase_ == AdaptivePhase::measuring_min_rtt) {
    if (window_count_ >= options_.min_rtt_samples) {
      const auto count = window_count_;
      min_rtt_ = window_percentile();
      phase_ = AdaptivePhase::tracking;
      next_min_rtt_ = now + options_.min_rtt_interval;
      clear_window();
      reason =
          fmt::format("min rtt {:.1f}ms (p{} of {} samples at limit {}); limit back to {}",
                      ms(min_rtt_), percentile, count, options_.min_rtt_limit, rounded_limit());
    } else {
      reason = fmt::format("measuring min rtt at limit {}: {}/{} samples", options_.min_rtt_limit,
                           window_count_, options_.min_rtt_samples);
    }
  } else if (options_.min_rtt_interval.count() > 0 && now >= next_min_rtt_) {
    phase_ = AdaptivePhase::measuring_min_rtt;
    clear_window();
    reason = fmt::format("re-measuring min rtt (every {}s, was {:.1f}ms): limit pinned to {}",
                         options_.min_rtt_interval.count() / 1000.0, ms(min_rtt_),
                         options_.min_rtt_limit);
  } else if (window_count_ < options_.min_samples) {
    // The window stays open: a quiet route moves once it has enough samples.
    reason = fmt::format("limit {} held: {} samples < {}", rounded_limit(), window_count_,
                         options_.min_samples);
  } else {
    const std::chrono::nanoseconds sample = window_percentile();
    const double drop_share =
        static_cast<double>(window_drops_) / static_cast<double>(window_count_);
    const bool drops_back_off = options_.drop_ratio > 0 && drop_share >= options_.drop_ratio;
    double gradient = kMaxGradient;
    if (sample.count() > 0) {
      gradient = static_cast<double>(min_rtt_.count()) * options_.tolerance /
                 static_cast<double>(sample.count());
    }
    gradient = drops_back_off ? kMinGradient : std::clamp(gradient, kMinGradient, kMaxGradient);
    const double headroom = std::sqrt(limit_);
    const double target = limit_ * gradient + headroom;
    const double before = limit_;
    limit_ = std::clamp((1 - options_.smoothing) * limit_ + options_.smoothing * target,
                        static_cast<double>(options_.min_limit),
                        static_cast<double>(options_.max_limit));
    reason = fmt::format(
        "limit {} -> {}: p{} {:.1f}ms, min rtt {:.1f}ms x {:.2f}, gradient {:.2f}{}, headroom "
        "{:.1f}, drops {}/{}",
        static_cast<long>(std::lround(before)), rounded_limit(), percentile, ms(sample),
        ms(min_rtt_), options_.tolerance, gradient, drops_back_off ? " (drops)" : "", headroom,
        window_drops_, window_count_);
    clear_window();
  }

  update.phase = phase_;
  update.limit =
      phase_ == AdaptivePhase::measuring_min_rtt ? options_.min_rtt_limit : rounded_limit();
  update.reason = options_.dry_run ? "dry run: " + reason : std::move(reason);
  return update;
}

std::uint32_t AdaptiveConcurrencyLimit::limit() const {
  std::lock_guard lock(mutex_);
  return phase_ == AdaptivePhase::measuring_min_rtt ? options_.min_rtt_limit : rounded_limit();
}

std::chrono::nanoseconds AdaptiveConcurrencyLimit::min_rtt() const {
  std::lock_guard lock(mutex_);
  return min_rtt_;
}

AdaptivePhase AdaptiveConcurrencyLimit::phase() const {
  std::lock_guard lock(mutex_);
  return phase_;
}

std::chrono::nanoseconds AdaptiveConcurrencyLimit::window_percentile() {
  if (window_.empty()) return std::chrono::nanoseconds(0);
  const double rank = std::ceil(options_.sample_percentile * static_cast<double>(window_.size()));
  const auto index =
      static_cast<std::size_t>(std::clamp(rank - 1, 0.0, static_cast<double>(window_.size() - 1)));
  std::nth_element(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(index),
                   window_.end());
  return window_[index];
}

void AdaptiveConcurrencyLimit::clear_window() {
  window_.clear();
  window_count_ = 0;
  window_drops_ = 0;
}

std::uint32_t AdaptiveConcurrencyLimit::rounded_limit() const {
  return static_cast<std::uint32_t>(std::lround(limit_));
}

}  // namespace fusebox::admission
