#include "fusebox/rpc/metadata_policy.h"

namespace fusebox::rpc {

bool is_hop_metadata(std::string_view key) {
  return key.empty() || key.front() == ':' || key.starts_with("grpc-") || key == "content-type" ||
         key == "te" || key == "user-agent" || key == "host" || key == "x-request-id" ||
         key == "traceparent" || key == "x-fusebox-timeout-ms";
}

bool metadata_matches(const std::vector<std::string>& patterns, std::string_view key) {
  for (const auto& pattern : patterns) {
    std::string_view p(pattern);
    if (p.ends_with('*') ? key.starts_with(p.substr(0, p.size() - 1)) : key == p) return true;
  }
  return false;
}

bool forwards_metadata(const std::vector<std::string>& allow, const std::vector<std::string>& deny,
                       std::string_view key) {
  if (is_hop_metadata(key)) return false;
  if (!allow.empty() && !metadata_matches(allow, key)) return false;
  return !metadata_matches(deny, key);
}

}  // namespace fusebox::rpc
