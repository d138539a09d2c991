#pragma once
// tfs-sim command line. Pure: parsing never prints or exits; main() does.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/faults.h"
#include "sim/model.h"
#include "sim/tf_json.h"

namespace tfs_sim {

struct SimOptions {
  std::string address = "127.0.0.1";
  std::uint16_t rest_port = 8501;  // 0: any free port
  // gRPC (PredictionService, ModelService) port; nullopt: no gRPC server; 0: any free port.
  std::optional<std::uint16_t> grpc_port;
  std::vector<ServedModel> models;  // never empty after parsing
  std::int64_t version = 1;
  // Label -> version; nullopt follows the served version. Default: stable and canary.
  std::map<std::string, std::optional<std::int64_t>> labels;
  int threads = 1;
  JsonStyle json_style = JsonStyle::compact;
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive idle and request read timeout
  std::size_t body_limit = 64u << 20;
  std::size_t header_limit = 64u << 10;
  std::optional<std::uint64_t> seed;  // fault randomness; random when absent
  FaultSet faults;                    // initial faults
  bool help = false;
};

struct OptionsResult {
  std::optional<SimOptions> options;
  std::string error;  // set when options is empty
};

// `args` excludes argv[0]. Accepts "--flag value" and "--flag=value".
OptionsResult parse_options(const std::vector<std::string>& args);

std::string usage();

// "250us", "200ms", "1.5s", "2m"; a bare number is milliseconds. nullopt when malformed or
// negative.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text);

}  // namespace tfs_sim
