#include "fusebox/server/grpc_listener.h"

#include <boost/asio/write.hpp>
#include <boost/container/small_vector.hpp>
#include <charconv>
#include <optional>
#include <set>
#include <unordered_map>

#include "fusebox/common/adaptive_buffer.h"
#include "fusebox/common/lazy_deadline.h"
#include "fusebox/common/read_watch.h"
#include "fusebox/h2/connection.h"
#include "fusebox/h2/grpc_framing.h"
#include "fusebox/h2/socket_output.h"
#include "fusebox/logging/logging.h"
#include "fusebox/rpc/protobuf_wire.h"
#include "fusebox/rpc/reflection.h"
#include "fusebox/rpc/tensor_answers.h"
#include "fusebox/server/http_session.h"
#include "tensorflow_serving/apis/model_service.pb.h"
#include "tensorflow_serving/apis/prediction_service.pb.h"

namespace fusebox::server {
namespace {

namespace asio = boost::asio;

constexpr std::string_view kHealthCheck = "/grpc.health.v1.Health/Check";
constexpr std::string_view kHealthWatch = "/grpc.health.v1.Health/Watch";

// A connection must have sent its preface and SETTINGS by then.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

// grpc.health.v1.HealthCheckRequest is one string field (service = 1), read with the wire
// reader the ModelSpec uses. nullopt when the bytes are not such a message.
std::optional<std::string> health_service(std::string_view bytes) {
  rpc::WireReader reader(bytes);
  std::string service;
  while (!reader.done()) {
    rpc::Tag tag;
    if (reader.read_field_tag(tag) != rpc::WireError::none) return std::nullopt;
    if (tag.field == 1 && tag.wire_type == rpc::kLengthDelimited) {
      std::string_view value;
      if (reader.read_string(value) != rpc::WireError::none) return std::nullopt;
      service.assign(value);
    } else if (reader.skip(tag) != rpc::WireError::none) {
      return std::nullopt;
    }
  }
  return service;
}

// The TF Serving methods fusebox proxies, as the data path names them (static storage: calls
// refer to them).
const std::string kProxied[] = {
    std::string(rpc::kPredictMethod),          std::string(rpc::kClassifyMethod),
    std::string(rpc::kRegressMethod),          std::string(rpc::kMultiInferenceMethod),
    std::string(rpc::kGetModelMetadataMethod), std::string(rpc::kGetModelStatusMethod)};

const std::string* proxied_method(std::string_view path) {
  for (const auto& m : kProxied) {
    if (m == path) return &m;
  }
  return nullptr;
}

std::string peer_name(const io::Socket& socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto address = ep.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (address.is_v4()) return "ipv4:" + address.to_string() + ":" + std::to_string(ep.port());
  return "ipv6:[" + address.to_string() + "]:" + std::to_string(ep.port());
}

class GrpcSession;

// What a stream is for, decided by its headers.
enum class StreamKind : std::uint8_t { proxied, health, reflection };

// One stream of a session. A proxied stream becomes a GrpcCall once its request message is
// whole; it stays alive (owned by the session's map) until the data path calls finish().
class StreamCall final : public GrpcCall {
 public:
  StreamCall(std::shared_ptr<GrpcSession> session, std::uint32_t id, StreamKind kind,
             const std::string* method, h2::HeaderList&& headers);

  const std::string& method() const override { return *method_; }
  const SharedBytes& request() const override { return request_; }
  std::chrono::system_clock::time_point deadline() const override { return deadline_; }
  MetadataRefs client_metadata() const override { return metadata_; }
  std::string peer() const override;
  bool cancelled() const override { return cancelled_; }
  void finish(const grpc::Status& status, const SharedBytes* response,
              MetadataRefs trailing) override;

  std::uint32_t id() const { return id_; }
  StreamKind kind() const { return kind_; }
  bool dispatched() const { return dispatched_; }
  // The request message is bytes [kMessagePrefix, kMessagePrefix + length) of body().
  void set_dispatched(std::size_t length) {
    request_ = SharedBytes(std::move(body_), h2::kMessagePrefix, length);
    body_.clear();
    dispatched_ = true;
  }
  void cancel() { cancelled_ = true; }
  std::string& body() { return body_; }
  std::set<std::string>& sent_files() { return sent_files_; }
  // Whether response headers went out (a status then goes as trailers).
  bool headers_sent() const { return headers_sent_; }
  void set_headers_sent() { headers_sent_ = true; }

 private:
  std::shared_ptr<GrpcSession> session_;
  std::uint32_t id_;
  StreamKind kind_;
  const std::string* method_;
  h2::HeaderList headers_;  // the metadata's storage
  std::vector<MetadataRef, memory::PooledAllocator<MetadataRef>> metadata_;  // views of headers_
  std::chrono::system_clock::time_point deadline_ = std::chrono::system_clock::time_point::max();
  std::string body_;  // request data received so far
  SharedBytes request_;
  std::set<std::string> sent_files_;  // reflection: files already sent on this stream
  bool dispatched_ = false;
  bool cancelled_ = false;
  bool headers_sent_ = false;
};

class GrpcSession final : public std::enable_shared_from_this<GrpcSession>,
                          public TrackedSession,
                          private h2::Connection::Handler {
 public:
  GrpcSession(io::Socket socket, const GrpcServices& services, SessionTracker& tracker)
      : socket_(std::move(socket)),
        services_(services),
        tracker_(tracker),
        conn_(h2::Connection::Role::server, *this, connection_options(*services.config)),
        deadline_(socket_.get_executor(), kHandshakeTimeout, [this] { on_deadline(); }),
        peer_(peer_name(socket_)) {
    tracker_.add(this);
  }

  ~GrpcSession() override { tracker_.remove(this); }

  void start() {
    boost::system::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);
    deadline_.expire_after(kHandshakeTimeout);
    conn_.start();
    if (tracker_.draining()) drain();
    flush();
    read();
  }

  void drain() override {
    if (draining_) return;
    draining_ = true;
    conn_.goaway(h2::ErrorCode::no_error);
    flush();
    maybe_close();
  }

  const std::string& peer() const { return peer_; }

  // A proxied call's answer, from StreamCall::finish() on this thread.
  void answer(StreamCall& call, const grpc::Status& status, const SharedBytes* response,
              MetadataRefs trailing) {
    const auto id = call.id();
    if (!closed_ && conn_.is_open(id)) {
      if (status.ok() && response != nullptr) {
        const auto size = response->size();
        if (size > services_.config->max_message_bytes) {
          send_status(id, grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "the answer is larger than the gateway's max_message_bytes (" +
                          std::to_string(size) + " vs. " +
                          std::to_string(services_.config->max_message_bytes) + ")",
                      trailing);
        } else {
          send_response_headers(id);
          h2::send_grpc_message(conn_, id, *response, false);
          send_status(id, grpc::StatusCode::OK, {}, trailing);
        }
      } else {
        send_status(id, status.error_code(), status.error_message(), trailing);
      }
      finish_stream(id);
    }
    flush();           // the answer goes out first; the rest is bookkeeping
    calls_.erase(id);  // destroys `call`
    maybe_close();
  }

 private:
  static h2::Connection::Options connection_options(const config::GrpcListenerConfig&) {
    h2::Connection::Options options;
    options.settings.max_concurrent_streams = 1024;
    options.settings.initial_window_size = 4u << 20;
    // Large frames let a large message's payload be read straight into its buffer (see
    // h2::direct_read_size()); gRPC's library sends frames as large as the peer allows.
    options.settings.max_frame_size = 1u << 20;
    options.settings.max_header_list_size = 64u << 10;
    options.connection_window = 16u << 20;
    return options;
  }

  // ---- socket ------------------------------------------------------------------------------

  void read() {
    if (closed_ || reading_) return;

    reading_ = true;
    if (read_directly()) return;
    watch_.async_read_some(
        asio::buffer(read_buf_.data(), read_buf_.size()),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->reading_ = false;
          self->on_read(ec, n);
        });
  }

  // The rest of a large DATA frame goes straight into its call's message buffer, not through
  // the read buffer.
  bool read_directly() {
    const auto id = conn_.pending_data_stream();
    auto it = id != 0 ? calls_.find(id) : calls_.end();
    if (it == calls_.end() || it->second->dispatched()) return false;
    const auto n = h2::direct_read_size(conn_, it->second->body());
    if (n == 0) return false;
    watch_.async_read_some(
        asio::buffer(direct_.lend(it->second->body(), n), n),
        [self = shared_from_this(), id](boost::system::error_code ec, std::size_t got) {
          self->reading_ = false;
          auto it = self->calls_.find(id);
          auto* owner = it != self->calls_.end() && !it->second->dispatched()
                            ? &it->second->body()
                            : nullptr;
          auto bytes = self->direct_.give_back(owner, got);
          if (self->closed_) return;
          if (ec) return self->close();
          self->received(bytes);
        });
    return true;
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (closed_) return;
    if (ec) return close();
    read_buf_.filled(n);
    received(read_buf_.view(n));
  }

  void received(std::string_view bytes) {
    if (!conn_.receive(bytes)) {
      logging::log().debug("gRPC connection from {}: {}", peer_, conn_.error());
      conn_.abort_streams(h2::ErrorCode::cancel);
      close_after_write_ = true;
      flush();
      return;
    }
    if (!handshake_done_ && !conn_.failed()) {
      handshake_done_ = true;
      deadline_.clear();
    }
    if (calls_.empty() && conn_.open_streams() == 0) read_buf_.relax();
    flush();
    read();
  }

  void flush() {
    if (closed_ || writer_.writing() || !conn_.has_output()) {
      if (!writer_.writing() && close_after_write_) close();
      return;
    }
    writer_.write(conn_, socket_, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->close();
      self->flush();
      self->maybe_close();
    });
  }

  // A draining session closes once its streams are answered and the last bytes written.
  void maybe_close() {
    if (closed_ || !draining_ || !calls_.empty() || conn_.open_streams() != 0) return;
    close_after_write_ = true;
    flush();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    deadline_.clear();
    boost::system::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
    conn_.abort_streams(h2::ErrorCode::cancel);
    // Calls being served keep the session alive until they finish; the others go now.
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (it->second->dispatched()) {
        it->second->cancel();
        ++it;
      } else {
        it = calls_.erase(it);
      }
    }
  }

  void on_deadline() {
    logging::log().debug(
        "gRPC connection from {}: no HTTP/2 preface within {} s", peer_,
        std::chrono::duration_cast<std::chrono::seconds>(kHandshakeTimeout).count());
    close();
  }

  // ---- h2::Connection::Handler ---------------------------------------------------------

  void on_headers(std::uint32_t id, h2::HeaderList& headers, bool end_stream) override {
    if (calls_.count(id) != 0) {
      // Request trailers: the request is complete.
      if (end_stream) on_request_end(id);
      return;
    }
    std::string_view method, path, content_type;
    for (const auto& h : headers) {
      if (h.name == ":method")
        method = h.value;
      else if (h.name == ":path")
        path = h.value;
      else if (h.name == "content-type")
        content_type = h.value;
    }
    if (method != "POST") return refuse_http(id, "405");
    if (!content_type.starts_with("application/grpc")) return refuse_http(id, "415");
    for (const auto& h : headers) {
      if (h.name == "grpc-encoding" && h.value != "identity") {
        return refuse(id, grpc::StatusCode::UNIMPLEMENTED,
                      "grpc-encoding " + std::string(h.value) +
                          " is not supported; send uncompressed messages");
      }
    }
    StreamKind kind;
    const std::string* name = proxied_method(path);
    if (name != nullptr) {
      kind = StreamKind::proxied;
    } else if (path == kHealthCheck) {
      kind = StreamKind::health;
    } else if (services_.reflection != nullptr &&
               (path == rpc::kReflectionV1alphaMethod || path == rpc::kReflectionV1Method)) {
      kind = StreamKind::reflection;
    } else if (path == kHealthWatch) {
      return refuse(id, grpc::StatusCode::UNIMPLEMENTED,
                    "fusebox answers grpc.health.v1.Health/Check only");
    } else {
      return refuse(id, grpc::StatusCode::UNIMPLEMENTED,
                    "fusebox does not serve " + std::string(path));
    }
    static const std::string kLocal = "local";
    auto call = std::make_unique<StreamCall>(shared_from_this(), id, kind,
                                             name != nullptr ? name : &kLocal, std::move(headers));
    calls_.emplace(id, std::move(call));
    if (end_stream) on_request_end(id);
  }

  void on_data(std::uint32_t id, std::string_view data, bool end_stream) override {
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second->dispatched()) return;
    auto& call = *it->second;
    auto& body = call.body();
    const auto limit = services_.config->max_message_bytes;
    h2::append_message_data(body, data, limit);
    if (call.kind() == StreamKind::reflection) {
      if (!answer_reflection(call)) return;
    } else if (body.size() > h2::kMessagePrefix + limit) {
      auto m = h2::read_grpc_message(body, limit);
      return refuse(id, grpc::StatusCode::RESOURCE_EXHAUSTED,
                    "Received message larger than max (" + std::to_string(m.length) + " vs. " +
                        std::to_string(limit) + ")");
    }
    if (end_stream) on_request_end(id);
  }

  void on_stream_reset(std::uint32_t id, h2::ErrorCode) override {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    if (it->second->dispatched()) {
      it->second->cancel();  // the data path still calls finish()
    } else {
      calls_.erase(it);
    }
  }

  void on_headers_too_large(std::uint32_t id) override {
    send_status(id, grpc::StatusCode::RESOURCE_EXHAUSTED, "the request's metadata is too large",
                {});
  }

  // ---- calls -------------------------------------------------------------------------------

  void on_request_end(std::uint32_t id) {
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second->dispatched()) return;
    auto& call = *it->second;
    if (call.kind() == StreamKind::reflection) {
      send_status(id, grpc::StatusCode::OK, "", {});
      finish_stream(id);
      calls_.erase(it);
      return;
    }
    auto m = h2::read_grpc_message(call.body(), services_.config->max_message_bytes);
    using S = h2::GrpcMessage::Status;
    if (m.status == S::compressed) {
      return refuse(id, grpc::StatusCode::UNIMPLEMENTED,
                    "compressed messages are not supported; send uncompressed messages");
    }
    if (m.status != S::complete || m.consumed != call.body().size()) {
      return refuse(id, grpc::StatusCode::INTERNAL,
                    m.status == S::incomplete && call.body().empty()
                        ? "the call has no request message"
                        : "a unary call takes exactly one whole request message");
    }
    if (call.kind() == StreamKind::health) return answer_health(id, m.message);
    call.set_dispatched(m.message.size());
    services_.dispatch(&call);  // may answer (and erase the call) before returning
  }

  void answer_health(std::uint32_t id, std::string_view message) {
    auto service = health_service(message);
    if (!service) {
      return refuse(id, grpc::StatusCode::INVALID_ARGUMENT,
                    "not a grpc.health.v1.HealthCheckRequest");
    }
    auto status = services_.health(*service);
    if (status == GrpcServingStatus::unknown) {
      return refuse(id, grpc::StatusCode::NOT_FOUND, "unknown service \"" + *service + "\"");
    }
    // HealthCheckResponse { ServingStatus status = 1; }
    const char bytes[2] = {0x08, static_cast<char>(status)};
    std::string data;
    h2::append_grpc_message(data, std::string_view(bytes, sizeof bytes));
    send_response_headers(id);
    conn_.send_data(id, data, false);
    send_status(id, grpc::StatusCode::OK, {}, {});
    finish_stream(id);
    calls_.erase(id);
  }

  // Answers every whole message received so far; false when the stream ended with an error.
  bool answer_reflection(StreamCall& call) {
    auto& body = call.body();
    std::size_t used = 0;
    const auto id = call.id();
    while (true) {
      auto m = h2::read_grpc_message(std::string_view(body).substr(used),
                                     services_.config->max_message_bytes);
      if (m.status == h2::GrpcMessage::Status::incomplete) break;
      if (m.status != h2::GrpcMessage::Status::complete) {
        refuse(id, grpc::StatusCode::INVALID_ARGUMENT, "unreadable reflection request");
        return false;
      }
      auto response = services_.reflection->answer(m.message, call.sent_files());
      if (!response) {
        refuse(id, grpc::StatusCode::INVALID_ARGUMENT, "not a ServerReflectionRequest");
        return false;
      }
      if (!call.headers_sent()) send_response_headers(id);
      std::string data;
      h2::append_grpc_message(data, *response);
      conn_.send_data(id, data, false);
      used += m.consumed;
    }
    body.erase(0, used);
    return true;
  }

  void send_response_headers(std::uint32_t id) {
    if (auto it = calls_.find(id); it != calls_.end()) it->second->set_headers_sent();
    conn_.send_headers(id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
  }

  // Ends a stream with a status: trailers after a response, or a trailers-only response.
  void send_status(std::uint32_t id, grpc::StatusCode code, std::string_view message,
                   MetadataRefs trailing) {
    // :status, content-type, grpc-status, grpc-message and the handler's few trailers fit
    // inline: no allocation per answer.
    boost::container::small_vector<h2::HeaderRef, 12> fields;
    auto it = calls_.find(id);
    if (it == calls_.end() || !it->second->headers_sent()) {
      fields.push_back({":status", "200"});
      fields.push_back({"content-type", "application/grpc"});
    }
    char digits[12];
    auto end = std::to_chars(digits, digits + sizeof digits, static_cast<int>(code)).ptr;
    fields.push_back(
        {"grpc-status", std::string_view(digits, static_cast<std::size_t>(end - digits))});
    std::string encoded;
    if (!message.empty()) {
      encoded = h2::percent_encode(message);
      fields.push_back({"grpc-message", encoded});
    }
    for (const auto& m : trailing) fields.push_back({m.key, m.value});
    conn_.send_headers(id, h2::HeaderRefs(fields.data(), fields.size()), true);
  }

  // The stream is answered: a client still sending is told to stop (RFC 9113 section 8.1).
  // The answer is then complete: only refusals end a stream early, and they send no data.
  void finish_stream(std::uint32_t id) {
    if (conn_.peer_sending(id)) conn_.reset_stream(id, h2::ErrorCode::no_error);
  }

  // Ends a stream that will not be served, with a status.
  void refuse(std::uint32_t id, grpc::StatusCode code, const std::string& message) {
    send_status(id, code, message, {});
    finish_stream(id);
    calls_.erase(id);
  }

  // Not a gRPC request at all: an HTTP status, as gRPC servers answer.
  void refuse_http(std::uint32_t id, const char* status) {
    conn_.send_headers(id, {{":status", status}}, true);
    finish_stream(id);
  }

  io::Socket socket_;
  io::ReadWatch watch_{socket_};  // every read of socket_ goes through it
  const GrpcServices& services_;
  SessionTracker& tracker_;
  h2::Connection conn_;
  io::LazyDeadline deadline_;
  std::string peer_;
  io::AdaptiveReadBuffer read_buf_;
  h2::DirectRead direct_;
  io::OutputWriter writer_;
  // Nodes from the thread's block cache (one per call).
  using CallEntry = std::pair<const std::uint32_t, std::unique_ptr<StreamCall>>;
  std::unordered_map<std::uint32_t, std::unique_ptr<StreamCall>, std::hash<std::uint32_t>,
                     std::equal_to<>, memory::PooledAllocator<CallEntry>>
      calls_;
  bool reading_ = false;
  bool closed_ = false;
  bool close_after_write_ = false;
  bool draining_ = false;
  bool handshake_done_ = false;
};

StreamCall::StreamCall(std::shared_ptr<GrpcSession> session, std::uint32_t id, StreamKind kind,
                       const std::string* method, h2::HeaderList&& headers)
    : session_(std::move(session)),
      id_(id),
      kind_(kind),
      method_(method),
      headers_(std::move(headers)) {
  metadata_.reserve(headers_.size());
  for (const auto& h : headers_) {
    if (h.name.empty() || h.name.front() == ':') continue;
    if (h.name == "grpc-timeout") {
      if (auto timeout = h2::parse_grpc_timeout(h.value)) {
        deadline_ = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(*timeout);
      }
    }
    metadata_.push_back({h.name, h.value});
  }
}

std::string StreamCall::peer() const { return session_->peer(); }

void StreamCall::finish(const grpc::Status& status, const SharedBytes* response,
                        MetadataRefs trailing) {
  auto session = session_;  // `this` is destroyed inside answer()
  session->answer(*this, status, response, trailing);
}

}  // namespace

// Reflection answers from protobuf's generated descriptor pool. The files declaring the services
// sit in object files of the static proto library that nothing else references, so the linker
// would leave them out: this table (external linkage, so always emitted) names their
// descriptors, which keeps them, and through them the files they import, linked and registered.
extern const void* const kReflectedServiceFiles[];
const void* const kReflectedServiceFiles[] = {
    &descriptor_table_tensorflow_5fserving_2fapis_2fprediction_5fservice_2eproto,
    &descriptor_table_tensorflow_5fserving_2fapis_2fmodel_5fservice_2eproto};

void start_grpc_session(io::Socket socket, const GrpcServices& services, SessionTracker& tracker) {
  std::make_shared<GrpcSession>(std::move(socket), services, tracker)->start();
}

}  // namespace fusebox::server
