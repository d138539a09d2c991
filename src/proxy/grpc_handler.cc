#include "fusebox/proxy/grpc_handler.h"

#include <boost/container/small_vector.hpp>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "fusebox/logging/logging.h"
#include "fusebox/resilience/retry.h"
#include "fusebox/rpc/metadata_policy.h"
#include "fusebox/rpc/model_spec.h"
#include "fusebox/rpc/tensor_answers.h"

namespace fusebox::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using Kind = resilience::PipelineOutcome;

constexpr std::string_view kPredictionService = "/tensorflow.serving.PredictionService/";

enum class MethodKind { inference, multi_inference, metadata, status, unsupported };

MethodKind method_kind(std::string_view method) {
  if (method.starts_with(kPredictionService)) {
    auto name = method.substr(kPredictionService.size());
    if (name == "Predict" || name == "Classify" || name == "Regress") return MethodKind::inference;
    if (name == "MultiInference") return MethodKind::multi_inference;
    if (name == "GetModelMetadata") return MethodKind::metadata;
  } else if (method == rpc::kGetModelStatusMethod) {
    return MethodKind::status;
  }
  return MethodKind::unsupported;
}

constexpr std::string_view kGrpcContentType = "application/grpc+proto";

// A default tier's message: the body's "error" when it is {"error": "..."}, else a fixed text.
std::string default_message(const config::FallbackTier& tier) {
  auto body = nlohmann::json::parse(tier.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  return "the model cannot answer now (degraded: default answer)";
}

}  // namespace

struct GrpcHandler::Call {
  // A call dropped unanswered (its worker torn down at the end of a drain that timed out) still
  // ends its client call, as the GrpcCall contract asks.
  ~Call() {
    if (rpc != nullptr) {
      rpc->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fusebox is shutting down"),
                  nullptr, {});
    }
  }

  LiveCounter::Token alive;
  server::GrpcCall* rpc = nullptr;  // null once finished
  Clock::time_point start;
  memory::PooledString request_id;
  memory::PooledString traceparent;
  MethodKind kind = MethodKind::unsupported;
  SharedBytes message;                 // the client's request message
  std::size_t route = 0;
  bool routed = false;
  std::string model;                   // the ModelSpec's name, once routed
  TimePoint deadline{};
  upstream::GrpcRequest request;       // the primary request (the client's bytes)
  upstream::GrpcRequest tier_request;  // rewritten for a model tier
  std::size_t tier = 0;                // 0 = primary, i + 1 = fallbacks[i]
  degrade::Reason reason = degrade::Reason::none;
  std::optional<resilience::GrpcPipelineResult> primary_failure;
  upstream::BackendState* backend = nullptr;
  unsigned attempts = 0;
  std::optional<cache::CacheKey> cache_key;  // inference calls of routes with a cache
  bool cache_hit = false;                    // answered by cache mode `first`
  bool cache_miss = false;
  std::string rule;                          // the rule that answered, rules tier
  // Admission control.
  admission::Priority priority = admission::kLowestPriority;
  AdmissionSlot slot;                           // the route's concurrency slot, while held
  std::optional<grpc::Status> admission_status;  // when the chain cannot answer instead
  std::string retry_after;                       // seconds, as trailing metadata
};

namespace {

// The client's address from gRPC's peer string ("ipv4:127.0.0.1:5555",
// "ipv6:%5B::1%5D:5555"): what anonymous clients are rate-limited by, as REST's client IP.
std::string peer_address(std::string_view peer) {
  for (std::string_view prefix : {"ipv4:", "ipv6:"}) {
    if (peer.starts_with(prefix)) {
      peer.remove_prefix(prefix.size());
      auto colon = peer.rfind(':');
      if (colon != std::string_view::npos) peer = peer.substr(0, colon);
      std::string out(peer);
      for (auto [from, to] : {std::pair{"%5B", "["}, std::pair{"%5D", "]"}}) {
        for (auto at = out.find(from); at != std::string::npos; at = out.find(from)) {
          out.replace(at, 3, to);
        }
      }
      return out;
    }
  }
  return std::string(peer);
}

grpc::StatusCode code_for(unsigned http_status) {
  switch (http_status) {
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 403:
      return grpc::StatusCode::PERMISSION_DENIED;
    case 429:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    default:
      return grpc::StatusCode::UNAVAILABLE;
  }
}

}  // namespace

GrpcHandler::GrpcHandler(Runtime& runtime, resilience::Pipeline& pipeline, std::size_t shard)
    : runtime_(runtime),
      pipeline_(pipeline),
      shard_(shard),
      ids_(0xc2b2ae3d27d4eb4full * (shard + 1) ^
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())),
      parking_(pipeline.io_context(), *runtime.admission, shard, AdmissionProtocol::grpc,
               [this](const std::shared_ptr<Call>& call) { send_primary(call); },
               [this](const std::shared_ptr<Call>& call, AdmissionDecision&& decision) {
                 refuse(call, std::move(decision));
               }) {
  runtime_.admission->register_waker(
      shard, AdmissionProtocol::grpc, [this](const admission::Wakeup& wakeup) {
        boost::asio::post(pipeline_.io_context(), [this, wakeup] { parking_.wake(wakeup); });
      });
}

GrpcHandler::~GrpcHandler() = default;

void GrpcHandler::handle(server::GrpcCall* rpc) {
  auto call = std::allocate_shared<Call>(memory::PooledAllocator<Call>());
  call->alive = calls_.enter();
  call->rpc = rpc;
  call->start = Clock::now();
  call->kind = method_kind(rpc->method());

  // Identity and trace context, as for REST.
  std::string_view client_id, client_trace;
  for (const auto& [key, value] : rpc->client_metadata()) {
    std::string_view k(key.data(), key.size()), v(value.data(), value.size());
    if (k == "x-request-id") client_id = v;
    if (k == "traceparent") client_trace = v;
  }
  if (http::is_acceptable_request_id(client_id)) {
    call->request_id.assign(client_id);
  } else {
    call->request_id.resize(http::kRequestIdLength);
    ids_.write_request_id(call->request_id.data());
  }
  if (http::is_valid_traceparent(client_trace)) {
    call->traceparent.assign(client_trace);
  } else {
    call->traceparent.resize(http::kTraceparentLength);
    http::write_traceparent(ids_, call->traceparent.data());
  }

  if (call->kind == MethodKind::unsupported) {
    return finish(call, grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                     "fusebox does not proxy " + rpc->method()),
                  nullptr);
  }
  call->message = rpc->request();
  std::optional<rpc::ModelSpec> spec;
  if (call->kind == MethodKind::multi_inference) {
    auto tasks = rpc::parse_task_model_specs(call->message.view());
    if (!tasks.ok()) {
      return finish(call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       std::string("cannot parse the request: ") +
                                           rpc::to_string(tasks.error)),
                    nullptr);
    }
    for (const auto& task : tasks.tasks) {
      if (!task || task->name.empty()) continue;
      if (spec && spec->name != task->name) {
        return finish(call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                         "all tasks of a MultiInference request must name the "
                                         "same model"),
                      nullptr);
      }
      spec = task;
    }
  } else {
    auto parsed = rpc::parse_model_spec(call->message.view());
    if (!parsed.ok()) {
      return finish(call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       std::string("cannot parse the request: ") +
                                           rpc::to_string(parsed.error)),
                    nullptr);
    }
    spec = parsed.spec;
  }
  if (!spec || spec->name.empty()) {
    return finish(call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Missing ModelSpec"),
                  nullptr);
  }
  auto route = runtime_.routes.find(spec->name);
  if (!route) {
    return finish(call, grpc::Status(grpc::StatusCode::NOT_FOUND, servable_not_found(spec->name, spec->version, spec->version_label)),
                  nullptr);
  }
  call->route = *route;
  call->routed = true;
  call->model = spec->name;
  const auto& route_config = runtime_.config->routes[*route];

  // The client's deadline (grpc-timeout), shortened to the route's longest.
  auto now = Clock::now();
  auto cap = route_config.max_timeout.count() > 0 ? route_config.max_timeout : route_config.timeout;
  call->deadline = now + cap;
  auto client_deadline = rpc->deadline();
  if (client_deadline != std::chrono::system_clock::time_point::max()) {
    auto left = client_deadline - std::chrono::system_clock::now();
    call->deadline = std::min(call->deadline, now + std::chrono::duration_cast<Clock::duration>(left));
  }

  // Admission: authentication, priority, shedding, rate limits (when the route has any).
  if (!runtime_.admission->open(call->route)) {
    AdmissionInput input;
    input.route = call->route;
    input.model = call->model;
    // Anonymous clients are rate-limited by address: worked out only where that applies.
    std::string client_ip;
    if (route_config.admission.client_rate_limit.enabled()) client_ip = peer_address(rpc->peer());
    input.client_ip = client_ip;
    input.deadline = call->deadline;
    const std::string& api_key_key = runtime_.admission->api_key_metadata();
    for (const auto& [key, value] : rpc->client_metadata()) {
      std::string_view k(key.data(), key.size()), v(value.data(), value.size());
      if (k == api_key_key) input.api_key = v;
      if (k == "authorization") input.authorization = v;
      if (k == "x-fusebox-priority") input.priority = v;
    }
    auto decision = runtime_.admission->admit(input);
    call->priority = decision.priority;
    if (decision.kind != AdmissionDecision::Kind::admitted) return refuse(call, std::move(decision));
  }
  const bool strip_credentials = route_config.admission.auth != config::AuthPolicyKind::none;

  auto& request = call->request;
  request.method = rpc->method();
  request.payload = call->message;  // shares the bytes
  request.request_id = call->request_id;  // a view: the call outlives its attempts
  const auto& listener = runtime_.config->listeners.grpc;
  for (const auto& [key, value] : rpc->client_metadata()) {
    std::string_view k(key.data(), key.size());
    if (!rpc::forwards_metadata(listener.metadata_allow, listener.metadata_deny, k)) continue;
    // Credentials are fusebox's to check, not the backend's to see.
    if (strip_credentials &&
        (k == "authorization" || k == runtime_.admission->api_key_metadata())) {
      continue;
    }
    request.metadata.emplace_back(std::string(k), std::string(value.data(), value.size()));
  }
  request.metadata.emplace_back("traceparent", call->traceparent);

  bool inference = call->kind == MethodKind::inference || call->kind == MethodKind::multi_inference;
  if (runtime_.cache && inference && route_config.cache.mode != config::CacheMode::off) {
    // Equal messages share a key however they were encoded (map order, packing, defaults).
    if (auto identity = rpc::deterministic_request_key(rpc->method(), call->message.view())) {
      std::string version_or_label;
      if (spec->version) version_or_label = "v:" + std::to_string(*spec->version);
      if (spec->version_label) version_or_label = "l:" + *spec->version_label;
      call->cache_key = cache::make_key(route_config.name, spec->name, version_or_label,
                                        /*signature: part of the message*/ "", *identity);
    }
    if (call->cache_key && route_config.cache.mode == config::CacheMode::first) {
      auto hit = runtime_.cache->lookup(*call->cache_key, /*allow_stale=*/true);
      if (hit && hit->age < route_config.cache.ttl) {
        call->cache_hit = true;
        SharedBytes response(hit->response, hit->response->body);
        return finish(call, grpc::Status::OK, &response);
      }
      call->cache_miss = true;
    }
  }
  parking_.acquire(call);
}

void GrpcHandler::refuse(const std::shared_ptr<Call>& call, AdmissionDecision&& decision) {
  grpc::Status status(code_for(decision.status), decision.message);
  if (decision.retry_after.count() > 0) call->retry_after = std::to_string(decision.retry_after.count());
  const auto& route = runtime_.config->routes[call->route];
  bool degradable = call->kind == MethodKind::inference || call->kind == MethodKind::multi_inference;
  if (decision.status == 503 && degradable && !route.fallbacks.empty()) {
    call->reason = degrade::Reason::overload;
    call->admission_status = std::move(status);
    return next_tier(call);
  }
  finish(call, status, nullptr);
}


void GrpcHandler::send_primary(const std::shared_ptr<Call>& call) {
  const auto& route = runtime_.config->routes[call->route];
  resilience::GrpcPipelineRequest pipeline_request;
  pipeline_request.trace.assign(http::trace_id_of_valid(call->traceparent));
  pipeline_request.request = &call->request;
  pipeline_request.route = &route;
  pipeline_request.pool = runtime_.route_pool[call->route];
  pipeline_request.deadline = resilience::primary_deadline(route, call->deadline, Clock::now());
  pipeline_request.idempotent =
      call->kind == MethodKind::inference || call->kind == MethodKind::multi_inference;
  pipeline_.execute(pipeline_request, [this, call](resilience::GrpcPipelineResult&& result) {
    on_result(call, std::move(result));
  });
}

void GrpcHandler::on_result(const std::shared_ptr<Call>& call,
                            resilience::GrpcPipelineResult&& result) {
  call->backend = result.backend;
  call->attempts += result.attempts;
  const auto& route = runtime_.config->routes[call->route];
  bool answer = result.kind == Kind::response &&
                upstream::http_status_for(result.upstream.status.error_code()) < 500;
  if (answer) {
    // OK, or the backend's client error (never masked).
    if (result.upstream.status.ok()) {
      bool fill = call->tier == 0 || route.cache.fill_from_model_tiers;
      if (fill && call->cache_key) {
        cache::CachedResponse cached;
        cached.status = 200;
        cached.content_type = std::string(kGrpcContentType);
        cached.body = result.upstream.response.view();
        runtime_.cache->insert(*call->cache_key, std::move(cached));
      }
      return finish(call, grpc::Status::OK, &result.upstream.response);
    }
    return finish(call, result.upstream.status, nullptr);
  }
  bool degradable = call->kind == MethodKind::inference || call->kind == MethodKind::multi_inference;
  if (call->tier == 0) {
    if (route.fallbacks.empty() || !degradable) return answer_failure(call, std::move(result));
    call->reason = primary_failure_reason(runtime_.pools[runtime_.route_pool[call->route]],
                                          result.kind, result.upstream.outcome, /*grpc=*/true);
    call->primary_failure = std::move(result);
  }
  next_tier(call);
}

void GrpcHandler::next_tier(const std::shared_ptr<Call>& call) {
  const auto& route = runtime_.config->routes[call->route];
  while (++call->tier <= route.fallbacks.size()) {
    const auto& tier = route.fallbacks[call->tier - 1];
    switch (tier.kind) {
      case config::TierKind::model: {
        auto now = Clock::now();
        if (now >= call->deadline) continue;
        rpc::ModelSpecRewrite rewrite;
        rewrite.name = tier.model;
        if (tier.version > 0) {
          rewrite.version = tier.version;
        } else if (!tier.label.empty()) {
          rewrite.version = tier.label;
        } else {
          rewrite.version = rpc::LatestVersion{};
        }
        if (!tier.signature.empty()) rewrite.signature_name = tier.signature;
        auto rewritten = call->kind == MethodKind::multi_inference
                             ? rpc::rewrite_task_model_specs(call->message.view(), rewrite)
                             : rpc::rewrite_model_spec(call->message.view(), rewrite);
        if (!rewritten.ok()) continue;  // parsed before, so this does not happen
        call->tier_request = call->request;
        call->tier_request.payload = SharedBytes(std::move(rewritten.bytes));
        resilience::GrpcPipelineRequest pipeline_request;
        pipeline_request.trace.assign(http::trace_id_of_valid(call->traceparent));
        pipeline_request.request = &call->tier_request;
        pipeline_request.route = &route;
        pipeline_request.pool = runtime_.tier_pool[call->route][call->tier - 1];
        pipeline_request.deadline = std::min(call->deadline, now + tier.timeout);
        pipeline_request.idempotent = true;
        return pipeline_.execute(pipeline_request,
                                 [this, call](resilience::GrpcPipelineResult&& result) {
                                   on_result(call, std::move(result));
                                 });
      }
      case config::TierKind::default_: {
        if (!tier.grpc_response.empty() && call->rpc->method() == rpc::kPredictMethod) {
          SharedBytes response(tier.grpc_response);
          return finish(call, grpc::Status::OK, &response);
        }
        if (tier.status == 200) continue;  // a REST body cannot answer a gRPC call
        return finish(call, grpc::Status(upstream::grpc_code_for(tier.status), default_message(tier)),
                      nullptr);
      }
      case config::TierKind::cache: {
        if (!call->cache_key) continue;
        auto hit = runtime_.cache->lookup(*call->cache_key, /*allow_stale=*/true);
        if (!hit || hit->age >= route.cache.ttl + route.cache.stale_if_error) continue;
        SharedBytes response(hit->response, hit->response->body);
        return finish(call, grpc::Status::OK, &response);
      }
      case config::TierKind::rules: {
        // The rules written for REST, over the REST view of the PredictRequest; the answer is
        // built back into a PredictResponse shaped like the model's.
        auto view = rpc::rules_json_view(call->rpc->method(), call->message.view());
        if (!view) continue;
        std::map<std::string, std::string> headers;
        for (const auto& [key, value] : call->rpc->client_metadata()) {
          headers.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
        }
        degrade::RulesRequest rules_request;
        rules_request.model = call->model;
        rules_request.headers = &headers;
        rules_request.body = *view;
        auto answer = degrade::evaluate(runtime_.tier_rules[call->route][call->tier - 1], rules_request);
        if (!answer) continue;
        auto response = rpc::predict_response_from_rules(call->message.view(), answer->body,
                                                         tier.grpc_output);
        if (!response) continue;
        call->rule = answer->rule;
        SharedBytes bytes(std::move(*response));
        return finish(call, grpc::Status::OK, &bytes);
      }
    }
  }
  call->tier = 0;
  call->reason = degrade::Reason::none;
  if (call->admission_status) return finish(call, *call->admission_status, nullptr);
  answer_failure(call, std::move(*call->primary_failure));
}

void GrpcHandler::answer_failure(const std::shared_ptr<Call>& call,
                                 resilience::GrpcPipelineResult&& result) {
  switch (result.kind) {
    case Kind::response:
      return finish(call, result.upstream.status, nullptr);
    case Kind::no_backend:
      return finish(call, grpc::Status(grpc::StatusCode::UNAVAILABLE, result.error), nullptr);
    case Kind::deadline_exceeded:
      return finish(call, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, result.error), nullptr);
    case Kind::upstream_failure: {
      auto code = result.upstream.outcome == metrics::UpstreamOutcome::timeout
                      ? grpc::StatusCode::DEADLINE_EXCEEDED
                      : grpc::StatusCode::UNAVAILABLE;
      return finish(call, grpc::Status(code, result.error), nullptr);
    }
  }
}

void GrpcHandler::finish(const std::shared_ptr<Call>& call, const grpc::Status& status,
                         const SharedBytes* response) {
  call->slot.reset();  // the answer is out: the next waiter may go
  // Each entry views `call`, `tier_label` or static text; a handful fit inline.
  boost::container::small_vector<server::MetadataRef, 6> trailing;
  std::string tier_label;  // a fallback tier's name
  trailing.push_back({"x-request-id", call->request_id});
  if (!call->retry_after.empty()) trailing.push_back({"retry-after", call->retry_after});
  if (call->routed) {
    const auto& route = runtime_.config->routes[call->route];
    if (call->cache_hit) {
      trailing.push_back({"x-fusebox-tier", "cache"});
      trailing.push_back({"x-fusebox-cache", "hit"});
    } else if (call->tier == 0) {
      trailing.push_back({"x-fusebox-tier", "primary"});
    } else {
      tier_label = degrade::tier_name(route.fallbacks[call->tier - 1]);
      trailing.push_back({"x-fusebox-tier", tier_label});
      trailing.push_back({"x-fusebox-degraded-reason", degrade::to_string(call->reason)});
    }
    if (call->cache_miss) trailing.push_back({"x-fusebox-cache", "miss"});
    if (!call->rule.empty()) trailing.push_back({"x-fusebox-rule", call->rule});
    if (!call->cache_hit) runtime_.degrade_metrics->record(shard_, call->route, call->tier, call->reason,
                                                      degrade::Protocol::grpc);
  }
  auto code = status.error_code();
  std::chrono::duration<double> seconds = Clock::now() - call->start;
  runtime_.grpc_metrics.record(shard_,
                               call->routed ? call->route : runtime_.config->routes.size(),
                               call->rpc->method(), static_cast<int>(code), seconds.count());
  if (logging::access_log_enabled()) {
    logging::AccessLogEntry entry;
    entry.time = std::chrono::system_clock::now();
    entry.request_id = call->request_id;
    entry.trace_id = http::trace_id_of_valid(call->traceparent);
    auto peer = call->rpc->peer();
    entry.client = peer;
    entry.method = "GRPC";
    entry.path = call->rpc->method();
    entry.route = call->routed ? std::string_view(runtime_.config->routes[call->route].name)
                               : std::string_view("unmatched");
    entry.backend = call->backend ? std::string_view(call->backend->label) : std::string_view();
    entry.status = upstream::http_status_for(code);
    entry.bytes_received = call->message.view().size();
    entry.bytes_sent = response ? response->size() : 0;
    entry.duration_seconds = seconds.count();
    entry.attempts = call->attempts;
    logging::access(entry);
  }
  std::exchange(call->rpc, nullptr)->finish(status, response,
                                            server::MetadataRefs(trailing.data(), trailing.size()));
}

}  // namespace fusebox::proxy
