#include "fusebox/server/gateway.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <thread>

#include "fusebox/logging/logging.h"
#include "fusebox/proxy/grpc_handler.h"
#include "fusebox/proxy/proxy_handler.h"
#include "fusebox/server/admin_handler.h"
#include "fusebox/server/grpc_listener.h"
#include "fusebox/server/http_session.h"
#include "fusebox/health/health_checker.h"

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

}  // namespace

struct Worker {
  Worker(proxy::Runtime& runtime, std::size_t shard, std::size_t workers, SessionTracker::Hook hook)
      : tracker(std::move(hook)),
        handler(std::make_unique<proxy::ProxyHandler>(ioc, runtime, shard, workers)),
        grpc_handler(std::make_unique<proxy::GrpcHandler>(runtime, handler->pipeline(), shard)) {}

  // Destroyed in reverse order: the handler (upstream pools) first, then the io_context with
  // any handlers still queued in it (whose sessions unregister from the tracker), then the
  // tracker.
  SessionTracker tracker;
  asio::io_context ioc{1};
  std::unique_ptr<proxy::ProxyHandler> handler;
  std::unique_ptr<proxy::GrpcHandler> grpc_handler;  // shares the handler's pipeline
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

struct Gateway::Impl {
  explicit Impl(std::shared_ptr<const config::Config> cfg)
      : config(std::move(cfg)),
        workers_n(worker_threads(*config)),
        runtime(config, workers_n + 1),
        admin_handler(runtime),
        admin_tracker([](int) {}),
        admin_session_limits(admin_limits()),
        health_random(static_cast<std::uint64_t>(
            std::chrono::steady_clock::now().time_since_epoch().count())),
        health_checker(admin_ioc, pool_pointers(runtime), runtime.health_models, *runtime.events,
                       health_random),
        signals(admin_ioc, SIGINT, SIGTERM),
        drain_timer(admin_ioc) {
    for (std::size_t i = 0; i < workers_n; ++i) {
      workers.push_back(std::make_unique<Worker>(runtime, i, workers_n, [this](int delta) {
        on_session_change(delta);
      }));
    }
    const auto& listeners = config->listeners;
    http_acceptor = bind_listener(workers[0]->ioc, listeners.http.address, listeners.http.port, "http");
    admin_acceptor = bind_listener(admin_ioc, listeners.admin.address, listeners.admin.port, "admin");
    if (listeners.grpc.enabled) {
      grpc_listener = std::make_unique<GrpcListener>(
          listeners.grpc,
          [this](GrpcCall* call) {
            auto& w = *workers[next_grpc_worker.fetch_add(1, std::memory_order_relaxed) %
                               workers.size()];
            asio::post(w.ioc, [h = w.grpc_handler.get(), call] { h->handle(call); });
          },
          [this](std::string_view service) { return grpc_health(service); });
      grpc_listener->start();
    }
  }

  ~Impl() {
    // A listener still running (the gateway never ran) stops before the workers go.
    if (grpc_shutdown.joinable()) grpc_shutdown.join();
    grpc_listener.reset();
  }

  // grpc.health.v1: "" and the TF Serving service names follow /readyz; a model name follows
  // its route's pool.
  GrpcServingStatus grpc_health(std::string_view service) {
    auto serving = [](bool ok) {
      return ok ? GrpcServingStatus::serving : GrpcServingStatus::not_serving;
    };
    if (service.empty() || service == "tensorflow.serving.PredictionService" ||
        service == "tensorflow.serving.ModelService") {
      return serving(admin_handler.not_ready_reason().empty());
    }
    auto route = runtime.routes.find(service);
    if (!route || runtime.config->routes[*route].match.model == "*") {
      return GrpcServingStatus::unknown;
    }
    return serving(!runtime.draining.load() && admin_handler.route_serving(*route));
  }

  // Runs on a worker thread whenever one of its sessions opens (+1) or closes (-1).
  void on_session_change(int delta) {
    if (delta > 0) return;  // counted at accept time
    auto now = connections.fetch_sub(1, std::memory_order_relaxed) - 1;
    runtime.metrics.add_downstream_connections(-1);
    if (stopped.load()) return;  // tearing down: the other threads and loops are gone
    if (now < config->listeners.http.max_connections && accept_paused.exchange(false)) {
      asio::post(workers[0]->ioc, [this] { accept_next(); });
    }
    if (runtime.draining.load(std::memory_order_relaxed) && now == 0) {
      asio::post(admin_ioc, [this] { check_drained(); });
    }
  }

  void accept_next() {
    if (!http_acceptor->is_open()) return;
    auto& target = *workers[next_worker++ % workers.size()];
    auto socket = std::make_unique<io::Socket>(target.ioc.get_executor());
    auto& peer = *socket;
    http_acceptor->async_accept(peer, [this, &target, socket = std::move(socket)](
                                          boost::system::error_code ec) mutable {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Typically EMFILE/ENFILE: back off briefly instead of spinning on the error.
        logging::log().error("accept failed: {}", ec.message());
        auto timer = std::make_shared<asio::steady_timer>(workers[0]->ioc, std::chrono::milliseconds(100));
        timer->async_wait([this, timer](boost::system::error_code) { accept_next(); });
        return;
      }
      auto open = connections.fetch_add(1, std::memory_order_relaxed) + 1;
      runtime.metrics.add_downstream_connections(1);
      asio::post(target.ioc, [this, &target, s = std::move(socket)]() mutable {
        start_http_session(std::move(*s), config->listeners.http, *target.handler, target.tracker);
      });
      if (open >= config->listeners.http.max_connections) {
        accept_paused.store(true);
        // A session may have closed between the count and the flag: re-check.
        if (connections.load() < config->listeners.http.max_connections && accept_paused.exchange(false)) {
          return accept_next();
        }
        logging::log().warn("max_connections ({}) reached; accepting paused",
                            config->listeners.http.max_connections);
        return;
      }
      accept_next();
    });
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

  void begin_shutdown(int signo) {
    shutting_down = true;
    runtime.draining.store(true);
    logging::log().info("signal {} received: stopping; {} connections open, waiting up to {}",
                        signo, connections.load(), format_duration(config->server.shutdown_timeout));
    asio::post(workers[0]->ioc, [this] {
      boost::system::error_code ec;
      http_acceptor->close(ec);
    });
    for (auto& w : workers) {
      asio::post(w->ioc, [w = w.get()] {
        w->tracker.drain_all();
        w->handler->close_idle_upstreams();
      });
    }
    if (grpc_listener) {
      // Lets calls in flight finish within the shutdown timeout (their workers keep running).
      auto deadline = std::chrono::system_clock::now() + config->server.shutdown_timeout;
      grpc_shutdown = std::thread([this, deadline] { grpc_listener->shutdown(deadline); });
    }
    drain_timer.expires_after(config->server.shutdown_timeout);
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      logging::log().warn("shutdown timeout: closing {} connections with requests in flight",
                          connections.load());
      stop_all();
    });
    check_drained();
  }

  void check_drained() {
    if (stopped.load() || connections.load() > 0) return;
    drain_timer.cancel();
    stop_all();
  }

  void stop_all() {
    if (stopped.exchange(true)) return;
    health_checker.stop();
    signals.cancel();
    boost::system::error_code ec;
    admin_acceptor->close(ec);
    admin_tracker.drain_all();
    // gRPC calls still in flight finish (or are cancelled at the deadline) before the workers
    // that serve them stop.
    if (grpc_shutdown.joinable()) grpc_shutdown.join();
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
    asio::post(workers[0]->ioc, [this] { accept_next(); });
    accept_admin();
    health_checker.start();
    wait_for_signal();
    admin_ioc.run();
    stop_all();  // in case the admin loop ended for another reason
    logging::log().info("stopped");
    return 0;
  }

  std::shared_ptr<const config::Config> config;
  std::size_t workers_n;
  proxy::Runtime runtime;
  // Declared before the workers: sessions destroyed with a worker still report to these.
  std::atomic<std::uint32_t> connections{0};
  std::atomic<bool> accept_paused{false};
  std::atomic<bool> stopped{false};
  // Declared before admin_ioc, so that sessions still queued on it when it is destroyed find
  // their handler, tracker and limits alive.
  AdminHandler admin_handler;
  SessionTracker admin_tracker;
  config::HttpListenerConfig admin_session_limits;
  asio::io_context admin_ioc{1};
  FastRandom health_random;
  health::HealthChecker health_checker;
  asio::signal_set signals;
  asio::steady_timer drain_timer;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> http_acceptor;
  std::unique_ptr<tcp::acceptor> admin_acceptor;
  // Destroyed before the workers: its calls are dispatched to them.
  std::unique_ptr<GrpcListener> grpc_listener;
  std::thread grpc_shutdown;  // GrpcListener::shutdown() blocks; it runs here during a drain
  std::atomic<std::size_t> next_grpc_worker{0};
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
  return impl_->grpc_listener ? impl_->grpc_listener->port() : 0;
}
int Gateway::run() { return impl_->run(); }

}  // namespace fusebox::server
