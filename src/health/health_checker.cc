// The I/O half of the active health checks: one Prober per backend, all on one io_context.
//
// A round asks for the status of each of the pool's models in turn: REST `GET /v1/models/{m}`
// over one kept-alive connection (opened again when the backend closed it), or gRPC
// ModelService/GetModelStatus over a GrpcChannel of the prober's own to the backend's grpc_port,
// created once and reused. Not the data path's channel: a channel has one user agent, and
// probes announce themselves as fusebox-health-check over both protocols, so a backend can
// tell them from client traffic. Each model request, connect included, must finish within
// health_check.timeout (the gRPC call's deadline). The round stops at the first model that does
// not pass; its result is the round's result. The result moves the backend's HealthState, the
// status is published in BackendState::health, the listener hears about it, and the next round
// is scheduled after HealthState::next_delay().

#include "fusebox/health/health_checker.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>

#include "fusebox/common/address.h"
#include "fusebox/common/io.h"
#include "fusebox/rpc/tensor_answers.h"
#include "fusebox/upstream/grpc_upstream.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"

namespace fusebox::health {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using SteadyTime = std::chrono::steady_clock;

namespace {

// Both protocols' probes announce themselves with this user agent (tfs-sim counts them apart).
constexpr const char* kProbeUserAgent = "fusebox-health-check";

// A model status answer is a few hundred bytes; anything near this is not TF Serving.
constexpr std::uint64_t kMaxResponseBody = 1u << 20;

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Percent-encodes everything but RFC 3986 unreserved characters; TF Serving decodes the model
// name with curl_easy_unescape, so "my model" and "a/b" arrive intact.
std::string url_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (unsigned char c : in) {
    if (unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string status_request(const std::string& model, const config::EndpointConfig& endpoint) {
  return "GET /v1/models/" + url_encode(model) +
         " HTTP/1.1\r\n"
         "Host: " +
         host_port(endpoint.address, endpoint.port) +
         "\r\n"
         "User-Agent: " +
         std::string(kProbeUserAgent) +
         "\r\n"
         "Accept: application/json\r\n"
         "\r\n";
}

upstream::GrpcRequest grpc_status_request(const std::string& model) {
  tensorflow::serving::GetModelStatusRequest message;
  message.mutable_model_spec()->set_name(model);
  upstream::GrpcRequest request;
  request.method = rpc::kGetModelStatusMethod;
  request.payload = SharedBytes(message.SerializeAsString());
  return request;
}

// The peer closed the connection (or it broke) before answering.
bool connection_lost(beast::error_code ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

}  // namespace

class HealthChecker::Prober : public std::enable_shared_from_this<Prober> {
 public:
  Prober(asio::io_context& ioc, upstream::BackendState& backend, const config::PoolConfig& pool,
         const std::vector<std::string>& models, HealthListener& listener, Random& random)
      : ioc_(ioc),
        backend_(backend),
        timeout_(pool.health_check.timeout),
        expected_version_(pool.health_check.expected_version),
        grpc_(pool.health_check.protocol == config::HealthCheckProtocol::grpc),
        models_(models),
        state_(pool.health_check),
        listener_(listener),
        random_(random),
        timer_(ioc.get_executor()) {
    // A backend carried over by a config reload keeps its status: thresholds count from there.
    state_.resume(static_cast<HealthStatus>(backend.health.load(std::memory_order_relaxed)));
    if (grpc_ && backend.endpoint.grpc_port != 0) {
      channel_ = std::make_unique<upstream::GrpcChannel>(upstream::grpc_target(backend.endpoint),
                                                         pool, kProbeUserAgent);
    }
    for (const auto& model : models_) {
      if (grpc_) {
        grpc_requests_.push_back(grpc_status_request(model));
      } else {
        requests_.push_back(status_request(model, backend.endpoint));
      }
    }
  }

  void start() {
    if (started_ || stopped_) return;
    started_ = true;
    asio::post(timer_.get_executor(), [self = shared_from_this()] {
      if (!self->stopped_) self->begin_round();
    });
  }

  void stop() {
    stopped_ = true;
    timer_.cancel();
    close();
    // The completion would be posted to an io_context that may not run any more.
    upstream::GrpcChannel::abandon(exchange_);
    exchange_.reset();
  }

 private:
  void begin_round() {
    model_ = 0;
    round_detail_.clear();
    probe_model();
  }

  // One model status request, connect included, bounded by timeout_.
  void probe_model() {
    deadline_ = SteadyTime::now() + timeout_;
    if (grpc_) return call_model_status();
    retried_ = false;
    if (stream_) {
      reused_ = true;
      return write();
    }
    connect();
  }

  void connect() {
    reused_ = false;
    if (backend_.resolved.empty()) {
      return asio::post(timer_.get_executor(), [self = shared_from_this()] {
        if (!self->stopped_)
          self->model_done(ProbeResult::connect_failure, "no address to connect to");
      });
    }
    stream_.emplace(ioc_.get_executor());
    stream_->expires_at(deadline_);
    stream_->async_connect(
        backend_.resolved,
        [self = shared_from_this()](beast::error_code ec, const auto&) { self->on_connect(ec); });
  }

  void on_connect(beast::error_code ec) {
    if (stopped_) return;
    if (ec) {
      close();
      backend_.reachable.store(false, std::memory_order_relaxed);
      if (ec == beast::error::timeout) {
        return model_done(ProbeResult::connect_failure,
                          "connect timed out after " + std::to_string(timeout_.count()) + "ms");
      }
      return model_done(ProbeResult::connect_failure, "connect: " + ec.message());
    }
    backend_.reachable.store(true, std::memory_order_relaxed);
    beast::error_code ignored;
    stream_->socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    write();
  }

  void write() {
    stream_->expires_at(deadline_);
    asio::async_write(
        *stream_, asio::buffer(requests_[model_]),
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (stopped_) return;
    if (ec) return fail(ec, /*response_started=*/false);
    read();
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(kMaxResponseBody);
    stream_->expires_at(deadline_);
    http::async_read(
        *stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (stopped_) return;
    if (ec) return fail(ec, parser_->got_some());
    const auto& response = parser_->get();
    // An interim answer (100 Continue, 103 Early Hints) precedes the real one.
    if (auto status = response.result_int(); status >= 100 && status < 200 && status != 101) {
      return read();
    }
    auto verdict = evaluate_model_status(response.result_int(), response.body(), expected_version_);
    if (!response.keep_alive() || buffer_.size() != 0) close();
    model_done(verdict.result, std::move(verdict.detail));
  }

  void fail(beast::error_code ec, bool response_started) {
    // A kept-alive connection the backend closed while idle (TF Serving's idle timeout): the
    // request was not seen, so send it once more on a fresh connection, within the same deadline.
    if (connection_lost(ec) && reused_ && !response_started && !retried_) {
      retried_ = true;
      close();
      return connect();
    }
    close();
    if (ec == beast::error::timeout) {
      return model_done(ProbeResult::timeout,
                        "no answer within " + std::to_string(timeout_.count()) + "ms");
    }
    if (ec == http::error::body_limit) {
      return model_done(ProbeResult::bad_response, "response body larger than 1 MiB");
    }
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream) {
      return model_done(ProbeResult::bad_response, "invalid HTTP response: " + ec.message());
    }
    return model_done(ProbeResult::connect_failure, "connection lost: " + ec.message());
  }

  // gRPC: one GetModelStatus call on the probe's channel, the deadline its timeout. The
  // channel posts the completion to this io_context; nothing here waits.
  void call_model_status() {
    if (!channel_) {  // the configuration requires a grpc_port with protocol grpc
      return asio::post(timer_.get_executor(), [self = shared_from_this()] {
        if (!self->stopped_) self->model_done(ProbeResult::connect_failure, "no grpc_port");
      });
    }
    exchange_ = channel_->send(grpc_requests_[model_], deadline_, ioc_,
                               [self = shared_from_this()](upstream::GrpcResult&& result) {
                                 self->on_model_status(std::move(result));
                               });
  }

  void on_model_status(upstream::GrpcResult&& result) {
    exchange_.reset();
    if (stopped_) return;
    const auto code = upstream::grpc_code_name(result.status.error_code());
    if (result.outcome == metrics::UpstreamOutcome::connect_failure) {
      backend_.reachable.store(false, std::memory_order_relaxed);
      return model_done(ProbeResult::connect_failure,
                        "gRPC " + std::string(code) + ": " + result.status.error_message());
    }
    backend_.reachable.store(true, std::memory_order_relaxed);
    if (result.outcome == metrics::UpstreamOutcome::timeout) {
      return model_done(
          ProbeResult::timeout,
          "no answer within " + std::to_string(timeout_.count()) + "ms (gRPC " + code + ")");
    }
    tensorflow::serving::GetModelStatusResponse response;
    const auto& bytes = result.response;
    if (result.status.ok() &&
        !response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return model_done(ProbeResult::bad_response, "response is not a GetModelStatusResponse");
    }
    auto verdict = evaluate_model_status(result.status, response, expected_version_);
    model_done(verdict.result, std::move(verdict.detail));
  }

  void model_done(ProbeResult result, std::string detail) {
    std::string described = "model " + models_[model_] + ": " + detail;
    if (result != ProbeResult::passed) return finish_round(result, std::move(described));
    if (!round_detail_.empty()) round_detail_ += "; ";
    round_detail_ += described;
    if (++model_ < models_.size()) return probe_model();
    finish_round(ProbeResult::passed, std::move(round_detail_));
  }

  void finish_round(ProbeResult result, std::string detail) {
    const HealthStatus from = state_.status();
    const bool changed = state_.on_probe(result);
    const HealthStatus to = state_.status();
    backend_.health.store(static_cast<std::uint8_t>(to), std::memory_order_relaxed);
    backend_.set_last_probe(to_string(result), detail);
    listener_.on_probe(backend_, result, detail);
    if (changed) listener_.on_status_change(backend_, from, to, detail);
    if (stopped_) return;  // the listener may have stopped the checker
    timer_.expires_after(state_.next_delay(random_));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->stopped_) self->begin_round();
    });
  }

  void close() {
    if (!stream_) return;
    beast::error_code ignored;
    stream_->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_->socket().close(ignored);
    stream_.reset();
    buffer_.clear();
  }

  asio::io_context& ioc_;
  upstream::BackendState& backend_;
  const std::chrono::milliseconds timeout_;
  const std::int64_t expected_version_;
  const bool grpc_;  // health_check.protocol: grpc
  const std::vector<std::string> models_;
  std::vector<std::string> requests_;                 // REST: serialized GET per model, built once
  std::vector<upstream::GrpcRequest> grpc_requests_;  // gRPC: GetModelStatusRequest per model
  std::unique_ptr<upstream::GrpcChannel> channel_;    // gRPC: to the backend's grpc_port
  upstream::GrpcChannel::ExchangeHandle exchange_;    // the gRPC call in flight
  HealthState state_;
  HealthListener& listener_;
  Random& random_;
  io::Timer timer_;
  std::optional<io::Stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::string round_detail_;
  std::size_t model_ = 0;  // index of the model being probed in this round
  SteadyTime::time_point deadline_{};
  bool started_ = false;
  bool stopped_ = false;
  bool reused_ = false;   // the current request went out on a kept-alive connection
  bool retried_ = false;  // the current request was already re-sent once
};

HealthChecker::HealthChecker(asio::io_context& ioc, std::vector<upstream::PoolState*> pools,
                             std::vector<std::vector<std::string>> models, HealthListener& listener,
                             Random& random)
    : ioc_(ioc) {
  for (std::size_t p = 0; p < pools.size(); ++p) {
    const upstream::PoolState* pool = pools[p];
    if (pool == nullptr || pool->config == nullptr) continue;
    const auto& config = pool->config->health_check;
    if (!config.enabled || p >= models.size() || models[p].empty()) continue;
    for (const auto& backend : pool->backends) {
      probers_.push_back(
          std::make_shared<Prober>(ioc_, *backend, *pool->config, models[p], listener, random));
    }
  }
}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  for (auto& prober : probers_) prober->start();
}

void HealthChecker::stop() {
  for (auto& prober : probers_) prober->stop();
  probers_.clear();
}

}  // namespace fusebox::health
