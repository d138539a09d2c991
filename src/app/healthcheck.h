#pragma once
// `fusebox healthcheck`: one HTTP GET to fusebox's admin listener, for container health checks
// (the image needs no curl). Exit status 0 when the answer is 200, 1 otherwise.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusebox::app {

struct ProbeTarget {
  std::string host;
  std::uint16_t port = 0;
  std::string path;
};

// "http://HOST:PORT/PATH" (HOST may be a [v6] literal; PATH defaults to /readyz); nullopt when
// the text is not such a URL.
std::optional<ProbeTarget> parse_probe_url(std::string_view url);

struct ProbeResult {
  bool ok = false;          // the answer was 200
  std::string description;  // "200 OK from http://...", or what went wrong
};

// Connects, sends GET, reads the answer, all within `timeout`. Never throws.
ProbeResult probe(const ProbeTarget& target, std::chrono::milliseconds timeout);

}  // namespace fusebox::app
