#pragma once
// Downstream HTTP/1.1 connections (Boost.Beast). One session object per connection, owned by
// the completion handlers in flight (shared_from_this). Requests on a connection are read and
// answered one at a time, so a pipelining client is served in order with bounded buffering.
//
// A keep-alive connection waiting for its next request holds only its socket, one timer and
// the session object (a few hundred bytes): the read buffer, parser and response it uses while
// a request is read and answered (RequestBuffers) go back to its worker's SessionTracker, which
// lends them to the next request of any connection, as nginx and HAProxy release their buffers
// on idle connections. One exception saves a system call per request on busy connections: a
// connection its client has reused waits for the next request with a read into its buffers
// (Asio queues it without an epoll_ctl), for at most the shortest configured timeout; then it
// gives them back and waits without.
//
// The session enforces the protocol limits (header size 431, body size 413, slow clients 408,
// malformed or ambiguous framing 400) and hands well-formed requests to a RequestHandler.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusebox/common/io.h"
#include "fusebox/config/config.h"
#include "fusebox/http/message.h"

namespace fusebox::server {

namespace http = boost::beast::http;
using Request = ::fusebox::http::Request;
using Response = ::fusebox::http::Response;
using Clock = std::chrono::steady_clock;

struct ConnectionInfo {
  std::string client_ip;
  std::uint16_t client_port = 0;
};

// Where a handler delivers its answer. Must be used on the session's thread, exactly once per
// handled request.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void send(Response&& response) = 0;
};

// A request the session answered by itself, before any handler saw it.
struct RejectedRequest {
  unsigned status = 0;
  std::string_view method;   // empty when the request line was unreadable
  std::string_view target;
  std::string_view reason;
  std::uint64_t bytes_sent = 0;
  Clock::time_point start;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Runs on the session's thread. The handler owns `request` and must answer through `sink`.
  virtual void handle(Request&& request, const ConnectionInfo& connection, Clock::time_point start,
                      std::shared_ptr<ResponseSink> sink) = 0;
  // Records (metrics, access log) a request the session rejected itself.
  virtual void on_rejected(const ConnectionInfo& connection, const RejectedRequest& rejected) = 0;
};

// A session as its worker sees it: something that can be asked to finish and close.
class TrackedSession {
 public:
  virtual ~TrackedSession() = default;
  // Closes now if waiting for a request; otherwise after the current response.
  virtual void drain() = 0;

 private:
  friend class SessionTracker;
  // The tracker's list (in the session: no allocation per connection).
  TrackedSession* prev_ = nullptr;
  TrackedSession* next_ = nullptr;
};

// The working memory of one request in a session (defined in http_session.cc).
struct RequestBuffers;
struct RequestBuffersDeleter {
  void operator()(RequestBuffers* buffers) const;
};
using RequestBuffersPtr = std::unique_ptr<RequestBuffers, RequestBuffersDeleter>;

// The sessions of one worker thread (single-threaded, no lock).
class SessionTracker {
 public:
  // Called after a session was added or removed (e.g. to update gauges, resume accepting).
  using Hook = std::function<void(int delta)>;
  explicit SessionTracker(Hook on_change) : on_change_(std::move(on_change)) {}

  // Request buffers for a session starting to read a request: a spare set when there is one
  // (no allocation while the worker's busy connections stay below kSpareBuffers), else new.
  RequestBuffersPtr take_buffers();
  // Takes back the buffers of a session going idle or away: emptied and kept as a spare while
  // fewer than kSpareBuffers are, freed otherwise.
  void give_back(RequestBuffersPtr buffers);
  static constexpr std::size_t kSpareBuffers = 64;

  void add(TrackedSession* s) {
    s->prev_ = nullptr;
    s->next_ = first_;
    if (first_) first_->prev_ = s;
    first_ = s;
    ++count_;
    on_change_(+1);
  }
  void remove(TrackedSession* s) {
    (s->prev_ ? s->prev_->next_ : first_) = s->next_;
    if (s->next_) s->next_->prev_ = s->prev_;
    s->prev_ = s->next_ = nullptr;
    --count_;
    on_change_(-1);
  }
  // Asks every session to finish; new sessions are drained at once.
  void drain_all() {
    draining_ = true;
    std::vector<TrackedSession*> all;  // a drain may close (and remove) a session
    all.reserve(count_);
    for (auto* s = first_; s; s = s->next_) all.push_back(s);
    for (auto* s : all) s->drain();
  }
  bool draining() const { return draining_; }
  // The first phase of a drain (drain.delay): sessions keep serving, but every response says
  // `Connection: close`, so clients and proxies move their next requests elsewhere.
  void close_after_response() { closing_ = true; }
  bool closing() const { return closing_ || draining_; }
  std::size_t size() const { return count_; }

 private:
  Hook on_change_;
  TrackedSession* first_ = nullptr;
  std::size_t count_ = 0;
  std::vector<RequestBuffersPtr> spare_buffers_;
  bool draining_ = false;
  bool closing_ = false;
};

// Starts serving `socket` (already bound to its worker's executor). Must be called on that
// worker's thread. `limits`, `handler` and `tracker` must outlive the session.
void start_http_session(io::Socket socket,
                        const config::HttpListenerConfig& limits, RequestHandler& handler,
                        SessionTracker& tracker);

}  // namespace fusebox::server
