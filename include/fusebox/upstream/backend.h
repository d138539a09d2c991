#pragma once
// A backend is one TF Serving process (one address:port of a pool; a gRPC-only backend has no
// REST port and is named by its grpc_port). Its shared state is read and written by every
// worker thread, so all of it is atomic (or, off the data path, behind a small lock); the
// identity fields are set once before the workers start and are immutable afterwards.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fusebox/config/config.h"
#include "fusebox/resilience/shared_breaker.h"

namespace fusebox::upstream {

struct BackendState {
  // Identity (immutable after start-up).
  std::size_t pool_index = 0;
  std::size_t backend_index = 0;     // index within the pool
  std::string pool_name;
  std::string label;                 // config::endpoint_label(), the metrics/log label
  config::EndpointConfig endpoint;
  // REST addresses to connect to, in order; empty for a backend without a REST port.
  std::vector<boost::asio::ip::tcp::endpoint> resolved;

  bool has_rest_port() const { return endpoint.port != 0; }

  // Live state (any thread).
  std::atomic<bool> reachable{false};          // last TCP connect (probe or request) succeeded
  std::atomic<std::uint8_t> health{0};         // health::HealthStatus, set by the health checker
  std::atomic<std::int64_t> in_rotation_since_ns{0};  // steady_clock ns; slow start ramps from here
  std::atomic<std::int64_t> open_connections{0};
  std::atomic<std::int64_t> active_requests{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> failures_total{0};  // connect failures, resets, timeouts, 5xx

  // Set when the backend is created and never replaced. Shared with the same backend of the
  // next configuration when a reload leaves the backend and its pool's circuit_breaker
  // settings unchanged, so its state survives the reload.
  std::shared_ptr<resilience::SharedBreaker> breaker;

  // The last health check round, for /admin: written by the checker's thread once a round,
  // read by the admin handler. Result "" = never probed.
  struct ProbeReport {
    std::string result;  // health::to_string(ProbeResult)
    std::string detail;  // e.g. "model m: gRPC NOT_FOUND: Servable not found ..."
  };
  void set_last_probe(std::string result, std::string detail) {
    std::lock_guard lock(probe_mutex_);
    last_probe_ = {std::move(result), std::move(detail)};
  }
  ProbeReport last_probe() const {
    std::lock_guard lock(probe_mutex_);
    return last_probe_;
  }

 private:
  mutable std::mutex probe_mutex_;
  ProbeReport last_probe_;
};

struct PoolState {
  std::size_t index = 0;
  const config::PoolConfig* config = nullptr;   // owned by the config snapshot
  std::vector<std::unique_ptr<BackendState>> backends;

  // Retry budget inputs (any thread).
  std::atomic<std::int64_t> active_requests{0};    // client requests being served by the pool
  std::atomic<std::int64_t> retries_in_flight{0};  // attempts after the first, incl. hedges
};

}  // namespace fusebox::upstream
