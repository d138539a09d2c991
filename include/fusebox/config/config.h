#pragma once
// The effective, validated configuration. Built once by load_config(), then immutable and shared
// between threads as std::shared_ptr<const Config>. Every default here is documented in
// docs/configuration.md; keep the two in step.

#include <cstdint>
#include <string>
#include <vector>

#include "fusebox/common/units.h"

namespace fusebox::config {

struct ServerConfig {
  int threads = 0;                          // 0 = one worker per core
  Duration shutdown_timeout{10'000};        // SIGTERM: how long in-flight requests may finish
};

struct HttpListenerConfig {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;                // 0 = pick a free port (reported on stdout)
  std::uint64_t max_request_body = 64ull << 20;   // bytes; larger -> 413
  std::uint64_t max_request_headers = 16ull << 10;  // bytes of request line + headers; -> 431
  Duration request_header_timeout{10'000};  // whole header must arrive within this -> 408
  Duration request_body_timeout{30'000};    // whole body must arrive within this -> 408
  Duration idle_timeout{60'000};            // keep-alive connection with no request -> closed
  std::uint32_t max_connections = 10'000;   // per process; beyond this new connections wait
  std::uint32_t max_requests_per_connection = 0;  // 0 = unlimited
};

struct AdminListenerConfig {
  std::string address = "127.0.0.1";
  std::uint16_t port = 9901;
};

struct ListenersConfig {
  HttpListenerConfig http;
  AdminListenerConfig admin;
};

struct EndpointConfig {
  std::string address;
  std::uint16_t port = 8501;
  std::uint32_t weight = 1;                 // 1..1000
};

struct PoolConfig {
  std::string name;
  std::vector<EndpointConfig> endpoints;
  Duration connect_timeout{1'000};
  std::uint32_t max_connections_per_backend = 1024;  // per process
  Duration idle_connection_timeout{60'000};  // idle upstream keep-alive connections are closed
  std::uint64_t max_response_body = 64ull << 20;  // larger upstream answers -> 502
  Duration reachability_interval{2'000};     // TCP connect probe of each backend (for /readyz)
};

struct RouteMatch {
  std::string model;                        // exact model name, or "*" for any model
};

struct RouteConfig {
  std::string name;
  RouteMatch match;
  std::string pool;                         // name of an entry in Config::pools
  Duration timeout{30'000};                 // whole upstream exchange, per request -> 504
};

enum class LogFormat { text, json };

struct LoggingConfig {
  std::string level = "info";               // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::json;
  bool access_log = true;
  std::string file;                         // empty = stderr
  std::string access_log_file;              // empty = same destination as the main log
};

struct Config {
  std::string source_file;                  // path the config was loaded from
  ServerConfig server;
  ListenersConfig listeners;
  std::vector<PoolConfig> pools;            // in file order; names unique
  std::vector<RouteConfig> routes;          // in file order; names unique
  LoggingConfig logging;

  const PoolConfig* find_pool(std::string_view name) const {
    for (const auto& p : pools)
      if (p.name == name) return &p;
    return nullptr;
  }
};

}  // namespace fusebox::config
