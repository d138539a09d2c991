// fusebox's gRPC port at the HTTP/2 level: what a client that is not a well-behaved gRPC library
// sends (HTTP/1.1, wrong methods and content types, compressed or oversized messages, unknown
// methods, resets) gets a clear answer, and the connection or the listener keeps serving.
// The client here is fusebox's own h2::Connection over a blocking loopback socket, so each
// test controls every frame; answers are also checked with the real gRPC library elsewhere.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>

#include "fusebox/h2/connection.h"
#include "fusebox/h2/grpc_framing.h"
#include "gateway_fixture.h"

namespace fusebox_it {
namespace {

namespace h2 = fusebox::h2;

// One HTTP/2 client connection to 127.0.0.1:port; every wait is bounded.
class H2Client final : private h2::Connection::Handler {
 public:
  struct Stream {
    std::vector<h2::HeaderList> blocks;
    std::string data;
    bool ended = false;
    bool reset = false;
    h2::ErrorCode reset_code = h2::ErrorCode::no_error;
  };

  explicit H2Client(std::uint16_t port)
      : conn_(h2::Connection::Role::client, *this, h2::Connection::Options{}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    conn_.start();
  }
  ~H2Client() override {
    if (fd_ >= 0) ::close(fd_);
  }

  h2::Connection& conn() { return conn_; }
  Stream& stream(std::uint32_t id) { return streams_[id]; }
  bool goaway() const { return goaway_; }
  bool peer_closed() const { return peer_closed_; }

  // Starts a gRPC call to `path` with `message` (framed unless `raw_body`).
  std::uint32_t call(std::string_view path, std::string_view body, h2::HeaderList extra = {},
                     std::string_view method = "POST",
                     std::string_view content_type = "application/grpc") {
    using S = fusebox::memory::PooledString;
    h2::HeaderList h{{":method", S(method)},
                     {":scheme", "http"},
                     {":path", S(path)},
                     {":authority", "localhost"},
                     {"content-type", S(content_type)},
                     {"te", "trailers"}};
    h.insert(h.end(), extra.begin(), extra.end());
    auto id = conn_.open_stream(h, false);
    conn_.send_data(id, body, true);
    return id;
  }

  // Writes what is queued and reads until `done` holds (or 5 s pass, or the peer closes).
  bool pump_until(const std::function<bool()>& done) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      flush();
      if (done()) return true;
      if (peer_closed_) return done();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[65536];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        peer_closed_ = true;
        continue;
      }
      if (!conn_.receive(std::string_view(buf, static_cast<std::size_t>(n)))) return false;
    }
    return done();
  }

  void send_raw(std::string_view bytes) {
    (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }

  // The value of `name` in a stream's last header block ("" when absent).
  std::string last(std::uint32_t id, const std::string& name) {
    auto& s = streams_[id];
    if (s.blocks.empty()) return "";
    for (const auto& f : s.blocks.back()) {
      if (std::string_view(f.name) == name) return std::string(f.value);
    }
    return "";
  }

 private:
  void flush() {
    auto& out = conn_.output();
    if (out.empty()) return;
    (void)::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
    out.clear();
  }
  void on_headers(std::uint32_t id, h2::HeaderList& headers, bool end) override {
    streams_[id].blocks.push_back(headers);
    if (end) streams_[id].ended = true;
  }
  void on_data(std::uint32_t id, std::string_view data, bool end) override {
    streams_[id].data.append(data);
    if (end) streams_[id].ended = true;
  }
  void on_stream_reset(std::uint32_t id, h2::ErrorCode code) override {
    streams_[id].reset = true;
    streams_[id].reset_code = code;
  }
  void on_goaway(std::uint32_t, h2::ErrorCode) override { goaway_ = true; }

  int fd_ = -1;
  bool peer_closed_ = false;
  bool goaway_ = false;
  h2::Connection conn_;
  std::map<std::uint32_t, Stream> streams_;
};

// A length-delimited protobuf field (tag byte, one-byte length: short values only).
std::string field(char tag, std::string_view value) {
  return std::string(1, tag) + static_cast<char>(value.size()) + std::string(value);
}

// PredictRequest{model_spec{name: "half_plus_two"}, inputs{"x": TensorProto{dtype: DT_FLOAT,
// tensor_shape{dim{size: 1}}, float_val: [1.0]}}}, hand-encoded so this file needs no
// generated classes.
std::string predict_message() {
  const std::string shape = field('\x12', std::string("\x08\x01", 2));           // dim{size: 1}
  const std::string tensor = std::string("\x08\x01", 2) +                        // dtype: DT_FLOAT
                             field('\x12', shape) +                              // tensor_shape
                             field('\x2a', std::string("\x00\x00\x80\x3f", 4));  // float_val
  const std::string entry = field('\x0a', "x") + field('\x12', tensor);
  return field('\x0a', field('\x0a', "half_plus_two")) + field('\x12', entry);
}

std::string framed(std::string_view message) {
  std::string out;
  h2::append_grpc_message(out, message);
  return out;
}

class GrpcWireTest : public GatewayTest {
 protected:
  void SetUp() override {
    start_sim({"--rest-port", "0", "--grpc-port", "0"});
    GatewayConfig config;
    PoolSpec pool;
    pool.ports.push_back(sim(0).port);
    pool.grpc_ports.push_back(sim(0).grpc_port);
    config.pools.push_back(pool);
    config.routes.push_back({});
    config.grpc = true;
    config.grpc_lines.push_back("max_message_bytes: 1048576");
    start_gateway(config);
    port_ = gateway().grpc_port();
  }

  // Status code and message of a finished call.
  static std::pair<std::string, std::string> status_of(H2Client& c, std::uint32_t id) {
    return {c.last(id, "grpc-status"), h2::percent_decode(c.last(id, "grpc-message"))};
  }

  std::uint16_t port_ = 0;
};

TEST_F(GrpcWireTest, PredictOverRawHttp2Works) {
  H2Client c(port_);
  auto id = c.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message()));
  ASSERT_TRUE(c.pump_until([&] { return c.stream(id).ended; }));
  EXPECT_EQ(c.stream(id).blocks.front().front().value, "200");
  EXPECT_EQ(c.last(id, "grpc-status"), "0") << status_of(c, id).second;
  auto m = h2::read_grpc_message(c.stream(id).data, 1 << 20);
  EXPECT_EQ(m.status, h2::GrpcMessage::Status::complete);
  EXPECT_GT(m.message.size(), 0u);
}

TEST_F(GrpcWireTest, Http11OnTheGrpcPortIsRefusedAndTheListenerServesOn) {
  {
    RawSocket raw(port_);
    raw.send("GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(raw.closed_by_peer()) << "a connection that is not HTTP/2 is closed";
  }
  H2Client c(port_);
  auto id = c.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message()));
  ASSERT_TRUE(c.pump_until([&] { return c.stream(id).ended; }));
  EXPECT_EQ(c.last(id, "grpc-status"), "0");
}

TEST_F(GrpcWireTest, WrongMethodAndContentTypeGetHttpStatuses) {
  H2Client c(port_);
  auto get = c.call("/tensorflow.serving.PredictionService/Predict", "", {}, "GET");
  auto json =
      c.call("/tensorflow.serving.PredictionService/Predict", "{}", {}, "POST", "application/json");
  ASSERT_TRUE(c.pump_until([&] { return c.stream(get).ended && c.stream(json).ended; }));
  EXPECT_EQ(c.last(get, ":status"), "405");
  EXPECT_EQ(c.last(json, ":status"), "415");
}

TEST_F(GrpcWireTest, UnknownMethodAndWatchAreUnimplementedWithTheirNames) {
  H2Client c(port_);
  auto other = c.call("/foo.Bar/Baz", framed(""));
  auto watch = c.call("/grpc.health.v1.Health/Watch", framed(""));
  ASSERT_TRUE(c.pump_until([&] { return c.stream(other).ended && c.stream(watch).ended; }));
  EXPECT_EQ(status_of(c, other),
            std::make_pair(std::string("12"), std::string("fusebox does not serve /foo.Bar/Baz")));
  EXPECT_EQ(c.last(watch, "grpc-status"), "12");
}

TEST_F(GrpcWireTest, CompressedMessagesAreRefusedClearly) {
  H2Client c(port_);
  std::string body = framed(predict_message());
  body[0] = 1;  // compressed flag
  auto flagged = c.call("/tensorflow.serving.PredictionService/Predict", body,
                        {{"grpc-encoding", "identity"}});
  auto gzip = c.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message()),
                     {{"grpc-encoding", "gzip"}});
  ASSERT_TRUE(c.pump_until([&] { return c.stream(flagged).ended && c.stream(gzip).ended; }));
  EXPECT_EQ(c.last(flagged, "grpc-status"), "12");
  EXPECT_EQ(c.last(gzip, "grpc-status"), "12");
  EXPECT_NE(status_of(c, gzip).second.find("gzip"), std::string::npos);
}

TEST_F(GrpcWireTest, OversizedMessageIsRefusedBeforeItIsWhole) {
  H2Client c(port_);
  // 2 MiB announced and sent against a 1 MiB limit.
  std::string big = framed(std::string(2u << 20, 'x'));
  auto id = c.call("/tensorflow.serving.PredictionService/Predict", big);
  ASSERT_TRUE(c.pump_until([&] { return c.stream(id).ended || c.stream(id).reset; }));
  auto [code, message] = status_of(c, id);
  EXPECT_EQ(code, "8");  // RESOURCE_EXHAUSTED
  EXPECT_NE(message.find("larger than max"), std::string::npos) << message;
  // The connection still serves.
  auto next = c.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message()));
  ASSERT_TRUE(c.pump_until([&] { return c.stream(next).ended; }));
  EXPECT_EQ(c.last(next, "grpc-status"), "0");
}

TEST_F(GrpcWireTest, MissingOrExtraMessagesAreErrors) {
  H2Client c(port_);
  auto none = c.call("/tensorflow.serving.PredictionService/Predict", "");
  auto two = c.call("/tensorflow.serving.PredictionService/Predict",
                    framed(predict_message()) + framed(predict_message()));
  auto cut = c.call("/tensorflow.serving.PredictionService/Predict",
                    framed(predict_message()).substr(0, 8));
  ASSERT_TRUE(c.pump_until(
      [&] { return c.stream(none).ended && c.stream(two).ended && c.stream(cut).ended; }));
  EXPECT_EQ(c.last(none, "grpc-status"), "13");
  EXPECT_EQ(c.last(two, "grpc-status"), "13");
  EXPECT_EQ(c.last(cut, "grpc-status"), "13");
}

TEST_F(GrpcWireTest, ManyCallsOnOneConnectionAllAnswered) {
  H2Client c(port_);
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(
        c.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message())));
  }
  ASSERT_TRUE(c.pump_until([&] {
    return std::all_of(ids.begin(), ids.end(), [&](auto id) { return c.stream(id).ended; });
  }));
  for (auto id : ids) EXPECT_EQ(c.last(id, "grpc-status"), "0") << id;
}

TEST_F(GrpcWireTest, ABrokenFrameClosesOnlyThatConnection) {
  H2Client bad(port_);
  ASSERT_TRUE(bad.pump_until([&] { return !bad.conn().has_output(); }));
  // DATA on stream 0 is a connection error.
  std::string frame;
  h2::append_frame_header(frame, 1, h2::FrameType::data, 0, 0);
  frame.push_back('x');
  bad.send_raw(frame);
  EXPECT_TRUE(bad.pump_until([&] { return bad.goaway() && bad.peer_closed(); }));
  H2Client good(port_);
  auto id = good.call("/tensorflow.serving.PredictionService/Predict", framed(predict_message()));
  ASSERT_TRUE(good.pump_until([&] { return good.stream(id).ended; }));
  EXPECT_EQ(good.last(id, "grpc-status"), "0");
}

}  // namespace
}  // namespace fusebox_it
