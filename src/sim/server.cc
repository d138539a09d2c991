#include "sim/server.h"

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <iostream>
#include <random>

#include "sim/tensor_json.h"

namespace tfs_sim {

// Requests with this User-Agent prefix are health checks (fusebox sends it).
constexpr std::string_view kProbeUserAgent = "fusebox-health-check";

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

const char* reason_for(int status) {
  switch (status) {
    case 499:
      return "Client Closed Request";
    default: {
      const auto reason = http::obsolete_reason(static_cast<http::status>(status));
      return reason == "<unknown-status>" ? "Unknown" : reason.data();
    }
  }
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const ServerContext& ctx)
      : stream_(std::move(socket)), ctx_(ctx), timer_(stream_.get_executor()) {}

  ~Session() { ctx_.stats.on_connection_closed(); }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(ctx_.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(ctx_.header_limit));
    stream_.expires_after(ctx_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  // Like libevent, answer "Expect: 100-continue" before reading the body (curl sends it for
  // bodies over 1 KiB and would otherwise wait a second).
  void on_header(beast::error_code ec, std::size_t bytes) {
    if (ec) return on_read(ec, bytes);
    const auto expect = parser_->get()[http::field::expect];
    if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(ctx_.write_timeout);
      return net::async_write(
          stream_, net::buffer(kContinue.data(), kContinue.size()),
          beast::bind_front_handler(&Session::on_continue_sent, shared_from_this()));
    }
    read_body();
  }

  void on_continue_sent(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_read({}, 0);
    stream_.expires_after(ctx_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        return send(libevent_error_page(413), /*keep_alive=*/false, /*head=*/false);
      }
      if (ec != http::error::end_of_stream && ec != http::error::partial_message &&
          ec.category() == beast::http::make_error_code(http::error::bad_method).category()) {
        return send(libevent_error_page(400), false, false);  // unparseable request
      }
      return do_close();  // peer closed, timeout, reset
    }
    request_ = parser_->release();
    handle_request();
  }

  void handle_request() {
    const std::string_view target = request_.target();
    const std::string_view method = request_.method_string();
    const bool head = request_.method() == http::verb::head;
    if (ControlApi::owns(target)) {
      return send(ctx_.control.handle(method, target, request_.body()), request_.keep_alive(),
                  head);
    }
    route_ = match_route(method, target);
    if (route_.kind == RouteKind::not_v1 || route_.kind == RouteKind::bad_uri) {
      return send(ctx_.api.handle(route_, {}, FaultSet{}), request_.keep_alive(), head);
    }
    // A gateway's health probe is not client traffic: counted apart, so tests and operators
    // can tell what clients sent. Faults apply to probes all the same.
    probe_ = request_[http::field::user_agent].starts_with(kProbeUserAgent);
    if (probe_) {
      ctx_.stats.on_probe_request();
    } else {
      ctx_.stats.on_v1_request(route_.model);
    }
    faults_ = ctx_.faults.snapshot();
    faulted_ = faults_->applies_to(route_.model);
    if (faulted_ && faults_->hang) {
      ctx_.stats.on_fault(InjectedFault::hang);
      return do_hang();
    }
    const auto delay =
        faulted_ ? faults_->latency.sample(thread_rng(ctx_.seed)) : std::chrono::microseconds(0);
    if (delay.count() > 0) {
      ctx_.stats.on_fault(InjectedFault::delay);
      timer_.expires_after(delay);
      return timer_.async_wait(beast::bind_front_handler(&Session::on_delay, shared_from_this()));
    }
    answer_v1();
  }

  void on_delay(beast::error_code ec) {
    if (ec) return;
    answer_v1();
  }

  void answer_v1() {
    auto& rng = thread_rng(ctx_.seed);
    if (faulted_ && roll(faults_->reset_rate, rng)) {
      ctx_.stats.on_fault(InjectedFault::reset);
      return do_reset();
    }
    HttpReply reply;
    if (faulted_ && roll(faults_->error_rate, rng)) {
      ctx_.stats.on_fault(InjectedFault::error);
      reply.status = faults_->error_status;
      reply.body = write_error_body(faults_->error_message.empty()
                                        ? default_error_message(faults_->error_status)
                                        : faults_->error_message,
                                    ctx_.api.config().style);
    } else {
      reply = ctx_.api.handle(route_, request_.body(), *faults_);
    }
    if (!probe_) ctx_.stats.on_v1_response(reply.status);
    send(std::move(reply), request_.keep_alive(), request_.method() == http::verb::head);
  }

  void send(HttpReply reply, bool keep_alive, bool head) {
    keep_alive = keep_alive && !reply.close_connection;
    response_ = {};
    response_.version(request_.version() == 10 ? 10 : 11);
    response_.result(static_cast<unsigned>(reply.status));
    response_.reason(reason_for(reply.status));
    response_.set(http::field::content_type, reply.content_type);
    response_.keep_alive(keep_alive);
    response_.content_length(reply.body.size());
    if (!head) response_.body() = std::move(reply.body);
    stream_.expires_after(ctx_.write_timeout);
    http::async_write(
        stream_, response_,
        beast::bind_front_handler(&Session::on_write, shared_from_this(), keep_alive));
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    if (!keep_alive) return do_close();
    do_read();
  }

  // Accept and read, never answer: keep reading (and discarding) until the peer goes away.
  void do_hang() {
    stream_.expires_never();
    stream_.async_read_some(net::buffer(drain_),
                            beast::bind_front_handler(&Session::on_hang_read, shared_from_this()));
  }

  void on_hang_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    do_hang();
  }

  // SO_LINGER {on, 0} then close: the kernel answers with RST instead of FIN.
  void do_reset() {
    beast::error_code ec;
    stream_.socket().set_option(net::socket_base::linger(true, 0), ec);
    stream_.socket().close(ec);
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  const ServerContext& ctx_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  Route route_;
  std::shared_ptr<const FaultSet> faults_;
  bool faulted_ = false;
  bool probe_ = false;  // this request is a gateway health check
  std::array<char, 4096> drain_{};
};

}  // namespace

std::shared_ptr<Listener> Listener::create(net::io_context& ioc, const tcp::endpoint& endpoint,
                                           const ServerContext& ctx, std::string& error) {
  auto listener = std::make_shared<Listener>(ioc, ctx);
  beast::error_code ec;
  auto& acceptor = listener->acceptor_;
  auto step = [&](const char* what) {
    if (!ec) return true;
    error = std::string(what) + ": " + ec.message();
    return false;
  };
  acceptor.open(endpoint.protocol(), ec);
  if (!step("open")) return nullptr;
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!step("set_option(reuse_address)")) return nullptr;
  acceptor.bind(endpoint, ec);
  if (!step("bind")) return nullptr;
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (!step("listen")) return nullptr;
  return listener;
}

Listener::Listener(net::io_context& ioc, const ServerContext& ctx)
    : ioc_(ioc),
      ctx_(ctx),
      acceptor_(net::make_strand(ioc)),
      retry_timer_(acceptor_.get_executor()) {}

void Listener::run() { do_accept(); }

std::uint16_t Listener::port() const {
  beast::error_code ec;
  const auto ep = acceptor_.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void Listener::do_accept() {
  acceptor_.async_accept(net::make_strand(ioc_),
                         beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted) return;
  if (ec) {
    std::cerr << "tfs-sim: accept failed: " << ec.message() << " (retrying in 50ms)\n";
    retry_timer_.expires_after(std::chrono::milliseconds(50));
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (!wait_ec) self->do_accept();
    });
    return;
  }
  beast::error_code opt_ec;
  socket.set_option(tcp::no_delay(true), opt_ec);
  ctx_.stats.on_connection_accepted();
  std::make_shared<Session>(std::move(socket), ctx_)->run();
  do_accept();
}

}  // namespace tfs_sim
