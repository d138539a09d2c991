#include "fusebox/server/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <optional>

#include "fusebox/http/json_error.h"
#include "fusebox/http/wire.h"

namespace fusebox::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;

constexpr std::size_t kFirstReadChunk = 4096;
// After answering an error, keep reading (and discarding) what the client still sends for a
// short while, so the error response is not destroyed by a TCP reset (nginx: lingering close).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerMaxBytes = 1 << 20;

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Framing rules beyond Beast's parser that close request-smuggling gaps (RFC 9112 6.3):
// one Content-Length only, never together with Transfer-Encoding, and "chunked" as the only
// transfer coding. Returns the reason, or empty when the header is acceptable.
std::string_view framing_problem(const Request& req) {
  std::size_t content_lengths = 0, transfer_encodings = 0;
  std::string_view te;
  for (const auto& field : req) {
    if (field.name() == http::field::content_length) ++content_lengths;
    if (field.name() == http::field::transfer_encoding) {
      ++transfer_encodings;
      te = field.value();
    }
  }
  if (content_lengths > 1) return "multiple Content-Length headers";
  if (content_lengths && transfer_encodings) return "both Content-Length and Transfer-Encoding";
  if (transfer_encodings > 1) return "multiple Transfer-Encoding headers";
  if (transfer_encodings && !iequals(trim(te), "chunked")) return "unsupported Transfer-Encoding";
  return {};
}

class HttpSession final : public TrackedSession,
                          public ResponseSink,
                          public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(io::Socket socket, const config::HttpListenerConfig& limits,
              RequestHandler& handler, SessionTracker& tracker)
      : stream_(std::move(socket)),
        read_timer_(stream_.get_executor()),
        limits_(limits),
        handler_(handler),
        tracker_(tracker) {
    beast::error_code ec;
    auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      connection_.client_ip = remote.address().to_string();
      connection_.client_port = remote.port();
    }
    stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    tracker_.add(this);
  }

  ~HttpSession() override { tracker_.remove(this); }

  void start() {
    if (tracker_.draining()) return close();
    read_request();
  }

  void drain() override {
    draining_ = true;
    if (state_ == State::idle) {
      beast::error_code ec;
      stream_.socket().cancel(ec);  // the pending idle read completes and closes
    }
  }

  void send(Response&& response) override {
    response_ = std::move(response);
    bool keep = keep_alive_ && !draining_ &&
                (limits_.max_requests_per_connection == 0 ||
                 served_ < limits_.max_requests_per_connection);
    response_.keep_alive(keep);
    response_.prepare_payload();
    write_response(keep);
  }

 private:
  enum class State { idle, reading, handling, writing, closing };

  void read_request() {
    if (draining_) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_request_headers));
    parser_->body_limit(limits_.max_request_body);
    if (buffer_.size() > 0) return read_header();  // pipelined request already buffered
    // Wait for the first bytes of the next request under the idle timeout; the header timeout
    // starts once the client begins to send.
    state_ = State::idle;
    stream_.expires_after(limits_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kFirstReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->on_first_bytes(ec, n);
                            });
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    if (ec) return close();  // idle timeout, client closed, or drain
    buffer_.commit(n);
    read_header();
  }

  void read_header() {
    state_ = State::reading;
    start_ = Clock::now();
    arm_read_deadline(limits_.request_header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->disarm_read_deadline();
                              self->on_header(ec);
                            });
  }

  // Header and body reads run under our own timer rather than the stream's timeout, because
  // the stream closes the socket when its timeout fires and a slow client is owed a 408.
  void arm_read_deadline(Clock::duration timeout) {
    stream_.expires_never();
    read_timed_out_ = false;
    read_timer_.expires_after(timeout);
    read_timer_.async_wait([self = shared_from_this(), generation = ++read_generation_](
                               beast::error_code ec) {
      if (ec || generation != self->read_generation_) return;
      self->read_timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  void disarm_read_deadline() {
    ++read_generation_;
    read_timer_.cancel();
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec, "request header");
    const auto& req = parser_->get();
    if (auto problem = framing_problem(req); !problem.empty()) {
      return reject(400, problem);
    }
    if (auto expect = req[http::field::expect]; !expect.empty()) {
      if (!iequals(trim(expect), "100-continue")) return reject(417, "unsupported Expect header");
      if (!parser_->is_done()) return send_continue();
    }
    read_body();
  }

  void send_continue() {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    stream_.expires_after(limits_.request_body_timeout);  // a stalled write just closes
    http::async_write(stream_, *cont,
                      [self = shared_from_this(), cont](beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        self->read_body();
                      });
  }

  void read_body() {
    if (parser_->is_done()) return dispatch_request();
    arm_read_deadline(limits_.request_body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->disarm_read_deadline();
                       if (ec) return self->on_read_error(ec, "request body");
                       self->dispatch_request();
                     });
  }

  void on_read_error(beast::error_code ec, std::string_view what) {
    if (read_timed_out_) {
      return reject(408, std::string(what) + " not received within the timeout");
    }
    if (ec == http::error::header_limit) return reject(431, "request header fields too large");
    if (ec == http::error::body_limit) return reject(413, "request body too large");
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == http::error::partial_message || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      return close();  // the client went away mid-request; nobody to answer
    }
    return reject(400, "malformed request: " + ec.message());
  }

  void dispatch_request() {
    state_ = State::handling;
    ++served_;
    auto request = parser_->release();
    parser_.reset();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    handler_.handle(std::move(request), connection_, start_, shared_from_this());
  }

  void write_response(bool keep) {
    state_ = State::writing;
    head_.clear();
    ::fusebox::http::append_response_head(response_, head_);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(response_.body())};
    stream_.expires_after(limits_.request_body_timeout);
    asio::async_write(stream_, buffers,
                      [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                        self->response_ = {};
                        if (ec) return self->close();
                        if (!keep) return self->linger_close();
                        self->read_request();
                      });
  }

  // Answers a request the session cannot pass on, then closes the connection.
  void reject(unsigned status, std::string_view reason) {
    std::string method, target;
    if (parser_ && parser_->is_header_done()) {
      method = std::string(parser_->get().method_string());
      target = std::string(parser_->get().target());
    }
    auto response = ::fusebox::http::json_error_response(status, reason, version_);
    response.keep_alive(false);
    RejectedRequest rejected{status, method, target, reason, response.body().size(), start_};
    handler_.on_rejected(connection_, rejected);
    parser_.reset();
    keep_alive_ = false;
    response_ = std::move(response);
    write_response(false);
  }

  void linger_close() {
    state_ = State::closing;
    beast::error_code ec;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(kLingerTime);
    buffer_.clear();
    discard_more();
  }

  void discard_more() {
    stream_.async_read_some(buffer_.prepare(16384), [self = shared_from_this()](
                                                        beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerMaxBytes) return self->close();
      self->discard_more();
    });
  }

  void close() {
    state_ = State::closing;
    beast::error_code ec;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  io::Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  std::string head_;  // serialized status line and headers of response_
  io::Timer read_timer_;
  std::uint64_t read_generation_ = 0;
  bool read_timed_out_ = false;
  const config::HttpListenerConfig& limits_;
  RequestHandler& handler_;
  SessionTracker& tracker_;
  ConnectionInfo connection_;
  State state_ = State::idle;
  Clock::time_point start_ = Clock::now();
  std::uint32_t served_ = 0;
  unsigned version_ = 11;
  std::size_t lingered_ = 0;
  bool keep_alive_ = true;
  bool draining_ = false;
};

}  // namespace

void start_http_session(io::Socket socket, const config::HttpListenerConfig& limits,
                        RequestHandler& handler, SessionTracker& tracker) {
  std::make_shared<HttpSession>(std::move(socket), limits, handler, tracker)->start();
}

}  // namespace fusebox::server
