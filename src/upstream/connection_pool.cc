#include "fusebox/upstream/connection_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>

#include "fusebox/common/block_cache.h"
#include "fusebox/common/lazy_deadline.h"
#include "fusebox/common/read_watch.h"
#include "fusebox/http/feed.h"
#include "fusebox/http/wire.h"

namespace fusebox::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;
using metrics::UpstreamOutcome;

// Room for each read from a backend. Beast reads at most the buffer's free capacity at a time
// (512 bytes at least), and the parser hands body bytes on as they come, so the capacity stays
// what it started with: a 1 MiB answer would take some 2000 reads of 512 bytes. Upstream
// connections are few and long-lived, so they keep a read buffer this large.
constexpr std::size_t kUpstreamReadBuffer = 16 * 1024;

// The longest the deadline timer of a busy connection sleeps before looking again: a request
// whose deadline is nearer moves it (see io::LazyDeadline).
constexpr auto kDeadlineCheck = std::chrono::milliseconds(250);

class ConnectionPool::Connection {
 public:
  explicit Connection(asio::io_context& ioc)
      : socket(ioc.get_executor()), deadline(socket.get_executor(), kDeadlineCheck, [this] {
          beast::error_code ignored;
          socket.cancel(ignored);  // the pending operation ends with operation_aborted
        }) {
    buffer.reserve(kUpstreamReadBuffer);
  }
  // An operation the deadline cancelled reports a timeout.
  beast::error_code outcome(beast::error_code ec) const {
    if (ec == asio::error::operation_aborted && deadline.expired()) return beast::error::timeout;
    return ec;
  }
  io::Socket socket;
  // Every read of socket goes through it. Between answers it watches the idle connection: a
  // backend's close (or bytes it sends unasked) shows as ready() without a system call.
  io::ReadWatch watch{socket};
  io::LazyDeadline deadline;  // after socket: its expiry cancels the socket's operations
  beast::flat_buffer buffer;
  Clock::time_point idle_since{};
  bool counted = false;  // included in backend.open_connections
};

class ConnectionPool::Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(ConnectionPool& pool, Request& request, Clock::time_point deadline, ResultHandler done)
      : pool_(&pool),
        alive_(pool.alive_),
        request_(request),
        deadline_(deadline),
        done_(std::move(done)) {
    ::fusebox::http::append_request_head(request_, head_);
  }

  void cancel() {
    if (cancelled_ || !done_) return;
    cancelled_ = true;
    if (waiting_) {
      waiting_ = false;
      wait_timer_->cancel();
      return finish(UpstreamOutcome::reset, "cancelled");
    }
    if (conn_) {
      beast::error_code ec;
      conn_->socket.cancel(ec);  // the pending operation ends with operation_aborted
    }
  }

  // Waits in the pool's queue until a connection is handed over or the deadline passes.
  void wait_for_connection() {
    waiting_ = true;
    wait_timer_.emplace(pool_->ioc_.get_executor());
    wait_timer_->expires_at(deadline_);
    wait_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->waiting_) return;
      self->waiting_ = false;
      self->finish(UpstreamOutcome::timeout, "timed out waiting for a free upstream connection");
    });
  }

  bool waiting() const { return waiting_; }

  void stop_waiting() {
    if (!waiting_) return;  // most exchanges never wait: no timer operation for them
    waiting_ = false;
    wait_timer_->cancel();
  }

  void connect_new() {
    stop_waiting();
    conn_ = std::make_unique<Connection>(pool_->ioc_);
    ++pool_->open_;
    auto now = Clock::now();
    bool deadline_first = deadline_ - now <= pool_->limits_.connect_timeout;
    conn_->deadline.expire_at(deadline_first ? deadline_ : now + pool_->limits_.connect_timeout);
    asio::async_connect(
        conn_->socket, pool_->backend_.resolved,
        [self = shared_from_this(), deadline_first](beast::error_code ec, const auto&) {
          self->on_connect(ec, deadline_first);
        });
  }

  void use(std::unique_ptr<Connection> conn, bool reused) {
    stop_waiting();
    conn_ = std::move(conn);
    reused_ = reused;
    write();
  }

 private:
  bool pool_alive() const { return *alive_; }

  void on_connect(beast::error_code ec, bool deadline_first) {
    if (!pool_alive()) return;
    if (cancelled_) return abandon();
    ec = conn_->outcome(ec);
    if (ec) {
      pool_->backend_.reachable.store(false, std::memory_order_relaxed);
      pool_->forget(std::move(conn_));
      if (ec == beast::error::timeout) {
        if (deadline_first) return finish(UpstreamOutcome::timeout, "upstream request timeout");
        return finish(UpstreamOutcome::connect_failure, "upstream connect timeout");
      }
      return finish(UpstreamOutcome::connect_failure, "upstream connect error: " + ec.message());
    }
    pool_->backend_.reachable.store(true, std::memory_order_relaxed);
    pool_->backend_.open_connections.fetch_add(1, std::memory_order_relaxed);
    conn_->counted = true;
    conn_->socket.set_option(asio::ip::tcp::no_delay(true), ec);
    conn_->socket.non_blocking(true, ec);  // for send_now
    reused_ = false;
    write();
  }

  // Sends the request at once when the socket takes it (most: no asynchronous operation), else
  // writes the rest asynchronously. A failed send is reported from the event loop, never from
  // within send(): the caller gets its handle before any completion.
  void write() {
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(request_.body())};
    conn_->deadline.expire_at(deadline_);
    beast::error_code ec;
    const auto sent = io::send_now(conn_->socket, buffers, ec);
    if (ec) {
      return asio::post(pool_->ioc_.get_executor(),
                        [self = shared_from_this(), ec] { self->on_write(ec); });
    }
    if (sent == asio::buffer_size(buffers)) return on_write({});
    beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(buffers);
    rest.consume(sent);
    asio::async_write(conn_->socket, rest, io::TransferAllInLargeSends(),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->on_write(ec);
                      });
  }

  void on_write(beast::error_code ec) {
    if (!pool_alive()) return;
    if (cancelled_) return abandon();
    if (ec) return fail(conn_->outcome(ec), /*response_started=*/false);
    read_response();
  }

  void read_response() {
    parser_.emplace();
    parser_->body_limit(pool_->limits_.max_response_body);
    parse_response();
  }

  // Parses what the connection's buffer holds and reads more until the answer is whole (see
  // http/feed.h): an answer that arrives in one piece is parsed in its read's completion.
  void parse_response() {
    beast::error_code ec;
    if (::fusebox::http::feed(*parser_, conn_->buffer, ::fusebox::http::Until::message, ec) || ec) {
      return on_read(ec);
    }
    conn_->watch.async_read_some(
        ::fusebox::http::read_space(conn_->buffer),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec == asio::error::eof) {
            ec = ::fusebox::http::at_end_of_stream(*self->parser_, ::fusebox::http::Until::message);
            if (!ec) return self->on_read(ec);  // an answer delimited by the close
          }
          if (ec || !self->pool_alive() || self->cancelled_) return self->on_read(ec);
          self->conn_->buffer.commit(n);
          self->parse_response();
        });
  }

  void on_read(beast::error_code ec) {
    if (!pool_alive()) return;
    if (cancelled_) return abandon();
    if (ec) return fail(conn_->outcome(ec), parser_->got_some());
    // An interim answer (100 Continue, 103 Early Hints) precedes the real one: skip it.
    if (auto status = parser_->get().result_int(); status >= 100 && status < 200 && status != 101) {
      return read_response();
    }
    UpstreamResult result;
    result.response = parser_->release();
    result.reused_connection = reused_;
    result.outcome = result.response.result_int() >= 500 ? UpstreamOutcome::http_5xx
                                                          : UpstreamOutcome::success;
    bool keep = result.response.keep_alive() && conn_->buffer.size() == 0;
    conn_->deadline.clear();
    if (keep) {
      pool_->release(std::move(conn_));
    } else {
      pool_->forget(std::move(conn_));
    }
    complete(std::move(result));
  }

  void fail(beast::error_code ec, bool response_started) {
    bool stale = ec == http::error::end_of_stream || ec == asio::error::eof ||
                 ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
    // A kept-alive connection the backend closed just as we reused it: the request was not
    // processed, so it is safe to send it once more on a fresh connection (in the same slot).
    if (stale && reused_ && !response_started && !retried_stale_) {
      retried_stale_ = true;
      pool_->forget(std::move(conn_), /*free_slot=*/false);
      return connect_new();
    }
    pool_->forget(std::move(conn_));
    if (ec == beast::error::timeout) return finish(UpstreamOutcome::timeout, "upstream request timeout");
    if (stale) return finish(UpstreamOutcome::reset, "upstream connection closed: " + ec.message());
    if (ec == http::error::body_limit)
      return finish(UpstreamOutcome::protocol_error, "upstream response body too large");
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category())
      return finish(UpstreamOutcome::protocol_error, "invalid upstream response: " + ec.message());
    return finish(UpstreamOutcome::reset, "upstream connection error: " + ec.message());
  }

  // A cancelled exchange: its connection may hold half a request or response, so it is closed.
  void abandon() {
    pool_->forget(std::move(conn_));
    finish(UpstreamOutcome::reset, "cancelled");
  }

  void finish(UpstreamOutcome outcome, std::string error) {
    UpstreamResult result;
    result.outcome = outcome;
    result.error = std::move(error);
    result.reused_connection = reused_;
    complete(std::move(result));
  }

  void complete(UpstreamResult&& result) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(result));
  }

  ConnectionPool* pool_;
  std::shared_ptr<bool> alive_;
  Request& request_;
  Clock::time_point deadline_;
  ResultHandler done_;
  std::optional<io::Timer> wait_timer_;  // only while waiting for a connection
  std::unique_ptr<Connection> conn_;
  ::fusebox::http::PooledString head_;  // serialized request line and headers, kept for a retry
  std::optional<::fusebox::http::ResponseParser> parser_;
  bool waiting_ = false;
  bool reused_ = false;
  bool retried_stale_ = false;
  bool cancelled_ = false;
};

ConnectionPool::ConnectionPool(asio::io_context& ioc, BackendState& backend, PoolLimits limits)
    : ioc_(ioc),
      backend_(backend),
      limits_(limits),
      alive_(std::make_shared<bool>(true)),
      expiry_timer_(ioc.get_executor()) {
  if (limits_.max_connections == 0) limits_.max_connections = 1;
}

ConnectionPool::~ConnectionPool() {
  *alive_ = false;
  close_idle();
}

ConnectionPool::ExchangeHandle ConnectionPool::send(Request& request, Clock::time_point deadline,
                                                    ResultHandler done) {
  auto ex = std::allocate_shared<Exchange>(memory::PooledAllocator<Exchange>(), *this, request,
                                          deadline, std::move(done));
  if (auto conn = take_idle()) {
    ex->use(std::move(conn), /*reused=*/true);
  } else if (open_ < limits_.max_connections) {
    ex->connect_new();
  } else {
    waiters_.push_back(ex);
    ex->wait_for_connection();
  }
  return ex;
}

void ConnectionPool::cancel(const ExchangeHandle& handle) {
  if (auto ex = handle.lock()) ex->cancel();
}

namespace {
// True when the peer has closed (or sent unsolicited bytes on) an idle connection.
bool idle_connection_unusable(io::Socket& socket) {
  char byte;
  auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;   // orderly close
  if (n > 0) return true;    // data we never asked for
  return errno != EAGAIN && errno != EWOULDBLOCK;
}
}  // namespace

std::unique_ptr<ConnectionPool::Connection> ConnectionPool::take_idle() {
  auto now = Clock::now();
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    // The connection's watch has seen every event on its socket since the last answer was
    // read: one that saw none is open and clean, with no system call to ask; one that did
    // (the backend closed it, or sent bytes unasked) is checked. A close that has not reached
    // the event loop yet is caught by the stale-connection retry.
    if (now - conn->idle_since < limits_.idle_timeout &&
        (!conn->watch.ready() || !idle_connection_unusable(conn->socket))) {
      return conn;
    }
    forget(std::move(conn));
  }
  return nullptr;
}

void ConnectionPool::release(std::unique_ptr<Connection> conn) {
  while (!waiters_.empty()) {
    auto waiter = waiters_.front().lock();
    waiters_.pop_front();
    if (waiter && waiter->waiting()) return waiter->use(std::move(conn), /*reused=*/true);
  }
  conn->idle_since = Clock::now();
  idle_.push_back(std::move(conn));  // idle_ stays in the order the connections went idle
  if (!expiry_armed_) arm_expiry();
}

void ConnectionPool::arm_expiry() {
  if (idle_.empty()) return;
  expiry_armed_ = true;
  expiry_timer_.expires_at(idle_.front()->idle_since + limits_.idle_timeout);
  expiry_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!*alive) return;  // the pool is gone
    expiry_armed_ = false;
    if (!ec) expire_idle();
  });
}

void ConnectionPool::expire_idle() {
  const auto now = Clock::now();
  const auto fresh = std::find_if(idle_.begin(), idle_.end(), [&](const auto& conn) {
    return now - conn->idle_since < limits_.idle_timeout;
  });
  std::vector<std::unique_ptr<Connection>> expired(std::make_move_iterator(idle_.begin()),
                                                   std::make_move_iterator(fresh));
  idle_.erase(idle_.begin(), fresh);
  for (auto& conn : expired) forget(std::move(conn));
  arm_expiry();
}

void ConnectionPool::forget(std::unique_ptr<Connection> conn, bool free_slot) {
  if (!conn) return;
  beast::error_code ec;
  conn->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  conn->socket.close(ec);
  if (conn->counted) backend_.open_connections.fetch_sub(1, std::memory_order_relaxed);
  --open_;
  if (free_slot && *alive_) serve_waiter();
}

void ConnectionPool::serve_waiter() {
  while (!waiters_.empty() && open_ < limits_.max_connections) {
    auto waiter = waiters_.front().lock();
    waiters_.pop_front();
    if (waiter && waiter->waiting()) return waiter->connect_new();
  }
}

void ConnectionPool::close_idle() {
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    forget(std::move(conn));
  }
}

}  // namespace fusebox::upstream
