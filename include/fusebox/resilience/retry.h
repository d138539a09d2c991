#pragma once
// Pure arithmetic of retries: backoff delays, the retry budget, deadlines. No state, no I/O.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"

namespace fusebox::resilience {

// Exponential backoff with full jitter before retry number `retry` (1 = the first retry):
// uniform in [0, min(max, base * 2^(retry-1))). Never negative; `max` caps before the jitter.
std::chrono::milliseconds backoff_delay(const config::RetryConfig& config, std::uint32_t retry,
                                        Random& random);

// Whether one more retry may start in a pool with `active_requests` requests in flight, of
// which `retries_in_flight` are retries: retries in flight stay below
// max(min_concurrency, budget_percent% of active_requests).
bool retry_budget_allows(const config::RetryBudgetConfig& config, std::int64_t active_requests,
                         std::int64_t retries_in_flight);

// The deadline of a request arriving at `now`: the route's timeout, or the client's
// X-Fusebox-Timeout-Ms when given, capped at max_timeout (which defaults to the timeout).
// `client_timeout_ms` is the header's value as sent; nullopt when absent. Returns nullopt
// when the header is present but not a non-negative integer (the caller answers 400).
std::optional<TimePoint> request_deadline(const config::RouteConfig& route, TimePoint now,
                                          std::optional<std::string_view> client_timeout_ms);

// When one attempt must end: the per-try timeout from `now`, but never after the deadline.
TimePoint attempt_deadline(const config::RetryConfig& config, TimePoint now, TimePoint deadline);

// Whether an attempt's result may be retried at all (ignoring budget, attempts and deadline).
enum class AttemptFailure : std::uint8_t { connect_failure, reset, timeout, protocol_error, status };
bool retryable(const config::RetryOn& retry_on, AttemptFailure failure, unsigned status = 0);

// The primary's share of a request's deadline: all of it, or without route.fallback_reserve
// when the route has fallbacks (so they still have time to answer); never before `now`.
inline TimePoint primary_deadline(const config::RouteConfig& route, TimePoint deadline,
                                  TimePoint now) {
  if (route.fallbacks.empty()) return deadline;
  return std::max(now, deadline - route.fallback_reserve);
}

}  // namespace fusebox::resilience
