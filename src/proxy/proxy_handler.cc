#include "fusebox/proxy/proxy_handler.h"

#include <cctype>
#include <map>

#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>

#include "fusebox/common/block_cache.h"
#include "fusebox/http/json_error.h"
#include "fusebox/http/rest_path.h"
#include "fusebox/http/wire.h"
#include "fusebox/health/health_checker.h"
#include "fusebox/logging/logging.h"
#include "fusebox/resilience/retry.h"

namespace fusebox::proxy {

namespace bhttp = boost::beast::http;
using metrics::UpstreamOutcome;
using server::Clock;

struct ProxyHandler::Call {
  LiveCounter::Token alive;     // counted by the handler until the last reference goes
  server::Request request;
  std::shared_ptr<server::ResponseSink> sink;
  Clock::time_point start;
  std::string client;
  std::string_view method;      // into `request`, which outlives every use
  std::string_view target;
  memory::PooledString request_id;
  std::string_view trace_id;    // into `request`'s traceparent header
  std::size_t route = 0;
  upstream::BackendState* backend = nullptr;
  std::uint64_t bytes_received = 0;
  unsigned attempts = 0;
  unsigned client_version = 11;  // the answer goes back in the client's HTTP version

  // Degradation chain state (routed requests only).
  bool routed = false;
  http::RestTarget rest;
  TimePoint deadline{};
  std::optional<cache::CacheKey> cache_key;
  bool cache_miss = false;                 // cache mode `first` looked and missed
  std::size_t tier = 0;                    // 0 = primary, i + 1 = fallbacks[i]
  degrade::Reason reason = degrade::Reason::none;
  // The members below are needed by few requests, and kept off the object so that it stays
  // small enough for the allocator's per-thread cache.
  std::unique_ptr<resilience::PipelineResult> primary_failure;
  bool cache_hit = false;                  // answered by cache mode `first`
  std::unique_ptr<server::Request> tier_request;  // the request as rewritten for a canary or tier
  bool inference = false;                  // predict, classify or regress
  std::optional<std::string> canonical;    // the body in canonical JSON, when it parses

  // Load-aware degradation and traffic split.
  bool diverted = false;                   // sent straight to the first model tier (overload)
  std::size_t split_target = degrade::kStableTarget;
  bool canary_attempt = false;             // the pipeline call in flight is the canary's
  TimePoint primary_start{};               // when the primary pipeline call started

  // Idempotent replay / coalescing: this request leads `replay_key` and publishes its answer.
  std::string replay_key;
  bool replay_lead = false;
  Duration replay_retain{0};

  // Admission control.
  admission::Priority priority = admission::kLowestPriority;
  AdmissionSlot slot;                           // the route's concurrency slot, while held
  std::unique_ptr<server::Response> admission_answer;  // when the chain cannot answer instead

  // A fresh copy of the client's request, to rewrite for a canary or a model tier.
  server::Request& copy_for_tier() {
    if (tier_request) {
      *tier_request = request;
    } else {
      tier_request = std::make_unique<server::Request>(request);
    }
    return *tier_request;
  }
};


namespace {

std::string_view to_sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// TF Serving's wording for a model it does not serve.
std::string unknown_model_message(const http::RestTarget& target) {
  if (target.verb == http::RestVerb::status) {
    return "Could not find any versions of model " + target.model;
  }
  return servable_not_found(target.model, target.version, target.label);
}

unsigned status_for(UpstreamOutcome outcome) {
  return outcome == UpstreamOutcome::timeout ? 504 : 502;
}

}  // namespace

ProxyHandler::ProxyHandler(boost::asio::io_context& ioc, Runtime& runtime, std::size_t shard,
                           std::size_t workers)
    : ioc_(ioc),
      runtime_(runtime),
      shard_(shard),
      pipeline_(ioc, runtime.pools, runtime.metrics, *runtime.resilience_metrics, *runtime.events,
                shard, workers),
      ids_(0x9e3779b97f4a7c15ull * (shard + 1) ^
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())),
      random_(0x2545f4914f6cdd1dull * (shard + 1) ^
              static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())),
      parking_(ioc, *runtime.admission, shard, AdmissionProtocol::rest,
               [this](const std::shared_ptr<Call>& call) { send_upstream(call); },
               [this](const std::shared_ptr<Call>& call, AdmissionDecision&& decision) {
                 refuse(call, std::move(decision));
               }) {
  // Wake-ups come from any thread (whoever freed a slot): each is posted to this worker.
  runtime_.admission->register_waker(shard, AdmissionProtocol::rest,
                                     [this](const admission::Wakeup& wakeup) {
                                       boost::asio::post(ioc_, [this, wakeup] { parking_.wake(wakeup); });
                                     });
}

// Calls still waiting for another request's answer go with their sessions while this worker's
// io_context is alive; the store keeps only weak references to them.
ProxyHandler::~ProxyHandler() { waiting_.clear(); }

void ProxyHandler::close_idle_upstreams() { pipeline_.close_idle_upstreams(); }

void ProxyHandler::handle(server::Request&& request, const server::ConnectionInfo& connection,
                          Clock::time_point start, std::shared_ptr<server::ResponseSink> sink) {
  runtime_.metrics.add_inflight(1);
  auto call = std::allocate_shared<Call>(memory::PooledAllocator<Call>());
  call->alive = calls_.enter();
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
    call->request_id.assign(id);
  } else {
    call->request_id.resize(http::kRequestIdLength);
    ids_.write_request_id(call->request_id.data());
    req.set("X-Request-Id", call->request_id);
  }
  auto traceparent = to_sv(req["traceparent"]);
  if (!http::is_valid_traceparent(traceparent)) {
    char fresh[http::kTraceparentLength];
    http::write_traceparent(ids_, fresh);
    req.set("traceparent", std::string_view(fresh, sizeof fresh));
    traceparent = to_sv(req["traceparent"]);
  }
  call->trace_id = http::trace_id_of_valid(traceparent);

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
  call->routed = true;
  call->rest = *parsed.target;
  const auto& route_config = runtime_.config->routes[*route];

  auto client_timeout = req["X-Fusebox-Timeout-Ms"];
  // The deadline counts from the request's first byte (its start), as its latency does.
  auto deadline = resilience::request_deadline(
      route_config, call->start,
      client_timeout.empty() ? std::nullopt : std::optional<std::string_view>(to_sv(client_timeout)));
  if (!deadline) {
    return respond_local(call, 400, "X-Fusebox-Timeout-Ms must be a whole number of milliseconds");
  }
  call->deadline = *deadline;
  call->inference = call->rest.verb != http::RestVerb::status &&
                    call->rest.verb != http::RestVerb::metadata;
  if (!admit(call, connection)) return;

  bool caching = runtime_.cache && call->inference && route_config.cache.mode != config::CacheMode::off;
  bool replaying = runtime_.idempotency && call->inference && route_config.idempotency.enabled;
  if (caching || replaying) call->canonical = cache::canonical_json(req.body());

  if (replaying && !begin_replay(call)) return;  // joined, replayed or refused

  if (caching && call->canonical) {
    // Unparsable bodies are not cached: the backend answers them with TF Serving's 400.
    std::string version_or_label;
    if (call->rest.version) version_or_label = "v:" + std::to_string(*call->rest.version);
    if (call->rest.label) version_or_label = "l:" + *call->rest.label;
    call->cache_key = cache::make_key(route_config.name, call->rest.model, version_or_label,
                                      /*signature: part of the canonical body*/ "", *call->canonical);
    if (route_config.cache.mode == config::CacheMode::first) {
      auto hit = runtime_.cache->lookup(*call->cache_key, /*allow_stale=*/true);
      if (hit && hit->age < route_config.cache.ttl) return respond_from_cache(call, *hit, "hit");
      call->cache_miss = true;
    }
  }

  http::strip_hop_by_hop(req);
  req.erase(bhttp::field::expect);  // the body is already here; the backend need not ask for it
  http::append_forwarded_for(req, connection.client_ip);
  req.version(11);
  req.keep_alive(true);
  http::frame_payload(req);

  if (call->inference) {
    // Degrade before failing: under load a share of the requests skips the primary.
    const auto& degrader = runtime_.load_degraders[*route];
    if (degrader) {
      auto inflight = runtime_.pools[runtime_.route_pool[*route]].active_requests.load(
          std::memory_order_relaxed);
      bool divert = degrader->divert(
          static_cast<std::uint64_t>(std::max<std::int64_t>(inflight, 0)), random_.next_double());
      if (divert && !route_config.degrade_on_load.dry_run) {
        call->diverted = true;
        call->reason = degrade::Reason::overload;
        return next_tier(call);
      }
    }
    if (!route_config.split.canaries.empty()) {
      const auto& split = route_config.split;
      auto override_value = to_sv(req[split.override_header]);
      std::optional<std::string_view> sticky;
      if (!split.sticky_header.empty()) {
        auto value = to_sv(req[split.sticky_header]);
        if (!value.empty()) sticky = value;
      }
      call->split_target =
          degrade::choose_split_target(split, override_value, sticky, random_.next_double());
    }
  }
  parking_.acquire(call);
}

bool ProxyHandler::admit(const std::shared_ptr<Call>& call, const server::ConnectionInfo& connection) {
  if (runtime_.admission->open(call->route)) return true;  // nothing configured to check
  auto& req = call->request;
  const auto& route = runtime_.config->routes[call->route];
  AdmissionInput input;
  input.route = call->route;
  input.model = call->rest.model;
  const bool authenticating = route.admission.auth != config::AuthPolicyKind::none;
  if (authenticating) {
    input.api_key = to_sv(req[runtime_.config->auth.api_key_header]);
    input.authorization = to_sv(req[bhttp::field::authorization]);
  }
  input.priority = to_sv(req[admission::kPriorityHeader]);
  input.client_ip = connection.client_ip;
  input.deadline = call->deadline;
  auto decision = runtime_.admission->admit(input);
  call->priority = decision.priority;
  if (authenticating) {
    // Credentials are fusebox's to check, not the backend's to see.
    req.erase(runtime_.config->auth.api_key_header);
    req.erase(bhttp::field::authorization);
  }
  if (decision.kind == AdmissionDecision::Kind::admitted) return true;
  refuse(call, std::move(decision));
  return false;
}

void ProxyHandler::refuse(const std::shared_ptr<Call>& call, AdmissionDecision&& decision) {
  auto response = ::fusebox::http::json_error_response(decision.status, decision.message);
  if (!decision.www_authenticate.empty()) {
    response.set(bhttp::field::www_authenticate, decision.www_authenticate);
  }
  if (decision.retry_after.count() > 0) {
    response.set(bhttp::field::retry_after, std::to_string(decision.retry_after.count()));
  }
  const auto& route = runtime_.config->routes[call->route];
  // Overload (shedding, the concurrency queue) may be answered by the degradation chain; a
  // client over its rate limit or without credentials is answered as it is.
  if (decision.status == 503 && call->inference && !route.fallbacks.empty()) {
    call->reason = degrade::Reason::overload;
    call->admission_answer = std::make_unique<server::Response>(std::move(response));
    return next_tier(call);
  }
  finish(call, std::move(response), 0);
}

void ProxyHandler::send_upstream(const std::shared_ptr<Call>& call) {
  if (call->split_target != degrade::kStableTarget) return send_to_canary(call);
  send_to_primary(call);
}

bool ProxyHandler::begin_replay(const std::shared_ptr<Call>& call) {
  const auto& route = runtime_.config->routes[call->route];
  const auto& idempotency = route.idempotency;
  auto key_value = to_sv(call->request[idempotency.header]);
  if (key_value.empty() && !idempotency.coalesce_identical) return true;

  // The request's identity is its method, target and body (canonical when it is JSON), hashed
  // in place by two independent functions: the body is never copied for this.
  std::string head = std::string(call->method) + " " + std::string(call->target);
  std::string_view body = call->canonical ? std::string_view(*call->canonical)
                                          : std::string_view(call->request.body());
  auto identity_hash = cache::hash64(head) * 0x9e3779b97f4a7c15ull ^ cache::hash64(body);
  auto fingerprint = std::hash<std::string_view>{}(head) * 0xc2b2ae3d27d4eb4full ^
                     std::hash<std::string_view>{}(body);
  if (!key_value.empty()) {
    if (key_value.size() > 256) {
      respond_local(call, 400, std::string(idempotency.header) + " must be at most 256 bytes");
      return false;
    }
    call->replay_key = "k\n" + route.name + "\n" + std::string(key_value);
    call->replay_retain = idempotency.ttl;
  } else {
    // Identical requests share a key made of one hash of their identity and are told apart by
    // the other (the fingerprint): bodies of any size cost a few bytes, and two different
    // requests would need to collide in 128 bits to share an answer.
    call->replay_key = "c\n" + route.name + "\n" + std::to_string(identity_hash);
    call->replay_retain = Duration(0);
  }

  std::weak_ptr<Call> weak = call;
  bool keyed = !key_value.empty();
  auto started = runtime_.idempotency->begin(
      call->replay_key, fingerprint,
      [this, weak, keyed](std::shared_ptr<const replay::StoredResponse> response) {
        boost::asio::post(ioc_, [this, weak, keyed, response = std::move(response)] {
          auto waiting = weak.lock();
          if (!waiting) return;
          waiting_.erase(waiting.get());
          deliver_shared(waiting, *response, keyed ? "X-Fusebox-Replayed" : "X-Fusebox-Coalesced");
        });
      });
  switch (started.outcome) {
    case replay::BeginOutcome::lead:
      call->replay_lead = !started.untracked;
      return true;
    case replay::BeginOutcome::joined:
      waiting_.emplace(call.get(), call);
      return false;
    case replay::BeginOutcome::replay:
      deliver_shared(call, *started.response, "X-Fusebox-Replayed");
      return false;
    case replay::BeginOutcome::mismatch:
      if (!keyed) return true;  // a 64-bit collision between different requests: just run it
      respond_local(call, 422,
                    std::string(idempotency.header) + " " + std::string(key_value) +
                        " was already used with a different request; use a new key");
      return false;
  }
  return true;
}

void ProxyHandler::send_to_primary(const std::shared_ptr<Call>& call) {
  const auto& route_config = runtime_.config->routes[call->route];
  resilience::PipelineRequest pipeline_request;
  pipeline_request.trace.assign(call->trace_id);
  pipeline_request.request = &call->request;
  pipeline_request.route = &route_config;
  pipeline_request.pool = runtime_.route_pool[call->route];
  const auto now = Clock::now();
  pipeline_request.deadline = resilience::primary_deadline(route_config, call->deadline, now);
  // Inference is a pure function of its input, so a predict may race a hedged copy of itself.
  pipeline_request.idempotent = call->inference;
  call->canary_attempt = false;
  call->primary_start = now;
  pipeline_.execute(pipeline_request, [this, call](resilience::PipelineResult&& result) {
    on_pipeline_result(call, std::move(result));
  });
}

void ProxyHandler::send_to_canary(const std::shared_ptr<Call>& call) {
  const auto& route_config = runtime_.config->routes[call->route];
  const auto& canary = route_config.split.canaries[call->split_target - 1];
  auto& req = call->copy_for_tier();
  if (!canary.model.empty() || canary.version > 0 || !canary.label.empty()) {
    std::int64_t version = canary.version;
    std::string_view label = canary.label;
    if (version == 0 && label.empty()) {  // keep the version or label the client asked for
      if (call->rest.version) version = *call->rest.version;
      if (call->rest.label) label = *call->rest.label;
    }
    req.target(degrade::rewrite_target(call->rest, call->target,
                                       canary.model.empty() ? call->rest.model : canary.model,
                                       version, label));
  }
  auto now = Clock::now();
  resilience::PipelineRequest pipeline_request;
  pipeline_request.trace.assign(call->trace_id);
  pipeline_request.request = &req;
  pipeline_request.route = &route_config;
  pipeline_request.pool = runtime_.split_pool[call->route][call->split_target - 1];
  // At most half of the time left: a canary that cannot answer leaves the stable target time.
  pipeline_request.deadline = now + (call->deadline - now) / 2;
  pipeline_request.idempotent = true;
  call->canary_attempt = true;
  pipeline_.execute(pipeline_request, [this, call](resilience::PipelineResult&& result) {
    on_pipeline_result(call, std::move(result));
  });
}

void ProxyHandler::on_pipeline_result(const std::shared_ptr<Call>& call,
                                      resilience::PipelineResult&& result) {
  using Kind = resilience::PipelineResult::Kind;
  call->backend = result.backend;
  call->attempts += result.attempts;
  const auto& route = runtime_.config->routes[call->route];
  bool answer = result.kind == Kind::response && result.upstream.response.result_int() < 500;
  if (call->canary_attempt) {
    // A canary that cannot answer hands its request to the stable target, not to the chain.
    // 404 too: the canary's version or label may not be loaded where the stable one is.
    if (answer && result.upstream.response.result_int() != 404) {
      auto response = std::move(result.upstream.response);
      http::strip_hop_by_hop(response);
      unsigned upstream_status = response.result_int();
      return finish(call, std::move(response), upstream_status);
    }
    runtime_.split_metrics->record_handoff(shard_, call->route, call->split_target);
    logging::log().debug("request {}: canary {} could not answer ({}), handed to stable",
                         std::string_view(call->request_id),
                         degrade::split_target_name(route.split, call->split_target),
                         result.kind == Kind::response
                             ? std::to_string(result.upstream.response.result_int())
                             : result.error);
    call->split_target = degrade::kStableTarget;
    return send_to_primary(call);
  }
  if (call->tier == 0) {
    const auto& degrader = runtime_.load_degraders[call->route];
    if (degrader || call->slot) {
      const auto primary_latency = Clock::now() - call->primary_start;
      if (degrader) degrader->record_latency(shard_, primary_latency);
      if (call->slot) {
        bool dropped = result.kind == Kind::deadline_exceeded ||
                       (result.kind == Kind::upstream_failure &&
                        result.upstream.outcome == metrics::UpstreamOutcome::timeout);
        runtime_.admission->record_latency(call->route, primary_latency, dropped);
      }
    }
  }
  if (answer) {
    auto response = std::move(result.upstream.response);
    http::strip_hop_by_hop(response);
    unsigned upstream_status = response.result_int();
    bool fill = call->tier == 0 || route.cache.fill_from_model_tiers;
    if (fill && call->cache_key && upstream_status / 100 == 2) {
      cache::CachedResponse cached;
      cached.status = upstream_status;
      cached.content_type = std::string(response[bhttp::field::content_type]);
      cached.body = response.body();
      runtime_.cache->insert(*call->cache_key, std::move(cached));
    }
    return finish(call, std::move(response), upstream_status);
  }
  if (call->tier == 0) {
    if (route.fallbacks.empty()) return answer_failure(call, std::move(result));
    call->reason = degraded_reason(call, result);
    call->primary_failure = std::make_unique<resilience::PipelineResult>(std::move(result));
  }
  next_tier(call);
}

degrade::Reason ProxyHandler::degraded_reason(const std::shared_ptr<Call>& call,
                                              const resilience::PipelineResult& result) const {
  return primary_failure_reason(runtime_.pools[runtime_.route_pool[call->route]], result.kind,
                                result.upstream.outcome, /*grpc=*/false);
}

void ProxyHandler::next_tier(const std::shared_ptr<Call>& call) {
  const auto& route = runtime_.config->routes[call->route];
  while (++call->tier <= route.fallbacks.size()) {
    const auto& tier = route.fallbacks[call->tier - 1];
    switch (tier.kind) {
      case config::TierKind::model: {
        auto now = Clock::now();
        if (now >= call->deadline) continue;  // no time left for a network tier
        auto& req = call->copy_for_tier();
        req.target(degrade::rewrite_target(call->rest, call->target, tier));
        if (!tier.signature.empty()) {
          if (auto body = degrade::rewrite_signature(req.body(), tier.signature)) {
            req.body() = std::move(*body);
            req.prepare_payload();
          }
        }
        resilience::PipelineRequest pipeline_request;
        pipeline_request.trace.assign(call->trace_id);
        pipeline_request.request = &req;
        pipeline_request.route = &route;
        pipeline_request.pool = runtime_.tier_pool[call->route][call->tier - 1];
        pipeline_request.deadline = std::min(call->deadline, now + tier.timeout);
        pipeline_request.idempotent = call->rest.verb != http::RestVerb::status &&
                                      call->rest.verb != http::RestVerb::metadata;
        return pipeline_.execute(pipeline_request,
                                 [this, call](resilience::PipelineResult&& result) {
                                   on_pipeline_result(call, std::move(result));
                                 });
      }
      case config::TierKind::cache: {
        if (!call->cache_key) continue;
        auto hit = runtime_.cache->lookup(*call->cache_key, /*allow_stale=*/true);
        if (hit && hit->age < route.cache.ttl + route.cache.stale_if_error) {
          return respond_from_cache(call, *hit, nullptr);
        }
        continue;
      }
      case config::TierKind::rules: {
        std::map<std::string, std::string> headers;
        for (const auto& field : call->request) {
          std::string name(field.name_string());
          for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          headers.emplace(std::move(name), std::string(field.value()));
        }
        degrade::RulesRequest rules_request;
        rules_request.model = call->rest.model;
        rules_request.headers = &headers;
        rules_request.body = call->request.body();
        auto answer =
            degrade::evaluate(runtime_.tier_rules[call->route][call->tier - 1], rules_request);
        if (!answer) continue;
        server::Response response{bhttp::status::ok, 11};
        response.set(bhttp::field::content_type, "application/json");
        response.set("X-Fusebox-Rule", answer->rule);
        response.body() = std::move(answer->body);
        return finish(call, std::move(response), 0);
      }
      case config::TierKind::default_: {
        server::Response response{static_cast<bhttp::status>(tier.status), 11};
        response.set(bhttp::field::content_type, "application/json");
        if (tier.retry_after.count() > 0) {
          auto seconds = (tier.retry_after.count() + 999) / 1000;
          response.set(bhttp::field::retry_after, std::to_string(seconds));
        }
        response.body() = tier.body;
        return finish(call, std::move(response), 0);
      }
    }
  }
  // Every tier passed: the primary's failure is the answer.
  call->tier = 0;
  call->reason = degrade::Reason::none;
  if (call->admission_answer) return finish(call, std::move(*call->admission_answer), 0);
  if (!call->primary_failure) {
    // Diverted under load, and no fallback answered: the primary is not tried on top.
    resilience::PipelineResult overloaded;
    overloaded.kind = resilience::PipelineResult::Kind::no_backend;
    overloaded.error = "route " + route.name +
                       " is overloaded and none of its fallbacks could answer; retry later";
    return answer_failure(call, std::move(overloaded));
  }
  answer_failure(call, std::move(*call->primary_failure));
}

void ProxyHandler::respond_from_cache(const std::shared_ptr<Call>& call,
                                      const cache::ResponseCacheStore::Hit& hit,
                                      const char* cache_header) {
  server::Response response{static_cast<bhttp::status>(hit.response->status), 11};
  response.set(bhttp::field::content_type, hit.response->content_type);
  response.set(bhttp::field::age, std::to_string(hit.age.count() / 1000));
  if (cache_header) response.set("X-Fusebox-Cache", cache_header);
  response.body() = hit.response->body;
  if (call->tier == 0) {
    // `first` mode: an ordinary cache hit, reported as the cache tier without a reason.
    call->cache_hit = true;
  }
  finish(call, std::move(response), 0);
}

void ProxyHandler::answer_failure(const std::shared_ptr<Call>& call,
                                  resilience::PipelineResult&& result) {
  using Kind = resilience::PipelineResult::Kind;
  switch (result.kind) {
    case Kind::response: {
      auto response = std::move(result.upstream.response);
      http::strip_hop_by_hop(response);
      unsigned upstream_status = response.result_int();
      return finish(call, std::move(response), upstream_status);
    }
    case Kind::no_backend:
      return respond_local(call, 503, result.error);
    case Kind::deadline_exceeded:
      return respond_local(call, 504, result.error);
    case Kind::upstream_failure:
      logging::log().debug("request {}: {} after {} attempts",
                           std::string_view(call->request_id), result.error, result.attempts);
      return respond_local(call, status_for(result.upstream.outcome), result.error);
  }
}

void ProxyHandler::respond_local(const std::shared_ptr<Call>& call, unsigned status,
                                 std::string_view message) {
  finish(call, ::fusebox::http::json_error_response(status, message), 0);
}

void ProxyHandler::finish(const std::shared_ptr<Call>& call, server::Response&& response,
                          unsigned upstream_status) {
  response.set("X-Request-Id", call->request_id);
  response.version(call->client_version);
  if (call->routed) {
    const auto& route = runtime_.config->routes[call->route];
    if (!route.split.canaries.empty() && call->inference && call->tier == 0 && !call->cache_hit) {
      response.set("X-Fusebox-Split", degrade::split_target_name(route.split, call->split_target));
      runtime_.split_metrics->record_response(shard_, call->route, call->split_target);
    }
    std::size_t tier = call->tier;
    if (call->cache_hit) {
      response.set("X-Fusebox-Tier", "cache");
    } else if (tier == 0) {
      response.set("X-Fusebox-Tier", "primary");
    } else {
      response.set("X-Fusebox-Tier", degrade::tier_name(route.fallbacks[tier - 1]));
      response.set("X-Fusebox-Degraded-Reason", degrade::to_string(call->reason));
    }
    if (call->cache_miss && !call->cache_hit) response.set("X-Fusebox-Cache", "miss");
    if (!call->cache_hit) runtime_.degrade_metrics->record(shard_, call->route, tier, call->reason,
                                                      degrade::Protocol::rest);
  }
  if (call->replay_lead) publish_replay(call, response);
  deliver(call, std::move(response), upstream_status);
}

void ProxyHandler::publish_replay(const std::shared_ptr<Call>& call,
                                  const server::Response& response) {
  call->replay_lead = false;
  auto stored = std::make_shared<replay::StoredResponse>();
  stored->status = response.result_int();
  for (const auto& field : response) {
    if (field.name() == bhttp::field::content_length || field.name_string() == "X-Request-Id") {
      continue;
    }
    stored->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  stored->body = response.body();
  // Only an answer of the model itself is kept for replay; failures and degraded answers are
  // shared with the requests waiting now, and a later retry runs again.
  bool keep = stored->status < 500 && call->tier == 0;
  runtime_.idempotency->complete(call->replay_key, std::move(stored),
                                 keep ? call->replay_retain : Duration(0));
}

void ProxyHandler::deliver_shared(const std::shared_ptr<Call>& call,
                                  const replay::StoredResponse& stored, const char* marker) {
  server::Response response{static_cast<bhttp::status>(stored.status), call->client_version};
  for (const auto& [name, value] : stored.headers) response.set(name, value);
  response.set(marker, "true");
  response.set("X-Request-Id", call->request_id);
  response.body() = stored.body;
  deliver(call, std::move(response), 0);
}

void ProxyHandler::deliver(const std::shared_ptr<Call>& call, server::Response&& response,
                           unsigned upstream_status) {
  unsigned status = response.result_int();
  auto bytes_sent = response.body().size();
  auto end = Clock::now();
  std::chrono::duration<double> seconds = end - call->start;
  runtime_.metrics.record_request(shard_, call->route, metrics::method_label(call->method), status,
                                  seconds.count());
  runtime_.metrics.add_inflight(-1);
  call->slot.reset();  // the answer is out: the next waiter may go
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
