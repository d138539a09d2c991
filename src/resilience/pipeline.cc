#include "fusebox/resilience/pipeline.h"

#include <boost/container/small_vector.hpp>
#include <algorithm>

#include "fusebox/common/block_cache.h"
#include "fusebox/common/io.h"
#include "fusebox/health/health_checker.h"
#include "fusebox/resilience/retry.h"

namespace fusebox::resilience {

namespace asio = boost::asio;
using metrics::UpstreamOutcome;
using upstream::BackendState;
using upstream::UpstreamResult;
using SteadyTime = std::chrono::steady_clock;

namespace {

upstream::PoolLimits pool_limits(const config::PoolConfig& pool, std::size_t workers) {
  upstream::PoolLimits limits;
  limits.max_connections =
      std::max<std::size_t>(1, (pool.max_connections_per_backend + workers - 1) / workers);
  limits.connect_timeout = pool.connect_timeout;
  limits.idle_timeout = pool.idle_connection_timeout;
  limits.max_response_body = pool.max_response_body;
  return limits;
}

bool contains(const std::vector<unsigned>& statuses, unsigned status) {
  return std::find(statuses.begin(), statuses.end(), status) != statuses.end();
}

// max_ejection_percent: a breaker may open only while few enough of its pool's backends are
// ejected, unless every other backend is failing too.
class PoolEjectionGuard final : public EjectionGuard {
 public:
  PoolEjectionGuard(const upstream::PoolState& pool, const BackendState& self)
      : pool_(pool), self_(self) {}
  bool may_eject() const override {
    std::size_t ejected = 0, others_failing = 0;
    for (const auto& b : pool_.backends) {
      if (b.get() == &self_) continue;
      bool out = b->breaker->ejected();
      ejected += out;
      auto health = static_cast<health::HealthStatus>(b->health.load(std::memory_order_relaxed));
      others_failing += out || !health::eligible(health);
    }
    auto n = pool_.backends.size();
    if (others_failing == n - 1) return true;  // every backend is failing: eject freely
    return static_cast<double>(ejected + 1) * 100.0 <=
           pool_.config->max_ejection_percent * static_cast<double>(n);
  }

 private:
  const upstream::PoolState& pool_;
  const BackendState& self_;
};

// What differs between the protocols: how one attempt is sent and cancelled, and how its
// result reads in HTTP terms.
struct HttpProtocol {
  using Request = upstream::Request;
  using Result = UpstreamResult;
  using Handle = upstream::ConnectionPool::ExchangeHandle;
  // Whether `backend` can take this protocol's requests, and what it lacks otherwise.
  static bool reaches(const BackendState& backend) { return backend.has_rest_port(); }
  static constexpr const char* kMissingPort = "a REST port";

  static Handle send(Pipeline& p, BackendState& backend, Request& request, TimePoint now,
                     TimePoint attempt_end, upstream::ResultHandler done) {
    auto remaining_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(attempt_end - now).count();
    request.set("X-Fusebox-Timeout-Ms", std::to_string(std::max<std::int64_t>(1, remaining_ms)));
    return p.rest_upstream(backend).send(request, attempt_end, std::move(done));
  }
  static void cancel(const Handle& handle) { upstream::ConnectionPool::cancel(handle); }
  static unsigned status(const Result& result) { return result.response.result_int(); }
};

struct GrpcProtocol {
  using Request = upstream::GrpcRequest;
  using Result = upstream::GrpcResult;
  using Handle = upstream::GrpcClient::ExchangeHandle;
  static bool reaches(const BackendState& backend) { return backend.endpoint.grpc_port != 0; }
  static constexpr const char* kMissingPort = "a grpc_port";

  static Handle send(Pipeline& p, BackendState& backend, Request& request, TimePoint,
                     TimePoint attempt_end, upstream::GrpcResultHandler done) {
    return p.grpc_upstream(backend).send(request, attempt_end, std::move(done));
  }
  static void cancel(const Handle& handle) { upstream::GrpcClient::cancel(handle); }
  static unsigned status(const Result& result) {
    return upstream::http_status_for(result.status.error_code());
  }
};

}  // namespace

template <class Protocol>
class Pipeline::Call : public std::enable_shared_from_this<Call<Protocol>> {
 public:
  using Request = typename Protocol::Request;
  using Result = typename Protocol::Result;
  using PipelineResultT = BasicPipelineResult<Result>;
  using Handler = InlineFunction<void(PipelineResultT&&)>;
  using std::enable_shared_from_this<Call<Protocol>>::shared_from_this;

  Call(Pipeline& p, const BasicPipelineRequest<Request>& req, Handler done)
      : p_(p),
        req_(req),
        pool_(p.pools_[req.pool]),
        done_(std::move(done)),
        tried_(pool_.backends.size(), false),
        alive_(p.calls_.enter()) {
    pool_.active_requests.fetch_add(1, std::memory_order_relaxed);
  }

  ~Call() { pool_.active_requests.fetch_sub(1, std::memory_order_relaxed); }

  void start() {
    if (!launch(/*retry=*/false)) return;
    const auto& hedge = req_.route->hedge;
    if (req_.idempotent && hedge.delay.count() > 0 && req_.route->retry.max_attempts > 1) {
      auto& timer = timer_of(hedge_timer_);
      timer.expires_after(hedge.delay);
      timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->on_hedge_timer();
      });
    }
  }

 private:
  struct Attempt {
    BackendState* backend = nullptr;
    Admission admission;
    TimePoint started{};
    bool counted_as_retry = false;
    bool cancelled = false;
    bool in_flight = false;
    typename Protocol::Handle exchange;
  };

  // Takes a slot of the pool's retry budget for a retry or hedge, from the moment it is decided
  // (a retry waiting out its backoff counts: with fast failures that is most of its life).
  bool reserve_retry() {
    if (!retry_budget_allows(pool_.config->retry_budget,
                             pool_.active_requests.load(std::memory_order_relaxed),
                             pool_.retries_in_flight.load(std::memory_order_relaxed))) {
      p_.metrics_.record_budget_exhausted(p_.shard_, pool_.index);
      return false;
    }
    pool_.retries_in_flight.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void release_retry() { pool_.retries_in_flight.fetch_sub(1, std::memory_order_relaxed); }

  // Picks a backend and sends one attempt. `retry`: a retry slot is already reserved and passes
  // to the attempt (or is released when nothing is sent). Returns false when nothing could be
  // sent (and the call was finished if no other attempt is in flight).
  bool launch(bool retry) {
    auto now = SteadyTime::now();
    if (now >= req_.deadline) {
      if (retry) release_retry();
      if (in_flight_ == 0) finish_deadline();
      return false;
    }
    BackendState* backend = nullptr;
    Admission admission;
    if (!choose(backend, admission, now)) {
      if (retry) release_retry();
      if (in_flight_ == 0) {
        if (attempts_.empty()) {
          p_.metrics_.record_no_backend(p_.shard_, pool_.index);
          finish_kind(PipelineOutcome::no_backend, no_backend_message());
        } else {
          finish_last();
        }
      }
      return false;
    }
    tried_[backend->backend_index] = true;
    auto index = attempts_.size();
    auto& attempt = attempts_.emplace_back();
    attempt.backend = backend;
    attempt.admission = admission;
    attempt.started = now;
    attempt.counted_as_retry = retry;
    attempt.in_flight = true;
    ++in_flight_;
    backend->active_requests.fetch_add(1, std::memory_order_relaxed);
    backend->requests_total.fetch_add(1, std::memory_order_relaxed);

    auto attempt_end = attempt_deadline(req_.route->retry, now, req_.deadline);
    attempt.exchange = Protocol::send(
        p_, *backend, *req_.request, now, attempt_end,
        [self = shared_from_this(), index](Result&& result) {
          self->on_attempt_done(index, std::move(result));
        });
    return true;
  }

  std::string no_backend_message() const {
    bool any = std::any_of(pool_.backends.begin(), pool_.backends.end(),
                           [](const auto& b) { return Protocol::reaches(*b); });
    if (!any) {
      return "no backend in pool \"" + pool_.config->name + "\" has " + Protocol::kMissingPort;
    }
    return "no healthy backend in pool \"" + pool_.config->name + "\"";
  }

  bool choose(BackendState*& chosen, Admission& admission, TimePoint now) {
    const auto& lb_config = pool_.config->load_balancing;
    for (int pass = 0; pass < 2; ++pass) {
      // First pass: backends not tried yet; second pass: any (a retry may go back to the only
      // backend left).
      auto& candidates = p_.scratch_;
      candidates.clear();
      for (const auto& b : pool_.backends) {
        if (pass == 0 && tried_[b->backend_index]) continue;
        if (!Protocol::reaches(*b)) continue;
        auto health = static_cast<health::HealthStatus>(b->health.load(std::memory_order_relaxed));
        if (!health::eligible(health)) continue;
        if (b->breaker->state() == BreakerState::forced_open) continue;
        TimePoint since{std::chrono::nanoseconds(
            b->in_rotation_since_ns.load(std::memory_order_relaxed))};
        double weight = b->endpoint.weight * balancer::slow_start_factor(lb_config, since, now);
        candidates.push_back({b->backend_index, weight,
                              b->active_requests.load(std::memory_order_relaxed)});
      }
      while (!candidates.empty()) {
        auto pick = p_.balancers_[pool_.index]->pick(candidates);
        if (!pick) break;
        auto* backend = pool_.backends[*pick].get();
        std::vector<Transition> transitions;
        auto a = backend->breaker->try_acquire(transitions);
        if (!transitions.empty()) {
          p_.transitions_.on_breaker_transitions(p_.shard_, *backend, transitions,
                                                 req_.trace.view());
        }
        if (a.allowed) {
          chosen = backend;
          admission = a;
          return true;
        }
        p_.metrics_.record_rejected(p_.shard_, *backend);
        candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                        [&](const balancer::Candidate& c) {
                                          return c.backend == *pick;
                                        }),
                         candidates.end());
      }
    }
    return false;
  }

  void on_hedge_timer() {
    if (finished_ || in_flight_ != 1) return;
    if (attempts_.size() >= req_.route->retry.max_attempts) return;
    // Only worth it when another backend can take the hedge.
    bool other = false;
    for (std::size_t i = 0; i < tried_.size(); ++i) other = other || !tried_[i];
    if (!other || !reserve_retry()) return;
    auto before = attempts_.size();
    launch(/*retry=*/true);
    if (attempts_.size() > before) p_.metrics_.record_retry(p_.shard_, pool_.index, RetryReason::hedge);
  }

  void on_attempt_done(std::size_t index, Result&& result) {
    auto& attempt = attempts_[index];
    attempt.in_flight = false;
    --in_flight_;
    auto* backend = attempt.backend;
    backend->active_requests.fetch_sub(1, std::memory_order_relaxed);
    if (attempt.counted_as_retry) pool_.retries_in_flight.fetch_sub(1, std::memory_order_relaxed);
    auto now = SteadyTime::now();
    auto latency = now - attempt.started;

    if (attempt.cancelled) {
      // A hedge that lost the race says nothing about failures. But one that had already run
      // longer than slow_call_duration is a slow call: counted as such (when the slow-call
      // trigger is on), or a slow replica would hide from its breaker behind the hedges.
      const auto& breaker = pool_.config->circuit_breaker;
      const bool slow = breaker.slow_call_rate_percent > 0 && latency > breaker.slow_call_duration;
      backend->breaker->record(attempt.admission, slow ? CallOutcome::success : CallOutcome::ignored,
                               latency, PoolEjectionGuard(pool_, *backend));
      return;
    }
    const auto& retry_on = req_.route->retry.retry_on;
    const auto& failure_statuses = pool_.config->circuit_breaker.failure_statuses;
    bool has_response =
        result.outcome == UpstreamOutcome::success || result.outcome == UpstreamOutcome::http_5xx;
    unsigned status = has_response ? Protocol::status(result) : 0;

    CallOutcome outcome = CallOutcome::success;
    bool may_retry = false;
    RetryReason reason = RetryReason::status;
    if (has_response) {
      if (contains(failure_statuses, status)) {
        outcome = CallOutcome::failure;
      } else if (status >= 400 && status < 500) {
        outcome = CallOutcome::ignored;  // the client's mistake, not the backend's
      }
      may_retry = retryable(retry_on, AttemptFailure::status, status);
    } else {
      outcome = CallOutcome::failure;
      switch (result.outcome) {
        case UpstreamOutcome::connect_failure:
          may_retry = retryable(retry_on, AttemptFailure::connect_failure);
          reason = RetryReason::connect_failure;
          break;
        case UpstreamOutcome::timeout:
          may_retry = retryable(retry_on, AttemptFailure::timeout);
          reason = RetryReason::timeout;
          break;
        case UpstreamOutcome::protocol_error:
          may_retry = false;
          break;
        default:
          may_retry = retryable(retry_on, AttemptFailure::reset);
          reason = RetryReason::reset;
      }
    }
    if (outcome == CallOutcome::failure) backend->failures_total.fetch_add(1, std::memory_order_relaxed);
    p_.gateway_metrics_.record_upstream(p_.shard_, pool_.index, backend->backend_index,
                                        result.outcome,
                                        std::chrono::duration<double>(latency).count());
    auto transitions = backend->breaker->record(attempt.admission, outcome, latency,
                                                PoolEjectionGuard(pool_, *backend));
    if (!transitions.empty()) {
      p_.transitions_.on_breaker_transitions(p_.shard_, *backend, transitions, req_.trace.view());
    }

    if (finished_) return;
    bool answer = has_response && outcome != CallOutcome::failure;
    // A worse result never replaces a real answer kept from a racing attempt.
    if (!last_ || !last_answer_ || answer) {
      last_ = std::move(result);
      last_backend_ = backend;
      last_answer_ = answer;
    }
    if (answer && !may_retry) return finish_last();
    if (in_flight_ > 0) return;  // a hedge is still running: its answer may yet win
    if (!may_retry) return finish_last();
    schedule_retry(reason, now);
  }

  io::Timer& timer_of(std::optional<io::Timer>& timer) {
    if (!timer) timer.emplace(p_.ioc_.get_executor());
    return *timer;
  }

  void schedule_retry(RetryReason reason, TimePoint now) {
    const auto& retry = req_.route->retry;
    if (attempts_.size() >= retry.max_attempts) return finish_last();
    auto delay = backoff_delay(retry, static_cast<std::uint32_t>(attempts_.size()), p_.random_);
    if (now + delay >= req_.deadline) return finish_last();
    if (!reserve_retry()) return finish_last();
    p_.metrics_.record_retry(p_.shard_, pool_.index, reason);
    auto& timer = timer_of(backoff_timer_);
    timer.expires_after(delay);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->finished_) return self->release_retry();
      self->launch(/*retry=*/true);
    });
  }

  void finish_last() {
    if (!last_) return finish_deadline();
    PipelineResultT result;
    auto outcome = last_->outcome;
    if (outcome == UpstreamOutcome::success || outcome == UpstreamOutcome::http_5xx) {
      result.kind = PipelineOutcome::response;
    } else {
      result.kind = PipelineOutcome::upstream_failure;
      result.error = last_->error;
    }
    result.upstream = std::move(*last_);
    result.backend = last_backend_;
    complete(std::move(result));
  }

  void finish_deadline() {
    finish_kind(PipelineOutcome::deadline_exceeded, "upstream request timeout");
  }

  void finish_kind(PipelineOutcome kind, std::string error) {
    PipelineResultT result;
    result.kind = kind;
    result.error = std::move(error);
    result.backend = last_backend_;
    complete(std::move(result));
  }

  void complete(PipelineResultT&& result) {
    if (finished_) return;
    finished_ = true;
    result.attempts = static_cast<unsigned>(attempts_.size());
    if (hedge_timer_) hedge_timer_->cancel();
    if (backoff_timer_) backoff_timer_->cancel();
    // Losers of a hedge race are abandoned; their completions only do bookkeeping.
    for (auto& a : attempts_) {
      if (a.in_flight && !a.cancelled) {
        a.cancelled = true;
        Protocol::cancel(a.exchange);
      }
    }
    auto done = std::move(done_);
    done(std::move(result));
  }

  Pipeline& p_;
  BasicPipelineRequest<Request> req_;
  upstream::PoolState& pool_;
  Handler done_;
  // Inline for the usual pool sizes and attempt counts: no allocation per call.
  boost::container::small_vector<bool, 16> tried_;
  boost::container::small_vector<Attempt, 2> attempts_;
  // Made when first needed: most calls neither retry nor hedge, and making a timer looks its
  // service up under the io_context's lock.
  std::optional<io::Timer> backoff_timer_;
  std::optional<io::Timer> hedge_timer_;
  LiveCounter::Token alive_;
  std::optional<Result> last_;
  BackendState* last_backend_ = nullptr;
  unsigned in_flight_ = 0;
  bool finished_ = false;
  bool last_answer_ = false;  // last_ is a real answer (not a failure)
};

Pipeline::Pipeline(asio::io_context& ioc, std::vector<upstream::PoolState>& pools,
                   metrics::GatewayMetrics& gateway_metrics, ResilienceMetrics& metrics,
                   TransitionSink& transitions, std::size_t shard, std::size_t workers)
    : ioc_(ioc),
      pools_(pools),
      gateway_metrics_(gateway_metrics),
      metrics_(metrics),
      transitions_(transitions),
      shard_(shard),
      random_(0x5eed0000ull + shard * 0x9e3779b97f4a7c15ull) {
  std::size_t most = 0;
  for (auto& pool : pools_) {
    auto n = pool.backends.size();
    most = std::max(most, n);
    balancers_.push_back(balancer::make_load_balancer(pool.config->load_balancing, n, random_));
    // Workers start at different backends, so light traffic spreads too.
    std::vector<balancer::Candidate> all;
    for (std::size_t i = 0; i < n; ++i) all.push_back({i, static_cast<double>(pool.backends[i]->endpoint.weight), 0});
    for (std::size_t i = 0; i < shard % std::max<std::size_t>(1, n); ++i) balancers_.back()->pick(all);
    auto limits = pool_limits(*pool.config, workers);
    auto& conns = connections_.emplace_back();
    auto& grpc = grpc_clients_.emplace_back();
    for (auto& backend : pool.backends) {
      conns.push_back(std::make_unique<upstream::ConnectionPool>(ioc, *backend, limits));
      grpc.push_back(backend->endpoint.grpc_port == 0
                         ? nullptr
                         : std::make_unique<upstream::GrpcClient>(ioc, *backend, *pool.config));
    }
  }
  scratch_.reserve(most);
}

Pipeline::~Pipeline() = default;

void Pipeline::execute(const PipelineRequest& request, PipelineHandler done) {
  std::allocate_shared<Call<HttpProtocol>>(memory::PooledAllocator<Call<HttpProtocol>>(), *this,
                                          request, std::move(done))
      ->start();
}

void Pipeline::execute(const GrpcPipelineRequest& request, GrpcPipelineHandler done) {
  std::allocate_shared<Call<GrpcProtocol>>(memory::PooledAllocator<Call<GrpcProtocol>>(), *this,
                                          request, std::move(done))
      ->start();
}

void Pipeline::abandon_grpc_calls() {
  for (auto& pool : grpc_clients_)
    for (auto& c : pool) c.reset();
}

void Pipeline::close_idle_upstreams() {
  for (auto& pool : connections_)
    for (auto& c : pool) c->close_idle();
  for (auto& pool : grpc_clients_)
    for (auto& c : pool)
      if (c) c->close_idle();
}

}  // namespace fusebox::resilience
