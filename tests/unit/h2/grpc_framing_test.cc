#include "fusebox/h2/grpc_framing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "fusebox/common/uninitialized_resize.h"
#include "fusebox/h2/connection.h"

namespace fusebox::h2 {
namespace {

using namespace std::chrono_literals;

TEST(GrpcFraming, MessageRoundTripAndPieces) {
  std::string data;
  append_grpc_message(data, "hello");
  append_grpc_message(data, "");
  ASSERT_EQ(data.size(), 5u + 5 + 5);
  EXPECT_EQ(data.substr(0, 5), std::string("\0\0\0\0\x05", 5));
  for (std::size_t cut = 0; cut < 10; ++cut) {
    EXPECT_EQ(read_grpc_message(std::string_view(data).substr(0, cut), 100).status,
              GrpcMessage::Status::incomplete)
        << cut;
  }
  auto first = read_grpc_message(data, 100);
  ASSERT_EQ(first.status, GrpcMessage::Status::complete);
  EXPECT_EQ(first.message, "hello");
  EXPECT_EQ(first.consumed, 10u);
  auto second = read_grpc_message(std::string_view(data).substr(first.consumed), 100);
  ASSERT_EQ(second.status, GrpcMessage::Status::complete);
  EXPECT_EQ(second.message, "");
}

TEST(GrpcFraming, MessageDataReservesTheWholeMessageOnceThePrefixIsIn) {
  std::string whole;
  append_grpc_message(whole, std::string(100000, 'm'));
  std::string buffer;
  append_message_data(buffer, std::string_view(whole).substr(0, 3), 1 << 20);
  EXPECT_LT(buffer.capacity(), 1000u) << "the length is not known yet";
  append_message_data(buffer, std::string_view(whole).substr(3, 1000), 1 << 20);
  const auto reserved = buffer.capacity();
  EXPECT_GE(reserved, whole.size());
  append_message_data(buffer, std::string_view(whole).substr(1003), 1 << 20);
  EXPECT_EQ(buffer, whole);
  EXPECT_EQ(buffer.capacity(), reserved) << "no growth after the reservation";
  std::string huge;
  append_message_data(huge, std::string("\0\x7f\0\0\0", 5), 1000);
  EXPECT_LT(huge.capacity(), 1000u) << "an announced length above the limit reserves nothing";
}

// A server connection whose one stream's data goes into a message buffer, as a session's does.
struct MessageServer : Connection::Handler {
  std::string body;
  bool ended = false;
  Connection conn{Connection::Role::server, *this, [] {
                    Connection::Options options;
                    options.settings.max_frame_size = 1 << 20;
                    options.settings.initial_window_size = 4u << 20;
                    return options;
                  }()};
  void on_headers(std::uint32_t, HeaderList&, bool) override {}
  void on_data(std::uint32_t, std::string_view data, bool end) override {
    append_message_data(body, data, 1 << 20);
    ended = end;
  }
  void on_stream_reset(std::uint32_t, ErrorCode) override {}
  // The client's preface and SETTINGS, and stream 1 opened.
  bool open() {
    conn.start();
    std::string preface(kClientPreface);
    append_frame_header(preface, 0, FrameType::settings, 0, 0);
    append_frame_header(preface, 3, FrameType::headers, 0x4, 1);
    preface.append("\x83\x86\x84");  // POST http /
    return conn.receive(preface);
  }
};

// A gRPC message of `bytes` bytes, with its prefix.
std::string grpc_message(std::size_t bytes) {
  std::string out;
  append_grpc_message(out, std::string(bytes, 'm'));
  return out;
}

std::string data_frame(std::uint32_t stream, std::string_view payload, bool end) {
  std::string out;
  append_frame_header(out, static_cast<std::uint32_t>(payload.size()), FrameType::data,
                      end ? 0x1 : 0x0, stream);
  out.append(payload);
  return out;
}

TEST(GrpcFraming, LargeFramePayloadIsReadStraightIntoTheMessageBuffer) {
  MessageServer s;
  ASSERT_TRUE(s.open());
  const std::string message = grpc_message(600000);
  const std::string wire = data_frame(1, message, true);
  // What a read through the read buffer brought: the header and the message's first bytes.
  ASSERT_TRUE(s.conn.receive(std::string_view(wire).substr(0, 20000)));
  EXPECT_EQ(s.body.capacity(), message.size()) << "room for the whole message";
  const char* storage = s.body.data();
  std::size_t at = 20000;
  int direct_reads = 0;
  while (const auto n = direct_read_size(s.conn, s.body)) {
    // The kernel writes up to n bytes after the buffer's end; the buffer is extended over them.
    const auto got = std::min<std::size_t>(n, 100000);
    const auto end = s.body.size();
    resize_uninitialized(s.body, end + got);
    std::memcpy(s.body.data() + end, wire.data() + at, got);
    ASSERT_TRUE(s.conn.receive(std::string_view(s.body).substr(end)));
    at += got;
    ++direct_reads;
  }
  EXPECT_EQ(direct_reads, 6) << "the frame's rest, read by the owner";
  EXPECT_EQ(at, wire.size());
  EXPECT_EQ(s.conn.pending_data_bytes(), 0u);
  EXPECT_TRUE(s.ended) << "END_STREAM came with the last piece";
  EXPECT_EQ(s.body, message) << "each byte once, in order";
  EXPECT_EQ(s.body.data(), storage) << "never copied to grow";
}

TEST(GrpcFraming, NoDirectReadBeforeTheMessagesRoomIsKnownOrForSmallFrames) {
  MessageServer s;
  ASSERT_TRUE(s.open());
  const std::string message = grpc_message(200000);
  const std::string wire = data_frame(1, message, true);
  ASSERT_TRUE(s.conn.receive(std::string_view(wire).substr(0, 12)));  // 3 bytes of the prefix
  EXPECT_EQ(s.conn.pending_data_bytes(), message.size() - 3);
  EXPECT_EQ(direct_read_size(s.conn, s.body), 0u) << "the message's length is not known yet";
  ASSERT_TRUE(s.conn.receive(std::string_view(wire).substr(12, wire.size() - 12 - 1000)));
  EXPECT_EQ(direct_read_size(s.conn, s.body), 0u) << "1000 bytes left: not worth a read";
  ASSERT_TRUE(s.conn.receive(std::string_view(wire).substr(wire.size() - 1000)));
  EXPECT_EQ(s.body, message);
}

TEST(GrpcFraming, CompressedAndTooLargeAreKnownFromThePrefix) {
  EXPECT_EQ(read_grpc_message(std::string("\x01\0\0\0\x02", 5), 100).status,
            GrpcMessage::Status::compressed);
  auto big = read_grpc_message(std::string("\0\x01\0\0\0", 5), 1000);
  EXPECT_EQ(big.status, GrpcMessage::Status::too_large);
  EXPECT_EQ(big.length, 1u << 24);
}

TEST(GrpcFraming, TimeoutParsesEveryUnit) {
  EXPECT_EQ(parse_grpc_timeout("2H"), std::chrono::nanoseconds(2h));
  EXPECT_EQ(parse_grpc_timeout("3M"), std::chrono::nanoseconds(3min));
  EXPECT_EQ(parse_grpc_timeout("5S"), std::chrono::nanoseconds(5s));
  EXPECT_EQ(parse_grpc_timeout("100m"), std::chrono::nanoseconds(100ms));
  EXPECT_EQ(parse_grpc_timeout("7u"), std::chrono::nanoseconds(7us));
  EXPECT_EQ(parse_grpc_timeout("99999999n"), std::chrono::nanoseconds(99999999));
  for (auto bad : {"", "S", "5", "5s", "123456789S", "-5S", "5 S"}) {
    EXPECT_FALSE(parse_grpc_timeout(bad).has_value()) << bad;
  }
}

TEST(GrpcFraming, TimeoutFormatsShortAndNeverShorter) {
  EXPECT_EQ(format_grpc_timeout(1500ms), "1500000u");
  EXPECT_EQ(format_grpc_timeout(250ms), "250000u");
  EXPECT_EQ(format_grpc_timeout(std::chrono::nanoseconds(5)), "5n");
  EXPECT_EQ(format_grpc_timeout(100s), "100000m");
  EXPECT_EQ(format_grpc_timeout(std::chrono::nanoseconds(0)), "1n");
  for (auto t : {std::chrono::nanoseconds(123456789), std::chrono::nanoseconds(9876543210123),
                 std::chrono::nanoseconds(48h)}) {
    auto back = parse_grpc_timeout(format_grpc_timeout(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_GE(*back, t);
    EXPECT_LE(*back - t, t / 1000000 + std::chrono::nanoseconds(1000)) << format_grpc_timeout(t);
  }
}

TEST(GrpcFraming, PercentEncodingKeepsTextReadableAndRoundTrips) {
  EXPECT_EQ(percent_encode("model \"m\" not found"), "model \"m\" not found");
  EXPECT_EQ(percent_encode("50% done\n"), "50%25 done%0A");
  EXPECT_EQ(percent_encode("caf\xc3\xa9"), "caf%C3%A9");
  for (std::string s : {"plain", "a%b", "\x01\x7f\xff", "line\r\nbreak"}) {
    EXPECT_EQ(percent_decode(percent_encode(s)), s);
  }
  EXPECT_EQ(percent_decode("bad %zz and %4"), "bad %zz and %4");
}

}  // namespace
}  // namespace fusebox::h2
