#pragma once
// Which client metadata a gRPC call carries upstream (listeners.grpc.metadata).

#include <string>
#include <string_view>
#include <vector>

namespace fusebox::rpc {

// Metadata that belongs to one hop, or that fusebox sets itself: never copied as it came.
bool is_hop_metadata(std::string_view key);

// True when `key` equals one of `patterns` or starts with one that ends in '*'.
bool metadata_matches(const std::vector<std::string>& patterns, std::string_view key);

// The forwarding rule: not hop metadata, allowed (every key when `allow` is empty), not denied.
bool forwards_metadata(const std::vector<std::string>& allow, const std::vector<std::string>& deny,
                       std::string_view key);

}  // namespace fusebox::rpc
