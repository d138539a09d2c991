#include "fusebox/admission/priority.h"

#include <algorithm>

namespace fusebox::admission {

std::optional<Priority> parse_priority(std::string_view value) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  if (value.size() != 1 || value[0] < '0' || value[0] > '9') return std::nullopt;
  return static_cast<Priority>(value[0] - '0');
}

ResolvedPriority resolve_priority(Priority route_default, std::optional<Priority> identity_class,
                                  std::optional<std::string_view> header) {
  ResolvedPriority resolved;
  const Priority trusted = identity_class ? *identity_class : route_default;
  resolved.priority = std::min(trusted, kLowestPriority);
  if (!header) return resolved;
  const std::optional<Priority> requested = parse_priority(*header);
  if (!requested) {
    resolved.header_rejected = true;
  } else if (*requested > resolved.priority) {
    resolved.priority = *requested;
    resolved.header_lowered = true;
  }
  return resolved;
}

}  // namespace fusebox::admission
