#include "fusebox/resilience/retry.h"

#include <algorithm>
#include <cstdint>

namespace fusebox::resilience {

using std::chrono::milliseconds;

// The ceiling doubles per retry until it reaches backoff_max; one draw when it is positive.
// The delay is floor(ceiling * next_double()) milliseconds, so always below the ceiling.
milliseconds backoff_delay(const config::RetryConfig& config, std::uint32_t retry, Random& random) {
  const milliseconds max = std::max(config.backoff_max, milliseconds::zero());
  milliseconds ceiling = std::max(config.backoff_base, milliseconds::zero());
  for (std::uint32_t n = 1; n < retry && ceiling < max && ceiling.count() > 0; ++n) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  if (ceiling.count() <= 0) return milliseconds::zero();
  const auto delay =
      static_cast<milliseconds::rep>(random.next_double() * static_cast<double>(ceiling.count()));
  return milliseconds(std::clamp<milliseconds::rep>(delay, 0, ceiling.count() - 1));
}

// Envoy's rule: a retry may start while fewer than the limit are in flight, so that at most
// `limit` run at once: retries_in_flight + 1 <= max(min_concurrency, budget% of active).
bool retry_budget_allows(const config::RetryBudgetConfig& config, std::int64_t active_requests,
                         std::int64_t retries_in_flight) {
  const double share = static_cast<double>(std::max<std::int64_t>(active_requests, 0)) *
                       config.budget_percent / 100.0;
  const double limit = std::max(static_cast<double>(config.min_concurrency), share);
  return static_cast<double>(std::max<std::int64_t>(retries_in_flight, 0)) + 1 <= limit;
}

std::optional<TimePoint> request_deadline(const config::RouteConfig& route, TimePoint now,
                                          std::optional<std::string_view> client_timeout_ms) {
  if (!client_timeout_ms) return now + route.timeout;
  const std::string_view text = *client_timeout_ms;
  // At most 10 digits: the value fits easily in 64 bits, and no sign, space or fraction.
  if (text.empty() || text.size() > 10) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  const milliseconds cap =
      route.max_timeout > milliseconds::zero() ? route.max_timeout : route.timeout;
  const auto cap_ms = static_cast<std::uint64_t>(std::max<milliseconds::rep>(cap.count(), 0));
  return now + milliseconds(static_cast<milliseconds::rep>(std::min(value, cap_ms)));
}

TimePoint attempt_deadline(const config::RetryConfig& config, TimePoint now, TimePoint deadline) {
  if (config.per_try_timeout <= milliseconds::zero()) return deadline;
  return std::min(now + config.per_try_timeout, deadline);
}

bool retryable(const config::RetryOn& retry_on, AttemptFailure failure, unsigned status) {
  switch (failure) {
    case AttemptFailure::connect_failure:
      return retry_on.connect_failure;
    case AttemptFailure::reset:
      return retry_on.reset;
    case AttemptFailure::timeout:
      return retry_on.timeout;
    case AttemptFailure::protocol_error:
      return false;
    case AttemptFailure::status:
      return std::find(retry_on.statuses.begin(), retry_on.statuses.end(), status) !=
             retry_on.statuses.end();
  }
  return false;
}

}  // namespace fusebox::resilience
