#pragma once
// The fusebox process: worker threads (one io_context each) serving the HTTP listener, an
// admin thread serving the admin listener, signal handling and orderly shutdown.
//
// Threads and ownership: connections are accepted on worker 0 and handed round-robin to the
// workers; each connection then lives on one worker for its whole life, with that worker's
// upstream connection pools. Nothing on the data path takes a lock shared between workers.

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "fusebox/config/config.h"

namespace fusebox::server {

class Gateway {
 public:
  // Builds the runtime and binds both listeners. Throws std::runtime_error with a readable
  // message when a listener cannot be bound or a backend name cannot be resolved.
  explicit Gateway(std::shared_ptr<const config::Config> config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  boost::asio::ip::tcp::endpoint http_endpoint() const;
  boost::asio::ip::tcp::endpoint admin_endpoint() const;
  std::size_t worker_count() const;
  std::uint16_t grpc_port() const;  // 0 when listeners.grpc is off

  // Serves until SIGTERM or SIGINT, then drains: not ready at once, serving on for
  // drain.delay, then stops accepting and lets in-flight requests finish (bounded by
  // drain.timeout); returns the process exit code (0). A second signal during shutdown exits
  // the process at once with code 1. SIGHUP, a change of the config file (reload.watch) and
  // POST /admin/reload reload the configuration.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusebox::server
