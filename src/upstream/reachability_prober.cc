#include "fusebox/upstream/reachability_prober.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "fusebox/logging/logging.h"

namespace fusebox::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;

class ReachabilityProber::Probe : public std::enable_shared_from_this<Probe> {
 public:
  Probe(asio::io_context& ioc, BackendState& backend, const config::PoolConfig& pool)
      : ioc_(ioc), backend_(backend), pool_(pool), timer_(ioc) {}

  void run() {
    if (stopped_) return;
    stream_.emplace(ioc_);
    stream_->expires_after(pool_.connect_timeout);
    stream_->async_connect(backend_.resolved,
                           [self = shared_from_this()](beast::error_code ec, const auto&) {
                             self->on_connect(ec);
                           });
  }

  void stop() {
    stopped_ = true;
    timer_.cancel();
    if (stream_) stream_->cancel();
  }

 private:
  void on_connect(beast::error_code ec) {
    if (stream_) {
      beast::error_code ignored;
      stream_->socket().close(ignored);
      stream_.reset();
    }
    if (stopped_) return;
    bool now_reachable = !ec;
    bool was = backend_.reachable.exchange(now_reachable, std::memory_order_relaxed);
    if (first_ || was != now_reachable) {
      if (now_reachable) {
        logging::log().info("backend {} in pool {} is reachable", backend_.label, pool_.name);
      } else {
        logging::log().warn("backend {} in pool {} is unreachable: {}", backend_.label,
                            pool_.name, ec.message());
      }
    }
    first_ = false;
    timer_.expires_after(pool_.reachability_interval);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->run();
    });
  }

  asio::io_context& ioc_;
  BackendState& backend_;
  const config::PoolConfig& pool_;
  asio::steady_timer timer_;
  std::optional<beast::tcp_stream> stream_;
  bool stopped_ = false;
  bool first_ = true;
};

ReachabilityProber::ReachabilityProber(asio::io_context& ioc, proxy::Runtime& runtime)
    : ioc_(ioc), runtime_(runtime) {}

ReachabilityProber::~ReachabilityProber() { stop(); }

void ReachabilityProber::start() {
  for (auto& pool : runtime_.pools) {
    for (auto& backend : pool.backends) {
      probes_.push_back(std::make_shared<Probe>(ioc_, *backend, *pool.config));
      probes_.back()->run();
    }
  }
}

void ReachabilityProber::stop() {
  for (auto& p : probes_) p->stop();
  probes_.clear();
}

}  // namespace fusebox::upstream
