#pragma once
// The protobuf wire format, read and written by hand for the few messages fusebox handles without
// libprotobuf (TF Serving's ModelSpec, gRPC server reflection). Reading follows libprotobuf's
// rules and limits, so fusebox accepts and rejects what its peers do. Pure, no exceptions,
// thread-safe (a WireReader is one cursor, used by one thread).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fusebox::rpc {

enum class WireError {
  none,
  truncated,         // the input ends inside a tag, a varint or a fixed-size value
  bad_varint,        // a varint longer than 10 bytes
  bad_tag,           // field number 0 or above 2^29 - 1, or wire type 6 or 7
  bad_length,        // a length prefix that runs past the end of its message (overlong)
  unbalanced_group,  // an end-group tag without its start, or a group never closed
  too_deep,          // groups nested deeper than kMaxGroupDepth
  invalid_utf8,      // a string field that is not valid UTF-8
};

// "truncated", "bad_varint", ... ("none" for none).
const char* to_string(WireError error);

// Groups (wire types 3/4) inside unknown fields nested deeper than this are rejected, like
// libprotobuf's default recursion limit.
inline constexpr int kMaxGroupDepth = 100;

enum WireType : std::uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

struct Tag {
  std::uint32_t field = 0;
  std::uint32_t wire_type = 0;
};

// A cursor over one serialized message. Every read either succeeds and advances or returns an
// error and leaves the cursor where it was not worth keeping (callers stop at the first error).
// Inline: it sits on the data path (every routed gRPC request).
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : data_(bytes) {}

  bool done() const { return pos_ == data_.size(); }
  std::size_t position() const { return pos_; }

  WireError read_varint(std::uint64_t& out) { return read_varint_of_at_most(10, out); }

  // Tags are 32-bit varints of at most 5 bytes (libprotobuf's limit; bits beyond 32 dropped).
  WireError read_tag(Tag& tag) {
    std::uint64_t value = 0;
    if (const auto e = read_varint_of_at_most(5, value); e != WireError::none) {
      return e == WireError::bad_varint ? WireError::bad_tag : e;
    }
    tag.field = static_cast<std::uint32_t>(value) >> 3;
    tag.wire_type = static_cast<std::uint32_t>(value) & 7;
    if (tag.field == 0 || tag.wire_type > kFixed32) return WireError::bad_tag;
    return WireError::none;
  }

  // The tag of the next field of a message (not inside a group): an end-group tag here has no
  // start, which libprotobuf rejects.
  WireError read_field_tag(Tag& tag) {
    if (const auto e = read_tag(tag); e != WireError::none) return e;
    return tag.wire_type == kEndGroup ? WireError::unbalanced_group : WireError::none;
  }

  WireError read_length_delimited(std::string_view& payload) {
    std::uint64_t length = 0;
    if (const auto e = read_varint(length); e != WireError::none) return e;
    if (length > data_.size() - pos_) return WireError::bad_length;
    payload = data_.substr(pos_, static_cast<std::size_t>(length));
    pos_ += static_cast<std::size_t>(length);
    return WireError::none;
  }

  // A length-delimited proto3 string: invalid_utf8 unless it is well-formed UTF-8.
  WireError read_string(std::string_view& text);

  // Skips the value of a field whose tag was just read; groups are skipped to their end tag.
  WireError skip(const Tag& tag) { return skip(tag, 0); }

 private:
  // Bits beyond 64 (in a tenth byte) are dropped, as libprotobuf does.
  WireError read_varint_of_at_most(int max_bytes, std::uint64_t& out) {
    std::uint64_t value = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (pos_ == data_.size()) return WireError::truncated;
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      value |= static_cast<std::uint64_t>(byte & 0x7F) << (7 * i);
      if ((byte & 0x80) == 0) {
        out = value;
        return WireError::none;
      }
    }
    return WireError::bad_varint;
  }

  WireError skip_bytes(std::size_t n) {
    if (n > data_.size() - pos_) return WireError::truncated;
    pos_ += n;
    return WireError::none;
  }

  WireError skip(const Tag& tag, int depth);

  std::string_view data_;
  std::size_t pos_ = 0;
};

inline void append_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

inline void append_tag(std::string& out, std::uint32_t field, std::uint32_t wire_type) {
  append_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire_type);
}

inline void append_length_delimited(std::string& out, std::uint32_t field,
                                    std::string_view payload) {
  append_tag(out, field, kLengthDelimited);
  append_varint(out, payload.size());
  out.append(payload);
}

}  // namespace fusebox::rpc
