#pragma once
// Request priority: 0 is the most important, kLowestPriority the least. Where a request's
// priority comes from, in order of trust:
//   1. the route's default (`route_default`),
//   2. the authenticated identity's class (API key or JWT claim), which replaces the route's,
//   3. the client's `X-Fusebox-Priority` header, which may only LOWER it (a larger number):
//      a client can volunteer to wait, never promote itself.
// Pure functions; any thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace fusebox::admission {

using Priority = std::uint8_t;
inline constexpr Priority kHighestPriority = 0;
inline constexpr Priority kLowestPriority = 9;
inline constexpr std::size_t kPriorityLevels = kLowestPriority + 1;

// The header a client may use to lower its priority.
inline constexpr std::string_view kPriorityHeader = "X-Fusebox-Priority";

struct ResolvedPriority {
  Priority priority = kLowestPriority;
  // The header was present but not a single digit 0-9 (after trimming spaces and tabs): it was
  // ignored. The caller counts it (and may log it at debug); the request is not refused for it.
  bool header_rejected = false;
  // The header lowered the priority (it named a larger number than the trusted one).
  bool header_lowered = false;
};

// A header value as a priority: exactly one digit 0-9, optionally surrounded by spaces or tabs
// (HTTP optional whitespace). nullopt for anything else ("", "10", "-1", "+3", "3a", "٣").
std::optional<Priority> parse_priority(std::string_view value);

// The effective priority of a request. `route_default` and `identity_class` above
// kLowestPriority are treated as kLowestPriority. `header`: nullopt when absent.
ResolvedPriority resolve_priority(Priority route_default, std::optional<Priority> identity_class,
                                  std::optional<std::string_view> header);

}  // namespace fusebox::admission
