#pragma once
// The admission stage of the data path, between routing and the resilience pipeline, for REST
// and gRPC alike:
//
//   authenticate (routes[].auth)          -> 401 / 403
//   priority (route, identity, header)
//   load shedding (admission.max_*)       -> 503 + Retry-After, or the degradation chain
//   rate limits (client, then route)      -> 429 + Retry-After
//   concurrency gate (routes[].concurrency) -> admitted, queued, or 503 / degradation chain
//
// The policies are the pure classes of admission/ and auth/; this class holds their shared
// state for one configuration (one per Runtime) and counts what it decides. Every method may be
// called from any thread.
//
// The gate's queued requests are parked by the handler that asked; the gate hands back
// Wakeups (admitted or timed out) to whoever frees a slot or expires a waiter, and
// dispatch() posts each to the handler that parked it, through the wakers registered per
// (shard, protocol).

#include <prometheus/metric_family.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/admission/adaptive_limit.h"
#include "fusebox/admission/concurrency_gate.h"
#include "fusebox/admission/load_shedder.h"
#include "fusebox/admission/token_bucket.h"
#include "fusebox/auth/auth_policy.h"
#include "fusebox/auth/jwt.h"
#include "fusebox/auth/wall_clock.h"
#include "fusebox/config/config.h"
#include "fusebox/metrics/sharded_histogram.h"

namespace fusebox::proxy {

enum class AdmissionProtocol : std::uint8_t { rest = 0, grpc = 1 };

// Why a request was not admitted; numeric values are stable (metric label order).
enum class AdmissionRejection : std::uint8_t {
  rate_limited_client = 0,
  rate_limited_route = 1,
  shed = 2,
  queue_full = 3,
  priority_cap = 4,
  queue_timeout = 5,  // waited in the queue until its timeout (or too little time to wait)
};
inline constexpr std::size_t kAdmissionRejections = 6;
const char* to_string(AdmissionRejection reason);

struct AdmissionInput {
  std::size_t route = 0;
  std::string_view model;
  std::string_view api_key;        // the configured API key header (gRPC: x-api-key)
  std::string_view authorization;  // Authorization (gRPC: authorization)
  std::string_view priority;       // X-Fusebox-Priority (gRPC: x-fusebox-priority); "" = none
  std::string_view client_ip;      // anonymous clients' rate-limit key
  TimePoint deadline = TimePoint::max();
};

struct AdmissionDecision {
  enum class Kind : std::uint8_t {
    admitted,        // go on (from acquire() on a gated route: holding a slot to release)
    queued,          // parked until its Wakeup (ticket / expires_at)
    unauthenticated, // auth failure: status 401/403, www_authenticate, message
    rejected,        // rate limit (429), shed or queue (503): retry_after, message
  };
  Kind kind = Kind::admitted;
  admission::Priority priority = admission::kLowestPriority;
  admission::Ticket ticket;
  TimePoint expires_at{};
  // Failures.
  unsigned status = 200;
  AdmissionRejection rejection = AdmissionRejection::shed;
  std::string message;
  std::string www_authenticate;
  std::chrono::seconds retry_after{0};
};

class AdmissionControl {
 public:
  // Throws std::runtime_error when a key store cannot be built (the loader checks first).
  AdmissionControl(const config::Config& config, std::size_t shards, const Clock& clock);
  ~AdmissionControl();

  // Handlers of one (shard, protocol) register how to reach them with a Wakeup (they post it
  // to their own thread). Before any request of theirs can queue.
  using Waker = std::function<void(const admission::Wakeup&)>;
  void register_waker(std::size_t shard, AdmissionProtocol protocol, Waker waker);

  // Authentication, priority, shedding and rate limits: admitted (with the priority) or not.
  AdmissionDecision admit(const AdmissionInput& input);
  // The route's concurrency gate, for a request about to go to the backends (cache hits and
  // replays never take a slot): admitted (holding a slot when the route is gated), queued, or
  // rejected. `slot`: the request's place in its handler's parking table; `shard`: the calling
  // thread's metrics shard.
  AdmissionDecision acquire(std::size_t route, admission::Priority priority, TimePoint deadline,
                            std::size_t shard, AdmissionProtocol protocol, std::uint32_t slot);

  // The gate slot of an admitted request is free again (its answer is out). Dispatches the
  // Wakeups it causes.
  void release(std::size_t route);
  // A queued request's timeout came: expires every waiter past its time on the route's gate.
  void expire(std::size_t route);

  // Outcome of an admitted request's primary call, for the adaptive limit.
  void record_latency(std::size_t route, std::chrono::nanoseconds latency, bool dropped);
  // Time spent queued by an admitted request (fusebox_admission_wait_seconds).
  void record_wait(std::size_t shard, std::size_t route, std::chrono::nanoseconds waited);
  // Counts a refusal decided outside admit()/acquire().
  void record_rejection(std::size_t route, AdmissionRejection reason);
  // The answer (counted) for a request whose queue timeout came before a slot.
  AdmissionDecision queue_timed_out(std::size_t route);

  // Periodic work (the admin thread, every admission.sample_interval): load shedding inputs,
  // adaptive limits, idle client buckets.
  void tick(std::uint64_t inflight, std::uint64_t rss_bytes);

  bool gated(std::size_t route) const;
  // Nothing to check on this route (no auth, limits, gate or shedding): handlers skip admit().
  bool open(std::size_t route) const;
  // The parking slot a Wakeup's tag carries.
  static std::uint32_t slot_of(std::uint64_t tag) { return static_cast<std::uint32_t>(tag); }

  void collect(std::vector<prometheus::MetricFamily>& out) const;
  // /admin/routes: per route priority, auth, gate and adaptive limit state.
  void describe(std::size_t route, nlohmann::json& entry) const;

  // auth.api_key_header as gRPC metadata carries it (lowercase).
  const std::string& api_key_metadata() const { return api_key_metadata_; }

 private:
  struct Route;
  bool shedding_enabled() const;
  // The request's shard, protocol and parking slot, packed in a gate tag.
  static std::uint64_t make_tag(std::size_t shard, AdmissionProtocol protocol, std::uint32_t slot);
  // A refusal, counted in fusebox_admission_rejected_total.
  AdmissionDecision refused(std::size_t route, admission::Priority priority,
                            AdmissionRejection reason, unsigned status, std::string message,
                            std::chrono::seconds retry_after);
  // A 401/403, counted in fusebox_auth_failures_total.
  AdmissionDecision refused_identity(auth::AuthFailure&& failure);
  void count_rate_limited(std::size_t route, const auth::Identity& identity);
  void dispatch(const std::vector<admission::Wakeup>& wakeups);
  void count_auth_failure(auth::AuthFailureReason reason);

  const config::Config& config_;
  const Clock& clock_;
  auth::SystemWallClock wall_clock_;
  std::shared_ptr<const auth::ApiKeyStore> api_keys_;
  std::shared_ptr<const auth::JwtKeySet> jwt_keys_;
  auth::JwtValidationOptions jwt_options_;
  std::string api_key_metadata_;
  std::vector<std::unique_ptr<Route>> routes_;
  std::unique_ptr<admission::RateLimiterTable> clients_;
  std::unique_ptr<admission::RateLimiterTable> route_limits_;
  std::unique_ptr<admission::LoadShedder> shedder_;
  std::vector<std::string> client_labels_;  // API key names, then "jwt", "anonymous"
  std::unique_ptr<std::atomic<std::uint64_t>[]> rejected_;      // [route][reason]
  std::unique_ptr<std::atomic<std::uint64_t>[]> rate_limited_;  // [route][client label]
  std::array<std::atomic<std::uint64_t>, 8> auth_failures_{};
  std::unique_ptr<metrics::ShardedHistogramArray> wait_seconds_;  // series: route
  mutable std::mutex wakers_mutex_;
  std::vector<std::array<Waker, 2>> wakers_;  // [shard][protocol]
};

// A gate slot held by one request: released when reset or destroyed (on the request's thread).
class AdmissionSlot {
 public:
  AdmissionSlot() = default;
  AdmissionSlot(AdmissionControl* control, std::size_t route) : control_(control), route_(route) {}
  AdmissionSlot(AdmissionSlot&& other) noexcept
      : control_(std::exchange(other.control_, nullptr)), route_(other.route_) {}
  AdmissionSlot& operator=(AdmissionSlot&& other) noexcept {
    if (this != &other) {
      reset();
      control_ = std::exchange(other.control_, nullptr);
      route_ = other.route_;
    }
    return *this;
  }
  ~AdmissionSlot() { reset(); }
  void reset() {
    if (control_) std::exchange(control_, nullptr)->release(route_);
  }
  explicit operator bool() const { return control_ != nullptr; }

 private:
  AdmissionControl* control_ = nullptr;
  std::size_t route_ = 0;
};

// One handler's side of the concurrency gate: takes a route's slot for a request (now, or after
// parking it until its Wakeup) and then calls `admitted(call)`; a request refused at once or
// timed out in the queue goes to `refused(call, decision)`. Each parked request has the timer of
// its queue timeout, which expires the route's waiters (their Wakeups come back through wake()).
// `CallPtr` points to a request with `route`, `priority`, `deadline` and an AdmissionSlot `slot`.
// Single-threaded: the handler's worker; its waker must post each Wakeup there and call wake().
template <class CallPtr>
class ParkingLot {
 public:
  using Admitted = std::function<void(const CallPtr&)>;
  using Refused = std::function<void(const CallPtr&, AdmissionDecision&&)>;

  ParkingLot(boost::asio::io_context& ioc, AdmissionControl& control, std::size_t shard,
             AdmissionProtocol protocol, Admitted admitted, Refused refused)
      : ioc_(ioc),
        control_(control),
        shard_(shard),
        protocol_(protocol),
        admitted_(std::move(admitted)),
        refused_(std::move(refused)) {}

  void acquire(const CallPtr& call) {
    if (!control_.gated(call->route)) return admitted_(call);
    auto decision = control_.acquire(call->route, call->priority, call->deadline, shard_,
                                     protocol_, next_slot());
    switch (decision.kind) {
      case AdmissionDecision::Kind::admitted:
        call->slot = AdmissionSlot(&control_, call->route);
        return admitted_(call);
      case AdmissionDecision::Kind::queued:
        return park(call, decision.ticket, decision.expires_at);
      default:
        return refused_(call, std::move(decision));
    }
  }

  void wake(const admission::Wakeup& wakeup) {
    auto call = take(wakeup);
    if (!call) return;
    if (wakeup.reason == admission::Wakeup::Reason::timed_out) {
      return refused_(call, control_.queue_timed_out(call->route));
    }
    call->slot = AdmissionSlot(&control_, call->route);
    control_.record_wait(shard_, call->route, wakeup.waited);
    admitted_(call);  // the pipeline answers a deadline that passed while waiting
  }

 private:
  std::uint32_t next_slot() const {
    return free_.empty() ? static_cast<std::uint32_t>(spaces_.size()) : free_.back();
  }
  void park(const CallPtr& call, admission::Ticket ticket, TimePoint expires_at) {
    auto slot = next_slot();
    if (free_.empty()) {
      spaces_.emplace_back();
    } else {
      free_.pop_back();
    }
    auto& space = spaces_[slot];
    space.call = call;
    space.ticket = ticket;
    if (!space.timer) space.timer = std::make_unique<boost::asio::steady_timer>(ioc_);
    space.timer->expires_at(expires_at);
    space.timer->async_wait([control = &control_, route = call->route](boost::system::error_code ec) {
      if (!ec) control->expire(route);
    });
  }
  CallPtr take(const admission::Wakeup& wakeup) {
    auto slot = AdmissionControl::slot_of(wakeup.tag);
    if (slot >= spaces_.size() || !spaces_[slot].call || !(spaces_[slot].ticket == wakeup.ticket)) {
      return nullptr;
    }
    auto& space = spaces_[slot];
    space.timer->cancel();
    free_.push_back(slot);
    return std::move(space.call);
  }

  struct Space {
    CallPtr call;
    admission::Ticket ticket;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  boost::asio::io_context& ioc_;
  AdmissionControl& control_;
  std::size_t shard_;
  AdmissionProtocol protocol_;
  Admitted admitted_;
  Refused refused_;
  std::vector<Space> spaces_;
  std::vector<std::uint32_t> free_;
};

}  // namespace fusebox::proxy
