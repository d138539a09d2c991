#pragma once
// A long-lived connection's read buffer: small while reads are small, large while they fill it
// (a large message arriving), and small again once the connection is quiet, so an idle
// connection keeps little memory and a large transfer still reads in big pieces.
//
// Single-threaded; one per connection.

#include <cstddef>
#include <string>
#include <string_view>

namespace fusebox::io {

class AdaptiveReadBuffer {
 public:
  static constexpr std::size_t kSmall = 16 * 1024;
  static constexpr std::size_t kLarge = 256 * 1024;

  // Room for the next read (allocated on first use).
  char* data() {
    if (buf_.size() != size_) buf_.resize(size_);
    return buf_.data();
  }
  std::size_t size() const { return size_; }
  std::string_view view(std::size_t n) const { return {buf_.data(), n}; }

  // After a read of `n` bytes: a read that filled the buffer asks for the large size.
  void filled(std::size_t n) {
    if (n == size_ && size_ < kLarge) size_ = kLarge;
  }
  // The connection has nothing in flight: give the large buffer back.
  void relax() {
    size_ = kSmall;
    if (buf_.capacity() > kSmall) std::string().swap(buf_);
  }
  std::size_t capacity() const { return buf_.capacity(); }

 private:
  std::string buf_;
  std::size_t size_ = kSmall;
};

// Empties a connection's output buffer after a write, freeing it when a large answer grew it.
inline void clear_output(std::string& out) {
  if (out.capacity() > AdaptiveReadBuffer::kSmall) {
    std::string().swap(out);
  } else {
    out.clear();
  }
}

}  // namespace fusebox::io
