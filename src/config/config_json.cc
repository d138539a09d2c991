// GET /admin/config: the effective configuration in the same shape and units as the YAML file,
// so an operator can copy a value back into the file. Secrets are the exception: they are shown
// as "<redacted>" (and inline PEMs by their size), so an output holding them does not load back.

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "tensorflow_serving/apis/predict.pb.h"

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

// Percentages (and rule bounds) are written as the operator would: 50, not 50.0.
json percent(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    return static_cast<std::int64_t>(value);
  return value;
}

json to_json(const LoadBalancingConfig& c) {
  return {
      {"policy",
       c.policy == BalancerPolicy::least_request ? "least_request" : "weighted_round_robin"},
      {"slow_start", format_duration(c.slow_start)},
      {"slow_start_min_weight_percent", percent(c.slow_start_min_weight_percent)},
  };
}

const char* to_string(BreakerMode mode) {
  switch (mode) {
    case BreakerMode::auto_:
      return "auto";
    case BreakerMode::disabled:
      return "disabled";
    case BreakerMode::metrics_only:
      return "metrics_only";
  }
  return "auto";
}

json to_json(const CircuitBreakerConfig& c) {
  return {
      {"mode", to_string(c.mode)},
      {"consecutive_failures", c.consecutive_failures},
      {"window",
       {{"type", c.window_type == WindowType::time ? "time" : "count"},
        {"size", c.window_size},
        {"duration", format_duration(c.window_duration)}}},
      {"minimum_calls", c.minimum_calls},
      {"failure_rate_percent", percent(c.failure_rate_percent)},
      {"slow_call_rate_percent", percent(c.slow_call_rate_percent)},
      {"slow_call_duration", format_duration(c.slow_call_duration)},
      {"failure_statuses", c.failure_statuses},
      {"open_duration", format_duration(c.open_duration)},
      {"max_open_duration", format_duration(c.max_open_duration)},
      {"open_jitter_percent", percent(c.open_jitter_percent)},
      {"half_open_max_calls", c.half_open_max_calls},
      {"require_health_check", c.require_health_check},
  };
}

json to_json(const HealthCheckConfig& c) {
  return {
      {"enabled", c.enabled},
      {"protocol", c.protocol == HealthCheckProtocol::grpc ? "grpc" : "rest"},
      {"interval", format_duration(c.interval)},
      {"unhealthy_interval", format_duration(c.unhealthy_interval)},
      {"jitter_percent", percent(c.jitter_percent)},
      {"timeout", format_duration(c.timeout)},
      {"healthy_threshold", c.healthy_threshold},
      {"unhealthy_threshold", c.unhealthy_threshold},
      {"models", c.models},
      {"expected_version", c.expected_version},
  };
}

json to_json(const PoolConfig& c) {
  json endpoints = json::array();
  for (const EndpointConfig& e : c.endpoints)
    endpoints.push_back(
        {{"address", e.address}, {"port", e.port}, {"weight", e.weight}, {"grpc_port", e.grpc_port}});
  return {
      {"endpoints", std::move(endpoints)},
      {"connect_timeout", format_duration(c.connect_timeout)},
      {"max_connections_per_backend", c.max_connections_per_backend},
      {"idle_connection_timeout", format_duration(c.idle_connection_timeout)},
      {"max_response_body", format_size(c.max_response_body)},
      {"max_ejection_percent", percent(c.max_ejection_percent)},
      {"load_balancing", to_json(c.load_balancing)},
      {"circuit_breaker", to_json(c.circuit_breaker)},
      {"health_check", to_json(c.health_check)},
      {"retry_budget",
       {{"budget_percent", percent(c.retry_budget.budget_percent)},
        {"min_concurrency", c.retry_budget.min_concurrency}}},
      {"grpc",
       {{"max_message_bytes", format_size(c.grpc.max_message_bytes)},
        {"keepalive_time", format_duration(c.grpc.keepalive_time)},
        {"keepalive_timeout", format_duration(c.grpc.keepalive_timeout)}}},
  };
}

// In the file's vocabulary: the failure words, then the statuses.
json to_json(const RetryOn& c) {
  json out = json::array();
  if (c.connect_failure) out.push_back("connect_failure");
  if (c.reset) out.push_back("reset");
  if (c.timeout) out.push_back("timeout");
  for (unsigned status : c.statuses) out.push_back(status);
  return out;
}

json to_json(const RetryConfig& c) {
  return {
      {"max_attempts", c.max_attempts},
      {"retry_on", to_json(c.retry_on)},
      {"per_try_timeout", format_duration(c.per_try_timeout)},
      {"backoff",
       {{"base", format_duration(c.backoff_base)}, {"max", format_duration(c.backoff_max)}}},
  };
}

const char* to_string(CacheMode mode) {
  switch (mode) {
    case CacheMode::off:
      return "off";
    case CacheMode::fallback:
      return "fallback";
    case CacheMode::first:
      return "first";
  }
  return "off";
}

// Compact JSON text kept by the loader, as the JSON value it holds.
json json_value(const std::string& text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(text) : value;
}

json to_json(const std::vector<RuleConditionConfig>& conditions) {
  json out = json::array();
  for (const RuleConditionConfig& c : conditions) {
    json condition = {{"pointer", c.pointer}, {"op", c.op}};
    // Only the keys the op uses: the file rejects the others.
    if (!c.value_json.empty()) condition["value"] = json_value(c.value_json);
    if (c.min) condition["min"] = percent(*c.min);
    if (c.max) condition["max"] = percent(*c.max);
    out.push_back(std::move(condition));
  }
  return out;
}

json to_json(const RuleConfig& c) {
  json headers = json::object();
  for (const auto& [name, value] : c.headers) headers[name] = value;
  return {
      {"name", c.name},
      {"model", c.model},
      {"signature", c.signature},
      {"headers", std::move(headers)},
      {"when", to_json(c.when)},
      {"instance_when", to_json(c.instance_when)},
      {"prediction", json_value(c.prediction_json)},
  };
}

// Keys that do not apply to a tier's kind are left out: the file would reject them there.
json to_json(const FallbackTier& c) {
  switch (c.kind) {
    case TierKind::model: {
      json out = {{"tier", "model"},
                  {"pool", c.pool},
                  {"model", c.model},
                  {"timeout", format_duration(c.timeout)},
                  {"signature", c.signature}};
      // Version and label exclude each other, and 0 / "" (keep none) cannot be written.
      if (c.version != 0) out["version"] = c.version;
      if (!c.label.empty()) out["label"] = c.label;
      return out;
    }
    case TierKind::cache:
      return {{"tier", "cache"}};
    case TierKind::default_: {
      // The body as JSON, except a JSON string, which stays JSON text so that it loads back as
      // the same string (a bare string would be read as JSON text and fail).
      json body = json::parse(c.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || body.is_string()) body = c.body;
      json out = {{"tier", "default"},
                  {"status", c.status},
                  {"body", std::move(body)},
                  {"retry_after", format_duration(c.retry_after)}};
      if (!c.grpc_response.empty()) {
        tensorflow::serving::PredictResponse response;
        std::string text;
        if (response.ParseFromString(c.grpc_response) &&
            google::protobuf::util::MessageToJsonString(response, &text).ok()) {
          out["grpc_response"] = json::parse(text, nullptr, /*allow_exceptions=*/false);
        }
      }
      return out;
    }
    case TierKind::rules: {
      json rules = json::array();
      for (const RuleConfig& rule : c.rules) rules.push_back(to_json(rule));
      json out = {{"tier", "rules"}, {"rules", std::move(rules)}};
      if (!c.grpc_output.empty()) out["grpc_output"] = c.grpc_output;
      return out;
    }
  }
  return json::object();
}

json to_json(const LoadDegradeConfig& c) {
  return {{"max_inflight", c.max_inflight},
          {"max_latency", format_duration(c.max_latency)},
          {"interval", format_duration(c.interval)},
          {"step_percent", c.step_percent},
          {"max_percent", c.max_percent},
          {"recover_ratio", c.recover_ratio},
          {"recover_intervals", c.recover_intervals},
          {"latency_ewma_alpha", c.latency_ewma_alpha},
          {"dry_run", c.dry_run}};
}

json to_json(const SplitConfig& c) {
  json canaries = json::array();
  for (const SplitTargetConfig& t : c.canaries) {
    json canary = {{"name", t.name}, {"weight_percent", t.weight_percent}};
    // Unset targets keep the request's pool, model, version or label: left out.
    if (!t.pool.empty()) canary["pool"] = t.pool;
    if (!t.model.empty()) canary["model"] = t.model;
    if (t.version > 0) canary["version"] = t.version;
    if (!t.label.empty()) canary["label"] = t.label;
    canaries.push_back(std::move(canary));
  }
  return {{"canaries", std::move(canaries)},
          {"override_header", c.override_header},
          {"sticky_header", c.sticky_header}};
}

// ---- admission control and authentication ---------------------------------------------------

constexpr const char* kRedacted = "<redacted>";

// A rate limit appears only when on (off has no spelling in the file).
void put_rate_limit(json& out, const char* key, const RateLimitConfig& c) {
  if (!c.enabled()) return;
  out[key] = {{"requests_per_second", percent(c.requests_per_second)}, {"burst", c.burst}};
}

const char* to_string(AuthPolicyKind kind) {
  switch (kind) {
    case AuthPolicyKind::none:
      return "none";
    case AuthPolicyKind::api_key:
      return "api_key";
    case AuthPolicyKind::jwt:
      return "jwt";
    case AuthPolicyKind::any:
      return "any";
  }
  return "none";
}

json to_json(const RouteConcurrencyConfig& c) {
  json caps = json::object();
  for (std::size_t level = 0; level < c.max_queued_per_priority.size(); ++level) {
    // UINT32_MAX marks a level without a cap of its own.
    if (c.max_queued_per_priority[level] != UINT32_MAX)
      caps[std::to_string(level)] = c.max_queued_per_priority[level];
  }
  json out = {{"limit", c.limit},
              {"max_queued", c.max_queued},
              {"max_queued_per_priority", std::move(caps)},
              {"queue_timeout", format_duration(c.queue_timeout)},
              {"aging_step", format_duration(c.aging_step)}};
  if (c.adaptive.enabled) {
    out["adaptive"] = {{"dry_run", c.adaptive.dry_run},
                       {"min_limit", c.adaptive.min_limit},
                       {"max_limit", c.adaptive.max_limit},
                       {"interval", format_duration(c.adaptive.interval)},
                       {"tolerance", percent(c.adaptive.tolerance)},
                       {"min_rtt_interval", format_duration(c.adaptive.min_rtt_interval)}};
  }
  return out;
}

void put_route_admission(json& out, const RouteAdmissionConfig& c) {
  out["priority"] = c.priority;
  out["auth"] = to_string(c.auth);
  if (c.concurrency.enabled) out["concurrency"] = to_json(c.concurrency);
  put_rate_limit(out, "rate_limit", c.rate_limit);
  put_rate_limit(out, "client_rate_limit", c.client_rate_limit);
}

// Hashes are not keys, but they are redacted too: a leaked hash still helps guess a weak key.
json to_json(const ApiKeyConfig& c) {
  json out = {{"name", c.name}, {"hash", kRedacted}, {"models", c.models}};
  if (c.priority) out["priority"] = *c.priority;
  put_rate_limit(out, "rate_limit", c.rate_limit);
  return out;
}

// Only the key source that is set: the file accepts exactly one. A public key is no secret,
// but a PEM is long; its size says which one is loaded well enough.
json to_json(const JwtKeyEntryConfig& c) {
  json out = {{"kid", c.kid}, {"alg", c.alg}};
  if (!c.secret.empty()) out["secret"] = kRedacted;
  if (!c.public_key_pem.empty())
    out["public_key_pem"] = "<pem, " + std::to_string(c.public_key_pem.size()) + " bytes>";
  if (!c.public_key_file.empty()) out["public_key_file"] = c.public_key_file;
  return out;
}

json to_json(const AuthConfig& c) {
  json api_keys = json::array();
  for (const ApiKeyConfig& key : c.api_keys) api_keys.push_back(to_json(key));
  json out = {
      {"realm", c.realm}, {"api_key_header", c.api_key_header}, {"api_keys", std::move(api_keys)}};
  if (c.jwt.enabled) {
    json keys = json::array();
    for (const JwtKeyEntryConfig& key : c.jwt.keys) keys.push_back(to_json(key));
    out["jwt"] = {{"issuer", c.jwt.issuer},
                  {"audience", c.jwt.audience},
                  {"require_exp", c.jwt.require_exp},
                  {"clock_skew", format_duration(c.jwt.clock_skew)},
                  {"priority_claim", c.jwt.priority_claim},
                  {"models_claim", c.jwt.models_claim},
                  {"max_token_bytes", format_size(c.jwt.max_token_bytes)},
                  {"keys", std::move(keys)},
                  {"jwks_file", c.jwt.jwks_file}};
  }
  return out;
}

json to_json(const AdmissionConfig& c) {
  return {{"max_inflight", c.max_inflight},
          {"max_memory", format_size(c.max_memory)},
          {"shed_step_percent", percent(c.shed_step_percent)},
          {"sample_interval", format_duration(c.sample_interval)},
          {"max_clients", c.max_clients},
          {"client_idle_eviction", format_duration(c.client_idle_eviction)}};
}

json to_json(const RouteConfig& c) {
  json fallbacks = json::array();
  for (const FallbackTier& tier : c.fallbacks) fallbacks.push_back(to_json(tier));
  json out = {
      {"name", c.name},
      {"match", {{"model", c.match.model}}},
      {"pool", c.pool},
      {"timeout", format_duration(c.timeout)},
      {"max_timeout", format_duration(c.max_timeout)},
      {"retry", to_json(c.retry)},
      {"hedge", {{"delay", format_duration(c.hedge.delay)}}},
      {"cache",
       {{"mode", to_string(c.cache.mode)},
        {"ttl", format_duration(c.cache.ttl)},
        {"stale_if_error", format_duration(c.cache.stale_if_error)},
        {"fill_from_model_tiers", c.cache.fill_from_model_tiers}}},
      {"fallbacks", std::move(fallbacks)},
      {"fallback_reserve", format_duration(c.fallback_reserve)},
      {"idempotency",
       {{"enabled", c.idempotency.enabled},
        {"header", c.idempotency.header},
        {"ttl", format_duration(c.idempotency.ttl)},
        {"coalesce_identical", c.idempotency.coalesce_identical}}},
  };
  // Optional sections appear only when configured, to keep /admin/config readable.
  if (c.degrade_on_load.enabled()) out["degrade_on_load"] = to_json(c.degrade_on_load);
  if (!c.split.canaries.empty()) out["split"] = to_json(c.split);
  put_route_admission(out, c.admission);
  return out;
}

}  // namespace

nlohmann::json config_to_json(const Config& config) {
  json pools = json::object();
  for (const PoolConfig& pool : config.pools) pools[pool.name] = to_json(pool);
  json routes = json::array();
  for (const RouteConfig& route : config.routes) routes.push_back(to_json(route));
  const AdminListenerConfig& admin = config.listeners.admin;
  json listeners = {{"http", to_json(config.listeners.http)},
                    {"admin",
                     {{"address", admin.address},
                      {"port", admin.port},
                      {"token_hash", admin.token_hash.empty() ? "" : kRedacted}}}};
  if (config.listeners.grpc.enabled) {
    listeners["grpc"] = {{"address", config.listeners.grpc.address},
                         {"port", config.listeners.grpc.port},
                         {"max_message_bytes", format_size(config.listeners.grpc.max_message_bytes)},
                         {"reflection", config.listeners.grpc.reflection},
                         {"metadata",
                          {{"allow", config.listeners.grpc.metadata_allow},
                           {"deny", config.listeners.grpc.metadata_deny}}}};
  }

  // Secrets (JWT secrets, API key and admin token hashes) are rendered as "<redacted>"; any new
  // secret key (TLS private keys) must be too. That output no longer loads back as it is.
  return {
      {"server", {{"threads", config.server.threads}}},
      {"drain",
       {{"delay", format_duration(config.drain.delay)},
        {"timeout", format_duration(config.drain.timeout)}}},
      {"reload",
       {{"watch", config.reload.watch}, {"debounce", format_duration(config.reload.debounce)}}},
      {"listeners", std::move(listeners)},
      {"auth", to_json(config.auth)},
      {"admission", to_json(config.admission)},
      {"pools", std::move(pools)},
      {"routes", std::move(routes)},
      {"cache",
       {{"max_bytes", format_size(config.cache.max_bytes)}, {"shards", config.cache.shards}}},
      {"idempotency",
       {{"max_bytes", format_size(config.idempotency.max_bytes)},
        {"shards", config.idempotency.shards}}},
      {"logging",
       {{"level", config.logging.level},
        {"format", config.logging.format == LogFormat::text ? "text" : "json"},
        {"access_log", config.logging.access_log},
        {"file", config.logging.file},
        {"access_log_file", config.logging.access_log_file}}},
  };
}

}  // namespace fusebox::config
