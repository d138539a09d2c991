#include "fusebox/server/http_session.h"

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <optional>

#include "fusebox/common/lazy_deadline.h"
#include "fusebox/common/read_watch.h"
#include "fusebox/common/uninitialized_resize.h"
#include "fusebox/http/feed.h"
#include "fusebox/http/json_error.h"
#include "fusebox/http/wire.h"

namespace fusebox::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;

constexpr std::size_t kFirstReadChunk = 4096;
constexpr std::size_t kBodyReadChunk = 64 * 1024;  // read size for large request bodies
// Bodies of a known length from this size on are read past the parser (read_body_directly).
constexpr std::size_t kDirectBodyMin = 16 * 1024;
// The most a directly read body waits to have arrived before it is read (SO_RCVLOWAT).
constexpr std::size_t kBodyPiece = 256 * 1024;
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

}  // namespace

// What a session needs only while it reads and answers a request.
struct RequestBuffers {
  beast::flat_buffer buffer;
  std::optional<::fusebox::http::RequestParser> parser;
  Request request;  // a request whose large body is read past the parser (read_body_directly)
  Response response;
  std::string head;  // serialized status line and headers of `response`
};

void RequestBuffersDeleter::operator()(RequestBuffers* buffers) const { delete buffers; }

RequestBuffersPtr SessionTracker::take_buffers() {
  if (spare_buffers_.empty()) {
    RequestBuffersPtr buffers(new RequestBuffers);
    buffers->buffer.reserve(kFirstReadChunk);  // most requests arrive whole in the first read
    return buffers;
  }
  RequestBuffersPtr buffers = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  return buffers;
}

void SessionTracker::give_back(RequestBuffersPtr buffers) {
  if (!buffers || spare_buffers_.size() >= kSpareBuffers) return;  // freed here
  buffers->parser.reset();
  buffers->request = {};
  buffers->response = {};
  buffers->head.clear();
  buffers->buffer.clear();
  // A large header or a lingering close grew them: keep only the usual sizes.
  if (buffers->buffer.capacity() > kFirstReadChunk) {
    buffers->buffer.shrink_to_fit();
    buffers->buffer.reserve(kFirstReadChunk);
  }
  if (buffers->head.capacity() > kFirstReadChunk) buffers->head.shrink_to_fit();
  if (spare_buffers_.capacity() == 0) spare_buffers_.reserve(kSpareBuffers);
  spare_buffers_.push_back(std::move(buffers));
}

namespace {

class HttpSession final : public TrackedSession,
                          public ResponseSink,
                          public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(io::Socket socket, const config::HttpListenerConfig& limits,
              RequestHandler& handler, SessionTracker& tracker)
      : socket_(std::move(socket)),
        deadline_(socket_.get_executor(), shortest_timeout(limits),
                  [this] {
                    // The pending operation ends with operation_aborted; a read that timed
                    // out is owed a 408.
                    beast::error_code ignored;
                    socket_.cancel(ignored);
                  }),
        limits_(limits),
        handler_(handler),
        tracker_(tracker) {
    beast::error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) {
      connection_.client_ip = remote.address().to_string();
      connection_.client_port = remote.port();
    }
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // the direct body reads must never block the worker
    tracker_.add(this);
  }

  // Buffers still held here (a session dropped with its worker's io_context) are freed, not
  // given back: the tracker may be going too.
  ~HttpSession() override { tracker_.remove(this); }

  // A connection accepted while draining serves the request its client has (most likely)
  // already sent, with `Connection: close`: closing it unread would fail that request.
  void start() {
    if (tracker_.draining()) draining_ = true;
    read_request();
  }

  void drain() override {
    draining_ = true;
    if (state_ == State::idle && served_ == 0) {
      // Not used yet: its client may be sending its first request right now. Give it a moment.
      arm_deadline(first_request_grace());
      return;
    }
    if (state_ == State::idle) {
      beast::error_code ec;
      socket_.cancel(ec);  // the pending idle wait completes and closes
    }
  }

  void send(Response&& response) override {
    auto& out = buffers_->response;
    out = std::move(response);
    bool keep = keep_alive_ && !draining_ && !tracker_.closing() &&
                (limits_.max_requests_per_connection == 0 ||
                 served_ < limits_.max_requests_per_connection);
    out.keep_alive(keep);
    ::fusebox::http::frame_payload(out);
    write_response(keep);
  }

 private:
  enum class State : std::uint8_t { idle, reading, handling, writing, closing };

  // The timer never sleeps longer than this, so a later deadline never needs it moved earlier.
  static Clock::duration shortest_timeout(const config::HttpListenerConfig& limits) {
    return std::min({limits.request_header_timeout, limits.request_body_timeout,
                     limits.idle_timeout});
  }

  // How long a connection that has served nothing waits for its first request once draining.
  Clock::duration first_request_grace() const {
    return std::min<Clock::duration>(limits_.idle_timeout, std::chrono::seconds(1));
  }

  void read_request() {
    if (draining_ && served_ > 0) return close();
    if (buffers_ && buffers_->buffer.size() > 0) return start_request();  // pipelined request
    auto now = Clock::now();
    idle_until_ = now + (draining_ ? first_request_grace() : limits_.idle_timeout);
    if (buffers_ && served_ >= 2 && !draining_ && buffers_->buffer.capacity() <= kFirstReadChunk) {
      return wait_with_buffers(now);
    }
    wait_without_buffers();
  }

  // A connection its client has reused is likely to be reused again soon. It keeps its buffers
  // while idle for a while (the shortest configured timeout; the deadline's timer then never
  // needs moving) and waits for the next request with a read into them: the request is read in
  // the wake-up that signals it, where a wait would need a second turn of the loop. After that
  // while, on a connection used once, or with buffers a large request grew, the buffers go back
  // (wait_without_buffers): idle connections hold none. Neither wait makes a system call (the
  // socket's io::ReadWatch).
  void wait_with_buffers(Clock::time_point now) {
    state_ = State::idle;
    deadline_.expire_at(std::min(idle_until_, now + shortest_timeout(limits_)));
    prepare_parser();
    parse(::fusebox::http::Until::header);
  }

  // Waits for the first bytes of the next request under the idle timeout, without buffers; the
  // header timeout starts once the client begins to send.
  void wait_without_buffers() {
    tracker_.give_back(std::move(buffers_));
    state_ = State::idle;
    deadline_.expire_at(idle_until_);
    watch_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->disarm_deadline();
      if (ec) return self->close();  // idle timeout, drain, or an error
      self->start_request();
    });
  }

  // An idle wait with buffers ended without a byte of a next request: after its while, the
  // connection waits on without buffers; on a drain, the idle timeout or an error it closes.
  void end_idle_read(beast::error_code ec) {
    if (ec == asio::error::operation_aborted && !draining_ && deadline_.expired() &&
        Clock::now() < idle_until_) {
      return wait_without_buffers();
    }
    close();
  }

  void start_request() {
    if (!buffers_) buffers_ = tracker_.take_buffers();
    prepare_parser();
    begin_reading(Clock::now());
    parse(::fusebox::http::Until::header);
  }

  void prepare_parser() {
    auto& parser = buffers_->parser.emplace();
    parser.header_limit(static_cast<std::uint32_t>(limits_.max_request_headers));
    parser.body_limit(limits_.max_request_body);
  }

  // The request has begun: its time starts, and its header must arrive within the timeout.
  void begin_reading(Clock::time_point now) {
    state_ = State::reading;
    start_ = now;
    deadline_.expire_at(now + limits_.request_header_timeout);
  }

  // Parses what the buffer holds and reads more until the parser has `until` (see
  // http/feed.h); then goes on to on_header or dispatch_request. An idle connection's wait
  // with buffers is this read too: its first bytes begin the request.
  void parse(::fusebox::http::Until until) {
    auto& b = *buffers_;
    beast::error_code ec;
    if (::fusebox::http::feed(*b.parser, b.buffer, until, ec)) {
      disarm_deadline();
      if (until == ::fusebox::http::Until::header) return on_header();
      return dispatch_request(b.parser->release());
    }
    if (ec) {
      disarm_deadline();
      return on_read_error(ec, what_is_read(until));
    }
    watch_.async_read_some(::fusebox::http::read_space(b.buffer),
                           [self = shared_from_this(), until](beast::error_code ec, std::size_t n) {
                             self->on_read(until, ec, n);
                           });
  }

  void on_read(::fusebox::http::Until until, beast::error_code ec, std::size_t n) {
    if (state_ == State::idle) {
      if (ec || n == 0) return end_idle_read(ec);
      begin_reading(Clock::now());
    }
    if (ec == asio::error::eof) ec = ::fusebox::http::at_end_of_stream(*buffers_->parser, until);
    if (ec) {
      disarm_deadline();
      return on_read_error(ec, what_is_read(until));
    }
    buffers_->buffer.commit(n);
    parse(until);
  }

  static std::string_view what_is_read(::fusebox::http::Until until) {
    return until == ::fusebox::http::Until::header ? "request header" : "request body";
  }

  // Every wait on the socket (idle, reads, writes, lingering) runs under one deadline: when it
  // passes the socket's operations are cancelled, and a read that timed out is owed a 408.
  // Setting and clearing it costs no timer operation (io::LazyDeadline), and its pending wait
  // does not keep the session alive.
  void arm_deadline(Clock::duration timeout) { deadline_.expire_after(timeout); }
  void disarm_deadline() { deadline_.clear(); }

  void on_header() {
    auto& parser = *buffers_->parser;
    const auto& req = parser.get();
    if (auto problem = framing_problem(req); !problem.empty()) {
      return reject(400, problem);
    }
    if (auto expect = req[http::field::expect]; !expect.empty()) {
      if (!iequals(trim(expect), "100-continue")) return reject(417, "unsupported Expect header");
      if (!parser.is_done()) return send_continue();
    }
    read_body();
  }

  void send_continue() {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    arm_deadline(limits_.request_body_timeout);  // a stalled write just closes
    http::async_write(socket_, *cont,
                      [self = shared_from_this(), cont](beast::error_code ec, std::size_t) {
                        self->disarm_deadline();
                        if (ec) return self->close();
                        self->read_body();
                      });
  }

  void read_body() {
    auto& parser = *buffers_->parser;
    auto& buffer = buffers_->buffer;
    const auto length = parser.content_length();
    if (!parser.is_done() && length && *length >= kDirectBodyMin && *length > buffer.size()) {
      return read_body_directly(*length);
    }
    // Most bodies came with their header: no deadline, no read.
    beast::error_code ec;
    if (::fusebox::http::feed(parser, buffer, ::fusebox::http::Until::message, ec)) {
      return dispatch_request(parser.release());
    }
    if (ec) return on_read_error(ec, "request body");
    // A read takes at most the buffer's free capacity, and the parser moves body bytes out as
    // they come, so a large body read through the small first-read buffer would take thousands
    // of reads. It gets a larger buffer (trimmed again when the buffers go back to the spare
    // pool).
    if (!length || *length > buffer.capacity() - buffer.size()) {
      buffer.reserve(buffer.size() + std::min<std::uint64_t>(length.value_or(kBodyReadChunk),
                                                             kBodyReadChunk));
    }
    arm_deadline(limits_.request_body_timeout);
    parse(::fusebox::http::Until::message);
  }

  // A large body of known length (the parser already checked it against the limit) is read
  // straight into the request's body string: its bytes are written once, by the kernel, where
  // Beast's string body would zero-fill every chunk and copy it in from the read buffer. The
  // socket's receive low-water mark makes each wake-up bring a large piece (up to kBodyPiece)
  // rather than the tens of kilobytes that happen to have arrived, saving most reads and
  // wake-ups.
  void read_body_directly(std::uint64_t length) {
    auto& b = *buffers_;
    b.request = b.parser->release();  // the header; the parser is done with
    b.parser.reset();
    auto& body = b.request.body();
    resize_uninitialized(body, length);  // every byte is written by the reads below
    body_read_ = asio::buffer_copy(asio::buffer(body), b.buffer.data());
    b.buffer.consume(body_read_);
    arm_deadline(limits_.request_body_timeout);
    read_body_piece();
  }

  // Takes what has arrived of the body without waiting (often all of it), then waits for the
  // next piece. The socket is in non-blocking mode: a read finding nothing never blocks.
  void read_body_piece() {
    auto& body = buffers_->request.body();
    beast::error_code ec;
    if (body_read_ < body.size()) {
      body_read_ +=
          watch_.read_now(asio::buffer(body.data() + body_read_, body.size() - body_read_), ec);
      if (ec == asio::error::would_block) ec = {};
    }
    if (ec || body_read_ == body.size()) {
      disarm_deadline();
      set_receive_low_water(1);
      if (ec) return on_read_error(ec, "request body");
      return dispatch_request(std::move(buffers_->request));
    }
    set_receive_low_water(std::min(body.size() - body_read_, kBodyPiece));
    watch_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) return self->read_body_piece();
      self->disarm_deadline();
      self->set_receive_low_water(1);
      self->on_read_error(ec, "request body");
    });
  }

  void set_receive_low_water(std::size_t bytes) {
    if (bytes == receive_low_water_) return;
    receive_low_water_ = bytes;
    beast::error_code ignored;
    socket_.set_option(asio::socket_base::receive_low_watermark(static_cast<int>(bytes)), ignored);
  }

  void on_read_error(beast::error_code ec, std::string_view what) {
    if (deadline_.expired()) {
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

  void dispatch_request(Request&& request) {
    state_ = State::handling;
    ++served_;
    buffers_->parser.reset();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    handler_.handle(std::move(request), connection_, start_, shared_from_this());
  }

  // Sends the answer at once when the socket takes it (most answers: no asynchronous operation),
  // else writes the rest asynchronously under the deadline.
  void write_response(bool keep) {
    state_ = State::writing;
    auto& b = *buffers_;
    b.head.clear();
    ::fusebox::http::append_response_head(b.response, b.head);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(b.head), asio::buffer(b.response.body())};
    beast::error_code ec;
    const auto sent = io::send_now(socket_, buffers, ec);
    if (ec) {
      b.response = {};
      return close();
    }
    if (sent == asio::buffer_size(buffers)) return after_write(keep, /*in_place=*/true);
    beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(buffers);
    rest.consume(sent);
    arm_deadline(limits_.request_body_timeout);
    asio::async_write(socket_, rest, io::TransferAllInLargeSends(),
                      [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                        self->disarm_deadline();
                        if (ec) {
                          self->buffers_->response = {};
                          return self->close();
                        }
                        self->after_write(keep, /*in_place=*/false);
                      });
  }

  // The answer is out. `in_place`: written within send(), so a pipelined request waiting in the
  // buffer is started from the event loop instead: answering it here could recurse through a
  // long pipeline.
  void after_write(bool keep, bool in_place) {
    buffers_->response = {};
    if (!keep) return linger_close();
    if (in_place && buffers_->buffer.size() > 0) {
      return asio::post(socket_.get_executor(),
                        [self = shared_from_this()] { self->read_request(); });
    }
    read_request();
  }

  // Answers a request the session cannot pass on, then closes the connection.
  void reject(unsigned status, std::string_view reason) {
    auto& b = *buffers_;
    std::string method, target;
    if (b.parser && b.parser->is_header_done()) {
      method = std::string(b.parser->get().method_string());
      target = std::string(b.parser->get().target());
    } else if (!b.request.method_string().empty()) {  // its body was being read directly
      method = std::string(b.request.method_string());
      target = std::string(b.request.target());
    }
    auto response = ::fusebox::http::json_error_response(status, reason, version_);
    response.keep_alive(false);
    RejectedRequest rejected{status, method, target, reason, response.body().size(), start_};
    handler_.on_rejected(connection_, rejected);
    b.parser.reset();
    keep_alive_ = false;
    b.response = std::move(response);
    write_response(false);
  }

  void linger_close() {
    state_ = State::closing;
    beast::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    if (ec) return close();
    arm_deadline(kLingerTime);
    buffers_->buffer.clear();
    discard_more();
  }

  void discard_more() {
    watch_.async_read_some(buffers_->buffer.prepare(16384),
                           [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                             self->lingered_ += static_cast<std::uint32_t>(n);
                             if (ec || self->lingered_ > kLingerMaxBytes) return self->close();
                             self->discard_more();
                           });
  }

  void close() {
    state_ = State::closing;
    tracker_.give_back(std::move(buffers_));  // no operation uses them any more
    disarm_deadline();
    beast::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  io::Socket socket_;
  io::ReadWatch watch_{socket_};  // every read and read wait on socket_ goes through it
  io::LazyDeadline deadline_;  // after socket_: its expiry cancels the socket's operations
  RequestBuffersPtr buffers_;  // only while a request is read, handled or answered
  const config::HttpListenerConfig& limits_;
  RequestHandler& handler_;
  SessionTracker& tracker_;
  ConnectionInfo connection_;
  // Every open connection holds these: the small ones go last, packed.
  Clock::time_point start_ = Clock::now();
  Clock::time_point idle_until_{};      // when an idle connection is closed
  std::size_t body_read_ = 0;           // bytes of a directly read body received so far
  std::size_t receive_low_water_ = 1;   // the socket's SO_RCVLOWAT
  std::uint32_t served_ = 0;
  unsigned version_ = 11;
  std::uint32_t lingered_ = 0;  // bytes discarded while lingering (kLingerMaxBytes at most)
  State state_ = State::idle;
  bool keep_alive_ = true;
  bool draining_ = false;
};

}  // namespace

void start_http_session(io::Socket socket, const config::HttpListenerConfig& limits,
                        RequestHandler& handler, SessionTracker& tracker) {
  std::make_shared<HttpSession>(std::move(socket), limits, handler, tracker)->start();
}

}  // namespace fusebox::server
