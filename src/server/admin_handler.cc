#include "fusebox/server/admin_handler.h"

#include <nlohmann/json.hpp>

#include "fusebox/config/loader.h"
#include "fusebox/http/json_error.h"

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

std::string AdminHandler::not_ready_reason() const {
  if (runtime_.draining.load(std::memory_order_relaxed)) return "shutting down";
  const auto& config = *runtime_.config;
  for (std::size_t r = 0; r < config.routes.size(); ++r) {
    const auto& pool = runtime_.pools[runtime_.route_pool[r]];
    bool any = false;
    for (const auto& b : pool.backends) any = any || b->reachable.load(std::memory_order_relaxed);
    if (!any) {
      return "route \"" + config.routes[r].name + "\": no reachable backend in pool \"" +
             pool.config->name + "\"";
    }
  }
  return {};
}

void AdminHandler::handle(Request&& request, const ConnectionInfo&, Clock::time_point,
                          std::shared_ptr<ResponseSink> sink) {
  auto version = request.version();
  auto path = path_of(request.target());
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
    res.body() = runtime_.metrics.expose();
    return sink->send(std::move(res));
  }
  if (path == "/admin/config") {
    return sink->send(json_response(200, config::config_to_json(*runtime_.config), version));
  }
  if (path == "/admin/backends") {
    nlohmann::json pools = nlohmann::json::object();
    for (const auto& pool : runtime_.pools) {
      auto list = nlohmann::json::array();
      for (const auto& b : pool.backends) {
        list.push_back({{"address", b->endpoint.address},
                        {"port", b->endpoint.port},
                        {"weight", b->endpoint.weight},
                        {"reachable", b->reachable.load(std::memory_order_relaxed)},
                        {"open_connections", b->open_connections.load(std::memory_order_relaxed)},
                        {"active_requests", b->active_requests.load(std::memory_order_relaxed)},
                        {"requests_total", b->requests_total.load(std::memory_order_relaxed)},
                        {"failures_total", b->failures_total.load(std::memory_order_relaxed)}});
      }
      pools[pool.config->name] = {{"backends", std::move(list)}};
    }
    return sink->send(json_response(200, {{"pools", std::move(pools)}}, version));
  }
  sink->send(::fusebox::http::json_error_response(404, "no admin endpoint " + std::string(path),
                                                  version));
}

}  // namespace fusebox::server
