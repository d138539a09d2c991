#include "fusebox/h2/grpc_framing.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "fusebox/common/uninitialized_resize.h"
#include "fusebox/h2/connection.h"

namespace fusebox::h2 {

namespace {

// The prefix of an uncompressed message of `length` bytes.
std::array<char, kMessagePrefix> message_prefix(std::size_t length) {
  const auto n = static_cast<std::uint32_t>(length);
  return {0, static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}

}  // namespace

void append_grpc_message(std::string& out, std::string_view message) {
  const auto prefix = message_prefix(message.size());
  out.append(prefix.data(), prefix.size());
  out.append(message);
}

GrpcMessage read_grpc_message(std::string_view data, std::uint64_t max_bytes) {
  GrpcMessage m;
  if (data.size() < kMessagePrefix) return m;
  auto byte = [&](std::size_t i) {
    return static_cast<std::uint64_t>(static_cast<unsigned char>(data[i]));
  };
  m.length = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
  if (byte(0) != 0) {
    m.status = GrpcMessage::Status::compressed;
    return m;
  }
  if (m.length > max_bytes) {
    m.status = GrpcMessage::Status::too_large;
    return m;
  }
  if (data.size() - kMessagePrefix < m.length) return m;
  m.status = GrpcMessage::Status::complete;
  m.message = data.substr(kMessagePrefix, m.length);
  m.consumed = kMessagePrefix + m.length;
  return m;
}

void send_grpc_message(Connection& conn, std::uint32_t stream_id, const SharedBytes& message,
                       bool end_stream) {
  const auto prefix_bytes = message_prefix(message.size());
  const std::string_view prefix(prefix_bytes.data(), prefix_bytes.size());
  // What the peer's window holds back of a large message waits in the message's own buffer,
  // uncopied (a small one is cheaper to copy than to share).
  constexpr std::size_t kShareFrom = 16 * 1024;
  std::shared_ptr<const void> owner;
  if (message.size() >= kShareFrom) owner = message.owner();
  conn.send_data(stream_id, prefix, message.view(), end_stream, std::move(owner));
}

void append_message_data(std::string& buffer, std::string_view data, std::uint64_t max_bytes) {
  const std::size_t have = buffer.size();
  if (!data.empty() && data.size() <= have && data.data() == buffer.data() + have - data.size()) {
    return;  // read into place
  }
  if (have < kMessagePrefix && have + data.size() >= kMessagePrefix) {
    // This piece completes the prefix: room for the whole message is made once, before the
    // first byte beyond the prefix is appended.
    char prefix[kMessagePrefix];
    std::memcpy(prefix, buffer.data(), have);
    std::memcpy(prefix + have, data.data(), kMessagePrefix - have);
    auto m = read_grpc_message(std::string_view(prefix, kMessagePrefix), max_bytes);
    if (m.status == GrpcMessage::Status::incomplete || m.status == GrpcMessage::Status::complete) {
      buffer.reserve(kMessagePrefix + m.length);
    }
  }
  buffer.append(data);
}

std::size_t direct_read_size(const Connection& conn, const std::string& buffer) {
  // Smaller pieces come through the read buffer: a read of their own would cost more than the
  // copy it saves.
  constexpr std::size_t kDirectReadMin = 32 * 1024;
  if (buffer.size() < kMessagePrefix) return 0;  // no room reserved yet
  const auto n = std::min(conn.pending_data_bytes(), buffer.capacity() - buffer.size());
  return n >= kDirectReadMin ? n : 0;
}

char* DirectRead::lend(std::string& buffer, std::size_t n) {
  orphan_.clear();
  held_.swap(buffer);
  at_ = held_.size();
  resize_uninitialized(held_, at_ + n);
  return held_.data() + at_;
}

std::string_view DirectRead::give_back(std::string* owner, std::size_t got) {
  held_.resize(at_ + got);
  if (owner == nullptr) owner = &orphan_;
  owner->swap(held_);
  held_.clear();  // free for the next lend, which the caller's receive() may make
  return std::string_view(*owner).substr(at_);
}

std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  std::int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  switch (value.back()) {
    case 'H':
      return duration_cast<nanoseconds>(hours(n));
    case 'M':
      return duration_cast<nanoseconds>(minutes(n));
    case 'S':
      return duration_cast<nanoseconds>(seconds(n));
    case 'm':
      return duration_cast<nanoseconds>(milliseconds(n));
    case 'u':
      return duration_cast<nanoseconds>(microseconds(n));
    case 'n':
      return nanoseconds(n);
    default:
      return std::nullopt;
  }
}

std::string format_grpc_timeout(std::chrono::nanoseconds timeout) {
  constexpr std::int64_t kMax = 99'999'999;
  auto ns = std::max<std::int64_t>(timeout.count(), 1);
  struct Unit {
    std::int64_t ns;
    char name;
  };
  static constexpr std::array<Unit, 6> kUnits{{{1, 'n'},
                                               {1'000, 'u'},
                                               {1'000'000, 'm'},
                                               {1'000'000'000, 'S'},
                                               {60'000'000'000, 'M'},
                                               {3'600'000'000'000, 'H'}}};
  for (const auto& unit : kUnits) {
    auto count = (ns + unit.ns - 1) / unit.ns;  // rounded up
    if (count <= kMax) return std::to_string(count) + unit.name;
  }
  return std::to_string(kMax) + "H";
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u <= 0x7e && c != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) << 4 | hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace fusebox::h2
