#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fusebox/config/loader.h"
#include "test_env.h"
#include "test_files.h"
#include "test_keys.h"

namespace fusebox::config {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::kAdminTokenHash;
using testing::kHs256Secret;
using testing::kJwks;
using testing::kKeyOneHash;
using testing::kKeyTwoHash;
using testing::kRsaPublicKeyPem;
using testing::ScopedTestEnv;
using testing::test_env;

// Fails the test with every error when the load did not succeed.
std::shared_ptr<const Config> load_ok(std::string_view yaml) {
  LoadResult result = load_config_from_string(yaml, "test.yaml", test_env);
  for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
  EXPECT_TRUE(result.ok());
  return result.config;
}

constexpr std::string_view kMinimal = R"(pools:
  primary:
    endpoints:
      - address: 127.0.0.1
routes:
  - name: all
    match: {model: "*"}
    pool: primary
)";

TEST(ConfigLoader, MinimalFileGetsEveryDefault) {
  auto config = load_ok(kMinimal);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->source_file, "test.yaml");

  EXPECT_EQ(config->server.threads, 0);
  EXPECT_EQ(config->drain.timeout, 10s);
  EXPECT_EQ(config->drain.delay, 0s);
  EXPECT_TRUE(config->reload.watch);

  const auto& http = config->listeners.http;
  EXPECT_EQ(http.address, "127.0.0.1");
  EXPECT_EQ(http.port, 8080);
  EXPECT_EQ(http.max_request_body, 64u << 20);
  EXPECT_EQ(http.max_request_headers, 16u << 10);
  EXPECT_EQ(http.request_header_timeout, 10s);
  EXPECT_EQ(http.request_body_timeout, 30s);
  EXPECT_EQ(http.idle_timeout, 60s);
  EXPECT_EQ(http.max_connections, 10'000u);
  EXPECT_EQ(http.max_requests_per_connection, 0u);
  EXPECT_EQ(config->listeners.admin.address, "127.0.0.1");
  EXPECT_EQ(config->listeners.admin.port, 9901);

  ASSERT_EQ(config->pools.size(), 1u);
  const PoolConfig& pool = config->pools[0];
  EXPECT_EQ(pool.name, "primary");
  ASSERT_EQ(pool.endpoints.size(), 1u);
  EXPECT_EQ(pool.endpoints[0].address, "127.0.0.1");
  EXPECT_EQ(pool.endpoints[0].port, 8501);
  EXPECT_EQ(pool.endpoints[0].weight, 1u);
  EXPECT_EQ(pool.connect_timeout, 1s);
  EXPECT_EQ(pool.max_connections_per_backend, 1024u);
  EXPECT_EQ(pool.idle_connection_timeout, 60s);
  EXPECT_EQ(pool.max_response_body, 64u << 20);
  EXPECT_EQ(pool.max_ejection_percent, 50);

  EXPECT_EQ(pool.load_balancing.policy, BalancerPolicy::weighted_round_robin);
  EXPECT_EQ(pool.load_balancing.slow_start, 0s);
  EXPECT_EQ(pool.load_balancing.slow_start_min_weight_percent, 10);

  const CircuitBreakerConfig& breaker = pool.circuit_breaker;
  EXPECT_EQ(breaker.mode, BreakerMode::auto_);
  EXPECT_EQ(breaker.consecutive_failures, 5u);
  EXPECT_EQ(breaker.window_type, WindowType::count);
  EXPECT_EQ(breaker.window_size, 20u);
  EXPECT_EQ(breaker.window_duration, 10s);
  EXPECT_EQ(breaker.minimum_calls, 10u);
  EXPECT_EQ(breaker.failure_rate_percent, 50);
  EXPECT_EQ(breaker.slow_call_rate_percent, 0);
  EXPECT_EQ(breaker.slow_call_duration, 1s);
  EXPECT_THAT(breaker.failure_statuses, ElementsAre(500u, 502u, 503u, 504u));
  EXPECT_EQ(breaker.open_duration, 5s);
  EXPECT_EQ(breaker.max_open_duration, 60s);
  EXPECT_EQ(breaker.open_jitter_percent, 10);
  EXPECT_EQ(breaker.half_open_max_calls, 3u);
  EXPECT_FALSE(breaker.require_health_check);

  const HealthCheckConfig& health = pool.health_check;
  EXPECT_TRUE(health.enabled);
  EXPECT_EQ(health.protocol, HealthCheckProtocol::rest);
  EXPECT_EQ(health.interval, 5s);
  EXPECT_EQ(health.unhealthy_interval, 1s);
  EXPECT_EQ(health.jitter_percent, 10);
  EXPECT_EQ(health.timeout, 1s);
  EXPECT_EQ(health.healthy_threshold, 2u);
  EXPECT_EQ(health.unhealthy_threshold, 2u);
  EXPECT_THAT(health.models, IsEmpty());
  EXPECT_EQ(health.expected_version, 0);

  EXPECT_EQ(pool.retry_budget.budget_percent, 20);
  EXPECT_EQ(pool.retry_budget.min_concurrency, 3u);

  ASSERT_EQ(config->routes.size(), 1u);
  const RouteConfig& route = config->routes[0];
  EXPECT_EQ(route.name, "all");
  EXPECT_EQ(route.match.model, "*");
  EXPECT_EQ(route.pool, "primary");
  EXPECT_EQ(route.timeout, 30s);
  EXPECT_EQ(route.max_timeout, 0s);
  EXPECT_EQ(route.retry.max_attempts, 3u);
  EXPECT_TRUE(route.retry.retry_on.connect_failure);
  EXPECT_TRUE(route.retry.retry_on.reset);
  EXPECT_TRUE(route.retry.retry_on.timeout);
  EXPECT_THAT(route.retry.retry_on.statuses, ElementsAre(502u, 503u, 504u));
  EXPECT_EQ(route.retry.per_try_timeout, 0s);
  EXPECT_EQ(route.retry.backoff_base, 25ms);
  EXPECT_EQ(route.retry.backoff_max, 250ms);
  EXPECT_EQ(route.hedge.delay, 0s);
  EXPECT_EQ(route.cache.mode, CacheMode::off);
  EXPECT_EQ(route.cache.ttl, 60s);
  EXPECT_EQ(route.cache.stale_if_error, 0s);
  EXPECT_FALSE(route.cache.fill_from_model_tiers);
  EXPECT_THAT(route.fallbacks, IsEmpty());
  EXPECT_EQ(route.fallback_reserve, 0s);

  EXPECT_EQ(config->cache.max_bytes, 64u << 20);
  EXPECT_EQ(config->cache.shards, 16u);

  EXPECT_EQ(config->logging.level, "info");
  EXPECT_EQ(config->logging.format, LogFormat::json);
  EXPECT_TRUE(config->logging.access_log);
  EXPECT_EQ(config->logging.file, "");
  EXPECT_EQ(config->logging.access_log_file, "");
}

TEST(ConfigLoader, ReadsEveryKey) {
  auto config = load_ok(R"(
server: {threads: 4}
drain: {delay: 5s, timeout: 1m30s}
reload: {watch: false, debounce: 50ms}
listeners:
  http:
    address: 0.0.0.0
    port: 0
    max_request_body: 1MiB
    max_request_headers: 8192
    request_header_timeout: 250ms
    request_body_timeout: 1.5s
    idle_timeout: 2m
    max_connections: 5
    max_requests_per_connection: 100
  admin: {address: "::1", port: 9000}
pools:
  heavy:
    endpoints:
      - {address: 10.0.0.1, port: 8601, weight: 3}
      - {address: tfs-b.internal, weight: 1000}
    connect_timeout: 500ms
    max_connections_per_backend: 8
    idle_connection_timeout: 5s
    max_response_body: 2GiB
  light:
    endpoints: [{address: "fd00::2"}]
routes:
  - name: resnet
    match: {model: resnet}
    pool: heavy
    timeout: 2s
  - name: rest
    match: {model: "*"}
    pool: light
logging: {level: debug, format: text, access_log: false, file: /var/log/f.log,
          access_log_file: /var/log/access.log}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->server.threads, 4);
  EXPECT_EQ(config->drain.timeout, 90s);
  EXPECT_EQ(config->drain.delay, 5s);
  EXPECT_FALSE(config->reload.watch);
  EXPECT_EQ(config->reload.debounce, 50ms);

  const auto& http = config->listeners.http;
  EXPECT_EQ(http.address, "0.0.0.0");
  EXPECT_EQ(http.port, 0);
  EXPECT_EQ(http.max_request_body, 1u << 20);
  EXPECT_EQ(http.max_request_headers, 8192u);
  EXPECT_EQ(http.request_header_timeout, 250ms);
  EXPECT_EQ(http.request_body_timeout, 1500ms);
  EXPECT_EQ(http.idle_timeout, 120s);
  EXPECT_EQ(http.max_connections, 5u);
  EXPECT_EQ(http.max_requests_per_connection, 100u);
  EXPECT_EQ(config->listeners.admin.address, "::1");
  EXPECT_EQ(config->listeners.admin.port, 9000);

  ASSERT_EQ(config->pools.size(), 2u);
  const PoolConfig& heavy = config->pools[0];  // file order is kept
  EXPECT_EQ(heavy.name, "heavy");
  ASSERT_EQ(heavy.endpoints.size(), 2u);
  EXPECT_EQ(heavy.endpoints[0].address, "10.0.0.1");
  EXPECT_EQ(heavy.endpoints[0].port, 8601);
  EXPECT_EQ(heavy.endpoints[0].weight, 3u);
  EXPECT_EQ(heavy.endpoints[1].address, "tfs-b.internal");  // host names are accepted
  EXPECT_EQ(heavy.endpoints[1].port, 8501);
  EXPECT_EQ(heavy.endpoints[1].weight, 1000u);
  EXPECT_EQ(heavy.connect_timeout, 500ms);
  EXPECT_EQ(heavy.max_connections_per_backend, 8u);
  EXPECT_EQ(heavy.idle_connection_timeout, 5s);
  EXPECT_EQ(heavy.max_response_body, 2ull << 30);
  EXPECT_EQ(config->pools[1].name, "light");
  EXPECT_EQ(config->pools[1].endpoints.at(0).address, "fd00::2");
  EXPECT_EQ(config->find_pool("light"), &config->pools[1]);
  EXPECT_EQ(config->find_pool("nope"), nullptr);

  ASSERT_EQ(config->routes.size(), 2u);
  EXPECT_EQ(config->routes[0].name, "resnet");
  EXPECT_EQ(config->routes[0].match.model, "resnet");
  EXPECT_EQ(config->routes[0].pool, "heavy");
  EXPECT_EQ(config->routes[0].timeout, 2s);
  EXPECT_EQ(config->routes[1].match.model, "*");
  EXPECT_EQ(config->routes[1].pool, "light");

  EXPECT_EQ(config->logging.level, "debug");
  EXPECT_EQ(config->logging.format, LogFormat::text);
  EXPECT_FALSE(config->logging.access_log);
  EXPECT_EQ(config->logging.file, "/var/log/f.log");
  EXPECT_EQ(config->logging.access_log_file, "/var/log/access.log");
}

TEST(ConfigLoader, ReadsEveryResilienceKey) {
  auto config = load_ok(R"(pools:
  primary:
    endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
    max_ejection_percent: 33.5
    load_balancing:
      policy: least_request
      slow_start: 30s
      slow_start_min_weight_percent: 25
    circuit_breaker:
      mode: metrics_only
      consecutive_failures: 0
      window: {type: time, size: 50, duration: 30s}
      minimum_calls: 40
      failure_rate_percent: 12.5
      slow_call_rate_percent: 80
      slow_call_duration: 2500ms
      failure_statuses: [503, 429, 408, 599]
      open_duration: 2s
      max_open_duration: 2s
      open_jitter_percent: 0
      half_open_max_calls: 1
      require_health_check: true
    health_check:
      enabled: true
      interval: 10s
      unhealthy_interval: 500ms
      jitter_percent: 50
      timeout: 9s
      healthy_threshold: 3
      unhealthy_threshold: 4
      models: [resnet, bert]
      expected_version: 1700000000
    retry_budget: {budget_percent: 0, min_concurrency: 0}
routes:
  - name: resnet
    match: {model: resnet}
    pool: primary
    timeout: 2s
    max_timeout: 10s
    retry:
      max_attempts: 10
      retry_on: [reset, 503, 429, 599]
      per_try_timeout: 2s
      backoff: {base: 10ms, max: 10ms}
    hedge: {delay: 1999ms}
)");
  ASSERT_NE(config, nullptr);
  const PoolConfig& pool = config->pools.at(0);
  EXPECT_EQ(pool.max_ejection_percent, 33.5);
  EXPECT_EQ(pool.load_balancing.policy, BalancerPolicy::least_request);
  EXPECT_EQ(pool.load_balancing.slow_start, 30s);
  EXPECT_EQ(pool.load_balancing.slow_start_min_weight_percent, 25);

  const CircuitBreakerConfig& breaker = pool.circuit_breaker;
  EXPECT_EQ(breaker.mode, BreakerMode::metrics_only);
  EXPECT_EQ(breaker.consecutive_failures, 0u);
  EXPECT_EQ(breaker.window_type, WindowType::time);
  EXPECT_EQ(breaker.window_size, 50u);
  EXPECT_EQ(breaker.window_duration, 30s);
  EXPECT_EQ(breaker.minimum_calls, 40u);
  EXPECT_EQ(breaker.failure_rate_percent, 12.5);
  EXPECT_EQ(breaker.slow_call_rate_percent, 80);
  EXPECT_EQ(breaker.slow_call_duration, 2500ms);
  // File order is kept; 408 and 429 are the 4xx statuses a backend can be blamed for.
  EXPECT_THAT(breaker.failure_statuses, ElementsAre(503u, 429u, 408u, 599u));
  EXPECT_EQ(breaker.open_duration, 2s);
  EXPECT_EQ(breaker.max_open_duration, 2s);  // equal is allowed: no doubling
  EXPECT_EQ(breaker.open_jitter_percent, 0);
  EXPECT_EQ(breaker.half_open_max_calls, 1u);
  EXPECT_TRUE(breaker.require_health_check);

  const HealthCheckConfig& health = pool.health_check;
  EXPECT_TRUE(health.enabled);
  EXPECT_EQ(health.interval, 10s);
  EXPECT_EQ(health.unhealthy_interval, 500ms);
  EXPECT_EQ(health.jitter_percent, 50);
  EXPECT_EQ(health.timeout, 9s);
  EXPECT_EQ(health.healthy_threshold, 3u);
  EXPECT_EQ(health.unhealthy_threshold, 4u);
  EXPECT_THAT(health.models, ElementsAre("resnet", "bert"));
  EXPECT_EQ(health.expected_version, 1'700'000'000);

  EXPECT_EQ(pool.retry_budget.budget_percent, 0);
  EXPECT_EQ(pool.retry_budget.min_concurrency, 0u);

  const RouteConfig& route = config->routes.at(0);
  EXPECT_EQ(route.timeout, 2s);
  EXPECT_EQ(route.max_timeout, 10s);
  EXPECT_EQ(route.retry.max_attempts, 10u);
  // Listing retry_on replaces the default set: only what is listed.
  EXPECT_FALSE(route.retry.retry_on.connect_failure);
  EXPECT_TRUE(route.retry.retry_on.reset);
  EXPECT_FALSE(route.retry.retry_on.timeout);
  EXPECT_THAT(route.retry.retry_on.statuses, ElementsAre(503u, 429u, 599u));
  EXPECT_EQ(route.retry.per_try_timeout, 2s);  // equal to the timeout is allowed
  EXPECT_EQ(route.retry.backoff_base, 10ms);
  EXPECT_EQ(route.retry.backoff_max, 10ms);
  EXPECT_EQ(route.hedge.delay, 1999ms);
}

TEST(ConfigLoader, EmptyListsMeanNever) {
  auto config = load_ok(R"(pools:
  primary:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {failure_statuses: []}
    health_check: {enabled: false, models: []}
routes:
  - name: all
    match: {model: "*"}
    pool: primary
    retry: {retry_on: []}
  - name: other
    match: {model: other}
    pool: primary
    retry:
      retry_on:
)");
  ASSERT_NE(config, nullptr);
  // Only connect failures, resets and timeouts count against the breaker.
  EXPECT_THAT(config->pools[0].circuit_breaker.failure_statuses, IsEmpty());
  EXPECT_FALSE(config->pools[0].health_check.enabled);
  EXPECT_THAT(config->pools[0].health_check.models, IsEmpty());
  for (const RouteConfig& route : config->routes) {
    SCOPED_TRACE(route.name);
    EXPECT_FALSE(route.retry.retry_on.connect_failure);
    EXPECT_FALSE(route.retry.retry_on.reset);
    EXPECT_FALSE(route.retry.retry_on.timeout);
    EXPECT_THAT(route.retry.retry_on.statuses, IsEmpty());
    EXPECT_EQ(route.retry.max_attempts, 3u);
  }
}

TEST(ConfigLoader, PercentagesAcceptIntegersFractionsAndTheirBounds) {
  ScopedTestEnv env{{"BUDGET", "12.75"}};
  auto config = load_ok(R"(pools:
  primary:
    endpoints: [{address: 10.0.0.1}]
    max_ejection_percent: 100
    load_balancing: {slow_start_min_weight_percent: 100}
    circuit_breaker: {failure_rate_percent: 0, slow_call_rate_percent: 100.0,
                      open_jitter_percent: 50}
    health_check: {jitter_percent: 0.5}
    retry_budget: {budget_percent: "${BUDGET}"}
routes:
  - {name: all, match: {model: "*"}, pool: primary}
)");
  ASSERT_NE(config, nullptr);
  const PoolConfig& pool = config->pools[0];
  EXPECT_EQ(pool.max_ejection_percent, 100);
  EXPECT_EQ(pool.load_balancing.slow_start_min_weight_percent, 100);
  EXPECT_EQ(pool.circuit_breaker.failure_rate_percent, 0);
  EXPECT_EQ(pool.circuit_breaker.slow_call_rate_percent, 100);
  EXPECT_EQ(pool.circuit_breaker.open_jitter_percent, 50);
  EXPECT_EQ(pool.health_check.jitter_percent, 0.5);
  EXPECT_EQ(pool.retry_budget.budget_percent, 12.75);
}

TEST(ConfigLoader, RequireHealthCheckIsSatisfiedByTheRoutesModels) {
  // No explicit health_check.models: the exact models of the routes using the pool are probed.
  auto config = load_ok(R"(pools:
  primary:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {require_health_check: true}
routes:
  - {name: resnet, match: {model: resnet}, pool: primary}
  - {name: rest, match: {model: "*"}, pool: primary}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_TRUE(config->pools[0].circuit_breaker.require_health_check);
  // A count window smaller than minimum_calls is fine when no rate trigger is on.
  config = load_ok(R"(pools:
  primary:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker:
      window: {size: 5}
      minimum_calls: 10
      failure_rate_percent: 0
routes:
  - {name: all, match: {model: "*"}, pool: primary}
)");
  ASSERT_NE(config, nullptr);
}

TEST(ConfigLoader, GrpcOnlyEndpointsWithGrpcProbes) {
  auto config = load_ok(R"(pools:
  tfs:
    endpoints:
      - {address: 10.0.0.1, port: 0, grpc_port: 8500}
      - {address: 10.0.0.1, port: 0, grpc_port: 8600}
      - {address: 10.0.0.2, grpc_port: 8500}
    health_check: {protocol: grpc}
  rest_probed:
    endpoints: [{address: 10.0.0.3, grpc_port: 8500}]
    health_check: {protocol: rest}
  unprobed:
    endpoints: [{address: 10.0.0.4, port: 0, grpc_port: 8500}]
    health_check: {enabled: false}
routes:
  - {name: r, match: {model: m}, pool: tfs}
)");
  ASSERT_NE(config, nullptr);
  const PoolConfig& pool = config->pools[0];
  EXPECT_EQ(pool.health_check.protocol, HealthCheckProtocol::grpc);
  ASSERT_EQ(pool.endpoints.size(), 3u);
  EXPECT_EQ(pool.endpoints[0].port, 0);
  EXPECT_EQ(pool.endpoints[0].grpc_port, 8500);
  EXPECT_EQ(pool.endpoints[1].grpc_port, 8600);
  EXPECT_EQ(pool.endpoints[2].port, 8501) << "the REST port keeps its default";
  EXPECT_EQ(endpoint_label(pool.endpoints[0]), "10.0.0.1:8500");
  EXPECT_EQ(endpoint_label(pool.endpoints[1]), "10.0.0.1:8600");
  EXPECT_EQ(endpoint_label(pool.endpoints[2]), "10.0.0.2:8501");
  EXPECT_EQ(config->pools[1].health_check.protocol, HealthCheckProtocol::rest);
  EXPECT_FALSE(config->pools[2].health_check.enabled);
  EXPECT_EQ(config->pools[2].endpoints[0].port, 0);
}

TEST(ConfigLoader, EmptySectionsMeanDefaults) {
  // A section whose keys are all commented out is an empty map, not an error.
  auto config =
      load_ok(std::string("server:\nlisteners:\n  http:\nlogging:\n") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->server.threads, 0);
  EXPECT_EQ(config->listeners.http.port, 8080);
}

TEST(ConfigLoader, SubstitutesEnvironmentInValues) {
  ScopedTestEnv env{{"FUSEBOX_PORT", "9000"}, {"BACKEND", "tfs-a"}, {"LEVEL", "warn"}};
  auto config = load_ok(R"(listeners:
  http:
    port: ${FUSEBOX_PORT}
    address: "${LISTEN_HOST:-0.0.0.0}"
    idle_timeout: ${IDLE:-90s}
pools:
  primary:
    endpoints:
      - address: ${BACKEND}.internal
routes:
  - name: all
    match: {model: "*"}
    pool: primary
logging:
  level: ${LEVEL}
  file: /var/log/$$HOME/${UNSET:-fusebox}.log
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.http.port, 9000);
  EXPECT_EQ(config->listeners.http.address, "0.0.0.0");
  EXPECT_EQ(config->listeners.http.idle_timeout, 90s);
  EXPECT_EQ(config->pools.at(0).endpoints.at(0).address, "tfs-a.internal");
  EXPECT_EQ(config->logging.level, "warn");
  EXPECT_EQ(config->logging.file, "/var/log/$HOME/fusebox.log");
}

// ---- degradation chain ----------------------------------------------------------------------

TEST(ConfigLoader, ReadsAFullDegradationChain) {
  auto config = load_ok(R"(cache: {max_bytes: 1GiB, shards: 256}
pools:
  primary: {endpoints: [{address: 10.0.0.1}]}
  light: {endpoints: [{address: 10.0.0.2}]}
routes:
  - name: resnet
    match: {model: resnet}
    pool: primary
    timeout: 2s
    fallback_reserve: 300ms
    cache: {mode: fallback, ttl: 90s, stale_if_error: 10m, fill_from_model_tiers: true}
    fallbacks:
      - {tier: model, pool: light, model: mobilenet, timeout: 500ms, version: 7,
         signature: serving_fast}
      - {tier: model, pool: light, model: resnet, label: stable_v2}
      - {tier: model, pool: light, model: tiny}
      - {tier: cache}
      - tier: default
        status: 503
        body: {predictions: [], degraded: true, score: 0.5, note: "fallback", nothing: null}
        retry_after: 30s
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->cache.max_bytes, 1ull << 30);
  EXPECT_EQ(config->cache.shards, 256u);

  const RouteConfig& route = config->routes.at(0);
  EXPECT_EQ(route.fallback_reserve, 300ms);
  EXPECT_EQ(route.cache.mode, CacheMode::fallback);
  EXPECT_EQ(route.cache.ttl, 90s);
  EXPECT_EQ(route.cache.stale_if_error, 10min);
  EXPECT_TRUE(route.cache.fill_from_model_tiers);
  ASSERT_EQ(route.fallbacks.size(), 5u);

  const FallbackTier& light = route.fallbacks[0];
  EXPECT_EQ(light.kind, TierKind::model);
  EXPECT_EQ(light.pool, "light");
  EXPECT_EQ(light.model, "mobilenet");
  EXPECT_EQ(light.timeout, 500ms);
  EXPECT_EQ(light.version, 7);
  EXPECT_EQ(light.label, "");
  EXPECT_EQ(light.signature, "serving_fast");

  // The primary's model on another pool, pinned by label.
  const FallbackTier& labelled = route.fallbacks[1];
  EXPECT_EQ(labelled.kind, TierKind::model);
  EXPECT_EQ(labelled.pool, "light");
  EXPECT_EQ(labelled.model, "resnet");
  EXPECT_EQ(labelled.label, "stable_v2");
  EXPECT_EQ(labelled.version, 0);

  const FallbackTier& plain = route.fallbacks[2];
  EXPECT_EQ(plain.timeout, 1s);  // the default
  EXPECT_EQ(plain.version, 0);
  EXPECT_EQ(plain.label, "");
  EXPECT_EQ(plain.signature, "");

  EXPECT_EQ(route.fallbacks[3].kind, TierKind::cache);

  const FallbackTier& answer = route.fallbacks[4];
  EXPECT_EQ(answer.kind, TierKind::default_);
  EXPECT_EQ(answer.status, 503u);
  EXPECT_EQ(answer.retry_after, 30s);
  // Compact JSON, keys in file order, YAML scalars mapped to JSON types.
  EXPECT_EQ(answer.body,
            R"({"predictions":[],"degraded":true,"score":0.5,"note":"fallback","nothing":null})");
}

TEST(ConfigLoader, ReadsARulesTier) {
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
            headers: {X-Region: eu, x-tenant: "7"}
            when:
              - {pointer: /context/country, op: in, value: [DE, FR, 3]}
              - {pointer: "/a~1b/m~0n", value: {k: [1, true, null]}}
            instance_when:
              - {pointer: /price, op: range, min: 0, max: 99.5}
              - {pointer: /stock, op: range, max: -1}
              - {pointer: "", op: exists}
              - {pointer: /flag, op: equals, value: "true"}
            prediction: {label: best_seller, score: 0.5}
          - name: rest
            prediction: [0, "${LABEL:-none}"]
      - {tier: default}
)");
  ASSERT_NE(config, nullptr);
  const FallbackTier& tier = config->routes.at(0).fallbacks.at(0);
  EXPECT_EQ(tier.kind, TierKind::rules);
  ASSERT_EQ(tier.rules.size(), 2u);

  const RuleConfig& rule = tier.rules[0];
  EXPECT_EQ(rule.name, "best_sellers");
  EXPECT_EQ(rule.model, "resnet");
  EXPECT_EQ(rule.signature, "serving_default");
  // Header names lowercase; a quoted number stays a string.
  using Header = std::pair<std::string, std::string>;
  EXPECT_THAT(rule.headers, ElementsAre(Header{"x-region", "eu"}, Header{"x-tenant", "7"}));

  ASSERT_EQ(rule.when.size(), 2u);
  EXPECT_EQ(rule.when[0].pointer, "/context/country");
  EXPECT_EQ(rule.when[0].op, "in");
  EXPECT_EQ(rule.when[0].value_json, R"(["DE","FR",3])");
  EXPECT_EQ(rule.when[1].pointer, "/a~1b/m~0n");
  EXPECT_EQ(rule.when[1].op, "equals");  // the default
  EXPECT_EQ(rule.when[1].value_json, R"({"k":[1,true,null]})");

  ASSERT_EQ(rule.instance_when.size(), 4u);
  EXPECT_EQ(rule.instance_when[0].op, "range");
  EXPECT_EQ(rule.instance_when[0].min, 0.0);
  EXPECT_EQ(rule.instance_when[0].max, 99.5);
  EXPECT_EQ(rule.instance_when[0].value_json, "");
  EXPECT_EQ(rule.instance_when[1].min, std::nullopt);
  EXPECT_EQ(rule.instance_when[1].max, -1.0);
  EXPECT_EQ(rule.instance_when[2].pointer, "");
  EXPECT_EQ(rule.instance_when[2].op, "exists");
  EXPECT_EQ(rule.instance_when[3].value_json, R"("true")");
  EXPECT_EQ(rule.prediction_json, R"({"label":"best_seller","score":0.5})");

  // Everything optional left out: any model, signature, headers and instance.
  const RuleConfig& rest = tier.rules[1];
  EXPECT_EQ(rest.name, "rest");
  EXPECT_EQ(rest.model, "");
  EXPECT_EQ(rest.signature, "");
  EXPECT_THAT(rest.headers, IsEmpty());
  EXPECT_THAT(rest.when, IsEmpty());
  EXPECT_THAT(rest.instance_when, IsEmpty());
  EXPECT_EQ(rest.prediction_json, R"([0,"none"])");
}

TEST(ConfigLoader, DefaultTierDefaults) {
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - {name: r, match: {model: m}, pool: p, fallbacks: [{tier: default}]}
)");
  ASSERT_NE(config, nullptr);
  const FallbackTier& tier = config->routes.at(0).fallbacks.at(0);
  EXPECT_EQ(tier.kind, TierKind::default_);
  EXPECT_EQ(tier.status, 200u);
  EXPECT_EQ(tier.body, "{}");
  EXPECT_EQ(tier.retry_after, 0s);
}

// One default tier whose body is written as `yaml`, compacted.
std::string default_body(std::string_view yaml) {
  auto config = load_ok(std::string(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    fallbacks:
      - tier: default
        body: )") + std::string(yaml) +
                        "\n");
  if (config == nullptr) return "<not loaded>";
  return config->routes.at(0).fallbacks.at(0).body;
}

TEST(ConfigLoader, DefaultBodyMapsYamlToJson) {
  ScopedTestEnv env{{"LABEL", "cat"}};
  // A YAML value: plain scalars become numbers, booleans and null; quoted ones stay strings.
  EXPECT_EQ(default_body(R"({a: 1, b: -2.5, c: true, d: False, e: ~, f: "7", g: 'true',
                                 h: text, i: [1, "x", null], j: {}, k: [], l: 1e3, m: +3,
                                 n: 18446744073709551615, o: .inf, p: 0x1F, q: !!str 12})"),
            R"({"a":1,"b":-2.5,"c":true,"d":false,"e":null,"f":"7","g":"true","h":"text",)"
            R"("i":[1,"x",null],"j":{},"k":[],"l":1000.0,"m":3,"n":18446744073709551615,)"
            R"("o":".inf","p":"0x1F","q":"12"})");
  // A list, with ${VAR} substituted in values like anywhere else.
  EXPECT_EQ(default_body(R"([{label: "${LABEL}"}, "$${LABEL}"])"),
            R"([{"label":"cat"},"${LABEL}"])");
  // A string holding JSON text is parsed and compacted.
  EXPECT_EQ(default_body(R"('{"predictions": [ 1, 2 ],  "x": "y"}')"),
            R"({"predictions":[1,2],"x":"y"})");
  EXPECT_EQ(default_body(R"('"unavailable"')"), R"("unavailable")");
  // Plain scalars are JSON scalars.
  EXPECT_EQ(default_body("42"), "42");
  EXPECT_EQ(default_body("true"), "true");
  EXPECT_EQ(default_body("True"), "true");
}

TEST(ConfigLoader, FallbackReserveMayBeZeroAndUpToTheTimeoutWithoutFallbacks) {
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - {name: a, match: {model: a}, pool: p, timeout: 1s, fallback_reserve: 1s}
  - {name: b, match: {model: b}, pool: p, timeout: 1s, fallback_reserve: 999ms,
     fallbacks: [{tier: default}]}
  - {name: c, match: {model: c}, pool: p, fallback_reserve: 0, cache: {mode: first},
     fallbacks: [{tier: cache}]}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->routes[0].fallback_reserve, 1s);
  EXPECT_EQ(config->routes[1].fallback_reserve, 999ms);
  EXPECT_EQ(config->routes[2].fallback_reserve, 0s);
  EXPECT_EQ(config->routes[2].cache.mode, CacheMode::first);
}

TEST(ConfigLoader, AcceptsQuotedNumbersAndBooleanSpellings) {
  auto config = load_ok(std::string(R"(listeners: {http: {port: "8081"}}
logging: {access_log: False}
)") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.http.port, 8081);
  EXPECT_FALSE(config->logging.access_log);
}

TEST(ConfigLoader, HttpAndAdminMayShareAPortOnDistinctAddresses) {
  auto config = load_ok(std::string(R"(listeners:
  http: {address: 127.0.0.1, port: 8080}
  admin: {address: 127.0.0.2, port: 8080}
)") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  // Port 0 never conflicts: each listener gets its own ephemeral port.
  config = load_ok(std::string("listeners: {http: {port: 0}, admin: {port: 0}}\n") +
                   std::string(kMinimal));
  ASSERT_NE(config, nullptr);
}

class ConfigFileTest : public testing::TempDirTest {};

TEST_F(ConfigFileTest, LoadsAFile) {
  const std::string path = write("fusebox.yaml", kMinimal);
  LoadResult result = load_config_file(path, test_env);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->source_file, path);
  EXPECT_EQ(result.config->routes.at(0).name, "all");
}

TEST_F(ConfigFileTest, ErrorsNameTheFile) {
  const std::string path = write("bad.yaml", "pools: {}\nroutes: []\n");
  LoadResult result = load_config_file(path, test_env);
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[0].to_string(), path + ":1:8: pools: at least one pool is required");
}

TEST_F(ConfigFileTest, MissingFileIsOneErrorWithoutPosition) {
  const std::string path = (dir_ / "absent.yaml").string();
  LoadResult result = load_config_file(path, test_env);
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].file, path);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].column, 0);
  EXPECT_EQ(result.errors[0].path, "");
  EXPECT_EQ(result.errors[0].message, "cannot read file: No such file or directory");
  EXPECT_EQ(result.errors[0].to_string(),
            path + ":0:0: cannot read file: No such file or directory");
}

TEST_F(ConfigFileTest, DirectoryIsUnreadable) {
  LoadResult result = load_config_file(dir_.string(), test_env);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].message, "cannot read file: Is a directory");
}

// ---- admission control and authentication ---------------------------------------------------

TEST(ConfigLoader, AdmissionAndAuthDefaults) {
  auto config = load_ok(kMinimal);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.admin.token_hash, "");

  const AuthConfig& auth = config->auth;
  EXPECT_EQ(auth.realm, "fusebox");
  EXPECT_EQ(auth.api_key_header, "X-API-Key");
  EXPECT_THAT(auth.api_keys, IsEmpty());
  EXPECT_FALSE(auth.jwt.enabled);

  const AdmissionConfig& admission = config->admission;
  EXPECT_EQ(admission.max_inflight, 0u);
  EXPECT_EQ(admission.max_memory, 0u);
  EXPECT_EQ(admission.shed_step_percent, 10);
  EXPECT_EQ(admission.sample_interval, 250ms);
  EXPECT_EQ(admission.max_clients, 100'000u);
  EXPECT_EQ(admission.client_idle_eviction, 60s);

  const RouteAdmissionConfig& route = config->routes[0].admission;
  EXPECT_EQ(route.priority, 5);
  EXPECT_EQ(route.auth, AuthPolicyKind::none);
  EXPECT_FALSE(route.concurrency.enabled);
  EXPECT_FALSE(route.concurrency.adaptive.enabled);
  EXPECT_FALSE(route.rate_limit.enabled());
  EXPECT_FALSE(route.client_rate_limit.enabled());
}

TEST(ConfigLoader, SectionDefaultsOnceTurnedOn) {
  // Writing a section turns it on; the keys left out keep the defaults of config.h.
  ScopedTestEnv env{{"SECRET", std::string(kHs256Secret)}};
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
auth:
  jwt: {keys: [{secret: "${SECRET}"}]}
routes:
  - name: r
    match: {model: m}
    pool: p
    concurrency: {adaptive: {}}
    rate_limit: {requests_per_second: 0.5}
    client_rate_limit: {requests_per_second: 2.5}
)");
  ASSERT_NE(config, nullptr);
  const JwtConfig& jwt = config->auth.jwt;
  EXPECT_TRUE(jwt.enabled);
  EXPECT_EQ(jwt.issuer, "");
  EXPECT_EQ(jwt.audience, "");
  EXPECT_TRUE(jwt.require_exp);
  EXPECT_EQ(jwt.clock_skew, 30s);
  EXPECT_EQ(jwt.priority_claim, "");
  EXPECT_EQ(jwt.models_claim, "");
  EXPECT_EQ(jwt.max_token_bytes, 8u * 1024);
  EXPECT_EQ(jwt.jwks_file, "");
  ASSERT_EQ(jwt.keys.size(), 1u);
  EXPECT_EQ(jwt.keys[0].kid, "");
  EXPECT_EQ(jwt.keys[0].alg, "HS256");
  EXPECT_EQ(jwt.keys[0].secret, kHs256Secret);

  const RouteAdmissionConfig& route = config->routes[0].admission;
  const RouteConcurrencyConfig& c = route.concurrency;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.limit, 64u);
  EXPECT_EQ(c.max_queued, 256u);
  for (std::uint32_t cap : c.max_queued_per_priority) EXPECT_EQ(cap, UINT32_MAX);
  EXPECT_EQ(c.queue_timeout, 1s);
  EXPECT_EQ(c.aging_step, 100ms);
  EXPECT_TRUE(c.adaptive.enabled);
  EXPECT_FALSE(c.adaptive.dry_run);
  EXPECT_EQ(c.adaptive.min_limit, 2u);
  EXPECT_EQ(c.adaptive.max_limit, 500u);
  EXPECT_EQ(c.adaptive.interval, 1s);
  EXPECT_EQ(c.adaptive.tolerance, 1.5);
  EXPECT_EQ(c.adaptive.min_rtt_interval, 60s);
  // The default burst is max(1, ceil(rate)).
  EXPECT_EQ(route.rate_limit.requests_per_second, 0.5);
  EXPECT_EQ(route.rate_limit.burst, 1u);
  EXPECT_EQ(route.client_rate_limit.requests_per_second, 2.5);
  EXPECT_EQ(route.client_rate_limit.burst, 3u);
}

TEST_F(ConfigFileTest, ReadsEveryAuthAndAdmissionKey) {
  const std::string pem_file = write("jwt.pem", kRsaPublicKeyPem);
  const std::string jwks_file = write("jwks.json", kJwks);
  ScopedTestEnv env{{"ADMIN_HASH", std::string(kAdminTokenHash)},
                    {"ONE", std::string(kKeyOneHash)},
                    {"TWO", std::string(kKeyTwoHash)},
                    {"JWT_SECRET", std::string(kHs256Secret)},
                    {"PEM_FILE", pem_file},
                    {"JWKS_FILE", jwks_file}};
  const std::string pem_block = testing::indented(kRsaPublicKeyPem, 10);
  auto config = load_ok(R"(listeners:
  admin: {port: 9902, token_hash: "${ADMIN_HASH}"}
auth:
  realm: inference
  api_key_header: X-Fusebox-Key
  api_keys:
    - name: checkout
      hash: ${ONE}
      priority: 0
      rate_limit: {requests_per_second: 200, burst: 400}
      models: [resnet, bert]
    - name: batch-jobs
      hash: ${TWO}
  jwt:
    issuer: https://auth.example.com/
    audience: fusebox
    require_exp: false
    clock_skew: 5s
    priority_claim: fusebox_priority
    models_claim: fusebox_models
    max_token_bytes: 4KiB
    keys:
      - {kid: hs, alg: HS256, secret: "${JWT_SECRET}"}
      - {kid: rs-file, alg: RS256, public_key_file: "${PEM_FILE}"}
      - kid: rs-inline
        alg: RS256
        public_key_pem: |
)" + pem_block + R"(    jwks_file: ${JWKS_FILE}
admission:
  max_inflight: 2000
  max_memory: 3GiB
  shed_step_percent: 15
  sample_interval: 100ms
  max_clients: 5000
  client_idle_eviction: 5m
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: resnet
    match: {model: resnet}
    pool: p
    priority: 2
    auth: any
    concurrency:
      limit: 16
      max_queued: 100
      max_queued_per_priority: {0: 100, 5: 20, 9: 0}
      queue_timeout: 750ms
      aging_step: 0
      adaptive: {dry_run: true, min_limit: 4, max_limit: 64, interval: 500ms, tolerance: 2,
                 min_rtt_interval: 30s}
    rate_limit: {requests_per_second: 1000, burst: 1500}
    client_rate_limit: {requests_per_second: 0.25, burst: 2}
  - {name: bert, match: {model: bert}, pool: p, auth: api_key}
  - {name: rest, match: {model: "*"}, pool: p, auth: jwt, priority: 9}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.admin.token_hash, kAdminTokenHash);

  const AuthConfig& auth = config->auth;
  EXPECT_EQ(auth.realm, "inference");
  EXPECT_EQ(auth.api_key_header, "X-Fusebox-Key") << "kept as written";
  ASSERT_EQ(auth.api_keys.size(), 2u);
  const ApiKeyConfig& checkout = auth.api_keys[0];
  EXPECT_EQ(checkout.name, "checkout");
  EXPECT_EQ(checkout.hash, kKeyOneHash);
  EXPECT_EQ(checkout.priority, std::optional<std::uint8_t>(0));
  EXPECT_EQ(checkout.rate_limit.requests_per_second, 200);
  EXPECT_EQ(checkout.rate_limit.burst, 400u);
  EXPECT_THAT(checkout.models, ElementsAre("resnet", "bert"));
  const ApiKeyConfig& batch = auth.api_keys[1];
  EXPECT_EQ(batch.name, "batch-jobs");
  EXPECT_EQ(batch.hash, kKeyTwoHash);
  EXPECT_EQ(batch.priority, std::nullopt) << "none: the route's priority";
  EXPECT_FALSE(batch.rate_limit.enabled()) << "off: the route's client_rate_limit";
  EXPECT_THAT(batch.models, IsEmpty());

  const JwtConfig& jwt = auth.jwt;
  EXPECT_TRUE(jwt.enabled);
  EXPECT_EQ(jwt.issuer, "https://auth.example.com/");
  EXPECT_EQ(jwt.audience, "fusebox");
  EXPECT_FALSE(jwt.require_exp);
  EXPECT_EQ(jwt.clock_skew, 5s);
  EXPECT_EQ(jwt.priority_claim, "fusebox_priority");
  EXPECT_EQ(jwt.models_claim, "fusebox_models");
  EXPECT_EQ(jwt.max_token_bytes, 4096u);
  ASSERT_EQ(jwt.keys.size(), 3u);
  EXPECT_EQ(jwt.keys[0].kid, "hs");
  EXPECT_EQ(jwt.keys[0].alg, "HS256");
  EXPECT_EQ(jwt.keys[0].secret, kHs256Secret);
  EXPECT_EQ(jwt.keys[1].kid, "rs-file");
  EXPECT_EQ(jwt.keys[1].alg, "RS256");
  EXPECT_EQ(jwt.keys[1].public_key_file, pem_file);
  EXPECT_EQ(jwt.keys[1].secret, "");
  EXPECT_EQ(jwt.keys[2].public_key_pem, kRsaPublicKeyPem);
  EXPECT_EQ(jwt.keys[2].public_key_file, "");
  EXPECT_EQ(jwt.jwks_file, jwks_file);

  const AdmissionConfig& admission = config->admission;
  EXPECT_EQ(admission.max_inflight, 2000u);
  EXPECT_EQ(admission.max_memory, 3ull << 30);
  EXPECT_EQ(admission.shed_step_percent, 15);
  EXPECT_EQ(admission.sample_interval, 100ms);
  EXPECT_EQ(admission.max_clients, 5000u);
  EXPECT_EQ(admission.client_idle_eviction, 5min);

  const RouteAdmissionConfig& resnet = config->routes[0].admission;
  EXPECT_EQ(resnet.priority, 2);
  EXPECT_EQ(resnet.auth, AuthPolicyKind::any);
  const RouteConcurrencyConfig& c = resnet.concurrency;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.limit, 16u);
  EXPECT_EQ(c.max_queued, 100u);
  EXPECT_THAT(c.max_queued_per_priority,
              ElementsAre(100u, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, 20u, UINT32_MAX,
                          UINT32_MAX, UINT32_MAX, 0u));
  EXPECT_EQ(c.queue_timeout, 750ms);
  EXPECT_EQ(c.aging_step, 0ms) << "0 = no aging";
  EXPECT_TRUE(c.adaptive.enabled);
  EXPECT_TRUE(c.adaptive.dry_run);
  EXPECT_EQ(c.adaptive.min_limit, 4u);
  EXPECT_EQ(c.adaptive.max_limit, 64u);
  EXPECT_EQ(c.adaptive.interval, 500ms);
  EXPECT_EQ(c.adaptive.tolerance, 2);
  EXPECT_EQ(c.adaptive.min_rtt_interval, 30s);
  EXPECT_EQ(resnet.rate_limit.requests_per_second, 1000);
  EXPECT_EQ(resnet.rate_limit.burst, 1500u);
  EXPECT_EQ(resnet.client_rate_limit.requests_per_second, 0.25);
  EXPECT_EQ(resnet.client_rate_limit.burst, 2u);
  EXPECT_EQ(config->routes[1].admission.auth, AuthPolicyKind::api_key);
  EXPECT_EQ(config->routes[2].admission.auth, AuthPolicyKind::jwt);
  EXPECT_EQ(config->routes[2].admission.priority, 9);
}

TEST(ConfigLoader, AuthPoliciesNeedOnlyTheCredentialsTheyAccept) {
  std::string upper(kKeyOneHash);
  std::transform(upper.begin() + 7, upper.end(), upper.begin() + 7,
                 [](char ch) { return static_cast<char>(std::toupper(ch)); });
  ScopedTestEnv env{{"ONE", std::string(kKeyOneHash)}, {"UPPER", upper}};
  // `any` is satisfied by API keys alone, and `none` needs nothing.
  auto config = load_ok(R"(auth:
  api_keys: [{name: a, hash: "${ONE}"}]
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - {name: a, match: {model: a}, pool: p, auth: any}
  - {name: b, match: {model: b}, pool: p, auth: none}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->routes[0].admission.auth, AuthPolicyKind::any);
  // Hex digits may be upper case; the admin token hash may be written empty (= none).
  config = load_ok(R"(listeners: {admin: {token_hash: ""}}
auth: {api_keys: [{name: a, hash: "${UPPER}"}]}
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes: [{name: a, match: {model: a}, pool: p, auth: api_key}]
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.admin.token_hash, "");
  EXPECT_EQ(config->auth.api_keys[0].hash, upper);
}

TEST(ConfigLoader, ConcurrencyLimitMayEqualTheAdaptiveBounds) {
  auto config = load_ok(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    concurrency: {limit: 8, max_queued: 0, adaptive: {min_limit: 8, max_limit: 8}}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->routes[0].admission.concurrency.max_queued, 0u) << "0 = no queue";
}

TEST(ConfigLoader, ProcessEnvLookupReadsTheEnvironment) {
  ::setenv("FUSEBOX_CONFIG_TEST_VAR", "v1", 1);
  std::string value;
  EXPECT_TRUE(process_env_lookup("FUSEBOX_CONFIG_TEST_VAR", value));
  EXPECT_EQ(value, "v1");
  ::unsetenv("FUSEBOX_CONFIG_TEST_VAR");
  EXPECT_FALSE(process_env_lookup("FUSEBOX_CONFIG_TEST_VAR", value));
}

}  // namespace
}  // namespace fusebox::config
