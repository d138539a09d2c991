#pragma once
// Addresses as they are written in URLs, gRPC targets and log lines.

#include <cstdint>
#include <string>
#include <string_view>

namespace fusebox {

// "host:port", with an IPv6 literal in brackets ("[::1]:8500"); an already bracketed literal
// is kept as it is.
std::string host_port(std::string_view host, std::uint16_t port);

}  // namespace fusebox
