#pragma once
// The effective, validated configuration. Built once by load_config(), then immutable and shared
// between threads as std::shared_ptr<const Config>. Every default here is documented in
// docs/configuration.md; keep the two in step.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fusebox/common/units.h"

namespace fusebox::config {

struct ServerConfig {
  int threads = 0;                          // 0 = one worker per core
};

// SIGTERM/SIGINT: /readyz turns 503 at once; fusebox keeps serving for `delay` (so that load
// balancers notice and stop sending), then stops accepting and lets requests in flight finish
// within `timeout`.
struct DrainConfig {
  Duration delay{0};
  Duration timeout{10'000};
};

// Hot reload: SIGHUP always reloads; with `watch`, so does a change of the config file (or of
// the directory entry it is reached through, as a Kubernetes ConfigMap volume swaps it).
struct ReloadConfig {
  bool watch = true;
  Duration debounce{200};                   // quiet time after the last change before reloading
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
  // "sha256:<64 hex>" of a bearer token that /admin/* requires (Authorization: Bearer <token>);
  // "" = none. /healthz, /readyz and /metrics stay open (probes and scrapers).
  std::string token_hash;
};

// The gRPC listener (TF Serving's PredictionService and ModelService). Off unless configured.
struct GrpcListenerConfig {
  bool enabled = false;                     // true when listeners.grpc is present
  std::string address = "127.0.0.1";
  std::uint16_t port = 8500;                // 0 = pick a free port (reported on stdout)
  std::uint64_t max_message_bytes = 64ull << 20;  // receive and send; larger -> RESOURCE_EXHAUSTED
  bool reflection = true;                   // grpc.reflection.v1alpha.ServerReflection
  // Client metadata forwarded upstream: keys matching `allow` (all when empty) and not `deny`.
  // An entry is a lowercase key, or a prefix ending in '*'. Hop metadata (grpc-*, te, ...) and
  // the keys fusebox sets itself (x-request-id, traceparent) are never copied as they are.
  std::vector<std::string> metadata_allow;
  std::vector<std::string> metadata_deny;
};

struct ListenersConfig {
  HttpListenerConfig http;
  AdminListenerConfig admin;
  GrpcListenerConfig grpc;
};

struct EndpointConfig {
  std::string address;
  std::uint16_t port = 8501;                // REST port; 0 = none (gRPC-only, needs grpc_port)
  std::uint32_t weight = 1;                 // 1..1000
  std::uint16_t grpc_port = 0;              // the backend's gRPC port; 0 = not used for gRPC
};

// How a backend is named in logs, metrics labels and /admin: "address:port", or
// "address:grpc_port" for a backend without a REST port.
std::string endpoint_label(const EndpointConfig& endpoint);

enum class BalancerPolicy { weighted_round_robin, least_request };

struct LoadBalancingConfig {
  BalancerPolicy policy = BalancerPolicy::weighted_round_robin;
  Duration slow_start{0};                   // 0 = off; ramp window for a returning backend
  double slow_start_min_weight_percent = 10;  // effective weight at the start of the ramp
};

enum class BreakerMode { auto_, disabled, metrics_only };  // YAML: auto, disabled, metrics_only
enum class WindowType { count, time };

struct CircuitBreakerConfig {
  BreakerMode mode = BreakerMode::auto_;
  std::uint32_t consecutive_failures = 5;     // 0 = this trigger off
  WindowType window_type = WindowType::count;
  std::uint32_t window_size = 20;             // calls (count window)
  Duration window_duration{10'000};           // time window
  std::uint32_t minimum_calls = 10;           // rate triggers need this many calls in the window
  double failure_rate_percent = 50;           // 0 = off; trip at >= this
  double slow_call_rate_percent = 0;          // 0 = off; trip at >= this
  Duration slow_call_duration{1'000};         // a call slower than this is slow
  std::vector<unsigned> failure_statuses{500, 502, 503, 504};  // 429 may be added
  Duration open_duration{5'000};              // first open period
  Duration max_open_duration{60'000};         // cap of the doubling
  double open_jitter_percent = 10;            // +- this share of the open period
  std::uint32_t half_open_max_calls = 3;      // K: concurrent probes; K successes close
  bool require_health_check = false;          // half-open only after a passing active probe
};

// How probes ask a backend for its model status: TF Serving's REST API on `port`, or
// ModelService/GetModelStatus on `grpc_port`.
enum class HealthCheckProtocol { rest, grpc };  // YAML: rest, grpc

struct HealthCheckConfig {
  bool enabled = true;
  HealthCheckProtocol protocol = HealthCheckProtocol::rest;
  Duration interval{5'000};
  Duration unhealthy_interval{1'000};         // faster while unhealthy
  double jitter_percent = 10;
  Duration timeout{1'000};
  std::uint32_t healthy_threshold = 2;        // consecutive passes to become healthy
  std::uint32_t unhealthy_threshold = 2;      // consecutive failures to become unhealthy
  std::vector<std::string> models;            // empty = the models of the routes using the pool
  std::int64_t expected_version = 0;          // 0 = any; else a different version is out
};

struct RetryBudgetConfig {
  double budget_percent = 20;                 // retries in flight <= this share of active requests
  std::uint32_t min_concurrency = 3;          // retries always allowed up to this many in flight
};

// Upstream gRPC channels of a pool (one per backend with a grpc_port).
struct PoolGrpcConfig {
  std::uint64_t max_message_bytes = 64ull << 20;  // receive and send
  Duration keepalive_time{30'000};          // HTTP/2 ping after this long without activity
  Duration keepalive_timeout{10'000};       // no ping answer within this -> connection closed
};

struct PoolConfig {
  std::string name;
  std::vector<EndpointConfig> endpoints;
  LoadBalancingConfig load_balancing;
  CircuitBreakerConfig circuit_breaker;
  HealthCheckConfig health_check;
  RetryBudgetConfig retry_budget;
  double max_ejection_percent = 50;           // share of backends that may be open at once
  Duration connect_timeout{1'000};
  std::uint32_t max_connections_per_backend = 1024;  // per process
  Duration idle_connection_timeout{60'000};  // idle upstream keep-alive connections are closed
  std::uint64_t max_response_body = 64ull << 20;  // larger upstream answers -> 502
  PoolGrpcConfig grpc;
};

struct RouteMatch {
  std::string model;                        // exact model name, or "*" for any model
};

// What makes an attempt worth retrying. Statuses are upstream HTTP statuses.
struct RetryOn {
  bool connect_failure = true;
  bool reset = true;
  bool timeout = true;                      // per-try timeout expired
  std::vector<unsigned> statuses{502, 503, 504};
};

struct RetryConfig {
  std::uint32_t max_attempts = 3;           // including the first; 1 = no retries
  RetryOn retry_on;
  Duration per_try_timeout{0};              // 0 = the remaining deadline
  Duration backoff_base{25};
  Duration backoff_max{250};
};

struct HedgeConfig {
  Duration delay{0};                        // 0 = no hedging; predict/classify/regress only
};

// One rule of a `rules` tier (see degrade/rules.h for the semantics). JSON values are kept as
// compact JSON text; the data path parses them once at start-up.
struct RuleConditionConfig {
  std::string pointer;                      // RFC 6901
  std::string op = "equals";                // equals | in | exists | range
  std::string value_json;                   // equals: any JSON; in: an array; "" otherwise
  std::optional<double> min, max;           // range
};

struct RuleConfig {
  std::string name;
  std::string model;                        // "" = any
  std::string signature;                    // "" = any
  std::vector<std::pair<std::string, std::string>> headers;  // lowercase name, exact value
  std::vector<RuleConditionConfig> when;
  std::vector<RuleConditionConfig> instance_when;
  std::string prediction_json;              // required
};

// One tier of a route's degradation chain, tried in order after the primary fails.
enum class TierKind { model, cache, default_, rules };  // YAML `tier: model|cache|default|rules`

struct FallbackTier {
  TierKind kind = TierKind::model;
  Duration timeout{1'000};                  // this tier's own deadline (model tier)
  // tier: model — another pool and model; the request is rewritten for it.
  std::string pool;
  std::string model;
  std::int64_t version = 0;                 // 0 = keep none (latest)
  std::string label;                        // "" = none; exclusive with version
  std::string signature;                    // "" = keep the request's signature_name
  // tier: default — a static answer.
  unsigned status = 200;
  std::string body = "{}";                  // JSON text, validated at load
  Duration retry_after{0};                  // 0 = no Retry-After header
  std::string grpc_response;                // serialized PredictResponse for gRPC Predict; "" = none
  // tier: rules — deterministic answers; the first matching rule answers.
  std::vector<RuleConfig> rules;
  std::string grpc_output;                  // output tensor name of gRPC answers ("" = output_0)
};

enum class CacheMode { off, fallback, first };

struct RouteCacheConfig {
  CacheMode mode = CacheMode::off;          // `fallback`: only the chain reads it; `first`: also hits
  Duration ttl{60'000};
  Duration stale_if_error{0};               // a fallback may serve entries this much past ttl
  bool fill_from_model_tiers = false;       // also store answers of model tiers
};

// Load-aware degradation: past a threshold on the primary pool, a growing share of the route's
// requests goes straight to its first model tier (reason `overload`); recovery is stepwise with
// hysteresis. Every threshold 0 = that signal off; all off = the feature is off.
struct LoadDegradeConfig {
  std::uint32_t max_inflight = 0;           // requests in flight to the primary pool
  Duration max_latency{0};                  // EWMA of per-interval mean primary latency
  Duration interval{1'000};                 // how often the signals are evaluated
  double step_percent = 25;                 // the diverted share moves by this much per step
  double max_percent = 90;                  // cap of the diverted share
  double recover_ratio = 0.8;               // a signal is calm below ratio * threshold
  std::uint32_t recover_intervals = 3;      // calm intervals in a row before each step down
  double latency_ewma_alpha = 0.5;          // weight of the newest interval in the EWMA
  bool dry_run = false;                     // decide, log and report, but divert nothing

  bool enabled() const { return max_inflight > 0 || max_latency.count() > 0; }
};

// One canary target of a traffic split: another pool and/or model version or label.
struct SplitTargetConfig {
  std::string name;
  std::string pool;                         // "" = the route's own pool
  std::string model;                        // "" = the requested model
  std::int64_t version = 0;                 // 0 = keep the request's
  std::string label;                        // "" = keep the request's; exclusive with version
  double weight_percent = 0;                // share of the route's traffic, 0..100
};

// Gray release: canaries take their weight of the traffic, the route's pool (stable) the rest.
// A canary that cannot answer (breakers open, failure) hands its request to the stable target.
struct SplitConfig {
  std::vector<SplitTargetConfig> canaries;  // empty = no split
  std::string override_header = "x-fusebox-canary";  // always | never | <canary name>
  std::string sticky_header;                // "" = no stickiness; else the key's value pins it
};

// Idempotent replay (Idempotency-Key) and optional coalescing of identical concurrent requests.
struct IdempotencyConfig {
  bool enabled = false;
  std::string header = "idempotency-key";   // lowercase
  Duration ttl{60'000};                     // completed answers are replayed this long
  bool coalesce_identical = false;          // without a key: identical concurrent requests share
};

// ---- admission control and authentication (docs/admission.md) ------------------------------

// A token bucket: `requests_per_second` refill, `burst` capacity. Off when rate is 0.
struct RateLimitConfig {
  double requests_per_second = 0;
  std::uint32_t burst = 0;                  // 0 = max(1, ceil(requests_per_second))
  bool enabled() const { return requests_per_second > 0; }
};

enum class AuthPolicyKind { none, api_key, jwt, any };

// Per-route bulkhead and queue (admission::ConcurrencyGate).
struct RouteConcurrencyConfig {
  bool enabled = false;                     // true when routes[].concurrency is present
  std::uint32_t limit = 64;                 // requests in flight to the backends at once
  std::uint32_t max_queued = 256;           // waiters, all priorities; 0 = no queue
  // Waiters per base priority 0..9; absent levels are bounded by max_queued only.
  std::array<std::uint32_t, 10> max_queued_per_priority = {
      UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
      UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
  Duration queue_timeout{1'000};            // longest wait (the request's deadline may cut it)
  Duration aging_step{100};                 // one priority level gained per step; 0 = no aging
  // Adaptive limit (admission::AdaptiveConcurrencyLimit); `limit` is then the starting value.
  struct Adaptive {
    bool enabled = false;                   // true when `adaptive` is present
    bool dry_run = false;                   // compute and report, never apply
    std::uint32_t min_limit = 2;
    std::uint32_t max_limit = 500;
    Duration interval{1'000};               // how often the limit is recomputed
    double tolerance = 1.5;                 // latency up to baseline x tolerance is "no queueing"
    Duration min_rtt_interval{60'000};      // re-measure the latency baseline this often
  } adaptive;
};

struct RouteAdmissionConfig {
  std::uint8_t priority = 5;                // default priority of the route's requests (0..9)
  AuthPolicyKind auth = AuthPolicyKind::none;
  RouteConcurrencyConfig concurrency;
  RateLimitConfig rate_limit;               // the whole route, all clients together
  RateLimitConfig client_rate_limit;        // per client (API key name, JWT subject or IP),
                                            // unless the key has a rate_limit of its own
};

struct ApiKeyConfig {
  std::string name;                         // in logs and metric labels, never the key
  std::string hash;                         // "sha256:<64 hex>"
  std::optional<std::uint8_t> priority;     // the key's priority class; none = the route's
  RateLimitConfig rate_limit;               // per key; off = the route's client_rate_limit
  std::vector<std::string> models;          // models the key may call; empty = all
};

struct JwtKeyEntryConfig {
  std::string kid;                          // optional
  std::string alg = "HS256";                // HS256 or RS256
  std::string secret;                       // HS256 (>= 32 bytes); redacted in /admin/config
  std::string public_key_pem;               // RS256, inline PEM
  std::string public_key_file;              // RS256, path to a PEM file
};

struct JwtConfig {
  bool enabled = false;                     // true when auth.jwt is present
  std::string issuer;                       // "" = any
  std::string audience;                     // "" = any
  bool require_exp = true;
  Duration clock_skew{30'000};
  std::string priority_claim;               // e.g. "fusebox_priority"; "" = none
  std::string models_claim;                 // e.g. "fusebox_models"; "" = none
  std::uint64_t max_token_bytes = 8 * 1024;
  std::vector<JwtKeyEntryConfig> keys;
  std::string jwks_file;                    // a JWKS file, re-read on reload and on change
};

struct AuthConfig {
  std::string realm = "fusebox";            // WWW-Authenticate realm
  std::string api_key_header = "X-API-Key"; // also accepted: Authorization: ApiKey <key>
  std::vector<ApiKeyConfig> api_keys;
  JwtConfig jwt;
};

// Process-wide admission: shedding under overload, and the client rate-limit table.
struct AdmissionConfig {
  std::uint64_t max_inflight = 0;           // shed above this many requests in flight; 0 = off
  std::uint64_t max_memory = 0;             // shed above this RSS in bytes; 0 = off
  double shed_step_percent = 10;            // each step above a threshold sheds one more level
  Duration sample_interval{250};            // how often RSS and in-flight are sampled
  std::uint32_t max_clients = 100'000;      // client rate-limit buckets kept at most
  Duration client_idle_eviction{60'000};    // a full bucket idle this long is dropped
};

struct RouteConfig {
  std::string name;
  RouteMatch match;
  std::string pool;                         // name of an entry in Config::pools
  Duration timeout{30'000};                 // deadline of all attempts -> 504
  Duration max_timeout{0};                  // cap for X-Fusebox-Timeout-Ms; 0 = `timeout`
  RetryConfig retry;
  HedgeConfig hedge;
  RouteCacheConfig cache;
  std::vector<FallbackTier> fallbacks;      // the degradation chain, in order
  Duration fallback_reserve{0};             // slice of the deadline kept for the fallbacks
  LoadDegradeConfig degrade_on_load;
  SplitConfig split;
  IdempotencyConfig idempotency;
  RouteAdmissionConfig admission;           // keys priority, auth, concurrency, rate_limit,
                                            // client_rate_limit directly under the route
};

enum class LogFormat { text, json };

struct LoggingConfig {
  std::string level = "info";               // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::json;
  bool access_log = true;
  std::string file;                         // empty = stderr
  std::string access_log_file;              // empty = same destination as the main log
};

// The process-wide store behind every route's response cache.
struct CacheStoreConfig {
  std::uint64_t max_bytes = 64ull << 20;
  std::uint32_t shards = 16;
};

// The process-wide store behind idempotent replay and coalescing.
struct IdempotencyStoreConfig {
  std::uint64_t max_bytes = 16ull << 20;
  std::uint32_t shards = 16;
};

struct Config {
  std::string source_file;                  // path the config was loaded from
  CacheStoreConfig cache;
  IdempotencyStoreConfig idempotency;
  ServerConfig server;
  DrainConfig drain;
  ReloadConfig reload;
  AuthConfig auth;
  AdmissionConfig admission;
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
