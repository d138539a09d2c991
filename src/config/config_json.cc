// GET /admin/config: the effective configuration in the same shape and units as the YAML file,
// so an operator can copy a value back into the file.

#include <nlohmann/json.hpp>

#include "fusebox/config/loader.h"

namespace fusebox::config {
namespace {

using nlohmann::json;

json to_json(const HttpListenerConfig& c) {
  return {
      {"address", c.address},
      {"port", c.port},
      {"max_request_body", format_size(c.max_request_body)},
      {"max_request_headers", format_size(c.max_request_headers)},
      {"request_header_timeout", format_duration(c.request_header_timeout)},
      {"request_body_timeout", format_duration(c.request_body_timeout)},
      {"idle_timeout", format_duration(c.idle_timeout)},
      {"max_connections", c.max_connections},
      {"max_requests_per_connection", c.max_requests_per_connection},
  };
}

json to_json(const PoolConfig& c) {
  json endpoints = json::array();
  for (const EndpointConfig& e : c.endpoints)
    endpoints.push_back({{"address", e.address}, {"port", e.port}, {"weight", e.weight}});
  return {
      {"endpoints", std::move(endpoints)},
      {"connect_timeout", format_duration(c.connect_timeout)},
      {"max_connections_per_backend", c.max_connections_per_backend},
      {"idle_connection_timeout", format_duration(c.idle_connection_timeout)},
      {"max_response_body", format_size(c.max_response_body)},
      {"reachability_interval", format_duration(c.reachability_interval)},
  };
}

json to_json(const RouteConfig& c) {
  return {
      {"name", c.name},
      {"match", {{"model", c.match.model}}},
      {"pool", c.pool},
      {"timeout", format_duration(c.timeout)},
  };
}

}  // namespace

nlohmann::json config_to_json(const Config& config) {
  json pools = json::object();
  for (const PoolConfig& pool : config.pools) pools[pool.name] = to_json(pool);
  json routes = json::array();
  for (const RouteConfig& route : config.routes) routes.push_back(to_json(route));

  // Redaction goes here: no key holds a secret yet. When one is added (auth tokens, TLS private
  // keys), render it as "<redacted>" instead of its value.
  return {
      {"server",
       {{"threads", config.server.threads},
        {"shutdown_timeout", format_duration(config.server.shutdown_timeout)}}},
      {"listeners",
       {{"http", to_json(config.listeners.http)},
        {"admin",
         {{"address", config.listeners.admin.address}, {"port", config.listeners.admin.port}}}}},
      {"pools", std::move(pools)},
      {"routes", std::move(routes)},
      {"logging",
       {{"level", config.logging.level},
        {"format", config.logging.format == LogFormat::text ? "text" : "json"},
        {"access_log", config.logging.access_log},
        {"file", config.logging.file},
        {"access_log_file", config.logging.access_log_file}}},
  };
}

}  // namespace fusebox::config
