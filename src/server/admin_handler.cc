#include "fusebox/server/admin_handler.h"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "fusebox/auth/api_keys.h"
#include "fusebox/config/loader.h"
#include "fusebox/health/health_checker.h"
#include "fusebox/http/json_error.h"
#include "fusebox/logging/logging.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::server {
namespace {

Response json_response(unsigned status, const nlohmann::json& body, unsigned version) {
  Response res{static_cast<http::status>(status), version};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = body.dump(2);
  res.body() += '\n';
  return res;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace

namespace {

// A backend counts for readiness when its breaker does not eject it and its health check has
// passed (or, where nothing is probed, has not failed).
bool serving(const upstream::BackendState& b, bool probed) {
  if (b.breaker->ejected()) return false;
  auto health = static_cast<health::HealthStatus>(b.health.load(std::memory_order_relaxed));
  return probed ? health == health::HealthStatus::healthy : health::eligible(health);
}

std::optional<resilience::BreakerState> parse_operator_state(std::string_view s, bool& ok) {
  ok = true;
  if (s == "auto") return std::nullopt;
  if (s == "closed") return resilience::BreakerState::closed;
  if (s == "forced_open") return resilience::BreakerState::forced_open;
  if (s == "disabled") return resilience::BreakerState::disabled;
  if (s == "metrics_only") return resilience::BreakerState::metrics_only;
  ok = false;
  return std::nullopt;
}

// A port of 0 is "none" (a gRPC-only backend has no REST port): shown as null.
nlohmann::json port_json(std::uint16_t port) {
  return port == 0 ? nlohmann::json(nullptr) : nlohmann::json(port);
}

nlohmann::json backend_json(const upstream::BackendState& b) {
  auto health = static_cast<health::HealthStatus>(b.health.load(std::memory_order_relaxed));
  auto stats = b.breaker->stats();
  auto probe = b.last_probe();
  return {{"name", b.label},
          {"address", b.endpoint.address},
          {"port", port_json(b.endpoint.port)},
          {"grpc_port", port_json(b.endpoint.grpc_port)},
          {"weight", b.endpoint.weight},
          {"health", health::to_string(health)},
          {"last_health_check", probe.result.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json{{"result", probe.result},
                                                                      {"detail", probe.detail}}},
          {"circuit_breaker",
           {{"state", resilience::to_string(b.breaker->state())},
            {"window_calls", stats.calls},
            {"window_failures", stats.failures},
            {"window_slow_calls", stats.slow_calls},
            {"failure_rate_percent", stats.failure_rate_percent},
            {"slow_rate_percent", stats.slow_rate_percent},
            {"consecutive_failures", stats.consecutive_failures}}},
          {"reachable", b.reachable.load(std::memory_order_relaxed)},
          {"open_connections", b.open_connections.load(std::memory_order_relaxed)},
          {"active_requests", b.active_requests.load(std::memory_order_relaxed)},
          {"requests_total", b.requests_total.load(std::memory_order_relaxed)},
          {"failures_total", b.failures_total.load(std::memory_order_relaxed)}};
}

}  // namespace

// /admin/* with listeners.admin.token_hash set: `Authorization: Bearer <token>` whose SHA-256
// matches (compared in constant time). Probes and scrapers (/healthz, /readyz, /metrics) stay
// open.
std::optional<Response> AdminHandler::check_admin_token(const proxy::Runtime& runtime,
                                                        const Request& request) const {
  const auto& expected = runtime.config->listeners.admin.token_hash;
  if (expected.empty()) return std::nullopt;
  auto digest = auth::parse_key_hash(expected);
  auto credentials = auth::presented_credentials({}, [&] {
    auto v = request[http::field::authorization];
    return std::string_view(v.data(), v.size());
  }());
  bool ok = digest && !credentials.bearer_token.empty();
  if (ok) {
    auto presented = auth::sha256(credentials.bearer_token);
    ok = CRYPTO_memcmp(presented.data(), digest->data(), presented.size()) == 0;
  }
  if (ok) return std::nullopt;
  auto res = ::fusebox::http::json_error_response(
      401, "the admin endpoints need Authorization: Bearer <admin token>", request.version());
  res.set(http::field::www_authenticate, "Bearer realm=\"fusebox-admin\"");
  return res;
}

bool AdminHandler::route_serving(const proxy::Runtime& runtime, std::size_t route) {
  auto p = runtime.route_pool[route];
  const auto& pool = runtime.pools[p];
  bool probed = pool.config->health_check.enabled && !runtime.health_models[p].empty();
  for (const auto& b : pool.backends) {
    if (serving(*b, probed)) return true;
  }
  return false;
}

std::string AdminHandler::not_ready_reason() const {
  if (context_.draining()) return "shutting down";
  auto runtime = context_.runtime();
  const auto& config = *runtime->config;
  for (std::size_t r = 0; r < config.routes.size(); ++r) {
    if (!route_serving(*runtime, r)) {
      return "route \"" + config.routes[r].name + "\": no healthy backend in pool \"" +
             runtime->pools[runtime->route_pool[r]].config->name + "\"";
    }
  }
  return {};
}

Response AdminHandler::control_breaker(proxy::Runtime& runtime, const Request& request,
                                       std::string_view path) {
  // /admin/pools/{pool}/backends/{backend}/breaker ; backend = "address:port" or its index
  auto version = request.version();
  constexpr std::string_view prefix = "/admin/pools/";
  auto rest = path.substr(prefix.size());
  auto slash = rest.find('/');
  auto pool_name = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  constexpr std::string_view mid = "/backends/";
  constexpr std::string_view suffix = "/breaker";
  if (!rest.starts_with(mid) || !rest.ends_with(suffix) || rest.size() <= mid.size() + suffix.size()) {
    return ::fusebox::http::json_error_response(404, "no admin endpoint " + std::string(path), version);
  }
  auto backend_name = rest.substr(mid.size(), rest.size() - mid.size() - suffix.size());
  upstream::PoolState* pool = nullptr;
  for (auto& p : runtime.pools)
    if (p.config->name == pool_name) pool = &p;
  if (!pool) return ::fusebox::http::json_error_response(404, "no pool named \"" + std::string(pool_name) + "\"", version);
  upstream::BackendState* backend = nullptr;
  for (auto& b : pool->backends) {
    if (b->label == backend_name || std::to_string(b->backend_index) == backend_name) backend = b.get();
  }
  if (!backend) {
    return ::fusebox::http::json_error_response(
        404, "no backend \"" + std::string(backend_name) + "\" in pool \"" + std::string(pool_name) + "\"", version);
  }
  auto body = nlohmann::json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("state") || !body["state"].is_string()) {
    return ::fusebox::http::json_error_response(
        400, "expected a JSON object {\"state\": \"forced_open|closed|disabled|metrics_only|auto\"}", version);
  }
  bool ok = false;
  auto requested = body["state"].get<std::string>();
  auto state = parse_operator_state(requested, ok);
  if (!ok) {
    return ::fusebox::http::json_error_response(
        400, "unknown breaker state \"" + requested + "\" (expected forced_open, closed, disabled, metrics_only or auto)", version);
  }
  auto transitions = backend->breaker->set_operator_state(state);
  if (!transitions.empty()) {
    runtime.events->on_breaker_transitions(runtime.metrics.shard_count() - 1, *backend, transitions);
  }
  logging::log().info("operator set circuit breaker pool={} backend={} to {}", pool->config->name,
                      backend->label, requested);
  return json_response(200, backend_json(*backend), version);
}

void AdminHandler::handle(Request&& request, const ConnectionInfo&, Clock::time_point,
                          std::shared_ptr<ResponseSink> sink) {
  auto version = request.version();
  auto path = path_of(request.target());
  auto runtime = context_.runtime();  // this request's snapshot, kept while it is answered
  if (path.starts_with("/admin/")) {
    if (auto refusal = check_admin_token(*runtime, request)) return sink->send(std::move(*refusal));
  }
  if (path.starts_with("/admin/pools/")) {
    if (request.method() != http::verb::post) {
      return sink->send(::fusebox::http::json_error_response(405, "use POST", version));
    }
    return sink->send(control_breaker(*runtime, request, path));
  }
  if (path == "/admin/reload") {
    if (request.method() == http::verb::get) {
      return sink->send(json_response(200, context_.reload_status(), version));
    }
    if (request.method() != http::verb::post) {
      return sink->send(::fusebox::http::json_error_response(405, "use GET or POST", version));
    }
    return context_.request_reload("admin", [sink, version](bool applied,
                                                            const nlohmann::json& status) {
      sink->send(json_response(applied ? 200 : 422, status, version));
    });
  }
  if (request.method() != http::verb::get) {
    return sink->send(::fusebox::http::json_error_response(405, "only GET is supported", version));
  }
  if (path == "/healthz") {
    return sink->send(json_response(200, {{"status", "alive"}}, version));
  }
  if (path == "/readyz") {
    auto reason = not_ready_reason();
    if (reason.empty()) return sink->send(json_response(200, {{"status", "ready"}}, version));
    return sink->send(json_response(503, {{"status", "not_ready"}, {"reason", reason}}, version));
  }
  if (path == "/metrics") {
    Response res{http::status::ok, version};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    std::vector<prometheus::MetricFamily> families;
    context_.collect_metrics(families);
    res.body() = metrics::serialize(families);
    return sink->send(std::move(res));
  }
  if (path == "/admin/config") {
    auto res = json_response(200, runtime->config_json, version);
    // Which load this is, without changing the body (it loads back as a configuration file).
    auto status = context_.reload_status();
    res.set("X-Fusebox-Config-Generation", std::to_string(status.value("generation", 0)));
    res.set("X-Fusebox-Config-Last-Reload", status.value("last_result", std::string("none")));
    return sink->send(std::move(res));
  }
  if (path == "/admin/routes") {
    return sink->send(json_response(200, runtime->routes_json(), version));
  }
  if (path == "/admin/backends") {
    nlohmann::json pools = nlohmann::json::object();
    for (const auto& pool : runtime->pools) {
      auto list = nlohmann::json::array();
      for (const auto& b : pool.backends) list.push_back(backend_json(*b));
      pools[pool.config->name] = {{"backends", std::move(list)}};
    }
    return sink->send(json_response(200, {{"pools", std::move(pools)}}, version));
  }
  sink->send(::fusebox::http::json_error_response(404, "no admin endpoint " + std::string(path),
                                                  version));
}

}  // namespace fusebox::server
