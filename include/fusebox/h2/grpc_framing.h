#pragma once
// gRPC over HTTP/2, the parts both ends of a fusebox hop need: length-prefixed messages, the
// grpc-timeout header and the percent-encoded grpc-message (gRPC's PROTOCOL-HTTP2.md).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fusebox/common/shared_bytes.h"

namespace fusebox::h2 {

inline constexpr std::size_t kMessagePrefix = 5;  // compressed flag + 4-byte big-endian length

// Appends one uncompressed message with its prefix.
void append_grpc_message(std::string& out, std::string_view message);

// Reads messages off the front of a stream's data as it arrives.
struct GrpcMessage {
  enum class Status : std::uint8_t {
    complete,    // `message` holds one whole message; `consumed` bytes were used
    incomplete,  // more data is needed
    compressed,  // the compressed flag is set (fusebox announces identity encoding only)
    too_large,   // the announced length exceeds the limit (known from the prefix alone)
  };
  Status status = Status::incomplete;
  std::string_view message;
  std::size_t consumed = 0;
  std::uint64_t length = 0;  // the announced length, once the prefix is there
};
GrpcMessage read_grpc_message(std::string_view data, std::uint64_t max_bytes);

// Appends a piece of a stream's data to `buffer`, reserving room for the whole message once its
// prefix says how long it is (up to `max_bytes`), so a large message is not copied by every
// growth of the buffer.
void append_message_data(std::string& buffer, std::string_view data, std::uint64_t max_bytes);

// "100m", "5S", "2H"... (1 to 8 digits, unit H M S m u n). nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);
// The shortest exact-enough form that fits 8 digits, rounded up (never shortens a deadline).
std::string format_grpc_timeout(std::chrono::nanoseconds timeout);

class Connection;

// Sends `message` as one uncompressed gRPC message on a stream: the prefix and the bytes go out
// together. A large message is lent to the connection's output (written from its buffer, never
// copied); a small one is copied into it.
void send_grpc_message(Connection& conn, std::uint32_t stream_id, const SharedBytes& message,
                       bool end_stream);

// grpc-message: bytes outside 0x20..0x7e and '%' become %XX (UTF-8 text stays readable).
std::string percent_encode(std::string_view text);
// The reverse; malformed escapes are kept as they are.
std::string percent_decode(std::string_view text);

}  // namespace fusebox::h2
