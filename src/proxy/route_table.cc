#include "fusebox/proxy/route_table.h"

namespace fusebox::proxy {

RouteTable::RouteTable(const config::Config& config) {
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const auto& model = config.routes[i].match.model;
    if (model == "*") {
      if (!wildcard_) wildcard_ = i;
    } else {
      exact_.emplace(model, i);
    }
  }
}

std::optional<std::size_t> RouteTable::find(std::string_view model) const {
  if (auto it = exact_.find(model); it != exact_.end()) return it->second;
  return wildcard_;
}

std::string servable_not_found(std::string_view model, std::optional<std::int64_t> version,
                               const std::optional<std::string>& label) {
  std::string which;
  if (version) {
    which = "Specific(" + std::string(model) + ", " + std::to_string(*version) + ")";
  } else if (label) {
    which = "Specific(" + std::string(model) + ", " + *label + ")";
  } else {
    which = "Latest(" + std::string(model) + ")";
  }
  return "Servable not found for request: " + which;
}

}  // namespace fusebox::proxy
