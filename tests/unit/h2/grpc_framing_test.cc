#include "fusebox/h2/grpc_framing.h"

#include <gtest/gtest.h>

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
