#include "fusebox/proxy/admission_control.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <stdexcept>

#include "fusebox/logging/logging.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::proxy {

namespace {

using admission::Priority;

constexpr std::size_t kAuthReasons = 6;

auth::AuthPolicy policy_of(config::AuthPolicyKind kind) {
  switch (kind) {
    case config::AuthPolicyKind::none:
      return auth::AuthPolicy::none;
    case config::AuthPolicyKind::api_key:
      return auth::AuthPolicy::api_key;
    case config::AuthPolicyKind::jwt:
      return auth::AuthPolicy::jwt;
    case config::AuthPolicyKind::any:
      return auth::AuthPolicy::any;
  }
  return auth::AuthPolicy::none;
}

admission::TokenBucketRule rule_of(double rate, std::uint32_t burst) {
  admission::TokenBucketRule rule;
  rule.rate_per_second = rate;
  rule.burst = burst > 0 ? burst : static_cast<std::uint32_t>(std::max(1.0, std::ceil(rate)));
  return rule;
}

// Retry-After in whole seconds, at least 1.
std::chrono::seconds whole_seconds(std::chrono::nanoseconds wait) {
  if (wait == std::chrono::nanoseconds::max()) return std::chrono::seconds(60);
  auto s = std::chrono::ceil<std::chrono::seconds>(wait);
  return std::max(s, std::chrono::seconds(1));
}

std::shared_ptr<const auth::ApiKeyStore> build_api_keys(const config::AuthConfig& config) {
  std::vector<auth::ApiKeyEntry> entries;
  for (const auto& k : config.api_keys) {
    auth::ApiKeyEntry entry;
    entry.name = k.name;
    auto digest = auth::parse_key_hash(k.hash);
    if (!digest) throw std::runtime_error("auth.api_keys \"" + k.name + "\": " + digest.error());
    entry.hash = *digest;
    entry.priority_class = k.priority;
    if (k.rate_limit.enabled()) {
      auto rule = rule_of(k.rate_limit.requests_per_second, k.rate_limit.burst);
      entry.rate_limit = auth::RateLimitSettings{rule.rate_per_second, rule.burst};
    }
    entry.allowed_models = auth::make_model_allow_list(k.models);
    entries.push_back(std::move(entry));
  }
  auto built = auth::ApiKeyStore::build(std::move(entries));
  if (auto* errors = std::get_if<std::vector<auth::FieldError>>(&built)) {
    throw std::runtime_error("auth.api_keys" + (*errors)[0].to_string());
  }
  return std::make_shared<const auth::ApiKeyStore>(std::move(std::get<auth::ApiKeyStore>(built)));
}

std::shared_ptr<const auth::JwtKeySet> build_jwt_keys(const config::JwtConfig& config) {
  std::vector<auth::JwtKey> keys;
  for (const auto& k : config.keys) {
    auth::JwtKeyConfig key;
    key.kid = k.kid;
    key.alg = k.alg == "RS256" ? auth::JwtAlg::rs256 : auth::JwtAlg::hs256;
    key.secret = k.secret;
    key.public_key_pem = k.public_key_pem;
    key.public_key_file = k.public_key_file;
    auto loaded = auth::load_jwt_key(key);
    if (!loaded) throw std::runtime_error("auth.jwt.keys: " + loaded.error());
    keys.push_back(std::move(loaded.value()));
  }
  if (!config.jwks_file.empty()) {
    auto jwks = auth::load_jwks_file(config.jwks_file);
    if (!jwks) throw std::runtime_error("auth.jwt.jwks_file: " + jwks.error());
    for (const auto& skipped : jwks->skipped) {
      logging::log().warn("auth.jwt.jwks_file {}: skipped a key: {}", config.jwks_file, skipped);
    }
    for (auto& key : jwks.value().keys) keys.push_back(std::move(key));
  }
  auto set = auth::JwtKeySet::build(std::move(keys));
  if (!set) throw std::runtime_error("auth.jwt: " + set.error());
  return set.value();
}

}  // namespace

const char* to_string(AdmissionRejection reason) {
  switch (reason) {
    case AdmissionRejection::rate_limited_client:
      return "rate_limited_client";
    case AdmissionRejection::rate_limited_route:
      return "rate_limited_route";
    case AdmissionRejection::shed:
      return "shed";
    case AdmissionRejection::queue_full:
      return "queue_full";
    case AdmissionRejection::priority_cap:
      return "priority_cap";
    case AdmissionRejection::queue_timeout:
      return "queue_timeout";
  }
  return "shed";
}

struct AdmissionControl::Route {
  const config::RouteConfig* config = nullptr;
  auth::AuthPolicy policy = auth::AuthPolicy::none;
  std::unique_ptr<admission::ConcurrencyGate> gate;
  std::unique_ptr<admission::AdaptiveConcurrencyLimit> adaptive;
  TimePoint next_adaptive_update{};
  std::string adaptive_reason;  // the last update's numbers, for /admin/routes
  std::uint32_t computed_limit = 0;
};

AdmissionControl::AdmissionControl(const config::Config& config, std::size_t shards,
                                   const Clock& clock)
    : config_(config), clock_(clock), wakers_(shards) {
  const auto& auth_config = config.auth;
  if (!auth_config.api_keys.empty()) api_keys_ = build_api_keys(auth_config);
  if (auth_config.jwt.enabled) {
    jwt_keys_ = build_jwt_keys(auth_config.jwt);
    jwt_options_.issuer = auth_config.jwt.issuer;
    jwt_options_.audience = auth_config.jwt.audience;
    jwt_options_.require_exp = auth_config.jwt.require_exp;
    jwt_options_.clock_skew_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(auth_config.jwt.clock_skew).count();
    jwt_options_.priority_claim = auth_config.jwt.priority_claim;
    jwt_options_.models_claim = auth_config.jwt.models_claim;
    jwt_options_.max_token_bytes = auth_config.jwt.max_token_bytes;
  }
  api_key_metadata_ = auth_config.api_key_header;
  for (auto& ch : api_key_metadata_) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& k : auth_config.api_keys) client_labels_.push_back(k.name);
  client_labels_.push_back("jwt");
  client_labels_.push_back("anonymous");

  for (const auto& r : config.routes) {
    auto route = std::make_unique<Route>();
    route->config = &r;
    route->policy = policy_of(r.admission.auth);
    const auto& c = r.admission.concurrency;
    if (c.enabled) {
      admission::ConcurrencyGateOptions options;
      options.concurrency_limit = c.limit;
      options.max_queued = c.max_queued;
      options.max_queued_per_priority = c.max_queued_per_priority;
      options.queue_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.queue_timeout);
      options.aging_step = std::chrono::duration_cast<std::chrono::milliseconds>(c.aging_step);
      route->gate = std::make_unique<admission::ConcurrencyGate>(options, clock);
      if (c.adaptive.enabled) {
        admission::AdaptiveLimitOptions adaptive;
        adaptive.initial_limit = c.limit;
        adaptive.min_limit = c.adaptive.min_limit;
        adaptive.max_limit = c.adaptive.max_limit;
        adaptive.tolerance = c.adaptive.tolerance;
        adaptive.min_rtt_interval =
            std::chrono::duration_cast<std::chrono::milliseconds>(c.adaptive.min_rtt_interval);
        adaptive.dry_run = c.adaptive.dry_run;
        route->adaptive = std::make_unique<admission::AdaptiveConcurrencyLimit>(adaptive);
        route->computed_limit = c.limit;
      }
    }
    routes_.push_back(std::move(route));
  }
  admission::RateLimiterTableOptions table;
  table.max_clients = config.admission.max_clients;
  table.idle_eviction =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.admission.client_idle_eviction);
  clients_ = std::make_unique<admission::RateLimiterTable>(table, clock);
  admission::RateLimiterTableOptions per_route;
  per_route.max_clients = std::max<std::size_t>(1, config.routes.size());
  per_route.idle_eviction = table.idle_eviction;
  per_route.shards = 1;
  route_limits_ = std::make_unique<admission::RateLimiterTable>(per_route, clock);
  if (shedding_enabled()) {
    admission::LoadShedderOptions shed;
    shed.max_inflight = config.admission.max_inflight;
    shed.max_memory_bytes = config.admission.max_memory;
    shed.step_percent =
        static_cast<std::uint32_t>(std::max(1.0, std::round(config.admission.shed_step_percent)));
    shedder_ = std::make_unique<admission::LoadShedder>(shed, clock);
  }
  const auto n = config.routes.size();
  rejected_ = std::make_unique<std::atomic<std::uint64_t>[]>(n * kAdmissionRejections);
  rate_limited_ = std::make_unique<std::atomic<std::uint64_t>[]>(n * client_labels_.size());
  wait_seconds_ = std::make_unique<metrics::ShardedHistogramArray>(shards, std::max<std::size_t>(n, 1));
}

AdmissionControl::~AdmissionControl() = default;

bool AdmissionControl::shedding_enabled() const {
  return config_.admission.max_inflight > 0 || config_.admission.max_memory > 0;
}

bool AdmissionControl::gated(std::size_t route) const { return routes_[route]->gate != nullptr; }

bool AdmissionControl::open(std::size_t route) const {
  const auto& r = *routes_[route];
  const auto& settings = r.config->admission;
  return r.policy == auth::AuthPolicy::none && !shedder_ && !r.gate &&
         !settings.rate_limit.enabled() && !settings.client_rate_limit.enabled();
}

std::uint64_t AdmissionControl::make_tag(std::size_t shard, AdmissionProtocol protocol,
                                         std::uint32_t slot) {
  return (static_cast<std::uint64_t>(shard) << 33) |
         (static_cast<std::uint64_t>(protocol) << 32) | slot;
}

void AdmissionControl::register_waker(std::size_t shard, AdmissionProtocol protocol, Waker waker) {
  std::lock_guard lock(wakers_mutex_);
  wakers_[shard][static_cast<std::size_t>(protocol)] = std::move(waker);
}

void AdmissionControl::dispatch(const std::vector<admission::Wakeup>& wakeups) {
  if (wakeups.empty()) return;
  std::lock_guard lock(wakers_mutex_);
  for (const auto& w : wakeups) {
    auto shard = static_cast<std::size_t>(w.tag >> 33);
    auto protocol = static_cast<std::size_t>((w.tag >> 32) & 1);
    if (shard < wakers_.size() && wakers_[shard][protocol]) wakers_[shard][protocol](w);
  }
}

void AdmissionControl::count_auth_failure(auth::AuthFailureReason reason) {
  auth_failures_[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

void AdmissionControl::record_rejection(std::size_t route, AdmissionRejection reason) {
  rejected_[route * kAdmissionRejections + static_cast<std::size_t>(reason)].fetch_add(
      1, std::memory_order_relaxed);
}

AdmissionDecision AdmissionControl::admit(const AdmissionInput& in) {
  AdmissionDecision d;
  auto& route = *routes_[in.route];
  const auto& settings = route.config->admission;

  // 1. Who is asking.
  auth::Identity identity;
  if (route.policy != auth::AuthPolicy::none) {
    auth::AuthStores stores;
    stores.api_keys = api_keys_.get();
    stores.jwt_keys = jwt_keys_.get();
    stores.jwt_options = &jwt_options_;
    stores.realm = config_.auth.realm;
    stores.api_key_header = config_.auth.api_key_header;
    auto result = auth::authenticate(route.policy,
                                     auth::presented_credentials(in.api_key, in.authorization),
                                     stores, wall_clock_);
    if (auto* failure = std::get_if<auth::AuthFailure>(&result)) {
      return refused_identity(std::move(*failure));
    }
    identity = std::get<auth::Identity>(std::move(result));
    if (!auth::allowed(identity, in.model)) {
      return refused_identity(auth::forbidden(identity, config_.auth.realm));
    }
  }

  // 2. How important: the identity's class replaces the route's; the header may only lower it.
  std::optional<Priority> identity_class;
  if (identity.priority_class) identity_class = *identity.priority_class;
  auto resolved = admission::resolve_priority(
      settings.priority, identity_class,
      in.priority.empty() ? std::nullopt : std::optional<std::string_view>(in.priority));
  d.priority = resolved.priority;

  // 3. Overload: the lowest priorities go first.
  if (shedder_ && !shedder_->admits(d.priority)) {
    return refused(in.route, d.priority, AdmissionRejection::shed, 503,
                  "fusebox is overloaded: priority " + std::to_string(d.priority) +
                      " requests are shed for now",
                  std::chrono::seconds(1));
  }

  // 4. Rate limits: the client's own, then the route's.
  std::optional<admission::TokenBucketRule> client_rule;
  if (identity.rate_limit) {
    client_rule = admission::TokenBucketRule{identity.rate_limit->requests_per_second,
                                             identity.rate_limit->burst};
  }
  if (!client_rule && settings.client_rate_limit.enabled()) {
    client_rule = rule_of(settings.client_rate_limit.requests_per_second,
                          settings.client_rate_limit.burst);
  }
  if (client_rule) {
    // One bucket per client and route: a client's limit on one route does not spend another's.
    // Anonymous clients are told apart by address.
    std::string key = identity.kind == auth::IdentityKind::api_key ? "k:" + identity.name
                      : identity.kind == auth::IdentityKind::jwt   ? "j:" + identity.name
                                                                   : "a:" + std::string(in.client_ip);
    key += '\n';
    key += route.config->name;
    auto taken = clients_->try_take(key, *client_rule);
    if (!taken.allowed) {
      count_rate_limited(in.route, identity);
      return refused(in.route, d.priority, AdmissionRejection::rate_limited_client, 429,
                    "rate limit exceeded for this client on route \"" + route.config->name + "\"",
                    whole_seconds(taken.retry_after));
    }
  }
  if (settings.rate_limit.enabled()) {
    auto taken = route_limits_->try_take(
        route.config->name,
        rule_of(settings.rate_limit.requests_per_second, settings.rate_limit.burst));
    if (!taken.allowed) {
      count_rate_limited(in.route, identity);
      return refused(in.route, d.priority, AdmissionRejection::rate_limited_route, 429,
                    "rate limit of route \"" + route.config->name + "\" exceeded",
                    whole_seconds(taken.retry_after));
    }
  }

  return d;
}

AdmissionDecision AdmissionControl::acquire(std::size_t route_index, admission::Priority priority,
                                            TimePoint deadline, std::size_t shard,
                                            AdmissionProtocol protocol, std::uint32_t slot) {
  AdmissionDecision d;
  d.priority = priority;
  auto& route = *routes_[route_index];
  if (!route.gate) return d;
  auto admit = route.gate->try_acquire(priority, deadline, make_tag(shard, protocol, slot));
  switch (admit.outcome) {
    case admission::AdmitOutcome::admitted:
      record_wait(shard, route_index, std::chrono::nanoseconds(0));
      return d;
    case admission::AdmitOutcome::queued:
      d.kind = AdmissionDecision::Kind::queued;
      d.ticket = admit.ticket;
      d.expires_at = admit.expires_at;
      return d;
    case admission::AdmitOutcome::rejected:
      break;
  }
  auto reason = admit.reason == admission::RejectReason::priority_cap
                    ? AdmissionRejection::priority_cap
                : admit.reason == admission::RejectReason::queue_full
                    ? AdmissionRejection::queue_full
                    : AdmissionRejection::queue_timeout;
  return refused(route_index, priority, reason, 503,
                 "route \"" + route.config->name + "\" is at its concurrency limit (" +
                     admission::to_string(admit.reason) + "); retry later",
                 whole_seconds(route.config->admission.concurrency.queue_timeout));
}

AdmissionDecision AdmissionControl::queue_timed_out(std::size_t route) {
  const auto& config = *routes_[route]->config;
  return refused(route, admission::kLowestPriority, AdmissionRejection::queue_timeout, 503,
                 "route \"" + config.name +
                     "\" is at its concurrency limit: no slot within the queue timeout; retry later",
                 whole_seconds(config.admission.concurrency.queue_timeout));
}

AdmissionDecision AdmissionControl::refused(std::size_t route, admission::Priority priority,
                                            AdmissionRejection reason, unsigned status,
                                            std::string message, std::chrono::seconds retry_after) {
  record_rejection(route, reason);
  AdmissionDecision d;
  d.kind = AdmissionDecision::Kind::rejected;
  d.priority = priority;
  d.rejection = reason;
  d.status = status;
  d.message = std::move(message);
  d.retry_after = retry_after;
  return d;
}

AdmissionDecision AdmissionControl::refused_identity(auth::AuthFailure&& failure) {
  count_auth_failure(failure.reason);
  AdmissionDecision d;
  d.kind = AdmissionDecision::Kind::unauthenticated;
  d.status = static_cast<unsigned>(failure.status);
  d.message = std::move(failure.message);
  d.www_authenticate = std::move(failure.www_authenticate);
  return d;
}

// The `client` label of a 429: the key's name, "jwt" or "anonymous". Only on a refusal, so no
// request pays the lookup.
void AdmissionControl::count_rate_limited(std::size_t route, const auth::Identity& identity) {
  std::size_t label = client_labels_.size() - 1;  // anonymous
  if (identity.kind == auth::IdentityKind::jwt) label = client_labels_.size() - 2;
  if (identity.kind == auth::IdentityKind::api_key) {
    for (std::size_t i = 0; i < config_.auth.api_keys.size(); ++i) {
      if (config_.auth.api_keys[i].name == identity.name) label = i;
    }
  }
  rate_limited_[route * client_labels_.size() + label].fetch_add(1, std::memory_order_relaxed);
}

void AdmissionControl::release(std::size_t route) {
  auto& gate = routes_[route]->gate;
  if (!gate) return;
  std::vector<admission::Wakeup> wakeups;
  gate->release(wakeups);
  dispatch(wakeups);
}

void AdmissionControl::expire(std::size_t route) {
  auto& gate = routes_[route]->gate;
  if (!gate) return;
  std::vector<admission::Wakeup> wakeups;
  gate->expire(clock_.now(), wakeups);
  dispatch(wakeups);
}

void AdmissionControl::record_latency(std::size_t route, std::chrono::nanoseconds latency,
                                      bool dropped) {
  auto& adaptive = routes_[route]->adaptive;
  if (!adaptive) return;
  adaptive->record(latency, dropped ? admission::SampleKind::dropped : admission::SampleKind::ok);
}

void AdmissionControl::record_wait(std::size_t shard, std::size_t route,
                                   std::chrono::nanoseconds waited) {
  wait_seconds_->observe(shard, route, std::chrono::duration<double>(waited).count());
}

void AdmissionControl::tick(std::uint64_t inflight, std::uint64_t rss_bytes) {
  if (shedder_) {
    if (auto change = shedder_->update({inflight, rss_bytes})) {
      auto level = change->to_levels > change->from_levels ? spdlog::level::warn : spdlog::level::info;
      logging::log().log(level, "load shedding: {}", change->reason);
    }
  }
  auto now = clock_.now();
  for (auto& route : routes_) {
    if (!route->adaptive) continue;
    auto interval = route->config->admission.concurrency.adaptive.interval;
    if (now < route->next_adaptive_update) continue;
    route->next_adaptive_update = now + interval;
    auto update = route->adaptive->update(now);
    route->computed_limit = update.limit;
    route->adaptive_reason = update.reason;
    if (update.changed()) {
      logging::log().info("route {} adaptive concurrency {}", route->config->name, update.reason);
    }
    if (update.apply && update.limit != route->gate->limit()) {
      std::vector<admission::Wakeup> wakeups;
      route->gate->set_limit(update.limit, wakeups);
      dispatch(wakeups);
    }
  }
  clients_->evict_idle();
}

void AdmissionControl::collect(std::vector<prometheus::MetricFamily>& out) const {
  using prometheus::MetricType;
  const auto n = routes_.size();
  auto& rejected = out.emplace_back(metrics::make_family(
      "fusebox_admission_rejected_total",
      "Requests not admitted, by route and reason (rate limits, shedding, concurrency queue).",
      MetricType::Counter));
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t k = 0; k < kAdmissionRejections; ++k) {
      metrics::add_counter(rejected,
                           {{"route", routes_[r]->config->name},
                            {"reason", to_string(static_cast<AdmissionRejection>(k))}},
                           static_cast<double>(rejected_[r * kAdmissionRejections + k].load()));
    }
  }
  auto& limited = out.emplace_back(metrics::make_family(
      "fusebox_rate_limited_total",
      "Requests answered 429, by route and client (API key name, jwt or anonymous).",
      MetricType::Counter));
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < client_labels_.size(); ++c) {
      auto v = rate_limited_[r * client_labels_.size() + c].load();
      if (v == 0 && c < client_labels_.size() - 2) continue;  // keys that never hit a limit
      metrics::add_counter(limited, {{"route", routes_[r]->config->name}, {"client", client_labels_[c]}},
                           static_cast<double>(v));
    }
  }
  auto& failures = out.emplace_back(metrics::make_family(
      "fusebox_auth_failures_total", "Requests refused by authentication (401) or authorization (403).",
      MetricType::Counter));
  for (std::size_t k = 0; k < kAuthReasons; ++k) {
    metrics::add_counter(failures,
                         {{"reason", auth::to_string(static_cast<auth::AuthFailureReason>(k))}},
                         static_cast<double>(auth_failures_[k].load()));
  }
  bool any_gate = false;
  for (const auto& r : routes_) any_gate = any_gate || r->gate;
  if (any_gate) {
    auto& depth = out.emplace_back(metrics::make_family(
        "fusebox_admission_queue_depth", "Requests waiting for a concurrency slot, by base priority.",
        MetricType::Gauge));
    auto& limit = out.emplace_back(metrics::make_family(
        "fusebox_concurrency_limit", "Requests a route may have in flight to its backends at once.",
        MetricType::Gauge));
    auto& inflight = out.emplace_back(metrics::make_family(
        "fusebox_admission_inflight", "Requests holding a concurrency slot of their route.",
        MetricType::Gauge));
    auto& wait = out.emplace_back(metrics::make_family(
        "fusebox_admission_wait_seconds",
        "Time admitted requests waited for a concurrency slot (0 when one was free).",
        MetricType::Histogram));
    for (std::size_t r = 0; r < n; ++r) {
      const auto& route = *routes_[r];
      if (!route.gate) continue;
      auto stats = route.gate->stats();
      const auto& name = route.config->name;
      for (std::size_t p = 0; p < admission::kPriorityLevels; ++p) {
        metrics::add_gauge(depth, {{"route", name}, {"priority", std::to_string(p)}},
                           stats.queued_by_priority[p]);
      }
      metrics::add_gauge(limit, {{"route", name}}, stats.limit);
      metrics::add_gauge(inflight, {{"route", name}}, stats.in_flight);
      metrics::add_histogram(wait, {{"route", name}}, wait_seconds_->snapshot(r));
    }
    auto& computed = out.emplace_back(metrics::make_family(
        "fusebox_adaptive_concurrency_limit",
        "The limit the adaptive controller computed (applied unless dry_run).", MetricType::Gauge));
    for (const auto& route : routes_) {
      if (route->adaptive) {
        metrics::add_gauge(computed, {{"route", route->config->name}}, route->computed_limit);
      }
    }
  }
  if (shedder_) {
    auto& lowest = out.emplace_back(metrics::make_family(
        "fusebox_admission_lowest_admitted_priority",
        "Load shedding: the lowest priority still admitted (9 when nothing is shed).",
        MetricType::Gauge));
    metrics::add_gauge(lowest, {}, shedder_->lowest_admitted());
  }
}

void AdmissionControl::describe(std::size_t r, nlohmann::json& entry) const {
  const auto& route = *routes_[r];
  const auto& settings = route.config->admission;
  entry["priority"] = settings.priority;
  entry["auth"] = auth::to_string(route.policy);
  if (route.gate) {
    auto stats = route.gate->stats();
    nlohmann::json gate = {{"limit", stats.limit},
                           {"in_flight", stats.in_flight},
                           {"queued", stats.queued},
                           {"queued_by_priority", stats.queued_by_priority}};
    if (route.adaptive) {
      gate["adaptive"] = {{"dry_run", settings.concurrency.adaptive.dry_run},
                          {"computed_limit", route.computed_limit},
                          {"reason", route.adaptive_reason}};
    }
    entry["concurrency"] = std::move(gate);
  }
}

}  // namespace fusebox::proxy
