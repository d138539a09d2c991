#include "fusebox/server/gateway.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <thread>

#include "fusebox/admission/load_shedder.h"
#include "fusebox/common/listener.h"
#include "fusebox/config/loader.h"
#include "fusebox/health/health_checker.h"
#include "fusebox/logging/logging.h"
#include "fusebox/metrics/family_builder.h"
#include "fusebox/metrics/retained_totals.h"
#include "fusebox/proxy/grpc_handler.h"
#include "fusebox/proxy/proxy_handler.h"
#include "fusebox/server/admin_handler.h"
#include "fusebox/server/config_watcher.h"
#include "fusebox/rpc/reflection.h"
#include "fusebox/server/grpc_listener.h"
#include "fusebox/server/http_session.h"

namespace fusebox::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::unique_ptr<tcp::acceptor> bind_listener(asio::io_context& ioc, const std::string& address,
                                             std::uint16_t port, const char* name) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) throw std::runtime_error(std::string(name) + " listener: bad address \"" + address + "\"");
  tcp::endpoint endpoint(ip, port);
  auto acceptor = std::make_unique<tcp::acceptor>(ioc);
  auto fail = [&](const char* what) {
    throw std::runtime_error(std::string("cannot ") + what + " " + name + " listener on " +
                             address + ":" + std::to_string(port) + ": " + ec.message());
  };
  acceptor->open(endpoint.protocol(), ec);
  if (ec) fail("open");
  acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) fail("configure");
  acceptor->bind(endpoint, ec);
  if (ec) fail("bind");
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
  return acceptor;
}

std::size_t worker_threads(const config::Config& config) {
  if (config.server.threads > 0) return static_cast<std::size_t>(config.server.threads);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::vector<upstream::PoolState*> pool_pointers(proxy::Runtime& runtime) {
  std::vector<upstream::PoolState*> out;
  for (auto& p : runtime.pools) out.push_back(&p);
  return out;
}

config::HttpListenerConfig admin_limits() {
  config::HttpListenerConfig limits;
  limits.max_request_body = 1 << 20;
  return limits;
}

// Settings a running process cannot change (sockets, threads, log sinks, the file watch): a
// reload keeps the running values, so that /admin/config shows what is in effect. Returns the
// keys that differed, for the log line.
std::vector<std::string> keep_restart_only_settings(config::Config& next,
                                                    const config::Config& running) {
  // The admin token is not a socket setting: it changes on reload (token rotation).
  const auto admin_token = next.listeners.admin.token_hash;
  next.listeners.admin.token_hash = running.listeners.admin.token_hash;
  auto next_json = config::config_to_json(next);
  auto running_json = config::config_to_json(running);
  std::vector<std::string> differing;
  for (const char* key : {"listeners", "server", "logging", "reload"}) {
    if (next_json.at(key) != running_json.at(key)) differing.emplace_back(key);
  }
  next.listeners = running.listeners;
  next.listeners.admin.token_hash = admin_token;
  next.server = running.server;
  next.logging = running.logging;
  next.reload = running.reload;
  return differing;
}

// What /admin/config redacts (key hashes, JWT secrets, the admin token), so that a reload that
// only rotates a credential is not taken for "no change".
std::string credentials_of(const config::Config& config) {
  std::string out = config.listeners.admin.token_hash;
  for (const auto& key : config.auth.api_keys) out += "\n" + key.name + "=" + key.hash;
  for (const auto& key : config.auth.jwt.keys) {
    out += "\n" + key.kid + "=" + key.secret + key.public_key_pem + key.public_key_file;
  }
  return out;
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

// One worker's handlers for one configuration. A reload installs a new generation on every
// worker; the old one keeps serving the requests it started and is destroyed once none is left.
struct Generation {
  Generation(asio::io_context& ioc, proxy::Runtime& rt, std::size_t shard, std::size_t workers)
      : runtime(rt),
        handler(std::make_unique<proxy::ProxyHandler>(ioc, rt, shard, workers)),
        grpc_handler(std::make_unique<proxy::GrpcHandler>(rt, handler->pipeline(), shard)) {}

  // gRPC calls still in flight (a drain that timed out) hold callbacks into grpc_handler: they
  // are dropped while it still exists.
  ~Generation() { handler->pipeline().abandon_grpc_calls(); }

  bool idle() const {
    return handler->calls_alive() == 0 && grpc_handler->calls_alive() == 0 &&
           handler->pipeline().calls_alive() == 0;
  }

  proxy::Runtime& runtime;
  std::unique_ptr<proxy::ProxyHandler> handler;      // owns the worker's upstream connections
  std::unique_ptr<proxy::GrpcHandler> grpc_handler;  // shares the handler's pipeline
};

// A worker thread: its io_context, its sessions and the handlers they call. Sessions hold the
// worker as their handler, which forwards to the current generation: a keep-alive connection
// opened before a reload sends its next request to the new configuration.
struct Worker final : RequestHandler {
  using Released = std::function<void(proxy::Runtime*)>;

  Worker(proxy::Runtime& runtime, std::size_t shard_index, std::size_t worker_count,
         SessionTracker::Hook hook, Released on_released)
      : tracker(std::move(hook)),
        shard(shard_index),
        workers(worker_count),
        released(std::move(on_released)),
        current(std::make_unique<Generation>(ioc, runtime, shard, workers)) {}

  void handle(Request&& request, const ConnectionInfo& connection, Clock::time_point start,
              std::shared_ptr<ResponseSink> sink) override {
    current->handler->handle(std::move(request), connection, start, std::move(sink));
  }
  void on_rejected(const ConnectionInfo& connection, const RejectedRequest& rejected) override {
    current->handler->on_rejected(connection, rejected);
  }

  // On this worker's thread: new requests go to `runtime` from now on.
  void install(proxy::Runtime& runtime) {
    current->handler->close_idle_upstreams();
    retiring.push_back(std::move(current));
    current = std::make_unique<Generation>(ioc, runtime, shard, workers);
    sweep();
  }

  // Destroys the retiring generations with nothing left in flight; looks again later while
  // any remains. Runs from a timer or install(), never inside a generation's own callbacks.
  void sweep() {
    for (auto it = retiring.begin(); it != retiring.end();) {
      if (!(*it)->idle()) {
        ++it;
        continue;
      }
      auto* runtime = &(*it)->runtime;
      (*it)->handler->close_idle_upstreams();
      it = retiring.erase(it);
      released(runtime);
    }
    if (retiring.empty() || sweeping) return;
    sweeping = true;
    sweep_timer.expires_after(std::chrono::milliseconds(20));
    sweep_timer.async_wait([this](boost::system::error_code ec) {
      sweeping = false;
      if (!ec) sweep();
    });
  }

  void close_idle_upstreams() {
    current->handler->close_idle_upstreams();
    for (auto& g : retiring) g->handler->close_idle_upstreams();
  }

  // Destroyed in reverse order: the generations (upstream pools) first, then the io_context
  // with any handlers still queued in it (whose sessions unregister from the tracker), then
  // the tracker.
  SessionTracker tracker;
  GrpcServices grpc_services;  // what this worker's gRPC sessions call
  // One thread runs this context, and a socket is only ever used by the worker that owns it
  // (an accepted one is registered here by the acceptors' thread, under the reactor's
  // registration lock, then handed over with a post): the reactor need not lock each I/O.
  // Posting from other threads stays safe (the scheduler still locks).
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::size_t shard;
  std::size_t workers;
  Released released;
  asio::steady_timer sweep_timer{ioc};
  bool sweeping = false;
  std::unique_ptr<Generation> current;
  std::vector<std::unique_ptr<Generation>> retiring;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

struct Gateway::Impl final : AdminContext {
  explicit Impl(std::shared_ptr<const config::Config> cfg)
      : startup_config(std::move(cfg)),
        workers_n(worker_threads(*startup_config)),
        gauges(std::make_shared<metrics::ProcessGauges>()),
        active(std::make_shared<proxy::Runtime>(startup_config, workers_n + 1, gauges)),
        published(active),
        admin_handler(*this),
        admin_tracker([](int) {}),
        admin_session_limits(admin_limits()),
        health_random(static_cast<std::uint64_t>(
            std::chrono::steady_clock::now().time_since_epoch().count())),
        signals(admin_ioc, SIGINT, SIGTERM),
        reload_signal(admin_ioc, SIGHUP),
        drain_timer(admin_ioc),
        admission_timer(admin_ioc) {
    health_checker = make_health_checker(*active);
    for (std::size_t i = 0; i < workers_n; ++i) {
      workers.push_back(std::make_unique<Worker>(
          *active, i, workers_n, [this](int delta) { on_session_change(delta); },
          [this](proxy::Runtime* released) {
            asio::post(admin_ioc, [this, released] { on_generation_released(released); });
          }));
    }
    const auto& listeners = startup_config->listeners;
    http_acceptor = bind_listener(workers[0]->ioc, listeners.http.address, listeners.http.port, "http");
    admin_acceptor = bind_listener(admin_ioc, listeners.admin.address, listeners.admin.port, "admin");
    if (listeners.grpc.enabled) {
      grpc_acceptor = bind_listener(workers[0]->ioc, listeners.grpc.address, listeners.grpc.port,
                                    "gRPC");
      if (listeners.grpc.reflection) {
        reflection = std::make_unique<rpc::ReflectionService>(std::vector<std::string>{
            "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"});
      }
      for (auto& w : workers) {
        w->grpc_services.config = &startup_config->listeners.grpc;
        w->grpc_services.dispatch = [w = w.get()](GrpcCall* call) {
          w->current->grpc_handler->handle(call);
        };
        w->grpc_services.health = [this](std::string_view service) { return grpc_health(service); };
        w->grpc_services.reflection = reflection.get();
      }
    }
    if (startup_config->reload.watch && !startup_config->source_file.empty()) {
      watcher = std::make_unique<ConfigWatcher>(
          admin_ioc, startup_config->source_file, startup_config->reload.debounce,
          [this] { request_reload("file change", nullptr); });
      // Rotated JWT signing keys are published in the JWKS file: a change reloads too.
      const auto& jwks = startup_config->auth.jwt.jwks_file;
      if (startup_config->auth.jwt.enabled && !jwks.empty()) {
        jwks_watcher = std::make_unique<ConfigWatcher>(
            admin_ioc, jwks, startup_config->reload.debounce,
            [this] { request_reload("JWKS file change", nullptr); });
      }
    }
    // Watching starts before the listening line is printed: a change made by whoever waits for
    // that line is never missed (the events wait in the inotify queue until the loop runs).
    if (watcher) {
      auto error = watcher->start();
      watcher_active = error.empty();
      if (!watcher_active) {
        logging::log().warn("not watching {} for changes ({}); SIGHUP still reloads",
                            startup_config->source_file, error);
      }
    }
    if (jwks_watcher) {
      if (auto error = jwks_watcher->start(); !error.empty()) {
        logging::log().warn("not watching {} for changes ({}); SIGHUP still reloads",
                            startup_config->auth.jwt.jwks_file, error);
      }
    }
  }

  ~Impl() override {
    if (reload_thread.joinable()) reload_thread.join();
  }

  std::unique_ptr<health::HealthChecker> make_health_checker(proxy::Runtime& rt) {
    return std::make_unique<health::HealthChecker>(admin_ioc, pool_pointers(rt), rt.health_models,
                                                   *rt.events, health_random);
  }

  // ---- AdminContext -----------------------------------------------------------------------

  std::shared_ptr<proxy::Runtime> runtime_snapshot() const { return published.load(); }
  std::shared_ptr<proxy::Runtime> runtime() const override { return runtime_snapshot(); }
  bool draining() const override { return draining_flag.load(std::memory_order_relaxed); }

  void collect_metrics(std::vector<prometheus::MetricFamily>& out) const override {
    active->collect_metrics(out);
    // Configurations replaced by a reload but still finishing requests count as well.
    for (const auto& r : retiring) {
      std::vector<prometheus::MetricFamily> old;
      r.runtime->collect_metrics(old);
      metrics::add_totals(out, old);
    }
    retained.add_to(out);
    using prometheus::MetricType;
    auto& reloads = out.emplace_back(metrics::make_family(
        "fusebox_config_reloads_total",
        "Configuration reloads (SIGHUP, file change or POST /admin/reload), by result.",
        MetricType::Counter));
    metrics::add_counter(reloads, {{"result", "success"}}, static_cast<double>(reloads_ok));
    metrics::add_counter(reloads, {{"result", "failure"}}, static_cast<double>(reloads_failed));
    auto& last = out.emplace_back(metrics::make_family(
        "fusebox_config_last_reload_success_timestamp_seconds",
        "Unix time of the last configuration successfully loaded (start-up or reload).",
        MetricType::Gauge));
    metrics::add_gauge(last, {}, unix_seconds(last_success));
    auto& generation_gauge = out.emplace_back(metrics::make_family(
        "fusebox_config_generation",
        "Configurations loaded since start: 1 at start-up, plus one per applied reload.",
        MetricType::Gauge));
    metrics::add_gauge(generation_gauge, {}, static_cast<double>(generation));
  }

  nlohmann::json reload_status() const override {
    nlohmann::json status = {
        {"generation", generation},
        {"config_file", startup_config->source_file},
        {"loaded_at", unix_seconds(last_success)},
        {"reloads", {{"success", reloads_ok}, {"failure", reloads_failed}}},
        {"in_progress", reload_running},
        {"watching_file", watcher_active},
        {"last_result", last_result},
    };
    if (last_result != "none") {
      status["last_attempt"] = {{"at", unix_seconds(last_attempt_at)},
                                {"trigger", last_trigger},
                                {"result", last_result},
                                {"message", last_message},
                                {"errors", last_errors}};
    }
    return status;
  }

  void request_reload(const char* trigger, ReloadDone done) override {
    if (shutting_down) {
      logging::log().warn("reload ({}) ignored: shutting down", trigger);
      if (done) done(false, reload_status());
      return;
    }
    if (reload_running) {
      // Asked while loading: the file may have changed since it was read, so load once more
      // afterwards; whoever asked now hears about that load.
      reload_again = true;
      queued_trigger = trigger;
      if (done) queued_waiters.push_back(std::move(done));
      return;
    }
    if (done) reload_waiters.push_back(std::move(done));
    start_reload(trigger);
  }

  // ---- reload -----------------------------------------------------------------------------

  // Loads and builds off the I/O threads (parsing, validation and DNS may block), then swaps
  // on the admin thread.
  void start_reload(std::string trigger) {
    reload_running = true;
    reload_again = false;
    if (reload_thread.joinable()) reload_thread.join();
    reload_thread = std::thread([this, trigger = std::move(trigger), previous = active] {
      auto loaded = config::load_config_file(startup_config->source_file);
      std::vector<std::string> errors;
      std::shared_ptr<proxy::Runtime> next;
      std::vector<std::string> kept;
      bool unchanged = false;
      for (const auto& e : loaded.errors) errors.push_back(e.to_string());
      if (loaded.ok()) {
        auto effective = std::make_shared<config::Config>(*loaded.config);
        kept = keep_restart_only_settings(*effective, *previous->config);
        // A JWKS file's keys are not in the configuration: with one, always rebuild.
        unchanged = effective->auth.jwt.jwks_file.empty() &&
                    credentials_of(*effective) == credentials_of(*previous->config) &&
                    config::config_to_json(*effective) == previous->config_json;
        if (!unchanged) {
          try {
            next = std::make_shared<proxy::Runtime>(effective, workers_n + 1, gauges, previous.get());
          } catch (const std::exception& e) {
            errors.push_back(startup_config->source_file + ": " + e.what());
          }
        }
      }
      asio::post(admin_ioc, [this, trigger, next = std::move(next), errors = std::move(errors),
                             kept = std::move(kept), unchanged]() mutable {
        finish_reload(trigger, std::move(next), std::move(errors), kept, unchanged);
      });
    });
  }

  void finish_reload(const std::string& trigger, std::shared_ptr<proxy::Runtime> next,
                     std::vector<std::string> errors, const std::vector<std::string>& kept,
                     bool unchanged) {
    if (reload_thread.joinable()) reload_thread.join();
    reload_running = false;
    last_attempt_at = std::chrono::system_clock::now();
    last_trigger = trigger;
    last_errors = errors;
    bool applied = errors.empty() && !shutting_down;
    if (!errors.empty()) {
      ++reloads_failed;
      last_result = "failure";
      last_message = "configuration rejected; still serving generation " +
                     std::to_string(generation);
      logging::log().error("config reload ({}) rejected with {} problem{}; still serving "
                           "generation {}:",
                           trigger, errors.size(), errors.size() == 1 ? "" : "s", generation);
      for (const auto& e : errors) logging::log().error("  {}", e);
    } else if (shutting_down) {
      last_result = "failure";
      last_message = "shutting down";
    } else {
      ++reloads_ok;
      last_result = "success";
      last_success = last_attempt_at;
      if (!kept.empty()) {
        std::string keys;
        for (const auto& k : kept) keys += (keys.empty() ? "" : ", ") + k;
        logging::log().warn("config reload ({}): changes to {} need a restart; the running "
                            "values stay in effect",
                            trigger, keys);
      }
      if (unchanged) {
        last_message = "no change";
        logging::log().info("config reload ({}): no change; generation {} stays", trigger,
                            generation);
      } else {
        swap_runtime(std::move(next));
        last_message = "applied as generation " + std::to_string(generation);
      }
    }
    answer_reload_waiters(applied);
    if (reload_again) {
      reload_waiters = std::move(queued_waiters);
      queued_waiters.clear();
      if (shutting_down) return answer_reload_waiters(false);
      start_reload(queued_trigger);
    }
  }

  void answer_reload_waiters(bool applied) {
    auto waiters = std::move(reload_waiters);
    reload_waiters.clear();
    auto status = reload_status();
    for (auto& w : waiters) w(applied, status);
  }

  // On the admin thread (where the health checker runs).
  void swap_runtime(std::shared_ptr<proxy::Runtime> next) {
    auto previous = active;
    health_checker->stop();
    next->carry_backend_state(*previous);
    auto checker = make_health_checker(*next);
    retiring.push_back({previous, std::move(health_checker), 0});
    health_checker = std::move(checker);
    active = next;
    published.store(next);
    ++generation;
    health_checker->start();
    for (auto& w : workers) {
      asio::post(w->ioc, [w = w.get(), rt = next.get()] { w->install(*rt); });
    }
    const auto& config = *next->config;
    logging::log().info(
        "config reloaded: generation {} with {} routes, {} pools; {} breakers carried over",
        generation, config.routes.size(), config.pools.size(), next->carried.breakers);
  }

  // Admin thread: a worker destroyed its generation of `released`. When every worker has, the
  // configuration is retired: its counters are kept for /metrics, and it is destroyed.
  void on_generation_released(proxy::Runtime* released) {
    for (auto it = retiring.begin(); it != retiring.end(); ++it) {
      if (it->runtime.get() != released) continue;
      if (++it->released < workers.size()) return;
      std::vector<prometheus::MetricFamily> final_families;
      it->runtime->collect_metrics(final_families);
      retained.retire(final_families);
      retiring.erase(it);
      return;
    }
  }

  // ---- serving ----------------------------------------------------------------------------

  // grpc.health.v1: "" and the TF Serving service names follow /readyz; a model name follows
  // its route's pool. Any thread.
  GrpcServingStatus grpc_health(std::string_view service) {
    auto serving = [](bool ok) {
      return ok ? GrpcServingStatus::serving : GrpcServingStatus::not_serving;
    };
    if (service.empty() || service == "tensorflow.serving.PredictionService" ||
        service == "tensorflow.serving.ModelService") {
      return serving(admin_handler.not_ready_reason().empty());
    }
    auto rt = runtime_snapshot();
    auto route = rt->routes.find(service);
    if (!route || rt->config->routes[*route].match.model == "*") {
      return GrpcServingStatus::unknown;
    }
    return serving(!draining() && AdminHandler::route_serving(*rt, *route));
  }

  // Runs on a worker thread whenever one of its sessions opens (+1) or closes (-1).
  void on_session_change(int delta) {
    if (delta > 0) return;  // counted at accept time
    auto now = connections.fetch_sub(1, std::memory_order_relaxed) - 1;
    gauges->downstream_connections.fetch_sub(1, std::memory_order_relaxed);
    if (stopped.load()) return;  // tearing down: the other threads and loops are gone
    const auto max_connections = startup_config->listeners.http.max_connections;
    if (now < max_connections && accept_paused.exchange(false)) {
      asio::post(workers[0]->ioc, [this] {
      accept_next();
      accept_grpc();
    });
    }
    if (accepting_stopped.load(std::memory_order_relaxed) && now == 0) {
      asio::post(admin_ioc, [this] { check_drained(); });
    }
  }

  // Accepts one connection on `acceptor` for the next worker in turn and hands it to
  // `accepted(socket, worker)`, which decides whether to accept again. An error (typically
  // EMFILE/ENFILE) backs off briefly instead of spinning, then accepts again.
  template <class Accepted>
  void accept_on(tcp::acceptor& acceptor, const char* listener, Accepted accepted) {
    if (!acceptor.is_open()) return;
    auto& target = *workers[next_worker++ % workers.size()];
    auto socket = std::make_unique<io::Socket>(target.ioc.get_executor());
    auto& peer = *socket;
    acceptor.async_accept(peer, [this, &acceptor, listener, &target, accepted,
                                 socket = std::move(socket)](boost::system::error_code ec) mutable {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        logging::log().error("{} accept failed: {}", listener, ec.message());
        auto timer = std::make_shared<asio::steady_timer>(workers[0]->ioc, std::chrono::milliseconds(100));
        timer->async_wait([this, &acceptor, listener, accepted, timer](boost::system::error_code) {
          accept_on(acceptor, listener, accepted);
        });
        return;
      }
      accepted(std::move(socket), target);
    });
  }

  void accept_next() {
    accept_on(*http_acceptor, "http", [this](std::unique_ptr<io::Socket> socket, Worker& target) {
      const auto max_connections = startup_config->listeners.http.max_connections;
      auto open = hand_over(std::move(socket), target);
      if (open >= max_connections) {
        accept_paused.store(true);
        // A session may have closed between the count and the flag: re-check.
        if (connections.load() < max_connections && accept_paused.exchange(false)) {
          return accept_next();
        }
        logging::log().warn("max_connections ({}) reached; accepting paused", max_connections);
        return;
      }
      accept_next();
    });
  }

  // Counts an accepted connection and starts its session on its worker; returns the number of
  // connections now open.
  std::uint32_t hand_over(std::unique_ptr<io::Socket> socket, Worker& target, bool grpc = false) {
    auto open = connections.fetch_add(1, std::memory_order_relaxed) + 1;
    gauges->downstream_connections.fetch_add(1, std::memory_order_relaxed);
    asio::post(target.ioc, [this, &target, grpc, s = std::move(socket)]() mutable {
      if (grpc) {
        start_grpc_session(std::move(*s), target.grpc_services, target.tracker);
      } else {
        start_http_session(std::move(*s), startup_config->listeners.http, target, target.tracker);
      }
    });
    return open;
  }

  // gRPC connections are few and long-lived (clients multiplex calls over them): they count
  // as connections but never pause accepting.
  void accept_grpc() {
    if (!grpc_acceptor) return;
    accept_on(*grpc_acceptor, "gRPC", [this](std::unique_ptr<io::Socket> socket, Worker& target) {
      hand_over(std::move(socket), target, /*grpc=*/true);
      accept_grpc();
    });
  }

  // On worker 0 (the acceptors' thread). Closing a listener resets the connections the kernel
  // has completed but nobody accepted yet, and their clients have usually sent a request
  // already: the kernel stops completing new ones, the queue is accepted (each HTTP connection
  // serves the request it has and closes; a gRPC one gets GOAWAY), then the listener closes.
  void close_listener(tcp::acceptor& acceptor, const char* listener, bool grpc) {
    if (std::string why; !io::stop_completing_connections(acceptor.native_handle(), why)) {
      logging::log().warn("drain: cannot filter the {} listener ({}); connections completing "
                          "while it closes are reset", listener, why);
    }
    boost::system::error_code ec;
    acceptor.cancel(ec);  // the pending async_accept ends with operation_aborted
    acceptor.non_blocking(true, ec);
    std::size_t taken = 0;
    while (!ec) {
      auto& target = *workers[next_worker++ % workers.size()];
      auto socket = std::make_unique<io::Socket>(target.ioc.get_executor());
      acceptor.accept(*socket, ec);
      if (ec) break;
      hand_over(std::move(socket), target, grpc);
      ++taken;
    }
    acceptor.close(ec);
    if (taken > 0) {
      logging::log().info("drain: {} {} connections waiting in the accept queue taken before "
                          "closing", taken, listener);
    }
  }

  void accept_admin() {
    auto socket = std::make_unique<io::Socket>(admin_ioc.get_executor());
    auto& peer = *socket;
    admin_acceptor->async_accept(peer, [this, socket = std::move(socket)](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) start_http_session(std::move(*socket), admin_session_limits, admin_handler, admin_tracker);
      accept_admin();
    });
  }

  // Samples the load (requests in flight, resident memory) for shedding, recomputes adaptive
  // concurrency limits and drops idle client buckets, every admission.sample_interval.
  void admission_tick() {
    const auto& settings = active->config->admission;
    std::uint64_t rss = 0;
    if (settings.max_memory > 0) rss = admission::read_rss_bytes().value_or(0);
    auto inflight = gauges->inflight.load(std::memory_order_relaxed);
    active->admission->tick(static_cast<std::uint64_t>(std::max<std::int64_t>(inflight, 0)), rss);
    admission_timer.expires_after(settings.sample_interval);
    admission_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) admission_tick();
    });
  }

  // ---- signals and drain ------------------------------------------------------------------

  void wait_for_signal() {
    signals.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec) return;
      if (shutting_down) {
        logging::log().warn("second signal ({}) during shutdown: exiting now", signo);
        logging::shutdown();
        std::_Exit(1);
      }
      begin_shutdown(signo);
      wait_for_signal();
    });
  }

  void wait_for_reload_signal() {
    reload_signal.async_wait([this](boost::system::error_code ec, int) {
      if (ec) return;
      request_reload("SIGHUP", nullptr);
      wait_for_reload_signal();
    });
  }

  // Phase 1 (drain.delay): not ready, still serving and accepting, every response closes its
  // connection, so load balancers and clients move away.
  void begin_shutdown(int signo) {
    shutting_down = true;
    draining_flag.store(true);
    const auto& drain = active->config->drain;
    logging::log().info(
        "signal {} received: draining; /readyz now 503, serving {} more before closing the "
        "listeners, then up to {} for {} open connections",
        signo, format_duration(drain.delay), format_duration(drain.timeout), connections.load());
    if (watcher) watcher->stop();
    if (jwks_watcher) jwks_watcher->stop();
    for (auto& w : workers) {
      asio::post(w->ioc, [w = w.get()] { w->tracker.close_after_response(); });
    }
    drain_timer.expires_after(drain.delay);
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) stop_accepting();
    });
  }

  // Phase 2 (drain.timeout): closed listeners, idle connections closed, gRPC GOAWAY; requests
  // in flight finish.
  void stop_accepting() {
    const auto timeout = active->config->drain.timeout;
    logging::log().info("drain: listeners closed; waiting up to {} for {} connections",
                        format_duration(timeout), connections.load());
    asio::post(workers[0]->ioc, [this] {
      close_listener(*http_acceptor, "HTTP", /*grpc=*/false);
      if (grpc_acceptor) close_listener(*grpc_acceptor, "gRPC", /*grpc=*/true);
      // Set after the last hand_over(): check_drained() must not see 0 connections before it.
      accepting_stopped.store(true);
      asio::post(admin_ioc, [this] { check_drained(); });
    });
    // HTTP sessions close once idle; gRPC sessions send GOAWAY and close once their calls are
    // answered.
    for (auto& w : workers) {
      asio::post(w->ioc, [w = w.get()] {
        w->tracker.drain_all();
        w->close_idle_upstreams();
      });
    }
    drain_timer.expires_after(timeout);
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      logging::log().warn("drain timeout: closing {} connections with requests in flight",
                          connections.load());
      stop_all();
    });
    check_drained();
  }

  void check_drained() {
    if (stopped.load() || !accepting_stopped.load() || connections.load() > 0) return;
    drain_timer.cancel();
    stop_all();
  }

  void stop_all() {
    if (stopped.exchange(true)) return;
    health_checker->stop();
    admission_timer.cancel();
    for (auto& r : retiring) r.checker->stop();
    if (watcher) watcher->stop();
    if (jwks_watcher) jwks_watcher->stop();
    signals.cancel();
    reload_signal.cancel();
    boost::system::error_code ec;
    admin_acceptor->close(ec);
    admin_tracker.drain_all();
    for (auto& w : workers) {
      w->work.reset();
      w->ioc.stop();
    }
    for (auto& w : workers) {
      if (w->thread.joinable()) w->thread.join();
    }
    admin_ioc.stop();
  }

  int run() {
    for (auto& w : workers) {
      w->work.emplace(w->ioc.get_executor());
      w->thread = std::thread([w = w.get()] { w->ioc.run(); });
    }
    asio::post(workers[0]->ioc, [this] {
      accept_next();
      accept_grpc();
    });
    accept_admin();
    health_checker->start();
    admission_tick();
    wait_for_signal();
    wait_for_reload_signal();
    admin_ioc.run();
    stop_all();  // in case the admin loop ended for another reason
    logging::log().info("stopped");
    return 0;
  }

  struct RetiringRuntime {
    std::shared_ptr<proxy::Runtime> runtime;
    std::unique_ptr<health::HealthChecker> checker;  // stopped; its probes may still unwind
    std::size_t released = 0;                        // workers done with it
  };

  // The configuration the process started with: listeners, threads and logging stay as they
  // are here for the process's life.
  std::shared_ptr<const config::Config> startup_config;
  std::size_t workers_n;
  std::shared_ptr<metrics::ProcessGauges> gauges;
  std::shared_ptr<proxy::Runtime> active;  // current; admin thread
  std::atomic<std::shared_ptr<proxy::Runtime>> published;  // current, for other threads
  // Declared before the workers: sessions destroyed with a worker still report to these.
  std::atomic<std::uint32_t> connections{0};
  std::atomic<bool> accept_paused{false};
  std::atomic<bool> accepting_stopped{false};
  std::atomic<bool> stopped{false};
  std::atomic<bool> draining_flag{false};
  // Reload state (admin thread).
  metrics::RetainedTotals retained;
  std::uint64_t generation = 1;
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  std::chrono::system_clock::time_point last_success = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point last_attempt_at{};
  std::string last_trigger;
  std::string last_result = "none";
  std::string last_message;
  std::vector<std::string> last_errors;
  bool reload_running = false;
  bool reload_again = false;
  bool watcher_active = false;
  std::vector<ReloadDone> reload_waiters;  // hear about the reload running now
  std::vector<ReloadDone> queued_waiters;  // hear about the one queued after it
  std::string queued_trigger;
  std::thread reload_thread;
  // Declared before admin_ioc, so that sessions still queued on it when it is destroyed find
  // their handler, tracker and limits alive.
  AdminHandler admin_handler;
  SessionTracker admin_tracker;
  config::HttpListenerConfig admin_session_limits;
  asio::io_context admin_ioc{1};
  FastRandom health_random;
  // Configurations replaced by a reload, until every worker is done with them. After
  // admin_ioc (their stopped health checkers use it), before the workers (which use them).
  std::vector<RetiringRuntime> retiring;
  std::unique_ptr<health::HealthChecker> health_checker;
  asio::signal_set signals;
  asio::signal_set reload_signal;
  asio::steady_timer drain_timer;
  asio::steady_timer admission_timer;  // load shedding samples, adaptive limits
  std::unique_ptr<ConfigWatcher> watcher;
  std::unique_ptr<ConfigWatcher> jwks_watcher;  // auth.jwt.jwks_file as configured at start
  std::unique_ptr<rpc::ReflectionService> reflection;  // gRPC reflection; null when off
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> http_acceptor;
  std::unique_ptr<tcp::acceptor> admin_acceptor;
  std::unique_ptr<tcp::acceptor> grpc_acceptor;  // null when listeners.grpc is off
  std::size_t next_worker = 0;
  bool shutting_down = false;
};

Gateway::Gateway(std::shared_ptr<const config::Config> config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

Gateway::~Gateway() = default;

tcp::endpoint Gateway::http_endpoint() const { return impl_->http_acceptor->local_endpoint(); }
tcp::endpoint Gateway::admin_endpoint() const { return impl_->admin_acceptor->local_endpoint(); }
std::size_t Gateway::worker_count() const { return impl_->workers.size(); }
std::uint16_t Gateway::grpc_port() const {
  return impl_->grpc_acceptor ? impl_->grpc_acceptor->local_endpoint().port() : 0;
}
int Gateway::run() { return impl_->run(); }

}  // namespace fusebox::server
