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

}  // namespace fusebox::proxy
