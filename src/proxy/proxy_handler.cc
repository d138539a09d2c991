#include "fusebox/proxy/proxy_handler.h"

#include <boost/beast/http/field.hpp>

#include "fusebox/http/json_error.h"
#include "fusebox/http/rest_path.h"
#include "fusebox/logging/logging.h"

namespace fusebox::proxy {

namespace bhttp = boost::beast::http;
using metrics::UpstreamOutcome;
using server::Clock;

struct ProxyHandler::Call {
  server::Request request;
  std::shared_ptr<server::ResponseSink> sink;
  Clock::time_point start;
  Clock::time_point upstream_start;
  std::string client;
  std::string_view method;      // into `request`, which outlives every use
  std::string_view target;
  std::string request_id;
  std::string_view trace_id;    // into `request`'s traceparent header
  std::size_t route = 0;
  upstream::BackendState* backend = nullptr;
  std::uint64_t bytes_received = 0;
  unsigned attempts = 0;
  unsigned client_version = 11;  // the answer goes back in the client's HTTP version
};

namespace {

std::string_view to_sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

upstream::PoolLimits pool_limits(const config::PoolConfig& pool, std::size_t workers) {
  upstream::PoolLimits limits;
  limits.max_connections =
      std::max<std::size_t>(1, (pool.max_connections_per_backend + workers - 1) / workers);
  limits.connect_timeout = pool.connect_timeout;
  limits.idle_timeout = pool.idle_connection_timeout;
  limits.max_response_body = pool.max_response_body;
  return limits;
}

// TF Serving's wording for a model it does not serve.
std::string unknown_model_message(const http::RestTarget& target) {
  if (target.verb == http::RestVerb::status) {
    return "Could not find any versions of model " + target.model;
  }
  std::string spec;
  if (target.version) {
    spec = "Specific(" + target.model + ", " + std::to_string(*target.version) + ")";
  } else if (target.label) {
    spec = "Specific(" + target.model + ", " + *target.label + ")";
  } else {
    spec = "Latest(" + target.model + ")";
  }
  return "Servable not found for request: " + spec;
}

unsigned status_for(UpstreamOutcome outcome) {
  return outcome == UpstreamOutcome::timeout ? 504 : 502;
}

}  // namespace

ProxyHandler::ProxyHandler(boost::asio::io_context& ioc, Runtime& runtime, std::size_t shard,
                           std::size_t workers)
    : runtime_(runtime),
      shard_(shard),
      ids_(0x9e3779b97f4a7c15ull * (shard + 1) ^
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())) {
  for (auto& pool : runtime.pools) {
    std::vector<std::uint32_t> weights;
    for (const auto& e : pool.config->endpoints) weights.push_back(e.weight);
    balancers_.emplace_back(std::move(weights));
    // Workers start at different backends so that light traffic still spreads.
    for (std::size_t i = 0; i < shard % pool.backends.size(); ++i) balancers_.back().pick();
    auto limits = pool_limits(*pool.config, workers);
    auto& conns = pools_.emplace_back();
    for (auto& backend : pool.backends) {
      conns.push_back(std::make_unique<upstream::ConnectionPool>(ioc, *backend, limits));
    }
  }
}

ProxyHandler::~ProxyHandler() = default;

void ProxyHandler::close_idle_upstreams() {
  for (auto& pool : pools_)
    for (auto& conn : pool) conn->close_idle();
}

void ProxyHandler::handle(server::Request&& request, const server::ConnectionInfo& connection,
                          Clock::time_point start, std::shared_ptr<server::ResponseSink> sink) {
  runtime_.metrics.add_inflight(1);
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  auto& req = call->request;
  call->sink = std::move(sink);
  call->start = start;
  call->client = connection.client_ip;
  call->method = to_sv(req.method_string());
  call->target = to_sv(req.target());
  call->bytes_received = req.body().size();
  call->client_version = req.version();
  call->route = runtime_.metrics.unmatched_route();

  // Identity of the request: accepted from the client when sane, otherwise made here.
  if (auto id = to_sv(req["X-Request-Id"]); http::is_acceptable_request_id(id)) {
    call->request_id = std::string(id);
  } else {
    call->request_id = ids_.request_id();
    req.set("X-Request-Id", call->request_id);
  }
  auto traceparent = to_sv(req["traceparent"]);
  if (!http::is_valid_traceparent(traceparent)) {
    req.set("traceparent", http::make_traceparent(ids_));
    traceparent = to_sv(req["traceparent"]);
  }
  call->trace_id = http::trace_id_of(traceparent);

  auto parsed = http::parse_rest_path(call->method, call->target);
  if (!parsed.target) {
    if (parsed.error == http::RestPathError::not_v1) {
      return respond_local(call, 404, "Not found: " + std::string(call->target));
    }
    return respond_local(call, 400, parsed.message);
  }
  auto route = runtime_.routes.find(parsed.target->model);
  if (!route) {
    return respond_local(call, 404, unknown_model_message(*parsed.target));
  }
  call->route = *route;
  const auto& route_config = runtime_.config->routes[*route];
  auto pool = runtime_.route_pool[*route];

  http::strip_hop_by_hop(req);
  req.erase(bhttp::field::expect);  // the body is already here; the backend need not ask for it
  http::append_forwarded_for(req, connection.client_ip);
  req.version(11);
  req.keep_alive(true);
  req.prepare_payload();

  call->backend = pick_backend(pool);
  call->attempts = 1;
  call->backend->requests_total.fetch_add(1, std::memory_order_relaxed);
  call->backend->active_requests.fetch_add(1, std::memory_order_relaxed);
  call->upstream_start = Clock::now();
  auto deadline = call->upstream_start + route_config.timeout;
  pools_[pool][call->backend->backend_index]->send(
      call->request, deadline, [this, call](upstream::UpstreamResult&& result) {
        on_upstream_result(call, std::move(result));
      });
}

upstream::BackendState* ProxyHandler::pick_backend(std::size_t pool) {
  // Smooth weighted round-robin over the backends whose last connect succeeded; when none did,
  // over all of them (the probe may be stale). The resilience pipeline refines eligibility.
  auto& backends = runtime_.pools[pool].backends;
  auto reachable = [&](std::size_t i) {
    return backends[i]->reachable.load(std::memory_order_relaxed);
  };
  auto index = balancers_[pool].pick(reachable);
  if (!index) index = balancers_[pool].pick();
  return backends[*index].get();
}

void ProxyHandler::on_upstream_result(const std::shared_ptr<Call>& call,
                                      upstream::UpstreamResult&& result) {
  auto& backend = *call->backend;
  backend.active_requests.fetch_sub(1, std::memory_order_relaxed);
  if (result.outcome != UpstreamOutcome::success) {
    backend.failures_total.fetch_add(1, std::memory_order_relaxed);
  }
  std::chrono::duration<double> upstream_seconds = Clock::now() - call->upstream_start;
  runtime_.metrics.record_upstream(shard_, backend.pool_index, backend.backend_index,
                                   result.outcome, upstream_seconds.count());

  if (result.outcome == UpstreamOutcome::success || result.outcome == UpstreamOutcome::http_5xx) {
    auto response = std::move(result.response);
    http::strip_hop_by_hop(response);
    unsigned upstream_status = response.result_int();
    return finish(call, std::move(response), upstream_status);
  }
  logging::log().debug("request {} to {}: {}", call->request_id, backend.label, result.error);
  auto response = ::fusebox::http::json_error_response(status_for(result.outcome), result.error);
  finish(call, std::move(response), 0);
}

void ProxyHandler::respond_local(const std::shared_ptr<Call>& call, unsigned status,
                                 std::string_view message) {
  finish(call, ::fusebox::http::json_error_response(status, message), 0);
}

void ProxyHandler::finish(const std::shared_ptr<Call>& call, server::Response&& response,
                          unsigned upstream_status) {
  response.set("X-Request-Id", call->request_id);
  response.version(call->client_version);
  unsigned status = response.result_int();
  auto bytes_sent = response.body().size();
  auto end = Clock::now();
  std::chrono::duration<double> seconds = end - call->start;
  runtime_.metrics.record_request(shard_, call->route, metrics::method_label(call->method), status,
                                  seconds.count());
  runtime_.metrics.add_inflight(-1);
  if (logging::access_log_enabled()) {
    logging::AccessLogEntry entry;
    entry.time = std::chrono::system_clock::now();
    entry.request_id = call->request_id;
    entry.trace_id = call->trace_id;
    entry.client = call->client;
    entry.method = call->method;
    entry.path = call->target;
    entry.route = call->route < runtime_.config->routes.size()
                      ? std::string_view(runtime_.config->routes[call->route].name)
                      : std::string_view("unmatched");
    entry.backend = call->backend ? std::string_view(call->backend->label) : std::string_view();
    entry.status = status;
    entry.upstream_status = upstream_status;
    entry.bytes_received = call->bytes_received;
    entry.bytes_sent = bytes_sent;
    entry.duration_seconds = seconds.count();
    entry.attempts = call->attempts;
    logging::access(entry);
  }
  call->sink->send(std::move(response));
}

void ProxyHandler::on_rejected(const server::ConnectionInfo& connection,
                               const server::RejectedRequest& rejected) {
  std::chrono::duration<double> seconds = Clock::now() - rejected.start;
  runtime_.metrics.record_request(shard_, runtime_.metrics.unmatched_route(),
                                  metrics::method_label(rejected.method), rejected.status,
                                  seconds.count());
  if (logging::access_log_enabled()) {
    logging::AccessLogEntry entry;
    entry.time = std::chrono::system_clock::now();
    entry.client = connection.client_ip;
    entry.method = rejected.method;
    entry.path = rejected.target;
    entry.route = "unmatched";
    entry.status = rejected.status;
    entry.bytes_sent = rejected.bytes_sent;
    entry.duration_seconds = seconds.count();
    logging::access(entry);
  }
}

}  // namespace fusebox::proxy
