#include "fusebox/common/address.h"

namespace fusebox {

std::string host_port(std::string_view host, std::uint16_t port) {
  const bool ipv6_literal = host.find(':') != std::string_view::npos && !host.starts_with('[');
  std::string out;
  out.reserve(host.size() + 8);
  if (ipv6_literal) out += '[';
  out += host;
  if (ipv6_literal) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

}  // namespace fusebox
