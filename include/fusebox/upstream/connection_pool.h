#pragma once
// Keep-alive HTTP/1.1 connections from one worker thread to one backend.
//
// Each worker owns one ConnectionPool per backend, so the pool is single-threaded and takes
// no lock. Idle connections are reused most-recently-used first; a connection that the backend
// has closed while idle is detected before reuse. When the per-thread connection limit is
// reached, requests wait (bounded by their deadline) for a connection to come free.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "fusebox/common/inline_function.h"
#include "fusebox/common/io.h"
#include "fusebox/http/message.h"
#include "fusebox/metrics/gateway_metrics.h"
#include "fusebox/upstream/backend.h"

namespace fusebox::upstream {

namespace http = boost::beast::http;
using Request = ::fusebox::http::Request;
using Response = ::fusebox::http::Response;
using Clock = std::chrono::steady_clock;

struct UpstreamResult {
  metrics::UpstreamOutcome outcome = metrics::UpstreamOutcome::success;
  std::string error;             // human-readable reason when there is no response
  Response response;             // valid when outcome is success or http_5xx
  bool reused_connection = false;
};

using ResultHandler = InlineFunction<void(UpstreamResult&&)>;

struct PoolLimits {
  std::size_t max_connections = 1024;           // this worker's share of the backend's limit
  Clock::duration connect_timeout = std::chrono::seconds(1);
  Clock::duration idle_timeout = std::chrono::seconds(60);
  std::uint64_t max_response_body = 64ull << 20;
};

class ConnectionPool {
 public:
  ConnectionPool(boost::asio::io_context& ioc, BackendState& backend, PoolLimits limits);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Exchange;
  using ExchangeHandle = std::weak_ptr<Exchange>;

  // Sends `request` and calls `done` exactly once, on this pool's thread, with the response
  // or the reason there is none. The whole exchange (waiting for a connection, connecting,
  // writing, reading) ends by `deadline`. The request line and headers are serialized before
  // send() returns; the body must stay alive until `done` runs.
  ExchangeHandle send(Request& request, Clock::time_point deadline, ResultHandler done);

  // Abandons an exchange still in progress (its connection is closed, not reused): `done` then
  // runs with outcome reset and error "cancelled". Does nothing when it already finished.
  static void cancel(const ExchangeHandle& handle);

  // Closes idle connections (shutdown).
  void close_idle();

  std::size_t idle_count() const { return idle_.size(); }
  std::size_t open_count() const { return open_; }

  class Connection;

 private:
  friend class Exchange;
  std::unique_ptr<Connection> take_idle();
  void release(std::unique_ptr<Connection> conn);  // back to idle, or to a waiter
  // Closes `conn`; with `free_slot` a waiting request may open a connection in its place.
  void forget(std::unique_ptr<Connection> conn, bool free_slot = true);
  void start_exchange(std::shared_ptr<Exchange> ex, std::unique_ptr<Connection> conn);
  void serve_waiter();
  // Idle connections are closed when their idle time is up, by a timer set for the oldest:
  // while the pool is quiet, not by the first request after a lull (which then paid for
  // closing hundreds of them after a burst).
  void arm_expiry();
  void expire_idle();

  boost::asio::io_context& ioc_;
  BackendState& backend_;
  PoolLimits limits_;
  std::size_t open_ = 0;
  std::vector<std::unique_ptr<Connection>> idle_;      // back() is the most recently used
  std::deque<std::weak_ptr<Exchange>> waiters_;
  std::shared_ptr<bool> alive_;  // lets in-flight exchanges notice the pool is gone
  io::Timer expiry_timer_;
  bool expiry_armed_ = false;
};

}  // namespace fusebox::upstream
