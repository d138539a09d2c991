#pragma once
// Model name -> route. Built once per config snapshot, read-only afterwards (any thread).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fusebox/config/config.h"

namespace fusebox::proxy {

class RouteTable {
 public:
  explicit RouteTable(const config::Config& config);
  // Index into config.routes of the route for `model`: an exact match first, then "*".
  std::optional<std::size_t> find(std::string_view model) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> exact_;
  std::optional<std::size_t> wildcard_;
};

// TF Serving's message for a model it does not serve, for REST and gRPC alike:
// "Servable not found for request: Latest(m)", "... Specific(m, 3)", "... Specific(m, label)".
std::string servable_not_found(std::string_view model, std::optional<std::int64_t> version,
                               const std::optional<std::string>& label);

}  // namespace fusebox::proxy
