#include <gtest/gtest.h>

#include "tensorflow_serving/apis/predict.pb.h"

#include <nlohmann/json.hpp>

#include "fusebox/config/loader.h"
#include "test_env.h"
#include "test_keys.h"

namespace fusebox::config {
namespace {

using nlohmann::json;
using testing::kAdminTokenHash;
using testing::kHs256Secret;
using testing::kKeyOneHash;
using testing::kKeyTwoHash;
using testing::kRsaPublicKeyPem;
using testing::ScopedTestEnv;
using testing::test_env;

std::shared_ptr<const Config> load_ok(std::string_view yaml) {
  LoadResult result = load_config_from_string(yaml, "test.yaml", test_env);
  for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
  return result.config;
}

TEST(ConfigJson, RendersTheEffectiveConfigWithDefaultsInConfigUnits) {
  auto config = load_ok(R"(pools:
  heavy:
    endpoints:
      - {address: 10.0.0.1, weight: 3}
      - {address: tfs-b, port: 8601}
    connect_timeout: 250ms
    max_response_body: 1000
routes:
  - {name: all, match: {model: "*"}, pool: heavy, timeout: 90s}
)");
  ASSERT_NE(config, nullptr);
  const json expected = json::parse(R"({
    "server": {"threads": 0},
    "drain": {"delay": "0s", "timeout": "10s"},
    "reload": {"watch": true, "debounce": "200ms"},
    "listeners": {
      "http": {"address": "127.0.0.1", "port": 8080, "max_request_body": "64MiB",
               "max_request_headers": "16KiB", "request_header_timeout": "10s",
               "request_body_timeout": "30s", "idle_timeout": "1m",
               "max_connections": 10000, "max_requests_per_connection": 0},
      "admin": {"address": "127.0.0.1", "port": 9901, "token_hash": ""}
    },
    "auth": {"realm": "fusebox", "api_key_header": "X-API-Key", "api_keys": []},
    "admission": {"max_inflight": 0, "max_memory": "0B", "shed_step_percent": 10,
                  "sample_interval": "250ms", "max_clients": 100000,
                  "client_idle_eviction": "1m"},
    "pools": {
      "heavy": {
        "endpoints": [{"address": "10.0.0.1", "port": 8501, "weight": 3, "grpc_port": 0},
                      {"address": "tfs-b", "port": 8601, "weight": 1, "grpc_port": 0}],
        "connect_timeout": "250ms", "max_connections_per_backend": 1024,
        "idle_connection_timeout": "1m", "max_response_body": "1000B",
        "max_ejection_percent": 50,
        "load_balancing": {"policy": "weighted_round_robin", "slow_start": "0s",
                           "slow_start_min_weight_percent": 10},
        "circuit_breaker": {
          "mode": "auto", "consecutive_failures": 5,
          "window": {"type": "count", "size": 20, "duration": "10s"},
          "minimum_calls": 10, "failure_rate_percent": 50, "slow_call_rate_percent": 0,
          "slow_call_duration": "1s", "failure_statuses": [500, 502, 503, 504],
          "open_duration": "5s", "max_open_duration": "1m", "open_jitter_percent": 10,
          "half_open_max_calls": 3, "require_health_check": false
        },
        "health_check": {
          "enabled": true, "protocol": "rest", "interval": "5s", "unhealthy_interval": "1s",
          "jitter_percent": 10,
          "timeout": "1s", "healthy_threshold": 2, "unhealthy_threshold": 2, "models": [],
          "expected_version": 0
        },
        "retry_budget": {"budget_percent": 20, "min_concurrency": 3},
        "grpc": {"max_message_bytes": "64MiB", "keepalive_time": "30s",
                 "keepalive_timeout": "10s"}
      }
    },
    "routes": [{
      "name": "all", "match": {"model": "*"}, "pool": "heavy", "timeout": "1m30s",
      "max_timeout": "0s",
      "retry": {"max_attempts": 3,
                "retry_on": ["connect_failure", "reset", "timeout", 502, 503, 504],
                "per_try_timeout": "0s", "backoff": {"base": "25ms", "max": "250ms"}},
      "hedge": {"delay": "0s"},
      "cache": {"mode": "off", "ttl": "1m", "stale_if_error": "0s",
                "fill_from_model_tiers": false},
      "fallbacks": [],
      "fallback_reserve": "0s",
      "idempotency": {"enabled": false, "header": "idempotency-key", "ttl": "1m",
                      "coalesce_identical": false},
      "priority": 5, "auth": "none"
    }],
    "cache": {"max_bytes": "64MiB", "shards": 16},
    "idempotency": {"max_bytes": "16MiB", "shards": 16},
    "logging": {"level": "info", "format": "json", "access_log": true, "file": "",
                "access_log_file": ""}
  })");
  EXPECT_EQ(config_to_json(*config), expected) << config_to_json(*config).dump(2);
}

TEST(ConfigJson, OutputLoadsBackToTheSameConfig) {
  // JSON is YAML: what /admin/config shows can be pasted back as a configuration file.
  auto config = load_ok(R"(server: {threads: 3}
drain: {delay: 3s, timeout: 1500ms}
reload: {watch: false, debounce: 1s}
listeners:
  http: {address: 0.0.0.0, port: 0, max_request_body: 3MB, idle_timeout: 1h}
  admin: {address: "::1", port: 9999}
pools:
  b: {endpoints: [{address: "fd00::1", weight: 7}], idle_connection_timeout: 61s}
  a: {endpoints: [{address: tfs.example.com}], max_connections_per_backend: 2}
  g:
    endpoints: [{address: 10.0.0.9, port: 0, grpc_port: 8500}]
    health_check: {protocol: grpc}
routes:
  - {name: one, match: {model: m1}, pool: b}
  - {name: two, match: {model: m2}, pool: a, timeout: 45s}
logging: {level: off, format: text, access_log: false, file: /tmp/x.log}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first);
  EXPECT_EQ(first["pools"]["b"]["idle_connection_timeout"], "1m1s");
  EXPECT_EQ(first["listeners"]["http"]["max_request_body"], "3000000B");
  EXPECT_EQ(first["logging"]["level"], "off");
  EXPECT_EQ(first["routes"][1]["timeout"], "45s");
  EXPECT_EQ(first["pools"]["g"]["health_check"]["protocol"], "grpc");
  EXPECT_EQ(first["pools"]["g"]["endpoints"][0]["port"], 0) << "0 = no REST port";
  // Pool order in the file survives in Config::pools even though JSON objects are unordered.
  EXPECT_EQ(reloaded->pools.size(), 3u);
}

TEST(ConfigJson, ResilienceSettingsRoundTrip) {
  // Every resilience key away from its default, including fractions, an empty retry_on and
  // the enum spellings: the output must load back to the same configuration.
  auto config = load_ok(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    max_ejection_percent: 33.5
    load_balancing: {policy: least_request, slow_start: 1m30s,
                     slow_start_min_weight_percent: 1}
    circuit_breaker:
      mode: disabled
      consecutive_failures: 0
      window: {type: time, size: 7, duration: 1500ms}
      minimum_calls: 1
      failure_rate_percent: 0.25
      slow_call_rate_percent: 90
      slow_call_duration: 3s
      failure_statuses: [429, 503]
      open_duration: 1s
      max_open_duration: 1h
      open_jitter_percent: 49.5
      half_open_max_calls: 9
      require_health_check: true
    health_check: {enabled: true, interval: 2s, unhealthy_interval: 250ms, jitter_percent: 0,
                   timeout: 1999ms, healthy_threshold: 1, unhealthy_threshold: 7,
                   models: [m1, m3], expected_version: 42}
    retry_budget: {budget_percent: 100, min_concurrency: 0}
routes:
  - name: one
    match: {model: m1}
    pool: p
    timeout: 3s
    max_timeout: 1m
    retry: {max_attempts: 1, retry_on: [], per_try_timeout: 900ms,
            backoff: {base: 1s, max: 2s}}
    hedge: {delay: 150ms}
  - name: two
    match: {model: "*"}
    pool: p
    retry: {retry_on: [timeout, 429]}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first) << first.dump(2);

  const json& pool = first["pools"]["p"];
  EXPECT_EQ(pool["max_ejection_percent"], 33.5);
  EXPECT_EQ(pool["load_balancing"],
            json::parse(R"({"policy": "least_request", "slow_start": "1m30s",
                            "slow_start_min_weight_percent": 1})"));
  EXPECT_EQ(pool["circuit_breaker"]["mode"], "disabled");
  EXPECT_EQ(pool["circuit_breaker"]["window"],
            json::parse(R"({"type": "time", "size": 7, "duration": "1500ms"})"));
  EXPECT_EQ(pool["circuit_breaker"]["failure_rate_percent"], 0.25);
  EXPECT_EQ(pool["circuit_breaker"]["failure_statuses"], json::parse("[429, 503]"));
  EXPECT_EQ(pool["circuit_breaker"]["max_open_duration"], "1h");
  EXPECT_EQ(pool["health_check"]["models"], json::parse(R"(["m1", "m3"])"));
  EXPECT_EQ(pool["health_check"]["expected_version"], 42);
  EXPECT_EQ(pool["retry_budget"], json::parse(R"({"budget_percent": 100, "min_concurrency": 0})"));

  const json& one = first["routes"][0];
  EXPECT_EQ(one["max_timeout"], "1m");
  EXPECT_EQ(one["retry"]["retry_on"], json::array());
  EXPECT_EQ(one["retry"]["per_try_timeout"], "900ms");
  EXPECT_EQ(one["retry"]["backoff"], json::parse(R"({"base": "1s", "max": "2s"})"));
  EXPECT_EQ(one["hedge"]["delay"], "150ms");
  EXPECT_EQ(first["routes"][1]["retry"]["retry_on"], json::parse(R"(["timeout", 429])"));
  // The mode renders as the YAML word, not the C++ enumerator auto_.
  EXPECT_EQ(config_to_json(*load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes: [{name: r, match: {model: m}, pool: p}]
)"))["pools"]["p"]["circuit_breaker"]["mode"],
            "auto");
}

TEST(ConfigJson, DegradationChainRoundTrips) {
  auto config = load_ok(R"(cache: {max_bytes: 1MiB, shards: 3}
pools:
  primary: {endpoints: [{address: 10.0.0.1}]}
  light: {endpoints: [{address: 10.0.0.2}]}
routes:
  - name: resnet
    match: {model: resnet}
    pool: primary
    fallback_reserve: 300ms
    cache: {mode: first, ttl: 2m, stale_if_error: 10m, fill_from_model_tiers: true}
    fallbacks:
      - {tier: model, pool: light, model: mobilenet, timeout: 500ms, version: 4}
      - {tier: model, pool: light, model: tiny, label: stable, signature: fast}
      - {tier: cache}
      - {tier: default, status: 503, body: {predictions: [], why: "overload", n: 1.5},
         retry_after: 5s}
  - name: text
    match: {model: text}
    pool: light
    fallbacks: [{tier: default, body: '"unavailable"'}]
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first) << first.dump(2);
  EXPECT_EQ(config->routes[0].fallbacks[3].body, R"({"predictions":[],"why":"overload","n":1.5})");
  EXPECT_EQ(json::parse(reloaded->routes[0].fallbacks[3].body),
            json::parse(config->routes[0].fallbacks[3].body));
  EXPECT_EQ(reloaded->routes[1].fallbacks[0].body, R"("unavailable")");

  EXPECT_EQ(first["cache"], json::parse(R"({"max_bytes": "1MiB", "shards": 3})"));
  const json& route = first["routes"][0];
  EXPECT_EQ(route["fallback_reserve"], "300ms");
  EXPECT_EQ(route["cache"], json::parse(R"({"mode": "first", "ttl": "2m", "stale_if_error": "10m",
                                            "fill_from_model_tiers": true})"));
  // Keys that do not apply to a tier's kind are left out, and version or label only when set.
  EXPECT_EQ(route["fallbacks"], json::parse(R"([
    {"tier": "model", "pool": "light", "model": "mobilenet", "timeout": "500ms", "version": 4,
     "signature": ""},
    {"tier": "model", "pool": "light", "model": "tiny", "timeout": "1s", "label": "stable",
     "signature": "fast"},
    {"tier": "cache"},
    {"tier": "default", "status": 503, "body": {"predictions": [], "why": "overload", "n": 1.5},
     "retry_after": "5s"}
  ])"));
  // A JSON string body is shown as its JSON text, which loads back as the same string.
  EXPECT_EQ(first["routes"][1]["fallbacks"][0]["body"], R"("unavailable")");
}

TEST(ConfigJson, LoadDegradationSplitAndIdempotencyRoundTrip) {
  auto config = load_ok(R"(idempotency: {max_bytes: 2MiB, shards: 4}
pools:
  primary: {endpoints: [{address: 10.0.0.1}]}
  canary: {endpoints: [{address: 10.0.0.3}]}
  light: {endpoints: [{address: 10.0.0.2}]}
routes:
  - name: resnet
    match: {model: resnet}
    pool: primary
    fallbacks: [{tier: model, pool: light, model: mobilenet}]
    degrade_on_load: {max_inflight: 64, max_latency: 800ms, interval: 500ms, step_percent: 10,
                      max_percent: 80, recover_ratio: 0.5, recover_intervals: 4,
                      latency_ewma_alpha: 0.25, dry_run: true}
    split:
      canaries:
        - {name: v2, pool: canary, weight_percent: 10}
        - {name: label-b, label: canary, weight_percent: 2.5}
      override_header: X-Canary
      sticky_header: X-User-Id
    idempotency: {header: X-Request-Key, ttl: 5m, coalesce_identical: true}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first) << first.dump(2);
  const json& route = first["routes"][0];
  EXPECT_EQ(route["degrade_on_load"], json::parse(R"({"max_inflight": 64, "max_latency": "800ms",
      "interval": "500ms", "step_percent": 10.0, "max_percent": 80.0, "recover_ratio": 0.5,
      "recover_intervals": 4, "latency_ewma_alpha": 0.25, "dry_run": true})"));
  EXPECT_EQ(route["split"], json::parse(R"({"canaries": [
      {"name": "v2", "pool": "canary", "weight_percent": 10.0},
      {"name": "label-b", "label": "canary", "weight_percent": 2.5}],
      "override_header": "x-canary", "sticky_header": "x-user-id"})"));
  EXPECT_EQ(route["idempotency"], json::parse(R"({"enabled": true, "header": "x-request-key",
      "ttl": "5m", "coalesce_identical": true})"));
  EXPECT_EQ(first["idempotency"], json::parse(R"({"max_bytes": "2MiB", "shards": 4})"));
  // Optional sections stay out of routes that do not use them.
  auto plain = config_to_json(*load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes: [{name: r, match: {model: m}, pool: p}]
)"));
  EXPECT_FALSE(plain["routes"][0].contains("split"));
  EXPECT_FALSE(plain["routes"][0].contains("degrade_on_load"));
}

TEST(ConfigJson, DefaultTierGrpcResponseRoundTrips) {
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    fallbacks:
      - tier: default
        grpc_response:
          outputs: {y: {dtype: DT_FLOAT, tensorShape: {dim: [{size: "2"}]}, floatVal: [0.5, 0.5]}}
)");
  ASSERT_NE(config, nullptr);
  const auto& tier = config->routes[0].fallbacks[0];
  tensorflow::serving::PredictResponse response;
  ASSERT_TRUE(response.ParseFromString(tier.grpc_response));
  EXPECT_EQ(response.outputs().at("y").float_val_size(), 2);
  const json first = config_to_json(*config);
  EXPECT_EQ(first["routes"][0]["fallbacks"][0]["grpc_response"]["outputs"]["y"]["floatVal"],
            json::parse("[0.5, 0.5]"));
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(reloaded->routes[0].fallbacks[0].grpc_response, tier.grpc_response);
}

TEST(ConfigJson, RulesTierRoundTrips) {
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: "*"}
    pool: p
    fallbacks:
      - tier: rules
        rules:
          - name: best_sellers
            model: resnet
            signature: serving_default
            headers: {X-Region: eu}
            when:
              - {pointer: /context/country, op: in, value: [DE, FR]}
              - {pointer: /n, value: "7"}
            instance_when:
              - {pointer: /price, op: range, min: 0, max: 99.5}
              - {pointer: "", op: exists}
            prediction: {label: best_seller, score: 0.5}
          - {name: rest, prediction: none}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first) << first.dump(2);
  EXPECT_EQ(reloaded->routes[0].fallbacks[0].rules[0].when[1].value_json, R"("7")");

  // Values as JSON, bounds as written, only the keys each op uses.
  EXPECT_EQ(first["routes"][0]["fallbacks"], json::parse(R"([{"tier": "rules", "rules": [
    {"name": "best_sellers", "model": "resnet", "signature": "serving_default",
     "headers": {"x-region": "eu"},
     "when": [{"pointer": "/context/country", "op": "in", "value": ["DE", "FR"]},
              {"pointer": "/n", "op": "equals", "value": "7"}],
     "instance_when": [{"pointer": "/price", "op": "range", "min": 0, "max": 99.5},
                       {"pointer": "", "op": "exists"}],
     "prediction": {"label": "best_seller", "score": 0.5}},
    {"name": "rest", "model": "", "signature": "", "headers": {}, "when": [],
     "instance_when": [], "prediction": "none"}
  ]}])"));
}

TEST(ConfigJson, AdmissionSettingsRoundTrip) {
  // No secrets here (JWT keys from a file are a path): the output loads back as it is.
  auto config = load_ok(R"(admission: {max_inflight: 500, max_memory: 2GiB, shed_step_percent: 25,
            sample_interval: 1s, max_clients: 10, client_idle_eviction: 30s}
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    priority: 1
    concurrency:
      limit: 8
      max_queued: 20
      max_queued_per_priority: {0: 20, 9: 2}
      queue_timeout: 1500ms
      aging_step: 0s
      adaptive: {dry_run: true, min_limit: 4, max_limit: 40, interval: 2s, tolerance: 1.25,
                 min_rtt_interval: 5m}
    rate_limit: {requests_per_second: 0.5}
    client_rate_limit: {requests_per_second: 20, burst: 5}
  - {name: plain, match: {model: n}, pool: p, concurrency: {}}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first) << first.dump(2);

  EXPECT_EQ(first["admission"], json::parse(R"({"max_inflight": 500, "max_memory": "2GiB",
      "shed_step_percent": 25, "sample_interval": "1s", "max_clients": 10,
      "client_idle_eviction": "30s"})"));
  const json& route = first["routes"][0];
  EXPECT_EQ(route["priority"], 1);
  EXPECT_EQ(route["auth"], "none");
  EXPECT_EQ(route["concurrency"], json::parse(R"({"limit": 8, "max_queued": 20,
      "max_queued_per_priority": {"0": 20, "9": 2}, "queue_timeout": "1500ms",
      "aging_step": "0s", "adaptive": {"dry_run": true, "min_limit": 4, "max_limit": 40,
      "interval": "2s", "tolerance": 1.25, "min_rtt_interval": "5m"}})"));
  // The default burst is written out, so the effective value is visible.
  EXPECT_EQ(route["rate_limit"], json::parse(R"({"requests_per_second": 0.5, "burst": 1})"));
  EXPECT_EQ(route["client_rate_limit"], json::parse(R"({"requests_per_second": 20, "burst": 5})"));
  // Sections that are off stay out; a concurrency section without adaptive has none.
  const json& plain = first["routes"][1];
  EXPECT_FALSE(plain.contains("rate_limit"));
  EXPECT_FALSE(plain.contains("client_rate_limit"));
  EXPECT_FALSE(plain["concurrency"].contains("adaptive"));
  EXPECT_EQ(plain["concurrency"]["max_queued_per_priority"], json::object());
  EXPECT_FALSE(first["auth"].contains("jwt"));
}

TEST(ConfigJson, SecretsAreRedacted) {
  ScopedTestEnv env{{"ADMIN_HASH", std::string(kAdminTokenHash)},
                    {"ONE", std::string(kKeyOneHash)},
                    {"TWO", std::string(kKeyTwoHash)},
                    {"JWT_SECRET", std::string(kHs256Secret)}};
  const std::string pem_block = testing::indented(kRsaPublicKeyPem, 10);
  auto config = load_ok(R"(listeners:
  admin: {token_hash: "${ADMIN_HASH}"}
auth:
  api_keys:
    - {name: checkout, hash: "${ONE}", priority: 0, rate_limit: {requests_per_second: 5},
       models: [m]}
    - {name: batch, hash: "${TWO}"}
  jwt:
    issuer: iss
    keys:
      - {kid: hs, secret: "${JWT_SECRET}"}
      - kid: rs
        alg: RS256
        public_key_pem: |
)" + pem_block + R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes: [{name: r, match: {model: m}, pool: p, auth: any}]
)");
  ASSERT_NE(config, nullptr);
  const json out = config_to_json(*config);
  EXPECT_EQ(out["listeners"]["admin"]["token_hash"], "<redacted>");
  EXPECT_EQ(out["auth"]["api_keys"], json::parse(R"([
    {"name": "checkout", "hash": "<redacted>", "priority": 0,
     "rate_limit": {"requests_per_second": 5, "burst": 5}, "models": ["m"]},
    {"name": "batch", "hash": "<redacted>", "models": []}])"));
  EXPECT_EQ(out["auth"]["jwt"], json::parse(R"({"issuer": "iss", "audience": "",
    "require_exp": true, "clock_skew": "30s", "priority_claim": "", "models_claim": "",
    "max_token_bytes": "8KiB", "jwks_file": "",
    "keys": [{"kid": "hs", "alg": "HS256", "secret": "<redacted>"},
             {"kid": "rs", "alg": "RS256", "public_key_pem": "<pem, 451 bytes>"}]})"));
  EXPECT_EQ(out["routes"][0]["auth"], "any");

  // Nowhere in the whole document: not the secret, not a hash (in either hex case).
  const std::string dump = out.dump();
  EXPECT_EQ(dump.find(kHs256Secret), std::string::npos);
  for (std::string_view hash : {kAdminTokenHash, kKeyOneHash, kKeyTwoHash}) {
    const std::string hex(hash.substr(7));
    EXPECT_EQ(dump.find(hex), std::string::npos) << hex;
    EXPECT_EQ(dump.find(hex.substr(0, 16)), std::string::npos) << "part of " << hex;
  }
  EXPECT_EQ(dump.find("BEGIN PUBLIC KEY"), std::string::npos);

  // Redacted values do not load back: the output of such a configuration is for reading.
  LoadResult reloaded = load_config_from_string(dump, "admin-config.json", test_env);
  EXPECT_FALSE(reloaded.ok());
}

}  // namespace
}  // namespace fusebox::config
