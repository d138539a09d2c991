#include "fusebox/upstream/grpc_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <unordered_map>

#include "fusebox/common/adaptive_buffer.h"
#include "fusebox/common/address.h"
#include "fusebox/common/block_cache.h"
#include "fusebox/common/io.h"
#include "fusebox/common/read_watch.h"
#include "fusebox/h2/connection.h"
#include "fusebox/h2/grpc_framing.h"
#include "fusebox/h2/socket_output.h"

namespace fusebox::upstream {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// gRPC's mapping of an HTTP status that is not 200 (PROTOCOL-HTTP2.md, "HTTP to gRPC").
grpc::StatusCode code_for_http(unsigned status) {
  switch (status) {
    case 400:
      return grpc::StatusCode::INTERNAL;
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 403:
      return grpc::StatusCode::PERMISSION_DENIED;
    case 404:
      return grpc::StatusCode::UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::UNKNOWN;
  }
}

// A call that ended without an answer from the backend.
GrpcResult failed_result(metrics::UpstreamOutcome outcome, grpc::StatusCode code,
                         const std::string& why) {
  GrpcResult r;
  r.outcome = outcome;
  r.status = grpc::Status(code, why);
  r.error = why;
  return r;
}

bool is_status_field(std::string_view name) {
  return name.empty() || name.front() == ':' || name == "grpc-status" || name == "grpc-message" ||
         name == "content-type";
}

}  // namespace

class GrpcClient::Exchange {
 public:
  GrpcClient* client = nullptr;            // null once the client is gone
  GrpcResultHandler done;                  // empty once finished
  std::weak_ptr<Link> link;
  std::uint32_t stream = 0;
  Deadlines::iterator deadline_entry;
  bool has_deadline_entry = false;
  // The request, kept only while the call waits for the connection or a stream slot (the
  // payload shares the caller's bytes); a call sent at once is encoded from the caller's.
  h2::HeaderList headers;
  SharedBytes payload;
  // The answer so far.
  bool headers_seen = false;
  unsigned http_status = 0;
  std::string body;
};

class GrpcClient::Link final : public std::enable_shared_from_this<Link>,
                               private h2::Connection::Handler {
 public:
  explicit Link(GrpcClient& client)
      : client_(&client),
        socket_(client.ioc_.get_executor()),
        conn_(h2::Connection::Role::client, *this, options()),
        keepalive_timer_(client.ioc_) {}

  // New calls may go here.
  bool usable() const {
    return !closed_ && !conn_.failed() && !conn_.goaway_received() && !conn_.goaway_sent();
  }
  bool idle() const { return streams_.empty() && queued_.empty(); }

  void connect() {
    connecting_ = true;
    std::vector<tcp::endpoint> endpoints;
    const auto& backend = client_->backend_;
    for (const auto& ep : backend.resolved)
      endpoints.emplace_back(ep.address(), backend.endpoint.grpc_port);
    boost::system::error_code ec;
    auto literal = asio::ip::make_address(backend.endpoint.address, ec);
    if (endpoints.empty() && !ec) endpoints.emplace_back(literal, backend.endpoint.grpc_port);
    connect_timer_ = std::make_unique<asio::steady_timer>(client_->ioc_);
    connect_timer_->expires_after(client_->pool_.connect_timeout);
    connect_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || !self->connecting_) return;
      self->connect_failed("connect timeout");
    });
    if (!endpoints.empty()) return connect_to(std::move(endpoints));
    resolver_ = std::make_unique<tcp::resolver>(client_->ioc_);
    resolver_->async_resolve(
        backend.endpoint.address, std::to_string(backend.endpoint.grpc_port),
        [self = shared_from_this()](boost::system::error_code ec, tcp::resolver::results_type r) {
          if (!self->connecting_) return;
          if (ec) return self->connect_failed("cannot resolve: " + ec.message());
          std::vector<tcp::endpoint> found;
          for (const auto& e : r) found.push_back(e.endpoint());
          self->connect_to(std::move(found));
        });
  }

  // Sends the call now, or queues it (with copies of `headers` and `payload`) until the
  // connection is up or a stream slot frees.
  void submit(const std::shared_ptr<Exchange>& ex, h2::HeaderRefs headers,
              const SharedBytes& payload) {
    ex->link = weak_from_this();
    if (connecting_ || !conn_.can_open_stream()) {
      ex->headers = h2::owned(headers);
      ex->payload = payload;  // shares the bytes
      queued_.push_back(ex);
      return;
    }
    open(ex, headers, payload);
    flush();
  }

  void cancel(Exchange& ex) {
    if (ex.stream != 0) {
      conn_.reset_stream(ex.stream, h2::ErrorCode::cancel);
      streams_.erase(ex.stream);
      ex.stream = 0;
      open_queued();  // the freed stream slot may take a queued call, sent with the reset
      flush();
    } else {
      std::erase_if(queued_, [&](const auto& q) { return q.get() == &ex; });
    }
  }

  // Closes the connection; calls on it fail with `outcome` (none when the client is gone).
  void close(metrics::UpstreamOutcome outcome, const std::string& why) {
    if (closed_) return;
    closed_ = true;
    connecting_ = false;
    boost::system::error_code ec;
    socket_.close(ec);
    keepalive_timer_.cancel();
    if (connect_timer_) connect_timer_->cancel();
    if (resolver_) resolver_->cancel();
    auto streams = std::move(streams_);
    auto queued = std::move(queued_);
    if (client_ == nullptr) return;
    for (auto& [id, ex] : streams) fail(ex, outcome, grpc::StatusCode::UNAVAILABLE, why);
    for (auto& ex : queued) {
      fail(ex, metrics::UpstreamOutcome::connect_failure, grpc::StatusCode::UNAVAILABLE, why);
    }
  }

  void detach() { client_ = nullptr; }

 private:
  static h2::Connection::Options options() {
    h2::Connection::Options o;
    o.settings.initial_window_size = 4u << 20;
    // Large frames let a large message's payload be read straight into its buffer (see
    // h2::direct_read_size()); gRPC's library sends frames as large as the peer allows.
    o.settings.max_frame_size = 1u << 20;
    o.settings.max_header_list_size = 64u << 10;
    o.connection_window = 16u << 20;
    return o;
  }

  void connect_to(std::vector<tcp::endpoint> endpoints) {
    asio::async_connect(
        socket_, endpoints,
        [self = shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
          if (!self->connecting_) return;
          if (ec) return self->connect_failed("cannot connect: " + ec.message());
          self->on_connected();
        });
  }

  void connect_failed(const std::string& why) {
    if (client_ != nullptr) client_->backend_.reachable.store(false, std::memory_order_relaxed);
    close(metrics::UpstreamOutcome::connect_failure, why);
    if (client_ != nullptr) client_->run_finished();
  }

  void on_connected() {
    connecting_ = false;
    connect_timer_->cancel();
    client_->backend_.reachable.store(true, std::memory_order_relaxed);
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);
    conn_.start();
    open_queued();
    flush();
    read();
  }

  void open(const std::shared_ptr<Exchange>& ex, h2::HeaderRefs headers,
            const SharedBytes& payload) {
    auto id = conn_.open_stream(headers, false);
    ex->stream = id;
    streams_.emplace(id, ex);
    h2::send_grpc_message(conn_, id, payload, true);
    last_activity_ = std::chrono::steady_clock::now();
    arm_keepalive();
  }

  void open_queued() {
    while (!queued_.empty() && !connecting_ && conn_.can_open_stream()) {
      auto ex = std::move(queued_.front());
      queued_.pop_front();
      if (!ex->done) continue;
      open(ex, h2::views(ex->headers), ex->payload);
      ex->headers.clear();
      ex->payload = {};
    }
  }

  void read() {
    if (read_directly()) return;
    watch_.async_read_some(asio::buffer(read_buf_.data(), read_buf_.size()),
                           [self = shared_from_this()](boost::system::error_code ec,
                                                       std::size_t n) { self->on_read(ec, n); });
  }

  // The rest of a large DATA frame goes straight into its call's answer buffer, not through the
  // read buffer.
  bool read_directly() {
    const auto id = conn_.pending_data_stream();
    auto it = id != 0 ? streams_.find(id) : streams_.end();
    if (it == streams_.end()) return false;
    const auto n = h2::direct_read_size(conn_, it->second->body);
    if (n == 0) return false;
    watch_.async_read_some(
        asio::buffer(direct_.lend(it->second->body, n), n),
        [self = shared_from_this(), id](boost::system::error_code ec, std::size_t got) {
          auto it = self->streams_.find(id);
          auto* owner = it != self->streams_.end() ? &it->second->body : nullptr;
          self->received(ec, self->direct_.give_back(owner, got));
        });
    return true;
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (!ec) read_buf_.filled(n);
    received(ec, read_buf_.view(ec ? 0 : n));
  }

  void received(boost::system::error_code ec, std::string_view bytes) {
    if (closed_ || client_ == nullptr) return;
    if (ec) {
      close(metrics::UpstreamOutcome::reset, "upstream connection lost: " + ec.message());
      return client_->run_finished();
    }
    last_activity_ = std::chrono::steady_clock::now();
    ping_outstanding_ = false;
    if (!conn_.receive(bytes)) {
      flush();
      close(metrics::UpstreamOutcome::protocol_error,
            "HTTP/2 error from the backend: " + conn_.error());
      return client_->run_finished();
    }
    // Answers go out before anything else: the next read is speculative, and usually finds
    // nothing (a system call on the answer's path otherwise).
    client_->run_finished();
    open_queued();
    if (idle()) read_buf_.relax();
    flush();
    read();
  }

  void flush() {
    if (closed_ || writer_.writing() || connecting_ || !conn_.has_output()) return;
    writer_.write(conn_, socket_, [self = shared_from_this()](boost::system::error_code ec) {
      if (self->closed_ || self->client_ == nullptr) return;
      if (ec) {
        self->close(metrics::UpstreamOutcome::reset, "upstream connection lost: " + ec.message());
        return self->client_->run_finished();
      }
      self->flush();
    });
  }

  // While calls are in flight, a connection silent for keepalive_time gets a PING; no answer
  // within keepalive_timeout closes it.
  void arm_keepalive() {
    if (keepalive_armed_ || client_->pool_.grpc.keepalive_time.count() <= 0) return;
    wait_keepalive(std::chrono::steady_clock::now() + client_->pool_.grpc.keepalive_time);
  }

  void wait_keepalive(std::chrono::steady_clock::time_point at) {
    keepalive_armed_ = true;
    keepalive_timer_.expires_at(at);
    keepalive_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      self->keepalive_armed_ = false;
      if (!ec) self->on_keepalive();
    });
  }

  void on_keepalive() {
    if (closed_ || client_ == nullptr || streams_.empty()) return;
    const auto& grpc = client_->pool_.grpc;
    auto now = std::chrono::steady_clock::now();
    if (ping_outstanding_) {
      if (now - ping_sent_ >= grpc.keepalive_timeout) {
        close(metrics::UpstreamOutcome::reset,
              "upstream connection lost: keepalive ping unanswered");
        return client_->run_finished();
      }
    } else if (now - last_activity_ >= grpc.keepalive_time) {
      ping_outstanding_ = true;
      ping_sent_ = now;
      conn_.ping(0x66757365626f78);  // "fusebox"
      flush();
    }
    wait_keepalive(ping_outstanding_ ? ping_sent_ + grpc.keepalive_timeout
                                     : last_activity_ + grpc.keepalive_time);
  }

  void fail(const std::shared_ptr<Exchange>& ex, metrics::UpstreamOutcome outcome,
            grpc::StatusCode code, const std::string& why) {
    ex->stream = 0;
    client_->finish(ex, failed_result(outcome, code, why));
  }

  // ---- h2::Connection::Handler ---------------------------------------------------------

  void on_headers(std::uint32_t id, h2::HeaderList& headers, bool end_stream) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    auto ex = it->second;
    if (!ex->headers_seen) {
      ex->headers_seen = true;
      for (const auto& h : headers) {
        if (h.name == ":status")
          ex->http_status = static_cast<unsigned>(std::atoi(h.value.c_str()));
      }
      if (!end_stream) return;  // trailers come later
    }
    if (!end_stream) return;
    streams_.erase(it);
    complete(ex, headers);
  }

  void on_data(std::uint32_t id, std::string_view data, bool end_stream) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    auto ex = it->second;
    const auto limit = client_->pool_.grpc.max_message_bytes;
    h2::append_message_data(ex->body, data, limit);
    if (ex->body.size() > h2::kMessagePrefix + limit) {
      conn_.reset_stream(id, h2::ErrorCode::cancel);
      streams_.erase(it);
      fail(ex, metrics::UpstreamOutcome::protocol_error, grpc::StatusCode::RESOURCE_EXHAUSTED,
           "the backend's answer is larger than max_message_bytes (" + std::to_string(limit) + ")");
      return;
    }
    if (end_stream) {
      streams_.erase(it);
      h2::HeaderList none;
      complete(ex, none);
    }
  }

  void on_stream_reset(std::uint32_t id, h2::ErrorCode code) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    auto ex = it->second;
    streams_.erase(it);
    if (code == h2::ErrorCode::refused_stream) {
      return fail(ex, metrics::UpstreamOutcome::connect_failure, grpc::StatusCode::UNAVAILABLE,
                  "the backend refused the call before processing it");
    }
    fail(ex, metrics::UpstreamOutcome::reset, grpc::StatusCode::UNAVAILABLE,
         std::string("stream reset by the backend (") + h2::to_string(code) + ")");
  }

  void on_headers_too_large(std::uint32_t id) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    auto ex = it->second;
    streams_.erase(it);
    fail(ex, metrics::UpstreamOutcome::protocol_error, grpc::StatusCode::RESOURCE_EXHAUSTED,
         "the backend's metadata is too large");
  }

  void on_ping_ack(std::uint64_t) override { ping_outstanding_ = false; }

  // The call's answer is complete: `trailers` are the last header block (the only one for a
  // trailers-only answer; empty when the stream ended without trailers).
  void complete(const std::shared_ptr<Exchange>& ex, const h2::HeaderList& trailers) {
    GrpcResult r;
    std::optional<int> code;
    std::string message;
    for (const auto& h : trailers) {
      if (h.name == "grpc-status") {
        code = std::atoi(h.value.c_str());
      } else if (h.name == "grpc-message") {
        message = h2::percent_decode(h.value);
      } else if (!is_status_field(h.name)) {
        r.trailing_metadata.emplace_back(h.name, h.value);
      }
    }
    if (ex->http_status != 200) {
      auto grpc_code = code_for_http(ex->http_status);
      r.status =
          grpc::Status(grpc_code, "the backend answered HTTP " + std::to_string(ex->http_status));
      r.outcome = http_status_for(grpc_code) >= 500 ? metrics::UpstreamOutcome::http_5xx
                                                    : metrics::UpstreamOutcome::success;
    } else if (!code) {
      r.status =
          grpc::Status(grpc::StatusCode::INTERNAL, "the backend's answer has no grpc-status");
      r.outcome = metrics::UpstreamOutcome::protocol_error;
      r.error = r.status.error_message();
    } else if (*code != 0) {
      auto c = static_cast<grpc::StatusCode>(*code);
      r.status = grpc::Status(c, message);
      if (c == grpc::StatusCode::DEADLINE_EXCEEDED) {
        r.outcome = metrics::UpstreamOutcome::timeout;
        r.error = "upstream request timeout";
      } else {
        r.outcome = http_status_for(c) >= 500 ? metrics::UpstreamOutcome::http_5xx
                                              : metrics::UpstreamOutcome::success;
      }
    } else {
      auto m = h2::read_grpc_message(ex->body, client_->pool_.grpc.max_message_bytes);
      if (m.status != h2::GrpcMessage::Status::complete || m.consumed != ex->body.size()) {
        r.status = grpc::Status(grpc::StatusCode::INTERNAL,
                                "the backend's answer is not one whole uncompressed message");
        r.outcome = metrics::UpstreamOutcome::protocol_error;
        r.error = r.status.error_message();
      } else {
        r.response = SharedBytes(std::move(ex->body), h2::kMessagePrefix, m.message.size());
        r.outcome = metrics::UpstreamOutcome::success;
      }
    }
    ex->stream = 0;
    client_->finish(ex, std::move(r));
  }

  GrpcClient* client_;
  io::Socket socket_;
  io::ReadWatch watch_{socket_};  // every read of socket_ goes through it
  h2::Connection conn_;
  using StreamEntry = std::pair<const std::uint32_t, std::shared_ptr<Exchange>>;
  std::unordered_map<std::uint32_t, std::shared_ptr<Exchange>, std::hash<std::uint32_t>,
                     std::equal_to<>, memory::PooledAllocator<StreamEntry>>
      streams_;  // nodes from the thread's block cache (one per call)
  std::deque<std::shared_ptr<Exchange>> queued_;
  io::AdaptiveReadBuffer read_buf_;
  h2::DirectRead direct_;
  io::OutputWriter writer_;
  std::unique_ptr<asio::steady_timer> connect_timer_;
  std::unique_ptr<tcp::resolver> resolver_;
  asio::steady_timer keepalive_timer_;
  std::chrono::steady_clock::time_point last_activity_{};
  std::chrono::steady_clock::time_point ping_sent_{};
  bool keepalive_armed_ = false;
  bool ping_outstanding_ = false;
  bool connecting_ = false;
  bool closed_ = false;
};

GrpcClient::GrpcClient(boost::asio::io_context& ioc, BackendState& backend,
                       const config::PoolConfig& pool)
    : ioc_(ioc),
      backend_(backend),
      pool_(pool),
      authority_(grpc_target(backend.endpoint)),
      user_agent_("fusebox/" FUSEBOX_VERSION),
      alive_(std::make_shared<bool>(true)) {}

GrpcClient::~GrpcClient() {
  // Calls in flight are dropped without their callbacks: the worker is going away. They forget
  // this client first, so that a callback destroyed on the way (a pipeline call cancelling its
  // other attempts) finds nothing to cancel here.
  for (auto& [at, weak] : deadlines_) {
    if (auto ex = weak.lock()) ex->client = nullptr;
  }
  auto drop = [](const std::shared_ptr<Link>& link) {
    if (!link) return;
    link->detach();
    link->close(metrics::UpstreamOutcome::reset, "shutting down");
  };
  drop(link_);
  for (auto& l : retiring_) drop(l);
  if (deadline_timer_) deadline_timer_->cancel();
}

void GrpcClient::close_idle_retiring() {
  std::erase_if(retiring_, [](const auto& l) {
    if (!l->idle()) return false;
    l->close(metrics::UpstreamOutcome::reset, "closed while idle");
    return true;
  });
}

GrpcClient::Link& GrpcClient::usable_link() {
  if (link_ && !link_->usable()) retiring_.push_back(std::move(link_));
  close_idle_retiring();
  if (!link_) {
    link_ = std::make_shared<Link>(*this);
    link_->connect();
  }
  return *link_;
}

GrpcClient::ExchangeHandle GrpcClient::send(const GrpcRequest& request, TimePoint deadline,
                                            GrpcResultHandler done) {
  auto ex = std::allocate_shared<Exchange>(memory::PooledAllocator<Exchange>());
  ex->client = this;
  ex->done = std::move(done);
  auto left = deadline - std::chrono::steady_clock::now();
  const auto timeout =
      h2::format_grpc_timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(left));
  // The header block views `request`, this client and `timeout` (reused storage: no
  // allocation per call once it has grown).
  auto& h = header_scratch_;
  h.clear();
  h.push_back({":method", "POST"});
  h.push_back({":scheme", "http"});
  h.push_back({":path", request.method});
  h.push_back({":authority", authority_});
  h.push_back({"content-type", "application/grpc"});
  h.push_back({"te", "trailers"});
  h.push_back({"user-agent", user_agent_});
  h.push_back({"grpc-timeout", timeout});
  for (const auto& [key, value] : request.metadata) h.push_back({key, value});
  if (!request.request_id.empty()) h.push_back({"x-request-id", request.request_id});
  ex->deadline_entry = deadlines_.emplace(deadline, ex);
  ex->has_deadline_entry = true;
  arm_deadlines();
  usable_link().submit(ex, h, request.payload);
  return ex;
}

void GrpcClient::cancel(const ExchangeHandle& handle) {
  auto ex = handle.lock();
  if (!ex || !ex->done || ex->client == nullptr) return;
  if (auto link = ex->link.lock()) link->cancel(*ex);
  ex->client->finish(
      ex, failed_result(metrics::UpstreamOutcome::reset, grpc::StatusCode::CANCELLED, "cancelled"));
  ex->client->post_finished();  // never inside the caller's cancel()
}

void GrpcClient::close_idle() {
  if (link_ && link_->idle()) retiring_.push_back(std::move(link_));
  close_idle_retiring();
}

void GrpcClient::finish(const std::shared_ptr<Exchange>& ex, GrpcResult&& result) {
  if (!ex->done) return;
  if (ex->has_deadline_entry) {
    deadlines_.erase(ex->deadline_entry);
    ex->has_deadline_entry = false;
  }
  finished_.emplace_back(std::move(ex->done), std::move(result));
  ex->done = nullptr;
}

void GrpcClient::post_finished() {
  if (finished_posted_) return;
  finished_posted_ = true;
  asio::post(ioc_, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    finished_posted_ = false;
    run_finished();
  });
}

void GrpcClient::run_finished() {
  // A done callback may start new calls (a retry), which may finish and append here.
  // The two vectors trade places, so their storage is reused rather than allocated anew.
  while (!finished_.empty()) {
    auto batch = std::move(finished_);
    finished_ = std::move(spare_finished_);  // empty: cleared before it was put aside
    for (auto& [done, result] : batch) done(std::move(result));
    batch.clear();
    spare_finished_ = std::move(batch);
  }
}

void GrpcClient::arm_deadlines() {
  if (deadlines_.empty()) return;
  auto earliest = deadlines_.begin()->first;
  if (earliest >= timer_at_) return;
  if (!deadline_timer_) deadline_timer_ = std::make_unique<asio::steady_timer>(ioc_);
  timer_at_ = earliest;
  deadline_timer_->expires_at(earliest);
  deadline_timer_->async_wait(
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (alive.expired() || ec) return;
        timer_at_ = TimePoint::max();
        on_deadline_timer();
      });
}

void GrpcClient::on_deadline_timer() {
  auto now = std::chrono::steady_clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto ex = deadlines_.begin()->second.lock();
    deadlines_.erase(deadlines_.begin());
    if (!ex) continue;
    ex->has_deadline_entry = false;
    if (!ex->done) continue;
    if (auto link = ex->link.lock()) link->cancel(*ex);
    finish(ex, failed_result(metrics::UpstreamOutcome::timeout, grpc::StatusCode::DEADLINE_EXCEEDED,
                             "upstream request timeout"));
  }
  arm_deadlines();
  run_finished();
}

}  // namespace fusebox::upstream
