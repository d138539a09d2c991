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
// growth of the buffer. A piece that is already the end of `buffer` (read straight into it, see
// direct_read_size()) is left where it is.
void append_message_data(std::string& buffer, std::string_view data, std::uint64_t max_bytes);

class Connection;

// How many bytes of the DATA payload `conn` is receiving on a stream may be read from the
// socket straight into that stream's message buffer `buffer`, after its current end: the rest of
// the frame as far as the room reserved for the message goes, when that is worth a read of its
// own (a large message, sent in large frames); 0 otherwise. The owner then reads them there,
// extends `buffer` over them and passes them to conn.receive() as a view of `buffer`.
std::size_t direct_read_size(const Connection& conn, const std::string& buffer);

// A stream's message buffer lent to a direct read in flight: the connection's owner holds it
// meanwhile, so the call it belongs to may go away without the read writing into freed memory.
class DirectRead {
 public:
  // Takes `buffer` for a read of `n` bytes after its end; returns where they go.
  char* lend(std::string& buffer, std::size_t n);
  // The read brought `got` bytes: the buffer goes back to `owner` (null when its call is gone:
  // the bytes are then dropped after the next lend or give_back), and the bytes just read are
  // returned, as a view of where they lie, for Connection::receive().
  std::string_view give_back(std::string* owner, std::size_t got);

 private:
  std::string held_;
  std::string orphan_;  // a gone call's buffer, kept while its last bytes are passed on
  std::size_t at_ = 0;
};

// "100m", "5S", "2H"... (1 to 8 digits, unit H M S m u n). nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);
// The shortest exact-enough form that fits 8 digits, rounded up (never shortens a deadline).
std::string format_grpc_timeout(std::chrono::nanoseconds timeout);

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
