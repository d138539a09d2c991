#include "fusebox/h2/connection.h"
#include "fusebox/h2/socket_output.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace fusebox::h2 {
namespace {

// What one side's handler heard, per stream.
struct Recorder : Connection::Handler {
  struct StreamLog {
    std::vector<HeaderList> blocks;
    std::string data;
    bool ended = false;
    bool reset = false;
    ErrorCode reset_code = ErrorCode::no_error;
  };
  std::map<std::uint32_t, StreamLog> streams;
  std::vector<std::uint32_t> too_large;
  std::vector<std::uint64_t> ping_acks;
  std::uint32_t goaway_last = 0;
  bool goaway = false;
  // Optional reaction to a finished request (server side tests).
  std::function<void(std::uint32_t)> on_end;

  void on_headers(std::uint32_t id, HeaderList& headers, bool end) override {
    streams[id].blocks.push_back(headers);
    if (end) ended(id);
  }
  void on_data(std::uint32_t id, std::string_view data, bool end) override {
    streams[id].data.append(data);
    if (end) ended(id);
  }
  void on_stream_reset(std::uint32_t id, ErrorCode code) override {
    streams[id].reset = true;
    streams[id].reset_code = code;
  }
  void on_headers_too_large(std::uint32_t id) override { too_large.push_back(id); }
  void on_goaway(std::uint32_t last, ErrorCode) override {
    goaway = true;
    goaway_last = last;
  }
  void on_ping_ack(std::uint64_t opaque) override { ping_acks.push_back(opaque); }
  void ended(std::uint32_t id) {
    streams[id].ended = true;
    if (on_end) on_end(id);
  }
};

HeaderList request_headers(std::string_view path = "/pkg.Service/Method") {
  return {{":method", "POST"},
          {":scheme", "http"},
          {":path", memory::PooledString(path)},
          {":authority", "localhost"},
          {"content-type", "application/grpc"},
          {"te", "trailers"}};
}

// A client and a server connection joined by an in-memory pipe.
struct Pair {
  Recorder client_log, server_log;
  Connection client;
  Connection server;
  bool client_ok = true, server_ok = true;

  explicit Pair(Connection::Options client_options = {}, Connection::Options server_options = {})
      : client(Connection::Role::client, client_log, client_options),
        server(Connection::Role::server, server_log, server_options) {
    client.start();
    server.start();
    pump();
  }

  // Moves bytes both ways until neither side has anything to send (bounded).
  void pump() {
    for (int i = 0; i < 1000 && (client.has_output() || server.has_output()); ++i) {
      std::string c2s, s2c;
      c2s.swap(client.output());
      s2c.swap(server.output());
      if (!c2s.empty() && server_ok) server_ok = server.receive(c2s);
      if (!s2c.empty() && client_ok) client_ok = client.receive(s2c);
    }
  }
};

TEST(H2Connection, RequestAndResponseWithTrailers) {
  Pair p;
  p.server_log.on_end = [&](std::uint32_t id) {
    p.server.send_headers(id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
    p.server.send_data(id, "answer:" + p.server_log.streams[id].data, false);
    p.server.send_headers(id, {{"grpc-status", "0"}}, true);
  };
  auto id = p.client.open_stream(request_headers(), false);
  ASSERT_EQ(id, 1u);
  p.client.send_data(id, "question", true);
  p.pump();
  ASSERT_TRUE(p.client_ok && p.server_ok) << p.client.error() << p.server.error();
  const auto& at_server = p.server_log.streams[1];
  ASSERT_EQ(at_server.blocks.size(), 1u);
  EXPECT_EQ(at_server.blocks[0], request_headers());
  EXPECT_EQ(at_server.data, "question");
  const auto& at_client = p.client_log.streams[1];
  ASSERT_EQ(at_client.blocks.size(), 2u);
  EXPECT_EQ(at_client.blocks[0][0].value, "200");
  EXPECT_EQ(at_client.blocks[1], (HeaderList{{"grpc-status", "0"}}));
  EXPECT_EQ(at_client.data, "answer:question");
  EXPECT_TRUE(at_client.ended);
  EXPECT_EQ(p.client.open_streams(), 0u);
  EXPECT_EQ(p.server.open_streams(), 0u);
}

TEST(H2Connection, ManyStreamsInterleaved) {
  Pair p;
  p.server_log.on_end = [&](std::uint32_t id) {
    p.server.send_headers(id, {{":status", "200"}}, false);
    p.server.send_data(id, p.server_log.streams[id].data, true);
  };
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(p.client.open_stream(request_headers(), false));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    p.client.send_data(ids[i], "body-" + std::to_string(i), true);
  }
  p.pump();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(p.client_log.streams[ids[i]].data, "body-" + std::to_string(i));
    EXPECT_TRUE(p.client_log.streams[ids[i]].ended);
  }
  EXPECT_EQ(p.client.open_streams(), 0u);
  EXPECT_EQ(p.server.open_streams(), 0u);
}

// 1 MiB each way with the protocol's default windows (64 KiB): data waits for WINDOW_UPDATE
// and the trailers wait behind it.
TEST(H2Connection, FlowControlHoldsDataAndTrailersUntilWindowOpens) {
  Connection::Options small;
  small.connection_window = kDefaultWindow;
  Pair p(small, small);
  const std::string big(1 << 20, 'x');
  p.server_log.on_end = [&](std::uint32_t id) {
    p.server.send_headers(id, {{":status", "200"}}, false);
    p.server.send_data(id, big, false);
    p.server.send_headers(id, {{"grpc-status", "0"}}, true);
    EXPECT_GT(p.server.pending_data(), 0u) << "the window cannot hold 1 MiB";
  };
  auto id = p.client.open_stream(request_headers(), false);
  p.client.send_data(id, big, true);
  EXPECT_GT(p.client.pending_data(), 0u);
  p.pump();
  ASSERT_TRUE(p.client_ok && p.server_ok) << p.client.error() << p.server.error();
  EXPECT_EQ(p.server_log.streams[id].data.size(), big.size());
  const auto& at_client = p.client_log.streams[id];
  EXPECT_EQ(at_client.data.size(), big.size());
  ASSERT_EQ(at_client.blocks.size(), 2u);
  EXPECT_EQ(at_client.blocks[1], (HeaderList{{"grpc-status", "0"}}));
  EXPECT_EQ(p.server.pending_data(), 0u);
  EXPECT_EQ(p.server.open_streams(), 0u);
}

// Data the window holds back is kept through its owner, not copied; the owner is let go once
// the last byte is out.
TEST(H2Connection, HeldBackDataIsBorrowedFromItsOwner) {
  Connection::Options small;
  small.connection_window = kDefaultWindow;
  Pair p(small, small);
  auto owner = std::make_shared<const std::string>(300000, 'b');
  auto id = p.client.open_stream(request_headers(), false);
  p.client.send_data(id, "head", *owner, true, owner);
  EXPECT_GT(p.client.pending_data(), 0u);
  EXPECT_GT(owner.use_count(), 1) << "held by the connection while bytes wait";
  p.pump();
  ASSERT_TRUE(p.client_ok && p.server_ok) << p.client.error() << p.server.error();
  EXPECT_EQ(p.server_log.streams[id].data, "head" + *owner);
  EXPECT_TRUE(p.server_log.streams[id].ended);
  EXPECT_EQ(p.client.pending_data(), 0u);
  EXPECT_EQ(owner.use_count(), 1) << "let go once sent";
}

// What the window lets out of an owned body is lent to the output: written from the owner's
// bytes, not copied into the connection's buffer; the runs, in order, are the same frames.
TEST(H2Connection, OwnedDataIsLentToTheOutputNotCopied) {
  Pair p;
  auto owner = std::make_shared<const std::string>(40000, 'c');
  auto id = p.client.open_stream(request_headers(), false);
  p.client.output().clear();  // the header block
  p.client.send_data(id, "head", *owner, true, owner);

  Output out;
  p.client.take_output(out);
  EXPECT_FALSE(p.client.has_output());
  ASSERT_FALSE(out.lent.empty());
  std::size_t lent = 0;
  for (const auto& run : out.lent) {
    EXPECT_GE(run.bytes.data(), owner->data());
    EXPECT_LE(run.bytes.data() + run.bytes.size(), owner->data() + owner->size());
    lent += run.bytes.size();
  }
  EXPECT_EQ(lent, owner->size()) << "the whole body fits the default windows, all of it lent";
  EXPECT_LT(out.bytes.size(), 100u) << "frame headers and the head only";

  // The same bytes as a connection that copies (no owner).
  Pair q;
  auto qid = q.client.open_stream(request_headers(), false);
  q.client.output().clear();
  q.client.send_data(qid, "head", *owner, true);
  std::string joined;
  out.for_each([&](std::string_view run) { joined.append(run); });
  EXPECT_EQ(joined, q.client.output());

  out = {};
  EXPECT_EQ(owner.use_count(), 1) << "let go with the output";
}

// After a large message's write, its output storage is freed; a small one's is kept for reuse.
TEST(H2Output, ClearingFreesWhatALargeMessageGrew) {
  auto owner = std::make_shared<const std::string>(1 << 20, 'd');
  Output out;
  std::vector<boost::asio::const_buffer> buffers;
  out.bytes.assign(300 * 1024, 'h');
  for (std::size_t i = 0; i < 64; ++i) {
    out.lent.push_back({(i + 1) * 9, std::string_view(*owner).substr(i * 16384, 16384), owner});
  }
  io::output_buffers(out, buffers);
  EXPECT_EQ(buffers.size(), 129u) << "a header run before each lent run, and the rest";
  io::clear_output(out, buffers);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.bytes.capacity(), std::string().capacity());
  EXPECT_EQ(out.lent.capacity(), 0u);
  EXPECT_EQ(buffers.capacity(), 0u);
  EXPECT_EQ(owner.use_count(), 1) << "the lent bytes are let go";

  out.bytes = "small";
  out.lent.push_back({2, std::string_view(*owner).substr(0, 10), owner});
  io::output_buffers(out, buffers);
  EXPECT_EQ(buffers.size(), 3u);
  io::clear_output(out, buffers);
  EXPECT_TRUE(out.empty());
  EXPECT_GT(out.lent.capacity(), 0u) << "kept: the next answer reuses it";
  EXPECT_GT(buffers.capacity(), 0u);
}

TEST(H2Connection, HeaderBlockLargerThanAFrameGoesInContinuations) {
  Pair p;
  auto headers = request_headers();
  // Above 16 KiB frames, not indexed.
  headers.push_back({"x-big", memory::PooledString(40000, 'v')});
  p.client.open_stream(headers, true);
  p.pump();
  ASSERT_TRUE(p.server_ok) << p.server.error();
  ASSERT_EQ(p.server_log.streams[1].blocks.size(), 1u);
  EXPECT_EQ(p.server_log.streams[1].blocks[0], headers);
}

TEST(H2Connection, ClientResetReachesTheServerHandler) {
  Pair p;
  auto id = p.client.open_stream(request_headers(), false);
  p.client.send_data(id, "part", false);
  p.pump();
  p.client.reset_stream(id, ErrorCode::cancel);
  p.pump();
  EXPECT_TRUE(p.server_log.streams[id].reset);
  EXPECT_EQ(p.server_log.streams[id].reset_code, ErrorCode::cancel);
  EXPECT_EQ(p.server.open_streams(), 0u);
  EXPECT_FALSE(p.client_log.streams[id].reset) << "no callback for a stream reset locally";
}

TEST(H2Connection, ServerStreamLimitRefusesTheExtraStream) {
  Connection::Options server;
  server.settings.max_concurrent_streams = 1;
  Pair p({}, server);
  auto first = p.client.open_stream(request_headers(), false);
  EXPECT_FALSE(p.client.can_open_stream()) << "the client honours the announced limit";
  EXPECT_NE(first, 0u);
  EXPECT_EQ(p.client.open_stream(request_headers(), false), 0u);
}

TEST(H2Connection, GoawayRefusesStreamsTheServerNeverSaw) {
  Pair p;
  auto a = p.client.open_stream(request_headers(), false);
  p.pump();
  auto b = p.client.open_stream(request_headers(), false);
  p.server.goaway(ErrorCode::no_error);  // before b's headers arrive: the last stream is a
  std::string s2c;
  s2c.swap(p.server.output());
  ASSERT_TRUE(p.client.receive(s2c));
  EXPECT_TRUE(p.client_log.goaway);
  EXPECT_EQ(p.client_log.goaway_last, a);
  EXPECT_TRUE(p.client_log.streams[b].reset);
  EXPECT_EQ(p.client_log.streams[b].reset_code, ErrorCode::refused_stream);
  EXPECT_FALSE(p.client_log.streams[a].reset);
  EXPECT_FALSE(p.client.can_open_stream());
  // Stream a still completes.
  p.pump();
  p.server.send_headers(a, {{":status", "200"}}, true);
  p.pump();
  EXPECT_TRUE(p.client_log.streams[a].ended);
}

TEST(H2Connection, PingIsAnsweredAndAckReported) {
  Pair p;
  p.client.ping(0x0102030405060708ull);
  p.pump();
  ASSERT_EQ(p.client_log.ping_acks.size(), 1u);
  EXPECT_EQ(p.client_log.ping_acks[0], 0x0102030405060708ull);
}

TEST(H2Connection, HeaderListAboveTheLimitIsReportedAndTheStreamReset) {
  Connection::Options server;
  server.settings.max_header_list_size = 1024;
  Pair p({}, server);
  auto headers = request_headers();
  headers.push_back({"x-big", memory::PooledString(2000, 'v')});
  auto id = p.client.open_stream(headers, true);
  p.pump();
  ASSERT_TRUE(p.server_ok) << "a stream error, not a connection error";
  EXPECT_EQ(p.server_log.too_large, std::vector<std::uint32_t>{id});
  EXPECT_TRUE(p.server_log.streams[id].blocks.empty());
  EXPECT_TRUE(p.client_log.streams[id].reset);
  // The connection still serves.
  p.server_log.on_end = [&](std::uint32_t sid) {
    p.server.send_headers(sid, {{":status", "200"}}, true);
  };
  auto next = p.client.open_stream(request_headers(), true);
  p.pump();
  EXPECT_TRUE(p.client_log.streams[next].ended);
}

std::string frame(FrameType type, std::uint8_t flags, std::uint32_t stream,
                  std::string_view payload) {
  std::string out;
  append_frame_header(out, static_cast<std::uint32_t>(payload.size()), type, flags, stream);
  out.append(payload);
  return out;
}

// A server after the client preface and an empty SETTINGS.
struct RawServer {
  Recorder log;
  Connection server{Connection::Role::server, log, {}};
  RawServer() {
    server.start();
    EXPECT_TRUE(server.receive(std::string(kClientPreface) + frame(FrameType::settings, 0, 0, "")));
    server.output().clear();
  }
  // The GOAWAY error code the server queued.
  std::uint32_t goaway_code() {
    const auto& out = server.output();
    for (std::size_t i = 0; i + kFrameHeaderSize <= out.size();) {
      auto len = static_cast<std::size_t>(static_cast<unsigned char>(out[i])) << 16 |
                 static_cast<std::size_t>(static_cast<unsigned char>(out[i + 1])) << 8 |
                 static_cast<unsigned char>(out[i + 2]);
      if (static_cast<FrameType>(out[i + 3]) == FrameType::goaway) {
        auto p = out.substr(i + kFrameHeaderSize + 4, 4);
        return static_cast<std::uint32_t>(static_cast<unsigned char>(p[3]));
      }
      i += kFrameHeaderSize + len;
    }
    return 0xffffffff;
  }
};

TEST(H2ConnectionErrors, WrongPrefaceFails) {
  Recorder log;
  Connection server(Connection::Role::server, log, {});
  server.start();
  EXPECT_FALSE(server.receive("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(server.error(), "not an HTTP/2 connection preface");
}

TEST(H2ConnectionErrors, PrefaceInPiecesIsAccepted) {
  Recorder log;
  Connection server(Connection::Role::server, log, {});
  server.start();
  auto bytes = std::string(kClientPreface) + frame(FrameType::settings, 0, 0, "");
  for (char c : bytes) ASSERT_TRUE(server.receive(std::string_view(&c, 1)));
  EXPECT_FALSE(server.failed());
}

TEST(H2ConnectionErrors, PrefaceThatDiffersFailsBeforeItIsWhole) {
  Recorder log;
  Connection server(Connection::Role::server, log, {});
  server.start();
  EXPECT_TRUE(server.receive("PRI * HT"));  // so far a preface
  EXPECT_FALSE(server.receive("TP/1.1"));  // 14 bytes, already not one
  EXPECT_EQ(server.error(), "not an HTTP/2 connection preface");
}

TEST(H2ConnectionErrors, FirstFrameMustBeSettings) {
  Recorder log;
  Connection server(Connection::Role::server, log, {});
  server.start();
  EXPECT_FALSE(
      server.receive(std::string(kClientPreface) + frame(FrameType::ping, 0, 0, "12345678")));
}

TEST(H2ConnectionErrors, OversizedFrameIsAFrameSizeError) {
  RawServer s;
  std::string header;
  append_frame_header(header, 20000, FrameType::data, 0, 1);
  EXPECT_FALSE(s.server.receive(header));
  EXPECT_EQ(s.goaway_code(), static_cast<std::uint32_t>(ErrorCode::frame_size_error));
}

TEST(H2ConnectionErrors, DataOnAnIdleStreamIsAProtocolError) {
  RawServer s;
  EXPECT_FALSE(s.server.receive(frame(FrameType::data, 0, 1, "x")));
  EXPECT_EQ(s.goaway_code(), static_cast<std::uint32_t>(ErrorCode::protocol_error));
}

TEST(H2ConnectionErrors, EvenStreamFromAClientIsAProtocolError) {
  RawServer s;
  EXPECT_FALSE(s.server.receive(frame(FrameType::headers, 0x5, 2, "\x82")));  // :method GET
}

TEST(H2ConnectionErrors, InterruptedHeaderBlockIsAProtocolError) {
  RawServer s;
  EXPECT_FALSE(s.server.receive(frame(FrameType::headers, 0x0, 1, "\x82") +
                                frame(FrameType::ping, 0, 0, "12345678")));
}

TEST(H2ConnectionErrors, BadHpackIsACompressionError) {
  RawServer s;
  EXPECT_FALSE(s.server.receive(frame(FrameType::headers, 0x5, 1, "\xff\xff\xff\xff\xff\xff")));
  EXPECT_EQ(s.goaway_code(), static_cast<std::uint32_t>(ErrorCode::compression_error));
}

TEST(H2ConnectionErrors, ZeroWindowUpdateOnTheConnectionIsAProtocolError) {
  RawServer s;
  EXPECT_FALSE(s.server.receive(frame(FrameType::window_update, 0, 0, std::string(4, '\0'))));
}

// A server that takes frames up to 1 MiB and messages of several, with stream 1 opened.
struct LargeFrameServer {
  Recorder log;
  Connection server{Connection::Role::server, log, [] {
                      Connection::Options options;
                      options.settings.max_frame_size = 1 << 20;
                      options.settings.initial_window_size = 4u << 20;
                      options.connection_window = 16u << 20;
                      return options;
                    }()};
  LargeFrameServer() {
    server.start();
    EXPECT_TRUE(server.receive(std::string(kClientPreface) + frame(FrameType::settings, 0, 0, "") +
                               frame(FrameType::headers, 0x4, 1, "\x83\x86\x84")));  // POST http /
  }
};

TEST(H2Connection, LargeDataFrameIsTakenInPiecesAsItArrives) {
  LargeFrameServer s;
  std::string payload(300000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  const std::string wire = frame(FrameType::data, 0x1, 1, payload);
  // The header cut in two, then the payload in reads of 7000 bytes.
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(0, 4)));
  EXPECT_EQ(s.server.pending_data_bytes(), 0u) << "the header is not whole yet";
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(4, 5)));
  EXPECT_EQ(s.server.pending_data_stream(), 1u);
  EXPECT_EQ(s.server.pending_data_bytes(), payload.size());
  std::size_t at = kFrameHeaderSize;
  while (at < wire.size()) {
    const auto n = std::min<std::size_t>(7000, wire.size() - at);
    ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(at, n)));
    at += n;
    const auto& stream = s.log.streams[1];
    ASSERT_EQ(stream.data.size(), at - kFrameHeaderSize) << "each piece is handed on at once";
    EXPECT_EQ(stream.ended, at == wire.size()) << "END_STREAM comes with the last piece";
    EXPECT_EQ(s.server.pending_data_bytes(), wire.size() - at);
  }
  EXPECT_EQ(s.log.streams[1].data, payload);
  EXPECT_EQ(s.server.pending_data_stream(), 0u);
  // The next frame after the pieces is read as a frame again.
  ASSERT_TRUE(s.server.receive(frame(FrameType::ping, 0, 0, "12345678")));
  EXPECT_FALSE(s.server.failed());
}

TEST(H2Connection, DataFrameEndingAReadIsTakenWithTheFramesAfterIt) {
  LargeFrameServer s;
  const std::string wire = frame(FrameType::data, 0x0, 1, std::string(5000, 'p')) +
                           frame(FrameType::data, 0x1, 1, std::string(10, 'q')) +
                           frame(FrameType::ping, 0, 0, "12345678");
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(0, 100)));
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(100)));
  EXPECT_EQ(s.log.streams[1].data, std::string(5000, 'p') + std::string(10, 'q'));
  EXPECT_TRUE(s.log.streams[1].ended);
  EXPECT_NE(s.server.output().find(frame(FrameType::ping, 0x1, 0, "12345678")), std::string::npos)
      << "the PING behind the pieces was answered";
}

TEST(H2Connection, PaddedDataFrameIsTakenWholeWithoutItsPadding) {
  LargeFrameServer s;
  const std::string body(3000, 'b');
  const std::string wire =
      frame(FrameType::data, 0x8 | 0x1, 1, std::string(1, '\x05') + body + std::string(5, '\0'));
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(0, 1000)));
  EXPECT_TRUE(s.log.streams[1].data.empty()) << "padding is stripped from the whole frame";
  EXPECT_EQ(s.server.pending_data_bytes(), 0u);
  ASSERT_TRUE(s.server.receive(std::string_view(wire).substr(1000)));
  EXPECT_EQ(s.log.streams[1].data, body);
  EXPECT_TRUE(s.log.streams[1].ended);
}

TEST(H2ConnectionErrors, DataFrameOnAStreamNeverOpenedFailsOnItsFirstPiece) {
  LargeFrameServer s;
  const std::string wire = frame(FrameType::data, 0x1, 3, std::string(100000, 'x'));
  EXPECT_FALSE(s.server.receive(std::string_view(wire).substr(0, 2000)));
  EXPECT_NE(s.server.error().find("never opened"), std::string::npos) << s.server.error();
}

// A server with stream 1 open, taking frames up to 16 MiB, with the given windows.
struct WindowServer {
  Recorder log;
  Connection server;
  WindowServer(std::uint32_t stream_window, std::uint32_t connection_window)
      : server(Connection::Role::server, log, [&] {
          Connection::Options options;
          options.settings.max_frame_size = (1u << 24) - 1;
          options.settings.initial_window_size = stream_window;
          options.connection_window = connection_window;
          return options;
        }()) {
    server.start();
    EXPECT_TRUE(server.receive(std::string(kClientPreface) + frame(FrameType::settings, 0, 0, "") +
                               frame(FrameType::headers, 0x4, 1, "\x83\x86\x84")));
  }
  // A DATA frame's header announcing `length` bytes on stream 1, and the first `have` of them.
  static std::string start_of_data(std::uint32_t length, std::size_t have) {
    std::string out;
    append_frame_header(out, length, FrameType::data, 0x1, 1);
    out.append(have, 'x');
    return out;
  }
};

TEST(H2ConnectionErrors, DataFrameBeyondTheStreamWindowResetsTheStreamAtItsHeader) {
  WindowServer s(/*stream_window=*/1u << 20, /*connection_window=*/16u << 20);
  ASSERT_TRUE(s.server.receive(WindowServer::start_of_data(2u << 20, 1000)))
      << "a stream error, not a connection error";
  EXPECT_TRUE(s.log.streams[1].data.empty()) << "no piece of it is handed on";
  const auto reset = frame(FrameType::rst_stream, 0, 1, std::string("\0\0\0\x03", 4));
  EXPECT_NE(s.server.output().find(reset), std::string::npos)
      << "RST_STREAM with FLOW_CONTROL_ERROR";
  ASSERT_TRUE(s.server.receive(std::string(5000, 'x'))) << "the rest of the frame is skipped";
  EXPECT_TRUE(s.log.streams[1].data.empty());
}

TEST(H2ConnectionErrors, DataFrameBeyondTheConnectionWindowFailsAtItsHeader) {
  WindowServer s(/*stream_window=*/4u << 20, /*connection_window=*/1u << 20);
  EXPECT_FALSE(s.server.receive(WindowServer::start_of_data(2u << 20, 1000)));
  EXPECT_EQ(s.server.error(), "DATA beyond the connection window");
  EXPECT_TRUE(s.log.streams[1].data.empty());
}

TEST(H2ConnectionErrors, DataBeyondTheConnectionWindowIsAFlowControlError) {
  Recorder log;
  Connection::Options options;
  options.connection_window = kDefaultWindow;
  options.settings.max_frame_size = 1 << 20;
  Connection server(Connection::Role::server, log, options);
  server.start();
  ASSERT_TRUE(server.receive(std::string(kClientPreface) + frame(FrameType::settings, 0, 0, "") +
                             frame(FrameType::headers, 0x4, 1, "\x83\x86\x84")));  // POST http /
  EXPECT_FALSE(server.receive(frame(FrameType::data, 0, 1, std::string(70000, 'x'))));
}

TEST(H2ConnectionErrors, AbortStreamsEndsEveryOpenStream) {
  Pair p;
  auto a = p.client.open_stream(request_headers(), false);
  auto b = p.client.open_stream(request_headers(), false);
  p.pump();
  p.client.abort_streams(ErrorCode::cancel);
  EXPECT_TRUE(p.client_log.streams[a].reset);
  EXPECT_TRUE(p.client_log.streams[b].reset);
  EXPECT_EQ(p.client.open_streams(), 0u);
}

}  // namespace
}  // namespace fusebox::h2
