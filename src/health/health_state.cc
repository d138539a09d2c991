// Threshold logic of one backend's active health checks. Pure: no clock, no sockets; the
// random source for the jitter is passed in.

#include <algorithm>
#include <cmath>

#include "fusebox/health/health_checker.h"

namespace fusebox::health {

namespace {
// A threshold of 0 would mean "change status without evidence"; treat it as 1.
std::uint32_t at_least_one(std::uint32_t threshold) {
  return std::max<std::uint32_t>(threshold, 1);
}
}  // namespace

bool HealthState::on_probe(ProbeResult result) {
  const HealthStatus before = status_;
  const std::uint32_t healthy_threshold = at_least_one(config_.healthy_threshold);
  const std::uint32_t unhealthy_threshold = at_least_one(config_.unhealthy_threshold);

  if (result == ProbeResult::passed) {
    failures_ = 0;
    passes_ = std::min(passes_ + 1, healthy_threshold);  // saturates: only ">= threshold" matters
    // The first check decides at once (as Envoy does at start-up): a gateway that just started
    // should not wait healthy_threshold intervals to route to a replica that is fine.
    if (status_ == HealthStatus::unknown ||
        (status_ != HealthStatus::healthy && passes_ >= healthy_threshold)) {
      status_ = HealthStatus::healthy;
    }
  } else if (result == ProbeResult::version_mismatch) {
    // A wrong model version must not serve a single request more: no threshold. Failures are
    // counted afresh from here, so a mismatching backend that then stops answering is reported
    // unhealthy only after unhealthy_threshold real failures.
    passes_ = 0;
    failures_ = 0;
    status_ = HealthStatus::version_mismatch;
  } else {
    passes_ = 0;
    failures_ = std::min(failures_ + 1, unhealthy_threshold);
    if (status_ == HealthStatus::unknown ||
        (status_ != HealthStatus::unhealthy && failures_ >= unhealthy_threshold)) {
      status_ = HealthStatus::unhealthy;
    }
  }
  return status_ != before;
}

std::chrono::milliseconds HealthState::next_delay(Random& random) const {
  const auto base =
      status_ == HealthStatus::healthy ? config_.interval : config_.unhealthy_interval;
  double factor = 1.0;
  const double jitter = std::clamp(config_.jitter_percent, 0.0, 100.0) / 100.0;
  if (jitter > 0) factor += (2.0 * random.next_double() - 1.0) * jitter;  // in [1-j, 1+j)
  const auto ms =
      static_cast<std::int64_t>(std::llround(static_cast<double>(base.count()) * factor));
  return std::chrono::milliseconds(std::max<std::int64_t>(ms, 1));
}

const char* to_string(HealthStatus status) {
  switch (status) {
    case HealthStatus::unknown:
      return "unknown";
    case HealthStatus::healthy:
      return "healthy";
    case HealthStatus::unhealthy:
      return "unhealthy";
    case HealthStatus::version_mismatch:
      return "version_mismatch";
  }
  return "invalid";
}

}  // namespace fusebox::health
