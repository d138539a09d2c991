// Helpers declared next to the configuration structs.

#include "fusebox/config/config.h"

namespace fusebox::config {

std::string endpoint_label(const EndpointConfig& endpoint) {
  // A gRPC-only backend has no REST port: name it by the port it is reached on.
  const std::uint16_t port = endpoint.port != 0 ? endpoint.port : endpoint.grpc_port;
  return endpoint.address + ":" + std::to_string(port);
}

}  // namespace fusebox::config
