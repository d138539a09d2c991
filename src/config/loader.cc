// Loading of fusebox.yaml: parse with yaml-cpp, read every section through the schema reader
// (types, ranges, unknown keys), then check the rules that span sections (references, duplicate
// names, listener conflicts). All problems are collected; none stops the walk.

#include "fusebox/config/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "schema_reader.h"

namespace fusebox::config {
namespace {

using detail::Diagnostics;
using detail::IntegerRange;
using detail::List;
using detail::ListItem;
using detail::LoadContext;
using detail::MapReader;
using detail::NamedEntry;
using detail::Presence;
using detail::ZeroDuration;

// A configuration file is a few KiB; the cap only stops a mistaken path (/dev/zero) from
// reading forever.
constexpr std::size_t kMaxConfigFileBytes = std::size_t{4} << 20;

constexpr std::int64_t kUint32Max = std::numeric_limits<std::uint32_t>::max();
constexpr IntegerRange kListenerPort{0, 65535};  // 0 = ephemeral
constexpr IntegerRange kEndpointPort{1, 65535};
constexpr IntegerRange kWeight{1, 1000};
constexpr IntegerRange kThreads{0, 1024};  // 0 = one per core
constexpr IntegerRange kPositiveCount{1, kUint32Max};
constexpr IntegerRange kCountOrUnlimited{0, kUint32Max};  // 0 = unlimited

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};  // LogFormat order

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::optional<boost::asio::ip::address> parse_ip(const std::string& text) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(text, ec);
  if (ec) return std::nullopt;
  return address;
}

// RFC 1123 host name; an all-numeric last label is rejected so that "10.0.0.256" is not
// mistaken for a name.
bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::string_view last_label;
  while (true) {
    const auto dot = text.find('.');
    const std::string_view label = text.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    last_label = label;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  return !std::all_of(last_label.begin(), last_label.end(),
                      [](char c) { return c >= '0' && c <= '9'; });
}

// Pool and route names appear in dotted paths, log fields and metric labels.
std::optional<std::string> name_problem(std::string_view kind, std::string_view name) {
  if (name.empty())
    return kind == "pool" ? "pool names must not be empty" : std::string("must not be empty");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok)
      return "invalid " + std::string(kind) + " name " + quoted(name) +
             " (use letters, digits, \"_\", \"-\" and \".\")";
  }
  return std::nullopt;
}

std::string host_port(const std::string& address, std::uint16_t port) {
  const bool ipv6 = address.find(':') != std::string::npos;
  return (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

// ---- sections -------------------------------------------------------------------------------

void read_server(MapReader& root, ServerConfig& out) {
  MapReader map = root.map("server");
  map.integer("threads", out.threads, kThreads);
  map.duration("shutdown_timeout", out.shutdown_timeout, ZeroDuration::allowed);
}

void read_listen_address(MapReader& map, std::string& out) {
  if (map.string("address", out) && !parse_ip(out)) {
    map.error("address", "not an IP address: " + quoted(out) +
                             " (listeners bind to an IP literal such as 127.0.0.1, 0.0.0.0 or ::)");
  }
}

void read_http_listener(MapReader& listeners, HttpListenerConfig& out) {
  MapReader map = listeners.map("http");
  read_listen_address(map, out.address);
  map.integer("port", out.port, kListenerPort);
  map.size("max_request_body", out.max_request_body, 1);
  map.size("max_request_headers", out.max_request_headers, 1);
  map.duration("request_header_timeout", out.request_header_timeout, ZeroDuration::rejected);
  map.duration("request_body_timeout", out.request_body_timeout, ZeroDuration::rejected);
  map.duration("idle_timeout", out.idle_timeout, ZeroDuration::rejected);
  map.integer("max_connections", out.max_connections, kPositiveCount);
  map.integer("max_requests_per_connection", out.max_requests_per_connection, kCountOrUnlimited);
}

void read_admin_listener(MapReader& listeners, AdminListenerConfig& out) {
  MapReader map = listeners.map("admin");
  read_listen_address(map, out.address);
  map.integer("port", out.port, kListenerPort);
}

void read_listeners(MapReader& root, ListenersConfig& out) {
  MapReader map = root.map("listeners");
  read_http_listener(map, out.http);
  read_admin_listener(map, out.admin);
}

EndpointConfig read_endpoint(LoadContext& ctx, const ListItem& item) {
  EndpointConfig out;
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("address", out.address, Presence::required) && !parse_ip(out.address) &&
      !is_host_name(out.address)) {
    map.error("address", "not an IP address or host name: " + quoted(out.address));
  }
  map.integer("port", out.port, kEndpointPort);
  map.integer("weight", out.weight, kWeight);
  return out;
}

// The same backend twice in one pool would silently double its share of the traffic.
void check_duplicate_endpoints(LoadContext& ctx, const List& list, const PoolConfig& pool) {
  for (std::size_t i = 0; i < pool.endpoints.size(); ++i) {
    const EndpointConfig& e = pool.endpoints[i];
    if (e.address.empty()) continue;
    const auto ip = parse_ip(e.address);
    for (std::size_t j = 0; j < i; ++j) {
      const EndpointConfig& first = pool.endpoints[j];
      if (first.port != e.port) continue;
      const auto first_ip = parse_ip(first.address);
      const bool same = (ip && first_ip) ? *ip == *first_ip : first.address == e.address;
      if (!same) continue;
      ctx.error_at(list.items[i].path, "duplicate endpoint " + host_port(e.address, e.port) +
                                           " (same as endpoints[" + std::to_string(j) + "])");
      break;
    }
  }
}

PoolConfig read_pool(LoadContext& ctx, const NamedEntry& entry) {
  PoolConfig out;
  out.name = entry.name;
  if (auto problem = name_problem("pool", entry.name))
    ctx.diagnostics().error(entry.key_mark, entry.path, *problem);

  MapReader map(ctx, entry.value, entry.path,
                entry.value.IsNull() ? entry.key_mark : entry.value.Mark());
  List endpoints = map.list("endpoints", Presence::required);
  if (endpoints.present && endpoints.items.empty())
    ctx.error_at(endpoints.path, "at least one endpoint is required");
  for (const ListItem& item : endpoints.items) out.endpoints.push_back(read_endpoint(ctx, item));
  check_duplicate_endpoints(ctx, endpoints, out);

  map.duration("connect_timeout", out.connect_timeout, ZeroDuration::rejected);
  map.integer("max_connections_per_backend", out.max_connections_per_backend, kPositiveCount);
  map.duration("idle_connection_timeout", out.idle_connection_timeout, ZeroDuration::rejected);
  map.size("max_response_body", out.max_response_body, 1);
  map.duration("reachability_interval", out.reachability_interval, ZeroDuration::rejected);
  return out;
}

void read_pools(LoadContext& ctx, MapReader& root, std::vector<PoolConfig>& out) {
  MapReader map = root.map("pools", Presence::required);
  const std::vector<NamedEntry> entries = map.entries();
  if (map.present() && entries.empty()) ctx.error_at(map.path(), "at least one pool is required");
  for (const NamedEntry& entry : entries) out.push_back(read_pool(ctx, entry));
}

void read_route_match(MapReader& route, RouteMatch& out) {
  MapReader map = route.map("match", Presence::required);
  if (!map.string("model", out.model, Presence::required)) return;
  if (out.model.empty()) {
    map.error("model", "must not be empty (use \"*\" to match any model)");
  } else if (out.model != "*" && out.model.find('*') != std::string::npos) {
    map.error("model", "wildcards are not supported inside a name: " + quoted(out.model) +
                           " (use \"*\" alone to match any model)");
  }
}

RouteConfig read_route(LoadContext& ctx, const ListItem& item) {
  RouteConfig out;
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("name", out.name, Presence::required)) {
    if (auto problem = name_problem("route", out.name)) map.error("name", *problem);
  }
  read_route_match(map, out.match);
  if (map.string("pool", out.pool, Presence::required) && out.pool.empty())
    map.error("pool", "must not be empty");
  map.duration("timeout", out.timeout, ZeroDuration::rejected);
  return out;
}

void read_routes(LoadContext& ctx, MapReader& root, std::vector<RouteConfig>& out) {
  List routes = root.list("routes", Presence::required);
  if (routes.present && routes.items.empty())
    ctx.error_at(routes.path, "at least one route is required");
  for (const ListItem& item : routes.items) out.push_back(read_route(ctx, item));
}

void read_logging(MapReader& root, LoggingConfig& out) {
  MapReader map = root.map("logging");
  if (auto level = map.one_of("level", kLogLevels)) out.level = std::string(kLogLevels[*level]);
  if (auto format = map.one_of("format", kLogFormats))
    out.format = *format == 0 ? LogFormat::text : LogFormat::json;
  map.boolean("access_log", out.access_log);
  map.string("file", out.file);
  map.string("access_log_file", out.access_log_file);
}

// ---- rules across sections ------------------------------------------------------------------

// Two listeners on one port only coexist on two distinct specific addresses; an unspecified
// address (0.0.0.0, ::) takes the port on every interface.
void check_listener_ports(LoadContext& ctx, const ListenersConfig& listeners) {
  const HttpListenerConfig& http = listeners.http;
  const AdminListenerConfig& admin = listeners.admin;
  if (http.port == 0 || http.port != admin.port) return;
  const auto http_ip = parse_ip(http.address);
  const auto admin_ip = parse_ip(admin.address);
  if (!http_ip || !admin_ip) return;  // already reported
  if (*http_ip != *admin_ip && !http_ip->is_unspecified() && !admin_ip->is_unspecified()) return;

  // Point at the port the operator wrote; the admin one when both were written.
  if (ctx.was_written("listeners.admin.port") || !ctx.was_written("listeners.http.port")) {
    ctx.error_at("listeners.admin.port", "port " + std::to_string(admin.port) + " on " +
                                             admin.address +
                                             " is already used by listeners.http (" +
                                             host_port(http.address, http.port) + ")");
  } else {
    ctx.error_at("listeners.http.port", "port " + std::to_string(http.port) + " on " +
                                            http.address + " is already used by listeners.admin (" +
                                            host_port(admin.address, admin.port) + ")");
  }
}

void check_routes(LoadContext& ctx, const Config& config) {
  std::map<std::string, std::size_t, std::less<>> first_by_name;
  std::map<std::string, std::size_t, std::less<>> first_by_model;
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const RouteConfig& route = config.routes[i];
    const std::string path = "routes[" + std::to_string(i) + "]";

    if (!route.pool.empty() && config.find_pool(route.pool) == nullptr)
      ctx.error_at(path + ".pool", "no pool named " + quoted(route.pool));

    if (!route.name.empty()) {
      auto [it, inserted] = first_by_name.emplace(route.name, i);
      if (!inserted) {
        ctx.error_at(path + ".name", "duplicate route name " + quoted(route.name) +
                                         " (first defined at routes[" + std::to_string(it->second) +
                                         "])");
      }
    }
    if (!route.match.model.empty()) {
      auto [it, inserted] = first_by_model.emplace(route.match.model, i);
      if (!inserted) {
        const RouteConfig& first = config.routes[it->second];
        ctx.error_at(path + ".match.model",
                     "model " + quoted(route.match.model) + " is already matched by route " +
                         quoted(first.name) + " (routes[" + std::to_string(it->second) + "])");
      }
    }
  }
}

Config read_config(LoadContext& ctx, const YAML::Node& root_node) {
  Config config;
  {
    MapReader root(ctx, root_node, "", root_node.Mark());
    read_server(root, config.server);
    read_listeners(root, config.listeners);
    read_pools(ctx, root, config.pools);
    read_routes(ctx, root, config.routes);
    read_logging(root, config.logging);
  }  // unknown top-level keys are reported here
  check_listener_ports(ctx, config.listeners);
  check_routes(ctx, config);
  return config;
}

// Reads the whole file; on failure returns the reason.
std::optional<std::string> read_file(const std::string& path, std::string& out) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::error_code(errno, std::generic_category()).message();
  std::optional<std::string> problem;
  char buffer[16 * 1024];
  while (true) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file);
    out.append(buffer, n);
    if (out.size() > kMaxConfigFileBytes) {
      problem = "file is larger than " + format_size(kMaxConfigFileBytes);
      break;
    }
    if (n < sizeof buffer) {
      if (std::ferror(file)) problem = std::error_code(errno, std::generic_category()).message();
      break;
    }
  }
  std::fclose(file);
  return problem;
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (!path.empty()) out += path + ": ";
  return out + message;
}

bool process_env_lookup(std::string_view name, std::string& value) {
  const char* found = std::getenv(std::string(name).c_str());
  if (found == nullptr) return false;
  value = found;
  return true;
}

LoadResult load_config_from_string(std::string_view yaml_text, std::string file, EnvLookup env) {
  Diagnostics diagnostics(file);
  LoadResult result;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml_text));
    if (documents.empty() || (documents.size() == 1 && documents[0].IsNull())) {
      diagnostics.error(YAML::Mark(), "",
                        "the configuration is empty (at least \"pools\" and \"routes\" are "
                        "required)");
    } else if (documents.size() > 1) {
      diagnostics.error(documents[1].Mark(), "",
                        "only one YAML document is allowed (found a second one after \"---\")");
    } else if (!documents[0].IsMap()) {
      diagnostics.error(documents[0].Mark(), "",
                        "the top level must be a map, got " +
                            std::string(detail::describe_node_type(documents[0])));
    } else {
      LoadContext ctx(diagnostics, env);
      Config config = read_config(ctx, documents[0]);
      if (diagnostics.empty()) {
        config.source_file = file;
        result.config = std::make_shared<const Config>(std::move(config));
      }
    }
  } catch (const YAML::Exception& e) {
    // Parser errors carry the position of the offending token.
    diagnostics.error(e.mark, "", "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    diagnostics.error_without_position(std::string("internal error while loading: ") + e.what());
  }
  result.errors = diagnostics.take_sorted();
  if (!result.errors.empty()) result.config.reset();
  return result;
}

LoadResult load_config_file(const std::string& path, EnvLookup env) {
  std::string text;
  if (auto problem = read_file(path, text)) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, "", "cannot read file: " + *problem});
    return result;
  }
  return load_config_from_string(text, path, env);
}

}  // namespace fusebox::config
