#pragma once
// HPACK (RFC 7541): the header compression of HTTP/2. The decoder reads everything a peer may
// send (indexed fields, literals with and without indexing, never-indexed literals, Huffman
// strings, dynamic table size updates). The encoder keeps its own dynamic table and indexes
// fields worth repeating, so a connection sends "content-type: application/grpc" in full once.
//
// Single-threaded: one decoder and one encoder per HTTP/2 connection, each mirroring the peer's.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/common/block_cache.h"

namespace fusebox::h2 {

// A received field. Its strings, and a list's storage, come from the thread's block cache: a
// header block is decoded into a dozen of them on every call.
struct HeaderField {
  memory::PooledString name;  // lower case on the wire in HTTP/2; the decoder does not change it
  memory::PooledString value;
  bool operator==(const HeaderField&) const = default;
};
using HeaderList = std::vector<HeaderField, memory::PooledAllocator<HeaderField>>;

// A field to send, viewing bytes the caller keeps alive until the call that takes it returns:
// what the sending side passes, so that a header block costs no string per field.
struct HeaderRef {
  std::string_view name;
  std::string_view value;
};
using HeaderRefs = std::span<const HeaderRef>;

// Views of owned fields, and owned copies of viewed ones.
inline std::vector<HeaderRef> views(const HeaderList& list) {
  std::vector<HeaderRef> out;
  out.reserve(list.size());
  for (const auto& h : list) out.push_back({h.name, h.value});
  return out;
}
inline HeaderList owned(HeaderRefs refs) {
  HeaderList out;
  out.reserve(refs.size());
  for (const auto& h : refs) {
    out.push_back({memory::PooledString(h.name), memory::PooledString(h.value)});
  }
  return out;
}

// The dynamic table both coders keep (RFC 7541 section 2.3.2): newest entry first, each entry
// counted as name + value + 32 bytes, oldest entries evicted to fit the size limit.
class HpackTable {
 public:
  explicit HpackTable(std::size_t max_size = 4096) : max_size_(max_size) {}
  // Index 1..61 is the static table, 62.. the dynamic one. nullptr when out of range.
  const HeaderField* at(std::size_t index) const;
  void add(std::string_view name, std::string_view value);
  void set_max_size(std::size_t max_size);  // evicts what no longer fits
  std::size_t max_size() const { return max_size_; }
  std::size_t size() const { return size_; }
  std::size_t dynamic_count() const { return entries_.size(); }

  // The best index for a field: {index, true} when name and value match, {index, false} when
  // only the name does, {0, false} when nothing does. Static entries are preferred.
  struct Match {
    std::size_t index = 0;
    bool full = false;
  };
  Match find(std::string_view name, std::string_view value) const;

 private:
  void evict_to(std::size_t limit);  // drops the oldest entries until size() <= limit

  std::deque<HeaderField> entries_;  // newest first
  std::size_t size_ = 0;
  std::size_t max_size_;
};

class HpackDecoder {
 public:
  enum class Result : std::uint8_t {
    ok,
    compression_error,  // malformed block: a connection error (COMPRESSION_ERROR)
    too_large,          // the decoded list exceeds max_list_size: the block was still decoded in
                        // full (the table stays in step with the peer), `out` is incomplete
  };

  // `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE this side announced (the upper bound of the
  // peer's dynamic table size updates).
  explicit HpackDecoder(std::size_t max_table_size = 4096);

  // Decodes one whole header block (a HEADERS payload and its CONTINUATIONs, joined, without
  // padding and priority) and appends its fields to `out`. `max_list_size` bounds the sum of
  // name + value + 32 over the fields (SETTINGS_MAX_HEADER_LIST_SIZE).
  Result decode(std::string_view block, HeaderList& out, std::size_t max_list_size = SIZE_MAX);
  const std::string& error() const { return error_; }  // why the last decode failed

  const HpackTable& table() const { return table_; }

 private:
  HpackTable table_;
  std::size_t max_table_size_;
  std::string error_;
};

class HpackEncoder {
 public:
  // Appends the block for `fields` to `out`. Sensitive fields (authorization, cookie,
  // proxy-authorization, set-cookie) are sent as never-indexed literals, fields whose name + value
  // exceed 256 bytes, and fields whose value is new on every message (grpc-timeout,
  // x-request-id, traceparent, grpc-trace-bin), as literals without indexing; others are added
  // to the dynamic table. Strings are Huffman-coded when shorter, except those per-message values
  // (read once, they cost both ends more to code than their bytes).
  void encode(HeaderRefs fields, std::string& out);
  void encode(const HeaderList& fields, std::string& out);
  // One field of a block; the first call of a block writes any pending table size update.
  void encode(std::string_view name, std::string_view value, std::string& out);

  // The peer's SETTINGS_HEADER_TABLE_SIZE; the encoder's table uses min(size, 4096). When that
  // changes, the next block starts with dynamic table size updates: the smallest size since the
  // last block, then the current one (RFC 7541 section 4.2).
  void set_peer_max_table_size(std::size_t size);

  const HpackTable& table() const { return table_; }

 private:
  void write_pending_update(std::string& out);

  HpackTable table_{4096};
  std::size_t pending_update_ = SIZE_MAX;  // the smallest size since the last block, or SIZE_MAX
};

// Primitives, exposed for tests (RFC 7541 sections 5.1 and 5.2).
// Appends an integer with an N-bit prefix; `first_byte_flags` are the bits above the prefix.
void hpack_encode_integer(std::uint64_t value, int prefix_bits, std::uint8_t first_byte_flags,
                          std::string& out);
// Appends a string literal (Huffman when that is shorter, unless `allow_huffman` is false).
void hpack_encode_string(std::string_view value, std::string& out, bool allow_huffman = true);
// Huffman code of `in` (RFC 7541 appendix B), padded with EOS bits.
void huffman_encode(std::string_view in, std::string& out);
std::size_t huffman_encoded_size(std::string_view in);
// Appends the decoded Huffman string; false, with `out` unchanged, when it is malformed (an EOS
// symbol, padding longer than 7 bits or not all ones).
bool huffman_decode(std::string_view in, std::string& out);

}  // namespace fusebox::h2
