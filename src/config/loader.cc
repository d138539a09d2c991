// Loading of fusebox.yaml: parse with yaml-cpp, read every section through the schema reader
// (types, ranges, unknown keys), then check the rules that span sections (references, duplicate
// names, listener conflicts). All problems are collected; none stops the walk.

#include "fusebox/config/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <utility>

#include <google/protobuf/util/json_util.h>

#include "fusebox/auth/api_keys.h"
#include "fusebox/auth/jwt.h"
#include "fusebox/common/address.h"
#include "fusebox/degrade/rules.h"
#include "tensorflow_serving/apis/predict.pb.h"
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
using detail::NumberRange;
using detail::Presence;
using detail::ZeroDuration;

// A configuration file is a few KiB; the cap only stops a mistaken path (/dev/zero) from
// reading forever.
constexpr std::size_t kMaxConfigFileBytes = std::size_t{4} << 20;

constexpr std::int64_t kUint32Max = std::numeric_limits<std::uint32_t>::max();
constexpr IntegerRange kListenerPort{0, 65535};  // 0 = ephemeral
constexpr IntegerRange kEndpointPort{0, 65535};  // 0 = no REST port (gRPC-only)
constexpr IntegerRange kWeight{1, 1000};
constexpr IntegerRange kThreads{0, 1024};  // 0 = one per core
constexpr IntegerRange kPositiveCount{1, kUint32Max};
constexpr IntegerRange kCountOrUnlimited{0, kUint32Max};  // 0 = unlimited
constexpr IntegerRange kCountOrOff{0, kUint32Max};        // 0 = this trigger is off
constexpr IntegerRange kMaxAttempts{1, 10};
constexpr IntegerRange kModelVersion{0, std::numeric_limits<std::int64_t>::max()};  // 0 = any
constexpr IntegerRange kFailureStatus{400, 599};
constexpr IntegerRange kFallbackVersion{1, std::numeric_limits<std::int64_t>::max()};
constexpr IntegerRange kHttpStatus{100, 599};
constexpr IntegerRange kCacheShards{1, 256};
constexpr NumberRange kPercent{0, 100};
constexpr NumberRange kPositivePercent{1, 100};
constexpr NumberRange kJitterPercent{0, 50};

constexpr std::array<std::string_view, 2> kBalancerPolicies = {
    "weighted_round_robin", "least_request"};  // BalancerPolicy order
constexpr std::array<std::string_view, 2> kHealthCheckProtocols = {
    "rest", "grpc"};  // HealthCheckProtocol order
constexpr std::array<std::string_view, 3> kBreakerModes = {"auto", "disabled",
                                                           "metrics_only"};  // BreakerMode order
constexpr std::array<std::string_view, 2> kWindowTypes = {"count", "time"};  // WindowType order

constexpr std::array<std::string_view, 4> kTierKinds = {"model", "cache", "default",
                                                        "rules"};  // TierKind order
constexpr std::array<std::string_view, 4> kConditionOps = {"equals", "in", "exists",
                                                           "range"};  // RuleConditionConfig::op
constexpr std::array<std::string_view, 3> kCacheModes = {"off", "fallback",
                                                         "first"};  // CacheMode order

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};  // LogFormat order

std::string in_quotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

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
      return "invalid " + std::string(kind) + " name " + in_quotes(name) +
             " (use letters, digits, \"_\", \"-\" and \".\")";
  }
  return std::nullopt;
}

// True when a read left a usable value: it succeeded, or the key is absent and the default
// stands. Cross-field rules skip values already reported, so one mistake gives one error.
bool usable(MapReader& map, std::string_view key, bool read) {
  return read || !map.context().was_written(map.child_path(key));
}

// For a rule between two keys of one map, either of which may have kept its default: blame the
// key the operator wrote; `preferred` when both (or neither) were.
std::string_view key_to_blame(MapReader& map, std::string_view preferred, std::string_view other) {
  const LoadContext& ctx = map.context();
  if (!ctx.was_written(map.child_path(preferred)) && ctx.was_written(map.child_path(other)))
    return other;
  return preferred;
}

std::optional<std::int64_t> parse_int64(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
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

// "sha256:<64 hex>" (API keys, the admin token). Messages never echo the value: a mistaken
// entry may be the key itself.
std::optional<auth::Sha256Digest> check_key_hash(MapReader& map, std::string_view key,
                                                 const std::string& text) {
  auto digest = auth::parse_key_hash(text);
  if (!digest) {
    map.error(key, digest.error());
    return std::nullopt;
  }
  return *digest;
}

// ---- sections -------------------------------------------------------------------------------

void read_server(MapReader& root, ServerConfig& out) {
  MapReader map = root.map("server");
  map.integer("threads", out.threads, kThreads);
}

void read_drain(MapReader& root, DrainConfig& out) {
  MapReader map = root.map("drain");
  map.duration("delay", out.delay, ZeroDuration::allowed);
  map.duration("timeout", out.timeout, ZeroDuration::allowed);
}

void read_reload(MapReader& root, ReloadConfig& out) {
  MapReader map = root.map("reload");
  map.boolean("watch", out.watch);
  map.duration("debounce", out.debounce, ZeroDuration::allowed);
}

void read_listen_address(MapReader& map, std::string& out) {
  if (map.string("address", out) && !parse_ip(out)) {
    map.error("address", "not an IP address: " + in_quotes(out) +
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
  std::string token_hash;  // "" = no token
  if (map.string("token_hash", token_hash) &&
      (token_hash.empty() || check_key_hash(map, "token_hash", token_hash))) {
    out.token_hash = std::move(token_hash);
  }
}

// Message sizes are capped by gRPC's int limit.
constexpr std::uint64_t kMaxGrpcMessageBytes = 0x7fffffff;

void read_grpc_message_size(MapReader& map, std::uint64_t& out) {
  if (map.size("max_message_bytes", out, 1) && out > kMaxGrpcMessageBytes)
    map.error("max_message_bytes", "must be at most 2GiB - 1 (gRPC's limit), got " +
                                       format_size(out));
}

// A metadata key pattern: a lowercase gRPC metadata key, or a prefix of one followed by '*'.
bool is_metadata_pattern(std::string_view text) {
  if (text.ends_with('*')) text.remove_suffix(1);
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

void read_metadata_patterns(MapReader& map, const char* key, std::vector<std::string>& out) {
  LoadContext& ctx = map.context();
  const List list = map.list(key);
  for (const ListItem& item : list.items) {
    auto scalar = detail::list_scalar(ctx, item, "a metadata key");
    if (!scalar) continue;
    if (!is_metadata_pattern(scalar->text)) {
      detail::value_error(ctx, *scalar,
                          "not a lowercase metadata key (a-z 0-9 - _ .), optionally ending in '*': " +
                              in_quotes(scalar->text));
    } else if (std::find(out.begin(), out.end(), scalar->text) != out.end()) {
      detail::value_error(ctx, *scalar, "duplicate metadata key " + in_quotes(scalar->text));
    } else {
      out.push_back(scalar->text);
    }
  }
}

void read_grpc_listener(MapReader& listeners, GrpcListenerConfig& out) {
  MapReader map = listeners.map("grpc");
  if (!map.present()) return;
  out.enabled = true;
  map.boolean("enabled", out.enabled);
  read_listen_address(map, out.address);
  map.integer("port", out.port, kListenerPort);
  read_grpc_message_size(map, out.max_message_bytes);
  map.boolean("reflection", out.reflection);
  MapReader metadata = map.map("metadata");
  read_metadata_patterns(metadata, "allow", out.metadata_allow);
  read_metadata_patterns(metadata, "deny", out.metadata_deny);
}

void read_listeners(MapReader& root, ListenersConfig& out) {
  MapReader map = root.map("listeners");
  read_http_listener(map, out.http);
  read_admin_listener(map, out.admin);
  read_grpc_listener(map, out.grpc);
}

EndpointConfig read_endpoint(LoadContext& ctx, const ListItem& item) {
  EndpointConfig out;
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("address", out.address, Presence::required) && !parse_ip(out.address) &&
      !is_host_name(out.address)) {
    map.error("address", "not an IP address or host name: " + in_quotes(out.address));
  }
  const bool port_ok = map.integer("port", out.port, kEndpointPort);
  map.integer("weight", out.weight, kWeight);
  map.integer("grpc_port", out.grpc_port, kListenerPort);  // 0 = no gRPC on this backend
  if (port_ok && out.port == 0 && out.grpc_port == 0) {
    map.error("port",
              "0 (no REST port) needs a grpc_port: the backend must be reachable "
              "over REST or gRPC");
  }
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
      // One TF Serving process: the same REST port, or (gRPC-only) the same gRPC port.
      const bool same_rest = e.port != 0 && first.port == e.port;
      const bool same_grpc = e.port == 0 && first.port == 0 && first.grpc_port == e.grpc_port;
      if (!same_rest && !same_grpc) continue;
      const auto first_ip = parse_ip(first.address);
      const bool same = (ip && first_ip) ? *ip == *first_ip : first.address == e.address;
      if (!same) continue;
      const std::string where =
          same_rest ? host_port(e.address, e.port) : host_port(e.address, e.grpc_port) + " (gRPC)";
      ctx.error_at(list.items[i].path, "duplicate endpoint " + where + " (same as endpoints[" +
                                           std::to_string(j) + "])");
      break;
    }
  }
}

// ---- pool resilience ------------------------------------------------------------------------

void read_load_balancing(MapReader& pool, LoadBalancingConfig& out) {
  MapReader map = pool.map("load_balancing");
  if (auto policy = map.one_of("policy", kBalancerPolicies))
    out.policy = static_cast<BalancerPolicy>(*policy);
  map.duration("slow_start", out.slow_start, ZeroDuration::allowed);
  map.number("slow_start_min_weight_percent", out.slow_start_min_weight_percent, kPositivePercent);
}

// A status counts as a backend failure only if the backend is to blame: 5xx, and of the 4xx
// only 408 (it timed out reading) and 429 (TF Serving's RESOURCE_EXHAUSTED).
void read_failure_statuses(MapReader& breaker, std::vector<unsigned>& out) {
  LoadContext& ctx = breaker.context();
  const List list = breaker.list("failure_statuses");
  if (!list.present) return;
  std::vector<unsigned> statuses;
  for (const ListItem& item : list.items) {
    auto scalar = detail::list_scalar(ctx, item, "an HTTP status");
    if (!scalar) continue;
    auto status = detail::interpret_integer(ctx, *scalar, kFailureStatus);
    if (!status) continue;
    if (*status < 500 && *status != 408 && *status != 429) {
      detail::value_error(ctx, *scalar,
                          "status " + scalar->text +
                              " is a client error: client errors never count as backend "
                              "failures (of the 4xx statuses only 408 and 429 may be listed)");
      continue;
    }
    if (std::find(statuses.begin(), statuses.end(), *status) != statuses.end()) {
      detail::value_error(ctx, *scalar, "duplicate status " + scalar->text);
      continue;
    }
    statuses.push_back(static_cast<unsigned>(*status));
  }
  out = std::move(statuses);
}

// Returns whether window.size is usable (for the minimum_calls rule).
bool read_breaker_window(MapReader& breaker, CircuitBreakerConfig& out) {
  MapReader map = breaker.map("window");
  if (auto type = map.one_of("type", kWindowTypes))
    out.window_type = static_cast<WindowType>(*type);
  const bool size_ok = usable(map, "size", map.integer("size", out.window_size, kPositiveCount));
  map.duration("duration", out.window_duration, ZeroDuration::rejected);
  return size_ok;
}

void read_circuit_breaker(MapReader& pool, CircuitBreakerConfig& out) {
  MapReader map = pool.map("circuit_breaker");
  if (auto mode = map.one_of("mode", kBreakerModes)) out.mode = static_cast<BreakerMode>(*mode);
  map.integer("consecutive_failures", out.consecutive_failures, kCountOrOff);
  const bool window_size_ok = read_breaker_window(map, out);
  const bool minimum_calls_ok =
      usable(map, "minimum_calls", map.integer("minimum_calls", out.minimum_calls, kPositiveCount));
  map.number("failure_rate_percent", out.failure_rate_percent, kPercent);
  map.number("slow_call_rate_percent", out.slow_call_rate_percent, kPercent);
  map.duration("slow_call_duration", out.slow_call_duration, ZeroDuration::rejected);
  read_failure_statuses(map, out.failure_statuses);
  const bool open_ok =
      usable(map, "open_duration",
             map.duration("open_duration", out.open_duration, ZeroDuration::rejected));
  const bool max_open_ok =
      usable(map, "max_open_duration",
             map.duration("max_open_duration", out.max_open_duration, ZeroDuration::rejected));
  map.number("open_jitter_percent", out.open_jitter_percent, kJitterPercent);
  map.integer("half_open_max_calls", out.half_open_max_calls, kPositiveCount);
  map.boolean("require_health_check", out.require_health_check);

  if (open_ok && max_open_ok && out.max_open_duration < out.open_duration) {
    if (key_to_blame(map, "max_open_duration", "open_duration") == "max_open_duration") {
      map.error("max_open_duration",
                "must be at least open_duration (" + format_duration(out.open_duration) + ")");
    } else {
      map.error("open_duration", "must not exceed max_open_duration (" +
                                     format_duration(out.max_open_duration) + ")");
    }
  }
  // A count window holds window.size calls: a larger minimum would never be reached, and the
  // rate triggers would silently never fire.
  const bool rate_trigger_on = out.failure_rate_percent > 0 || out.slow_call_rate_percent > 0;
  if (minimum_calls_ok && window_size_ok && rate_trigger_on &&
      out.window_type == WindowType::count && out.minimum_calls > out.window_size) {
    if (key_to_blame(map, "minimum_calls", "window.size") == "minimum_calls") {
      map.error("minimum_calls", "must not exceed window.size (" + std::to_string(out.window_size) +
                                     ") with a count window, or the rate triggers never fire");
    } else {
      map.error("window.size", "must be at least minimum_calls (" +
                                   std::to_string(out.minimum_calls) +
                                   ") with a count window, or the rate triggers never fire");
    }
  }
}

// `models:` as a list of exact model names, no duplicates. `wildcard_problem` says why a name
// with '*' is refused.
void read_exact_models(MapReader& map, std::string_view wildcard_problem,
                       std::vector<std::string>& out) {
  LoadContext& ctx = map.context();
  const List list = map.list("models");
  for (const ListItem& item : list.items) {
    auto scalar = detail::list_scalar(ctx, item, "a model name");
    if (!scalar) continue;
    if (scalar->text.empty()) {
      detail::value_error(ctx, *scalar, "must not be empty");
    } else if (scalar->text.find('*') != std::string::npos) {
      detail::value_error(ctx, *scalar,
                          std::string(wildcard_problem) + ", got " + in_quotes(scalar->text));
    } else if (std::find(out.begin(), out.end(), scalar->text) != out.end()) {
      detail::value_error(ctx, *scalar, "duplicate model " + in_quotes(scalar->text));
    } else {
      out.push_back(scalar->text);
    }
  }
}

void read_health_check(MapReader& pool, HealthCheckConfig& out) {
  MapReader map = pool.map("health_check");
  map.boolean("enabled", out.enabled);
  if (auto protocol = map.one_of("protocol", kHealthCheckProtocols))
    out.protocol = static_cast<HealthCheckProtocol>(*protocol);
  const bool interval_ok =
      usable(map, "interval", map.duration("interval", out.interval, ZeroDuration::rejected));
  map.duration("unhealthy_interval", out.unhealthy_interval, ZeroDuration::rejected);
  map.number("jitter_percent", out.jitter_percent, kJitterPercent);
  const bool timeout_ok =
      usable(map, "timeout", map.duration("timeout", out.timeout, ZeroDuration::rejected));
  map.integer("healthy_threshold", out.healthy_threshold, kPositiveCount);
  map.integer("unhealthy_threshold", out.unhealthy_threshold, kPositiveCount);
  read_exact_models(map, "a probe needs an exact model name", out.models);
  map.integer("expected_version", out.expected_version, kModelVersion);

  // A probe still waiting when the next one is due would overlap it.
  if (interval_ok && timeout_ok && out.timeout >= out.interval) {
    if (key_to_blame(map, "timeout", "interval") == "timeout") {
      map.error("timeout", "must be less than interval (" + format_duration(out.interval) + ")");
    } else {
      map.error("interval", "must be greater than timeout (" + format_duration(out.timeout) + ")");
    }
  }
}

// Every endpoint of a probed pool must have the port its probes go to. A pool whose health
// checks are off is not probed, so its gRPC-only endpoints need nothing more.
void check_probe_ports(LoadContext& ctx, const List& list, const PoolConfig& pool) {
  const HealthCheckConfig& health = pool.health_check;
  if (!health.enabled) return;
  const bool grpc = health.protocol == HealthCheckProtocol::grpc;
  for (std::size_t i = 0; i < pool.endpoints.size() && i < list.items.size(); ++i) {
    const EndpointConfig& e = pool.endpoints[i];
    // Reported already: no address, or no port at all.
    if (e.address.empty() || (e.port == 0 && e.grpc_port == 0)) continue;
    if (grpc && e.grpc_port == 0) {
      ctx.error_at(list.items[i].path,
                   "endpoint " + host_port(e.address, e.port) +
                       " has no grpc_port (health_check.protocol: grpc probes every endpoint "
                       "on its grpc_port)");
    } else if (!grpc && e.port == 0) {
      ctx.error_at(list.items[i].path,
                   "endpoint " + host_port(e.address, e.grpc_port) +
                       " (gRPC) has no REST port to probe: set health_check.protocol: grpc, "
                       "or health_check.enabled: false");
    }
  }
}

void read_retry_budget(MapReader& pool, RetryBudgetConfig& out) {
  MapReader map = pool.map("retry_budget");
  map.number("budget_percent", out.budget_percent, kPercent);
  map.integer("min_concurrency", out.min_concurrency, kCountOrUnlimited);
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
  map.number("max_ejection_percent", out.max_ejection_percent, kPercent);
  read_load_balancing(map, out.load_balancing);
  read_circuit_breaker(map, out.circuit_breaker);
  read_health_check(map, out.health_check);
  check_probe_ports(ctx, endpoints, out);
  read_retry_budget(map, out.retry_budget);
  MapReader grpc = map.map("grpc");
  read_grpc_message_size(grpc, out.grpc.max_message_bytes);
  grpc.duration("keepalive_time", out.grpc.keepalive_time, ZeroDuration::rejected);
  grpc.duration("keepalive_timeout", out.grpc.keepalive_timeout, ZeroDuration::rejected);
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
    map.error("model", "wildcards are not supported inside a name: " + in_quotes(out.model) +
                           " (use \"*\" alone to match any model)");
  }
}

// ---- route resilience -----------------------------------------------------------------------

constexpr std::string_view kRetryOnExpected =
    "connect_failure, reset, timeout, or an HTTP status 500..599 or 429";

// Each item is a failure word or an upstream status. Listing the key replaces the default set
// entirely, so an empty list means "never retry".
void read_retry_on(MapReader& retry, RetryOn& out) {
  LoadContext& ctx = retry.context();
  const List list = retry.list("retry_on");
  if (!list.present) return;
  RetryOn read{.connect_failure = false, .reset = false, .timeout = false, .statuses = {}};
  for (const ListItem& item : list.items) {
    auto scalar = detail::list_scalar(ctx, item, "a retry condition");
    if (!scalar) continue;
    const std::string& text = scalar->text;
    bool* word = text == "connect_failure" ? &read.connect_failure
                 : text == "reset"         ? &read.reset
                 : text == "timeout"       ? &read.timeout
                                           : nullptr;
    const auto status = parse_int64(text);
    const bool duplicate = word != nullptr
                               ? *word
                               : status && std::find(read.statuses.begin(), read.statuses.end(),
                                                     *status) != read.statuses.end();
    if (duplicate) {
      detail::value_error(ctx, *scalar, "duplicate retry condition " + in_quotes(text));
    } else if (word != nullptr) {
      *word = true;
    } else if (status && ((*status >= 500 && *status <= 599) || *status == 429)) {
      read.statuses.push_back(static_cast<unsigned>(*status));
    } else if (status && *status >= 400 && *status <= 499) {
      detail::value_error(ctx, *scalar,
                          "status " + text +
                              " is a client error: it would fail again, so it is never retried "
                              "(of the 4xx statuses only 429 may be listed)");
    } else {
      detail::value_error(ctx, *scalar,
                          "invalid value " + in_quotes(text) +
                              " (expected one of: " + std::string(kRetryOnExpected) + ")");
    }
  }
  out = std::move(read);
}

void read_backoff(MapReader& retry, RetryConfig& out) {
  MapReader map = retry.map("backoff");
  const bool base_ok =
      usable(map, "base", map.duration("base", out.backoff_base, ZeroDuration::rejected));
  const bool max_ok =
      usable(map, "max", map.duration("max", out.backoff_max, ZeroDuration::rejected));
  if (base_ok && max_ok && out.backoff_max < out.backoff_base) {
    if (key_to_blame(map, "max", "base") == "max") {
      map.error("max", "must be at least base (" + format_duration(out.backoff_base) + ")");
    } else {
      map.error("base", "must not exceed max (" + format_duration(out.backoff_max) + ")");
    }
  }
}

// `route_timeout` is nullopt when the route's timeout was itself invalid (already reported).
void read_retry(MapReader& route, RetryConfig& out, std::optional<Duration> route_timeout) {
  MapReader map = route.map("retry");
  map.integer("max_attempts", out.max_attempts, kMaxAttempts);
  read_retry_on(map, out.retry_on);
  map.duration("per_try_timeout", out.per_try_timeout, ZeroDuration::allowed);
  read_backoff(map, out);
  if (route_timeout && out.per_try_timeout > *route_timeout) {
    map.error("per_try_timeout",
              "must not exceed the route's timeout (" + format_duration(*route_timeout) + ")");
  }
}

void read_hedge(MapReader& route, HedgeConfig& out, std::optional<Duration> route_timeout) {
  MapReader map = route.map("hedge");
  map.duration("delay", out.delay, ZeroDuration::allowed);
  if (route_timeout && out.delay.count() != 0 && out.delay >= *route_timeout) {
    map.error("delay", "must be 0 (off) or less than the route's timeout (" +
                           format_duration(*route_timeout) + ")");
  }
}

// ---- degradation chain ----------------------------------------------------------------------

// nlohmann::ordered_json keeps the keys of a default answer in the order the operator wrote them.
using BodyJson = nlohmann::ordered_json;

bool is_yaml_string_tag(const YAML::Node& node) {
  // "!" marks a quoted scalar; "!!str" an explicitly tagged one.
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// The JSON value of a plain (unquoted) YAML scalar, YAML 1.2 core schema style: booleans,
// decimal integers and floats; nullopt means "a string". Null scalars never get here (yaml-cpp
// makes them null nodes).
std::optional<BodyJson> plain_scalar_json(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return BodyJson(true);
  if (text == "false" || text == "False" || text == "FALSE") return BodyJson(false);
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) digits.remove_prefix(1);
  if (digits.empty() ||
      !(std::isdigit(static_cast<unsigned char>(digits.front())) || digits.front() == '.'))
    return std::nullopt;  // also keeps .inf, .nan and names out
  const std::string unsigned_text(text.front() == '+' ? text.substr(1) : text);
  const char* begin = unsigned_text.data();
  const char* end = begin + unsigned_text.size();
  if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t integer = 0;
    if (auto [p, ec] = std::from_chars(begin, end, integer); ec == std::errc{} && p == end)
      return BodyJson(integer);
    std::uint64_t big = 0;
    if (auto [p, ec] = std::from_chars(begin, end, big); ec == std::errc{} && p == end)
      return BodyJson(big);
  }
  const bool float_chars = std::all_of(digits.begin(), digits.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
  });
  double number = 0;
  if (auto [p, ec] = std::from_chars(begin, end, number);
      float_chars && ec == std::errc{} && p == end && std::isfinite(number))
    return BodyJson(number);
  return std::nullopt;
}

// A YAML value inside a default answer's body, as JSON. Scalars get ${VAR} substitution like
// every other value; keys do not.
std::optional<BodyJson> yaml_to_json(LoadContext& ctx, const YAML::Node& node,
                                     const std::string& path) {
  if (node.IsNull()) return BodyJson(nullptr);
  if (node.IsSequence()) {
    BodyJson out = BodyJson::array();
    bool ok = true;
    for (const YAML::Node& child : node) {
      const std::string child_path = path + "[" + std::to_string(out.size()) + "]";
      auto value = yaml_to_json(ctx, child, child_path);
      ok = ok && value.has_value();
      out.push_back(value ? std::move(*value) : BodyJson());
    }
    return ok ? std::optional(std::move(out)) : std::nullopt;
  }
  if (node.IsMap()) {
    BodyJson out = BodyJson::object();
    bool ok = true;
    for (const auto& pair : node) {
      const YAML::Node key = pair.first;
      if (!key.IsScalar()) {
        ctx.diagnostics().error(key.Mark(), path,
                                "JSON object keys must be strings, got " +
                                    std::string(detail::describe_node_type(key)));
        ok = false;
        continue;
      }
      const std::string child_path = path + "." + key.Scalar();
      if (out.contains(key.Scalar())) {
        ctx.diagnostics().error(key.Mark(), child_path, "duplicate key " + in_quotes(key.Scalar()));
        ok = false;
        continue;
      }
      auto value = yaml_to_json(ctx, pair.second, child_path);
      ok = ok && value.has_value();
      out[key.Scalar()] = value ? std::move(*value) : BodyJson();
    }
    return ok ? std::optional(std::move(out)) : std::nullopt;
  }
  auto scalar = detail::list_scalar(ctx, ListItem{node, path}, "a JSON value");
  if (!scalar) return std::nullopt;
  if (!is_yaml_string_tag(node)) {
    if (auto value = plain_scalar_json(scalar->text)) return value;
  }
  return BodyJson(scalar->text);
}

constexpr const char* kBodyExpected = "a map, a list, or a string holding JSON text";

// `body:` of a default tier: any YAML value, or a string holding JSON text. Stored compact.
void read_default_body(MapReader& tier, std::string& out) {
  LoadContext& ctx = tier.context();
  auto item = tier.value("body");
  if (!item) return;
  if (item->node.IsMap() || item->node.IsSequence()) {
    if (auto value = yaml_to_json(ctx, item->node, item->path)) out = value->dump();
    return;
  }
  if (item->node.IsNull()) {
    ctx.error_at(item->path, std::string("missing value (expected ") + kBodyExpected + ")");
    return;
  }
  // A scalar: JSON text ('{"predictions": []}'), or a plain YAML number or boolean.
  auto scalar = detail::list_scalar(ctx, *item, kBodyExpected);
  if (!scalar) return;
  try {
    out = BodyJson::parse(scalar->text).dump();
    return;
  } catch (const BodyJson::parse_error& e) {
    if (!is_yaml_string_tag(item->node)) {
      if (auto value = plain_scalar_json(scalar->text)) {
        out = value->dump();
        return;
      }
    }
    // "[json.exception.parse_error.101] parse error at ...": the bracketed id means nothing to
    // an operator.
    std::string reason = e.what();
    if (const auto close = reason.find("] "); close != std::string::npos)
      reason.erase(0, close + 2);
    detail::value_error(ctx, *scalar,
                        "not valid JSON: " + reason + " (write " + kBodyExpected + ")");
  }
}

// TF Serving version labels: letters, digits and "_".
bool is_version_label(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

void read_model_tier(MapReader& map, FallbackTier& out) {
  if (map.string("pool", out.pool, Presence::required) && out.pool.empty())
    map.error("pool", "must not be empty");
  if (map.string("model", out.model, Presence::required)) {
    if (out.model.empty()) {
      map.error("model", "must not be empty");
    } else if (out.model.find('*') != std::string::npos) {
      map.error("model", "a fallback needs an exact model name, got " + in_quotes(out.model));
    }
  }
  map.duration("timeout", out.timeout, ZeroDuration::rejected);
  const bool version_ok = map.integer("version", out.version, kFallbackVersion);
  bool label_ok = map.string("label", out.label);
  if (label_ok && !is_version_label(out.label)) {
    map.error("label",
              "invalid label " + in_quotes(out.label) + " (use letters, digits and \"_\")");
    label_ok = false;
  }
  map.string("signature", out.signature);
  // A TF Serving request names a version or a label, never both.
  if (version_ok && label_ok)
    map.error("label", "set either version or label, not both (version is " +
                           std::to_string(out.version) + ")");
}

// `grpc_response:` of a default tier: a PredictResponse in protobuf's JSON mapping
// ({"outputs": {"y": {"dtype": "DT_FLOAT", "tensorShape": {...}, "floatVal": [...]}}}), stored
// serialized.
void read_grpc_response(MapReader& tier, std::string& out) {
  LoadContext& ctx = tier.context();
  auto item = tier.value("grpc_response");
  if (!item) return;
  if (!item->node.IsMap()) {
    ctx.error_at(item->path, "expected a map: a PredictResponse in protobuf's JSON form");
    return;
  }
  auto value = yaml_to_json(ctx, item->node, item->path);
  if (!value) return;
  tensorflow::serving::PredictResponse response;
  auto status = google::protobuf::util::JsonStringToMessage(value->dump(), &response);
  if (!status.ok()) {
    ctx.error_at(item->path, "not a PredictResponse: " + std::string(status.message()));
    return;
  }
  response.SerializeToString(&out);
}

void read_default_tier(MapReader& map, FallbackTier& out) {
  map.integer("status", out.status, kHttpStatus);
  read_default_body(map, out.body);
  map.duration("retry_after", out.retry_after, ZeroDuration::allowed);
  read_grpc_response(map, out.grpc_response);
}

// ---- rules tier -----------------------------------------------------------------------------

constexpr NumberRange kAnyNumber{std::numeric_limits<double>::lowest(),
                                 std::numeric_limits<double>::max()};
constexpr const char* kJsonValueExpected = "a map, a list or a scalar";

// "0", "12.5": a bound as the operator wrote it.
std::string number_text(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    return std::to_string(static_cast<std::int64_t>(value));
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc{} ? std::string(buffer, end) : std::to_string(value);
}

// `key:` holding any YAML value, converted to JSON like a default tier's body (but a string
// stays a string: it is not read as JSON text). Null is refused: the rules engine reads it as
// "no value". Returns the item when the key is present.
std::optional<ListItem> read_json_value(MapReader& map, std::string_view key, Presence presence,
                                        std::string& out) {
  LoadContext& ctx = map.context();
  auto item = map.value(key, presence);
  if (!item) return std::nullopt;
  if (item->node.IsNull()) {
    ctx.error_at(item->path, std::string("missing value (expected ") + kJsonValueExpected + ")");
  } else if (auto value = yaml_to_json(ctx, item->node, item->path)) {
    out = value->dump();
  }
  return item;
}

// RFC 6901: "" (the whole value) or "/"-separated tokens where "~" escapes as ~0 and ~1.
std::optional<std::string> pointer_problem(std::string_view pointer) {
  if (pointer.empty()) return std::nullopt;
  if (pointer.front() != '/')
    return std::string(
        "not a JSON Pointer (must start with \"/\", or be \"\" for the whole value)");
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~' &&
        (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')))
      return std::string(
          "not a JSON Pointer (\"~\" must be followed by 0 or 1: ~0 is \"~\", ~1 "
          "is \"/\")");
  }
  return std::nullopt;
}

void read_condition(LoadContext& ctx, const ListItem& item, RuleConditionConfig& out) {
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (auto pointer = map.scalar("pointer", "a string", Presence::required)) {
    if (auto problem = pointer_problem(pointer->text)) {
      detail::value_error(ctx, *pointer, *problem + ": " + in_quotes(pointer->text));
    } else {
      out.pointer = pointer->text;
    }
  }
  const auto op = map.one_of("op", kConditionOps);
  if (op) out.op = std::string(kConditionOps[*op]);
  const auto value = read_json_value(map, "value", Presence::optional, out.value_json);
  double bound = 0;
  if (map.number("min", bound, kAnyNumber)) out.min = bound;
  if (map.number("max", bound, kAnyNumber)) out.max = bound;
  if (!map.present() || !usable(map, "op", op.has_value())) return;

  // Which keys an op uses; the others are mistakes, not silently ignored.
  const bool wants_value = out.op == "equals" || out.op == "in";
  const bool wants_bounds = out.op == "range";
  const bool has_min = ctx.was_written(map.child_path("min"));
  const bool has_max = ctx.was_written(map.child_path("max"));
  if (wants_value && !value) {
    ctx.error_at(item.path, "missing required key \"value\" (op " + out.op + " compares with it)");
  } else if (!wants_value && value) {
    map.error("value", "only used by op equals and in (op is " + out.op + ")");
  }
  if (out.op == "in" && value && !value->node.IsNull() && !value->node.IsSequence()) {
    map.error("value", "op in needs a list of values, got " +
                           std::string(detail::describe_node_type(value->node)));
  }
  if (!wants_bounds) {
    if (has_min) map.error("min", "only used by op range (op is " + out.op + ")");
    if (has_max) map.error("max", "only used by op range (op is " + out.op + ")");
    return;
  }
  if (!has_min && !has_max) ctx.error_at(item.path, "op range needs min, max or both");
  if (out.min && out.max && *out.min > *out.max)
    map.error("max", "must not be less than min (" + number_text(*out.min) + ")");
}

void read_conditions(MapReader& rule, std::string_view key, std::vector<RuleConditionConfig>& out) {
  const List list = rule.list(key);
  for (const ListItem& item : list.items) {
    RuleConditionConfig condition;
    read_condition(rule.context(), item, condition);
    out.push_back(std::move(condition));
  }
}

// RFC 9110 token characters.
bool is_header_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

void read_rule_headers(MapReader& rule, std::vector<std::pair<std::string, std::string>>& out) {
  LoadContext& ctx = rule.context();
  MapReader map = rule.map("headers");
  for (const NamedEntry& entry : map.entries()) {
    if (!is_header_name(entry.name)) {
      ctx.diagnostics().error(entry.key_mark, entry.path,
                              "invalid header name " + in_quotes(entry.name) +
                                  " (use letters, digits and !#$%&'*+-.^_`|~)");
      continue;
    }
    std::string name = entry.name;
    std::transform(name.begin(), name.end(), name.begin(), [](char c) {
      return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    if (entry.value.IsNull()) {
      ctx.diagnostics().error(entry.key_mark, entry.path, "missing value (expected a string)");
      continue;
    }
    auto value = detail::list_scalar(ctx, ListItem{entry.value, entry.path}, "a string");
    if (!value) continue;
    const auto first = std::find_if(out.begin(), out.end(),
                                    [&](const auto& header) { return header.first == name; });
    if (first != out.end()) {
      ctx.diagnostics().error(
          entry.key_mark, entry.path,
          "duplicate header " + in_quotes(name) + " (header names are case-insensitive)");
      continue;
    }
    out.emplace_back(std::move(name), std::move(value->text));
  }
}

void read_rule(LoadContext& ctx, const ListItem& item, RuleConfig& out) {
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("name", out.name, Presence::required)) {
    if (auto problem = name_problem("rule", out.name)) map.error("name", *problem);
  }
  if (map.string("model", out.model) && out.model.find('*') != std::string::npos) {
    map.error("model", "a rule matches an exact model name (leave model out to match any), got " +
                           in_quotes(out.model));
  }
  map.string("signature", out.signature);
  read_rule_headers(map, out.headers);
  read_conditions(map, "when", out.when);
  read_conditions(map, "instance_when", out.instance_when);
  read_json_value(map, "prediction", Presence::required, out.prediction_json);
}

void read_rules_tier(MapReader& map, FallbackTier& out) {
  LoadContext& ctx = map.context();
  map.string("grpc_output", out.grpc_output);
  const std::size_t errors_before = ctx.diagnostics().count();
  const List list = map.list("rules", Presence::required);
  if (list.present && list.items.empty()) ctx.error_at(list.path, "at least one rule is required");
  std::map<std::string, std::size_t> names;
  for (const ListItem& item : list.items) {
    RuleConfig rule;
    read_rule(ctx, item, rule);
    if (!rule.name.empty()) {
      const auto [first, inserted] = names.emplace(rule.name, out.rules.size());
      if (!inserted) {
        ctx.error_at(item.path + ".name", "duplicate rule name " + in_quotes(rule.name) +
                                              " (first at rules[" + std::to_string(first->second) +
                                              "])");
      }
    }
    out.rules.push_back(std::move(rule));
  }
  // The engine's own checks (a rule shadowed by an earlier one that answers everything) run on
  // rules that read cleanly: on the others they would repeat what was just reported.
  if (ctx.diagnostics().count() != errors_before) return;
  const YAML::Mark mark = ctx.locate(list.path);
  for (const std::string& problem : degrade::validate(degrade::compile_rules(out.rules))) {
    // "rules[2].when[0].pointer: message"
    const auto colon = problem.find(": ");
    if (colon == std::string::npos) {
      ctx.diagnostics().error(mark, list.path, problem);
    } else {
      ctx.diagnostics().error(mark, map.child_path(problem.substr(0, colon)),
                              problem.substr(colon + 2));
    }
  }
}

// Returns whether the tier kind is known (the checks across tiers skip the others).
bool read_fallback_tier(LoadContext& ctx, const ListItem& item, FallbackTier& out) {
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  const auto kind = map.one_of("tier", kTierKinds, Presence::required);
  if (!kind) {
    // Which keys belong here depends on the kind: listing them all as unknown would bury the
    // one real mistake.
    map.accept_remaining_keys();
    return false;
  }
  out.kind = static_cast<TierKind>(*kind);
  switch (out.kind) {
    case TierKind::model:
      read_model_tier(map, out);
      break;
    case TierKind::cache:
      break;  // the route's `cache` section says everything
    case TierKind::default_:
      read_default_tier(map, out);
      break;
    case TierKind::rules:
      read_rules_tier(map, out);
      break;
  }
  return true;
}

// Returns whether `mode` is usable for the rule on cache tiers.
bool read_route_cache(MapReader& route, RouteCacheConfig& out) {
  MapReader map = route.map("cache");
  const auto mode = map.one_of("mode", kCacheModes);
  if (mode) out.mode = static_cast<CacheMode>(*mode);
  map.duration("ttl", out.ttl, ZeroDuration::rejected);
  map.duration("stale_if_error", out.stale_if_error, ZeroDuration::allowed);
  map.boolean("fill_from_model_tiers", out.fill_from_model_tiers);
  return usable(map, "mode", mode.has_value());
}

// The chain is tried in order, so its shape is checked here: what could never be reached or
// never answer is a mistake. Pool references are checked with the other cross-section rules.
void read_fallbacks(MapReader& route, RouteConfig& out, bool cache_mode_ok) {
  LoadContext& ctx = route.context();
  const List list = route.list("fallbacks");
  std::vector<bool> known;
  for (const ListItem& item : list.items) {
    FallbackTier tier;
    known.push_back(read_fallback_tier(ctx, item, tier));
    out.fallbacks.push_back(std::move(tier));
  }

  std::optional<std::size_t> first_cache;
  std::optional<std::size_t> first_default;
  std::optional<std::size_t> first_rules;
  for (std::size_t j = 0; j < out.fallbacks.size(); ++j) {
    if (!known[j]) continue;
    const FallbackTier& tier = out.fallbacks[j];
    const std::string& path = list.items[j].path;
    const auto at = [](std::size_t index) { return "fallbacks[" + std::to_string(index) + "]"; };
    if (first_default) {
      // Only the first tier past the default is reported: one mistake, one error.
      if (*first_default + 1 == j) {
        if (tier.kind == TierKind::default_) {
          ctx.error_at(path + ".tier",
                       "at most one default tier per route (first at " + at(*first_default) + ")");
        } else {
          ctx.error_at(path, "unreachable: the default tier at " + at(*first_default) +
                                 " always answers, so it must be the last tier");
        }
      }
      continue;
    }
    switch (tier.kind) {
      case TierKind::model:
        if (tier.pool == out.pool && tier.model == out.match.model && !tier.pool.empty()) {
          ctx.error_at(path, "falls back to itself: pool " + in_quotes(tier.pool) + " and model " +
                                 in_quotes(tier.model) + " are the route's primary");
        }
        break;
      case TierKind::cache:
        if (first_cache) {
          ctx.error_at(path + ".tier",
                       "at most one cache tier per route (first at " + at(*first_cache) + ")");
        } else if (cache_mode_ok && out.cache.mode == CacheMode::off) {
          ctx.error_at(path + ".tier",
                       "a cache tier needs the route's cache.mode to be fallback or first "
                       "(it is off, so nothing is ever stored)");
        }
        if (!first_cache) first_cache = j;
        break;
      case TierKind::default_:
        first_default = j;
        break;
      case TierKind::rules:
        // The first matching rule answers, so a second rules tier could be merged into the
        // first one; two are a mistake.
        if (first_rules) {
          ctx.error_at(path + ".tier",
                       "at most one rules tier per route (first at " + at(*first_rules) + ")");
        } else {
          first_rules = j;
        }
        break;
    }
  }
}

// The reserve is cut from the primary's deadline so that the fallbacks still have time to
// answer when the primary times out.
void check_fallback_reserve(MapReader& route, const RouteConfig& out, bool reserve_ok,
                            bool timeout_ok) {
  if (!reserve_ok || !timeout_ok) return;
  if (!out.fallbacks.empty() && out.fallback_reserve >= out.timeout) {
    route.error("fallback_reserve", "must be less than the route's timeout (" +
                                        format_duration(out.timeout) +
                                        ") when fallbacks are set, or the primary gets no time");
  } else if (out.fallback_reserve > out.timeout) {
    route.error("fallback_reserve",
                "must not exceed the route's timeout (" + format_duration(out.timeout) + ")");
  }
}

// ---- load-aware degradation, traffic split, idempotency ---------------------------------------

constexpr NumberRange kRecoverRatio{0.01, 1};
constexpr NumberRange kEwmaAlpha{0.01, 1};
constexpr IntegerRange kRecoverIntervals{1, 1000};

void read_degrade_on_load(MapReader& route, LoadDegradeConfig& out) {
  MapReader map = route.map("degrade_on_load");
  if (!map.present()) return;
  map.integer("max_inflight", out.max_inflight, kCountOrOff);
  map.duration("max_latency", out.max_latency, ZeroDuration::allowed);
  map.duration("interval", out.interval, ZeroDuration::rejected);
  map.number("step_percent", out.step_percent, kPositivePercent);
  map.number("max_percent", out.max_percent, kPositivePercent);
  map.number("recover_ratio", out.recover_ratio, kRecoverRatio);
  map.integer("recover_intervals", out.recover_intervals, kRecoverIntervals);
  map.number("latency_ewma_alpha", out.latency_ewma_alpha, kEwmaAlpha);
  map.boolean("dry_run", out.dry_run);
  if (!out.enabled()) {
    map.error("max_inflight",
              "set max_inflight and/or max_latency (both are 0, so nothing would ever degrade)");
  }
}

// HTTP header names as RFC 9110 tokens, stored lowercase (Beast compares them without case).
bool read_header_name(MapReader& map, std::string_view key, std::string& out) {
  if (!map.string(key, out)) return false;
  if (out.empty()) return true;
  for (char& c : out) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) {
      map.error(key, "invalid header name " + in_quotes(out));
      return false;
    }
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return true;
}

void read_split_target(LoadContext& ctx, const ListItem& item, SplitTargetConfig& out) {
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("name", out.name, Presence::required)) {
    if (auto problem = name_problem("canary", out.name)) {
      map.error("name", *problem);
    } else if (out.name == "always" || out.name == "never" || out.name == "stable") {
      map.error("name", in_quotes(out.name) + " is reserved (an override header value)");
    }
  }
  map.string("pool", out.pool);
  if (map.string("model", out.model) && out.model.find('*') != std::string::npos)
    map.error("model", "a canary needs an exact model name, got " + in_quotes(out.model));
  const bool version_ok = map.integer("version", out.version, kFallbackVersion);
  bool label_ok = map.string("label", out.label);
  if (label_ok && !out.label.empty() && !is_version_label(out.label)) {
    map.error("label",
              "invalid label " + in_quotes(out.label) + " (use letters, digits and \"_\")");
    label_ok = false;
  }
  if (version_ok && label_ok && !out.label.empty())
    map.error("label", "set either version or label, not both (version is " +
                           std::to_string(out.version) + ")");
  map.number("weight_percent", out.weight_percent, kPercent, Presence::required);
}

void read_split(MapReader& route, RouteConfig& out) {
  MapReader map = route.map("split");
  if (!map.present()) return;
  LoadContext& ctx = map.context();
  const List list = map.list("canaries", Presence::required);
  if (list.present && list.items.empty())
    ctx.error_at(list.path, "at least one canary is required (or remove split)");
  for (const ListItem& item : list.items) {
    SplitTargetConfig target;
    read_split_target(ctx, item, target);
    out.split.canaries.push_back(std::move(target));
  }
  read_header_name(map, "override_header", out.split.override_header);
  read_header_name(map, "sticky_header", out.split.sticky_header);

  double total = 0;
  std::map<std::string, std::size_t, std::less<>> seen;
  for (std::size_t i = 0; i < out.split.canaries.size(); ++i) {
    const SplitTargetConfig& target = out.split.canaries[i];
    total += target.weight_percent;
    if (target.name.empty()) continue;
    auto [it, inserted] = seen.emplace(target.name, i);
    if (!inserted) {
      ctx.error_at(list.items[i].path + ".name",
                   "duplicate canary name " + in_quotes(target.name) + " (first at canaries[" +
                       std::to_string(it->second) + "])");
    }
    const bool same_pool = target.pool.empty() || target.pool == out.pool;
    const bool same_model = target.model.empty() || target.model == out.match.model;
    if (same_pool && same_model && target.version == 0 && target.label.empty()) {
      ctx.error_at(list.items[i].path,
                   "the canary is the stable target itself: set a pool, model, version or label");
    }
  }
  if (total > 100 + 1e-9) {
    ctx.error_at(list.path, "canary weights add up to " + number_text(total) +
                                "%, more than 100%");
  }
}

void read_idempotency(MapReader& route, IdempotencyConfig& out) {
  MapReader map = route.map("idempotency");
  if (!map.present()) return;
  out.enabled = true;
  map.boolean("enabled", out.enabled);
  if (read_header_name(map, "header", out.header) && out.header.empty())
    map.error("header", "must not be empty");
  map.duration("ttl", out.ttl, ZeroDuration::allowed);
  map.boolean("coalesce_identical", out.coalesce_identical);
}

// ---- admission control and authentication ---------------------------------------------------

constexpr IntegerRange kPriority{0, 9};
constexpr IntegerRange kBurst{1, kUint32Max};
constexpr IntegerRange kInflight{0, std::numeric_limits<std::int64_t>::max()};  // 0 = off
// Fractions are allowed: 0.5 is one request every two seconds.
constexpr NumberRange kRequestsPerSecond{0, 1'000'000};
constexpr NumberRange kTolerance{1, 100};
constexpr IntegerRange kShedStepPercent{1, 100};

// In AuthPolicyKind order, and auth::JwtAlg order.
constexpr std::array<std::string_view, 4> kAuthPolicies = {"none", "api_key", "jwt", "any"};
constexpr std::array<std::string_view, 2> kJwtAlgs = {"HS256", "RS256"};

// A token bucket; present means on, so the rate is required.
void read_rate_limit(MapReader& parent, std::string_view key, RateLimitConfig& out) {
  MapReader map = parent.map(key);
  if (!map.present()) return;
  double rate = 0;
  const bool rate_ok =
      map.number("requests_per_second", rate, kRequestsPerSecond, Presence::required);
  if (rate_ok && rate == 0) {
    map.error("requests_per_second", "must be greater than 0");
  } else if (rate_ok) {
    out.requests_per_second = rate;
  }
  // The default burst lets one second's worth of requests through at once, and at least one.
  if (!map.integer("burst", out.burst, kBurst) && out.requests_per_second > 0 &&
      !map.context().was_written(map.child_path("burst"))) {
    out.burst = static_cast<std::uint32_t>(std::max(1.0, std::ceil(out.requests_per_second)));
  }
}

// The realm is sent as a quoted-string in WWW-Authenticate.
void read_realm(MapReader& map, std::string& out) {
  std::string realm;
  if (!map.string("realm", realm)) return;
  const bool quotable = std::none_of(realm.begin(), realm.end(), [](char c) {
    return c == '"' || c == '\\' || std::iscntrl(static_cast<unsigned char>(c));
  });
  if (realm.empty()) {
    map.error("realm", "must not be empty");
  } else if (!quotable) {
    map.error("realm",
              "must not contain '\"', '\\' or control characters (it is sent in "
              "WWW-Authenticate)");
  } else {
    out = std::move(realm);
  }
}

// Kept as written (the default is X-API-Key): header names compare without case.
void read_api_key_header(MapReader& map, std::string& out) {
  std::string header;
  if (!map.string("api_key_header", header)) return;
  std::string lower = header;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  if (header.empty()) {
    map.error("api_key_header", "must not be empty");
  } else if (!is_header_name(header)) {
    map.error("api_key_header", "invalid header name " + in_quotes(header) +
                                    " (use letters, digits and !#$%&'*+-.^_`|~)");
  } else if (lower == "authorization") {
    map.error("api_key_header",
              "cannot be Authorization (keys are accepted there anyway, as "
              "\"Authorization: ApiKey <key>\")");
  } else {
    out = std::move(header);
  }
}

ApiKeyConfig read_api_key(LoadContext& ctx, const ListItem& item,
                          std::optional<auth::Sha256Digest>& digest) {
  ApiKeyConfig out;
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  if (map.string("name", out.name, Presence::required)) {
    if (auto problem = name_problem("API key", out.name)) map.error("name", *problem);
  }
  if (map.string("hash", out.hash, Presence::required))
    digest = check_key_hash(map, "hash", out.hash);
  std::uint8_t priority = 0;
  if (map.integer("priority", priority, kPriority)) out.priority = priority;
  read_rate_limit(map, "rate_limit", out.rate_limit);
  read_exact_models(map, "an exact model name is needed (leave models out to allow every model)",
                    out.models);
  return out;
}

void read_api_keys(MapReader& auth_map, std::vector<ApiKeyConfig>& out) {
  LoadContext& ctx = auth_map.context();
  const List list = auth_map.list("api_keys");
  std::map<std::string, std::size_t, std::less<>> first_by_name;
  std::vector<std::pair<auth::Sha256Digest, std::size_t>> digests;
  for (std::size_t i = 0; i < list.items.size(); ++i) {
    std::optional<auth::Sha256Digest> digest;
    out.push_back(read_api_key(ctx, list.items[i], digest));
    const ApiKeyConfig& key = out.back();
    const std::string& path = list.items[i].path;
    if (!key.name.empty()) {
      auto [it, inserted] = first_by_name.emplace(key.name, i);
      if (!inserted) {
        ctx.error_at(path + ".name", "duplicate API key name " + in_quotes(key.name) +
                                         " (first at api_keys[" + std::to_string(it->second) +
                                         "])");
      }
    }
    if (!digest) continue;
    // Hex case differs, the key does not: compare digests, not text.
    const auto same = std::find_if(digests.begin(), digests.end(),
                                   [&](const auto& seen) { return seen.first == *digest; });
    if (same != digests.end()) {
      const std::string& first_name = out[same->second].name;
      ctx.error_at(path + ".hash",
                   "the same key as api_keys[" + std::to_string(same->second) + "]" +
                       (first_name.empty() ? "" : " (" + in_quotes(first_name) + ")") +
                       ": one key cannot have two names");
    } else {
      digests.emplace_back(*digest, i);
    }
  }
}

// A file the configuration names must be readable now, not at the first request.
bool check_readable(MapReader& map, std::string_view key, const std::string& path) {
  std::string text;
  if (auto problem = read_file(path, text)) {
    map.error(key, "cannot read " + in_quotes(path) + ": " + *problem);
    return false;
  }
  return true;
}

void read_jwt_key(LoadContext& ctx, const ListItem& item, JwtKeyEntryConfig& out) {
  MapReader map(ctx, item.node, item.path, item.node.Mark());
  map.string("kid", out.kid);
  const auto alg = map.one_of("alg", kJwtAlgs);
  if (alg) out.alg = std::string(kJwtAlgs[*alg]);
  // Messages about the secret never show it.
  const std::array<std::pair<std::string_view, std::string*>, 3> sources = {
      {{"secret", &out.secret},
       {"public_key_pem", &out.public_key_pem},
       {"public_key_file", &out.public_key_file}}};
  std::vector<std::string_view> set;
  bool sources_ok = true;
  for (const auto& [key, value] : sources) {
    if (!map.string(key, *value)) {
      sources_ok = sources_ok && !ctx.was_written(map.child_path(key));
    } else if (value->empty()) {
      map.error(key, "must not be empty");
      sources_ok = false;
    } else {
      set.push_back(key);
    }
  }
  if (!sources_ok || !usable(map, "alg", alg.has_value())) return;
  if (set.empty()) {
    ctx.error_at(item.path, "set one of secret (HS256), public_key_pem or public_key_file (RS256)");
    return;
  }
  if (set.size() > 1) {
    map.error(set[1], "set only one of secret, public_key_pem and public_key_file (" +
                          std::string(set[0]) + " is set too)");
    return;
  }
  const std::string_view source = set[0];
  const bool hs256 = out.alg == "HS256";
  const std::string alg_said =
      ctx.was_written(map.child_path("alg")) ? out.alg : out.alg + ", the default";
  if (hs256 && source != "secret") {
    map.error(source, "is for RS256 keys, but alg is " + alg_said + " (set alg: RS256)");
    return;
  }
  if (!hs256 && source == "secret") {
    map.error(source, "is for HS256 keys, but alg is " + alg_said);
    return;
  }
  if (hs256 && out.secret.size() < auth::kMinHs256SecretBytes) {
    map.error("secret", "must be at least " + std::to_string(auth::kMinHs256SecretBytes) +
                            " bytes (got " + std::to_string(out.secret.size()) + ")");
    return;
  }
  if (source == "public_key_file" && !check_readable(map, source, out.public_key_file)) return;
  // Parse the key now, so that a bad one is a configuration error with its path.
  const auth::JwtKeyConfig key{out.kid, hs256 ? auth::JwtAlg::hs256 : auth::JwtAlg::rs256,
                               out.secret, out.public_key_pem, out.public_key_file};
  if (auto loaded = auth::load_jwt_key(key); !loaded) map.error(source, loaded.error());
}

// Returns whether `keys` is usable: absent, or a list (its entries may have errors of their own).
bool read_jwt_keys(MapReader& jwt, std::vector<JwtKeyEntryConfig>& out) {
  LoadContext& ctx = jwt.context();
  const List list = jwt.list("keys");
  std::map<std::string, std::size_t, std::less<>> first_by_kid;
  std::map<std::string, std::size_t, std::less<>> first_without_kid;  // by alg
  for (std::size_t i = 0; i < list.items.size(); ++i) {
    JwtKeyEntryConfig key;
    read_jwt_key(ctx, list.items[i], key);
    const std::string& path = list.items[i].path;
    if (!key.kid.empty()) {
      auto [it, inserted] = first_by_kid.emplace(key.kid, i);
      if (!inserted) {
        ctx.error_at(path + ".kid", "duplicate kid " + in_quotes(key.kid) + " (first at keys[" +
                                        std::to_string(it->second) + "])");
      }
    } else {
      // A token without a kid takes the only key of its alg: with two, it could take neither.
      auto [it, inserted] = first_without_kid.emplace(key.alg, i);
      if (!inserted) {
        ctx.error_at(path, "a second " + key.alg + " key without a kid (the first is keys[" +
                               std::to_string(it->second) +
                               "]): tokens without a kid could use neither; give the keys kids");
      }
    }
    out.push_back(std::move(key));
  }
  return list.present || !ctx.was_written(list.path);
}

void read_jwt(MapReader& auth_map, JwtConfig& out) {
  MapReader map = auth_map.map("jwt");
  if (!map.present()) return;
  out.enabled = true;
  map.string("issuer", out.issuer);
  map.string("audience", out.audience);
  map.boolean("require_exp", out.require_exp);
  map.duration("clock_skew", out.clock_skew, ZeroDuration::allowed);
  map.string("priority_claim", out.priority_claim);
  map.string("models_claim", out.models_claim);
  map.size("max_token_bytes", out.max_token_bytes, 1);
  const bool keys_ok = read_jwt_keys(map, out.keys);
  const bool jwks_ok = map.string("jwks_file", out.jwks_file);  // "" = none
  if (jwks_ok && !out.jwks_file.empty() && check_readable(map, "jwks_file", out.jwks_file)) {
    if (auto keys = auth::load_jwks_file(out.jwks_file); !keys)
      map.error("jwks_file", keys.error());
  }
  if (out.keys.empty() && out.jwks_file.empty() && keys_ok && usable(map, "jwks_file", jwks_ok)) {
    map.context().error_at(map.path(), "needs at least one key in keys, or a jwks_file");
  }
}

void read_auth(MapReader& root, AuthConfig& out) {
  MapReader map = root.map("auth");
  read_realm(map, out.realm);
  read_api_key_header(map, out.api_key_header);
  read_api_keys(map, out.api_keys);
  read_jwt(map, out.jwt);
}

void read_admission(MapReader& root, AdmissionConfig& out) {
  MapReader map = root.map("admission");
  map.integer("max_inflight", out.max_inflight, kInflight);
  map.size("max_memory", out.max_memory, 0);
  // Whole percents: the shedder steps in them (admission::LoadShedderOptions::step_percent).
  std::uint32_t step = 0;
  if (map.integer("shed_step_percent", step, kShedStepPercent)) out.shed_step_percent = step;
  map.duration("sample_interval", out.sample_interval, ZeroDuration::rejected);
  map.integer("max_clients", out.max_clients, kPositiveCount);
  map.duration("client_idle_eviction", out.client_idle_eviction, ZeroDuration::rejected);
}

// `0: 16` etc.: the keys are priorities. `max_queued` is nullopt when it was itself invalid.
void read_queue_caps(MapReader& concurrency, std::optional<std::uint32_t> max_queued,
                     std::array<std::uint32_t, 10>& out) {
  LoadContext& ctx = concurrency.context();
  MapReader map = concurrency.map("max_queued_per_priority");
  std::array<bool, 10> seen{};
  for (const NamedEntry& entry : map.entries()) {
    const auto level = parse_int64(entry.name);
    if (!level || *level < 0 || *level > 9) {
      ctx.diagnostics().error(
          entry.key_mark, entry.path,
          "invalid priority " + in_quotes(entry.name) + " (priorities are 0..9)");
      continue;
    }
    if (seen[*level]) {
      ctx.diagnostics().error(entry.key_mark, entry.path,
                              "duplicate priority " + std::to_string(*level));
      continue;
    }
    seen[*level] = true;
    if (entry.value.IsNull()) {
      ctx.diagnostics().error(entry.key_mark, entry.path, "missing value (expected an integer)");
      continue;
    }
    auto scalar = detail::list_scalar(ctx, ListItem{entry.value, entry.path}, "an integer");
    if (!scalar) continue;
    auto count = detail::interpret_integer(ctx, *scalar, kCountOrUnlimited);
    if (!count) continue;
    // A cap above the whole queue's would never bind.
    if (max_queued && *count > *max_queued) {
      detail::value_error(ctx, *scalar,
                          "must not exceed max_queued (" + std::to_string(*max_queued) + ")");
      continue;
    }
    out[*level] = static_cast<std::uint32_t>(*count);
  }
}

// Returns whether min_limit..max_limit is usable (for the rule on `limit`).
bool read_adaptive_limit(MapReader& concurrency, RouteConcurrencyConfig::Adaptive& out) {
  MapReader map = concurrency.map("adaptive");
  if (!map.present()) return false;
  out.enabled = true;
  map.boolean("dry_run", out.dry_run);
  const bool min_ok =
      usable(map, "min_limit", map.integer("min_limit", out.min_limit, kPositiveCount));
  const bool max_ok =
      usable(map, "max_limit", map.integer("max_limit", out.max_limit, kPositiveCount));
  map.duration("interval", out.interval, ZeroDuration::rejected);
  map.number("tolerance", out.tolerance, kTolerance);
  map.duration("min_rtt_interval", out.min_rtt_interval, ZeroDuration::rejected);
  if (!min_ok || !max_ok) return false;
  if (out.max_limit < out.min_limit) {
    if (key_to_blame(map, "max_limit", "min_limit") == "max_limit") {
      map.error("max_limit", "must be at least min_limit (" + std::to_string(out.min_limit) + ")");
    } else {
      map.error("min_limit", "must not exceed max_limit (" + std::to_string(out.max_limit) + ")");
    }
    return false;
  }
  return true;
}

void read_concurrency(MapReader& route, RouteConcurrencyConfig& out) {
  MapReader map = route.map("concurrency");
  if (!map.present()) return;
  out.enabled = true;
  const bool limit_ok = usable(map, "limit", map.integer("limit", out.limit, kPositiveCount));
  const bool max_queued_ok =
      usable(map, "max_queued", map.integer("max_queued", out.max_queued, kCountOrUnlimited));
  read_queue_caps(map, max_queued_ok ? std::optional(out.max_queued) : std::nullopt,
                  out.max_queued_per_priority);
  map.duration("queue_timeout", out.queue_timeout, ZeroDuration::rejected);
  map.duration("aging_step", out.aging_step, ZeroDuration::allowed);
  const bool bounds_ok = read_adaptive_limit(map, out.adaptive);
  // With an adaptive limit, `limit` is where it starts.
  const auto& adaptive = out.adaptive;
  if (bounds_ok && limit_ok && (out.limit < adaptive.min_limit || out.limit > adaptive.max_limit)) {
    map.error("limit",
              "must be within adaptive.min_limit..adaptive.max_limit (" +
                  std::to_string(adaptive.min_limit) + ".." + std::to_string(adaptive.max_limit) +
                  "): it is the adaptive limit's starting value, got " + std::to_string(out.limit));
  }
}

void read_route_admission(MapReader& route, RouteAdmissionConfig& out) {
  route.integer("priority", out.priority, kPriority);
  if (auto policy = route.one_of("auth", kAuthPolicies))
    out.auth = static_cast<AuthPolicyKind>(*policy);
  read_concurrency(route, out.concurrency);
  read_rate_limit(route, "rate_limit", out.rate_limit);
  read_rate_limit(route, "client_rate_limit", out.client_rate_limit);
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
  const bool timeout_ok =
      usable(map, "timeout", map.duration("timeout", out.timeout, ZeroDuration::rejected));
  const bool max_timeout_ok = usable(
      map, "max_timeout", map.duration("max_timeout", out.max_timeout, ZeroDuration::allowed));
  read_retry(map, out.retry, timeout_ok ? std::optional(out.timeout) : std::nullopt);
  read_hedge(map, out.hedge, timeout_ok ? std::optional(out.timeout) : std::nullopt);
  const bool cache_mode_ok = read_route_cache(map, out.cache);
  read_fallbacks(map, out, cache_mode_ok);
  const bool reserve_ok =
      usable(map, "fallback_reserve",
             map.duration("fallback_reserve", out.fallback_reserve, ZeroDuration::allowed));
  check_fallback_reserve(map, out, reserve_ok, timeout_ok);
  read_degrade_on_load(map, out.degrade_on_load);
  if (out.degrade_on_load.enabled() &&
      (out.fallbacks.empty() || out.fallbacks.front().kind != TierKind::model)) {
    map.error("degrade_on_load",
              "needs a model tier as the first fallback (diverted requests go there)");
  }
  read_split(map, out);
  read_idempotency(map, out.idempotency);
  read_route_admission(map, out.admission);

  // X-Fusebox-Timeout-Ms may shorten the deadline up to max_timeout; a cap below the
  // route's own timeout would shorten every request.
  if (timeout_ok && max_timeout_ok && out.max_timeout.count() != 0 &&
      out.max_timeout < out.timeout) {
    map.error("max_timeout",
              "must be 0 or at least timeout (" + format_duration(out.timeout) + ")");
  }
  return out;
}

void read_routes(LoadContext& ctx, MapReader& root, std::vector<RouteConfig>& out) {
  List routes = root.list("routes", Presence::required);
  if (routes.present && routes.items.empty())
    ctx.error_at(routes.path, "at least one route is required");
  for (const ListItem& item : routes.items) out.push_back(read_route(ctx, item));
}

void read_cache_store(MapReader& root, CacheStoreConfig& out) {
  MapReader map = root.map("cache");
  map.size("max_bytes", out.max_bytes, 1);
  map.integer("shards", out.shards, kCacheShards);
}

void read_idempotency_store(MapReader& root, IdempotencyStoreConfig& out) {
  MapReader map = root.map("idempotency");
  map.size("max_bytes", out.max_bytes, 1);
  map.integer("shards", out.shards, kCacheShards);
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
bool ports_clash(const std::string& address_a, std::uint16_t port_a, const std::string& address_b,
                 std::uint16_t port_b) {
  if (port_a == 0 || port_a != port_b) return false;
  const auto a = parse_ip(address_a);
  const auto b = parse_ip(address_b);
  if (!a || !b) return false;  // already reported
  return *a == *b || a->is_unspecified() || b->is_unspecified();
}

void check_grpc_listener_port(LoadContext& ctx, const ListenersConfig& listeners) {
  const GrpcListenerConfig& grpc = listeners.grpc;
  if (!grpc.enabled) return;
  const std::pair<const char*, std::pair<const std::string*, std::uint16_t>> others[] = {
      {"listeners.http", {&listeners.http.address, listeners.http.port}},
      {"listeners.admin", {&listeners.admin.address, listeners.admin.port}}};
  for (const auto& [name, where] : others) {
    if (ports_clash(grpc.address, grpc.port, *where.first, where.second)) {
      ctx.error_at("listeners.grpc.port", "port " + std::to_string(grpc.port) + " on " +
                                              grpc.address + " is already used by " + name +
                                              " (" + host_port(*where.first, where.second) + ")");
      return;
    }
  }
}

void check_listener_ports(LoadContext& ctx, const ListenersConfig& listeners) {
  check_grpc_listener_port(ctx, listeners);
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
      ctx.error_at(path + ".pool", "no pool named " + in_quotes(route.pool));
    for (std::size_t j = 0; j < route.fallbacks.size(); ++j) {
      const FallbackTier& tier = route.fallbacks[j];
      if (tier.kind == TierKind::model && !tier.pool.empty() &&
          config.find_pool(tier.pool) == nullptr) {
        ctx.error_at(path + ".fallbacks[" + std::to_string(j) + "].pool",
                     "no pool named " + in_quotes(tier.pool));
      }
    }

    for (std::size_t j = 0; j < route.split.canaries.size(); ++j) {
      const SplitTargetConfig& target = route.split.canaries[j];
      if (!target.pool.empty() && config.find_pool(target.pool) == nullptr) {
        ctx.error_at(path + ".split.canaries[" + std::to_string(j) + "].pool",
                     "no pool named " + in_quotes(target.pool));
      }
    }

    if (!route.name.empty()) {
      auto [it, inserted] = first_by_name.emplace(route.name, i);
      if (!inserted) {
        ctx.error_at(path + ".name", "duplicate route name " + in_quotes(route.name) +
                                         " (first defined at routes[" + std::to_string(it->second) +
                                         "])");
      }
    }
    if (!route.match.model.empty()) {
      auto [it, inserted] = first_by_model.emplace(route.match.model, i);
      if (!inserted) {
        const RouteConfig& first = config.routes[it->second];
        ctx.error_at(path + ".match.model",
                     "model " + in_quotes(route.match.model) + " is already matched by route " +
                         in_quotes(first.name) + " (routes[" + std::to_string(it->second) + "])");
      }
    }
  }
}

// A route's auth policy needs the credentials it accepts to be configured: without them every
// request would get 401.
void check_route_auth(LoadContext& ctx, const Config& config) {
  const bool api_keys = !config.auth.api_keys.empty();
  const bool jwt = config.auth.jwt.enabled;
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const std::string path = "routes[" + std::to_string(i) + "].auth";
    switch (config.routes[i].admission.auth) {
      case AuthPolicyKind::none:
        break;
      case AuthPolicyKind::api_key:
        if (!api_keys) ctx.error_at(path, "api_key needs at least one key in auth.api_keys");
        break;
      case AuthPolicyKind::jwt:
        if (!jwt) ctx.error_at(path, "jwt needs an auth.jwt section");
        break;
      case AuthPolicyKind::any:
        if (!api_keys && !jwt)
          ctx.error_at(path, "any needs auth.api_keys or auth.jwt (neither is configured)");
        break;
    }
  }
}

// require_health_check holds a backend open until an active probe passes: without probes that
// can run, the backend would stay out of rotation for good.
void check_required_health_checks(LoadContext& ctx, const Config& config) {
  for (const PoolConfig& pool : config.pools) {
    if (!pool.circuit_breaker.require_health_check) continue;
    const std::string path = "pools." + pool.name + ".circuit_breaker.require_health_check";
    if (!pool.health_check.enabled) {
      ctx.error_at(path,
                   "needs health_check.enabled: true (without probes an open breaker "
                   "would never close)");
      continue;
    }
    if (!pool.health_check.models.empty()) continue;
    const bool has_exact_model =
        std::any_of(config.routes.begin(), config.routes.end(), [&](const RouteConfig& route) {
          return route.pool == pool.name && !route.match.model.empty() && route.match.model != "*";
        });
    if (!has_exact_model) {
      ctx.error_at(path,
                   "needs a model to probe: list it in health_check.models (no route "
                   "using this pool names an exact model, and \"*\" gives none)");
    }
  }
}

Config read_config(LoadContext& ctx, const YAML::Node& root_node) {
  Config config;
  {
    MapReader root(ctx, root_node, "", root_node.Mark());
    read_server(root, config.server);
    read_drain(root, config.drain);
    read_reload(root, config.reload);
    read_listeners(root, config.listeners);
    read_auth(root, config.auth);
    read_admission(root, config.admission);
    read_pools(ctx, root, config.pools);
    read_routes(ctx, root, config.routes);
    read_cache_store(root, config.cache);
    read_idempotency_store(root, config.idempotency);
    read_logging(root, config.logging);
  }  // unknown top-level keys are reported here
  check_listener_ports(ctx, config.listeners);
  check_routes(ctx, config);
  check_route_auth(ctx, config);
  check_required_health_checks(ctx, config);
  return config;
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
