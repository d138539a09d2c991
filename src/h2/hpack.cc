#include "fusebox/h2/hpack.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "huffman_table.h"

namespace fusebox::h2 {
namespace {

constexpr std::size_t kStaticCount = 61;
constexpr std::size_t kEntryOverhead = 32;      // RFC 7541 section 4.1
constexpr std::size_t kMaxEncoderTable = 4096;  // we never keep more, whatever the peer allows
constexpr std::size_t kMaxIndexedField = 256;   // name + value; longer fields are rarely repeated
constexpr std::uint64_t kMaxInteger = std::numeric_limits<std::uint32_t>::max();

// RFC 7541 appendix A. A function-local static: built on first use, never during static init.
const std::array<HeaderField, kStaticCount>& static_table() {
  static const std::array<HeaderField, kStaticCount> table = {{
      {":authority", ""},
      {":method", "GET"},
      {":method", "POST"},
      {":path", "/"},
      {":path", "/index.html"},
      {":scheme", "http"},
      {":scheme", "https"},
      {":status", "200"},
      {":status", "204"},
      {":status", "206"},
      {":status", "304"},
      {":status", "400"},
      {":status", "404"},
      {":status", "500"},
      {"accept-charset", ""},
      {"accept-encoding", "gzip, deflate"},
      {"accept-language", ""},
      {"accept-ranges", ""},
      {"accept", ""},
      {"access-control-allow-origin", ""},
      {"age", ""},
      {"allow", ""},
      {"authorization", ""},
      {"cache-control", ""},
      {"content-disposition", ""},
      {"content-encoding", ""},
      {"content-language", ""},
      {"content-length", ""},
      {"content-location", ""},
      {"content-range", ""},
      {"content-type", ""},
      {"cookie", ""},
      {"date", ""},
      {"etag", ""},
      {"expect", ""},
      {"expires", ""},
      {"from", ""},
      {"host", ""},
      {"if-match", ""},
      {"if-modified-since", ""},
      {"if-none-match", ""},
      {"if-range", ""},
      {"if-unmodified-since", ""},
      {"last-modified", ""},
      {"link", ""},
      {"location", ""},
      {"max-forwards", ""},
      {"proxy-authenticate", ""},
      {"proxy-authorization", ""},
      {"range", ""},
      {"referer", ""},
      {"refresh", ""},
      {"retry-after", ""},
      {"server", ""},
      {"set-cookie", ""},
      {"strict-transport-security", ""},
      {"transfer-encoding", ""},
      {"user-agent", ""},
      {"vary", ""},
      {"via", ""},
      {"www-authenticate", ""},
  }};
  return table;
}

// Huffman decoding. Codes of up to 8 bits (the letters, digits and common punctuation) are
// found with one lookup on the next 8 input bits; longer ones by the canonical code's limits:
// the codes of each length are consecutive, so a 32-bit window left-aligned on the next code
// has the length L of the smallest limit it is below.
struct HuffmanDecodeTables {
  struct Short {
    std::uint16_t symbol = 0;
    std::uint8_t bits = 0;  // 0: the code is longer than 8 bits
  };
  std::array<Short, 256> by_first_byte{};
  // By code length, 1..30: the first code past that length's codes, left-aligned in 32 bits;
  // the first code of that length, right-aligned; where its symbols start in `symbols`.
  std::array<std::uint64_t, 31> limit{};
  std::array<std::uint32_t, 31> first_code{};
  std::array<std::uint16_t, 31> first_index{};
  std::array<std::uint16_t, 257> symbols{};  // ordered by (length, symbol)

  HuffmanDecodeTables() {
    std::array<std::uint16_t, 31> count{};
    for (const auto& code : kHuffmanCodes) ++count[code.bits];
    std::uint32_t code = 0;  // the first code of length `bits`
    std::uint16_t index = 0;
    for (int bits = 1; bits <= 30; ++bits) {
      if (bits > 1) code = (code + count[bits - 1]) << 1;
      first_code[bits] = code;
      first_index[bits] = index;
      index += count[bits];
      limit[bits] = std::uint64_t{code + count[bits]} << (32 - bits);
    }
    std::size_t next = 0;
    for (int bits = 1; bits <= 30; ++bits) {
      for (std::uint16_t symbol = 0; symbol < kHuffmanCodes.size(); ++symbol) {
        if (kHuffmanCodes[symbol].bits == bits) symbols[next++] = symbol;
      }
    }
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
      const auto [symbol, bits] = lookup(byte << 24, 1);
      if (bits <= 8) by_first_byte[byte] = {symbol, static_cast<std::uint8_t>(bits)};
    }
  }

  // The symbol whose code starts `window` and its length; `from_bits` is a lower bound on it.
  std::pair<std::uint16_t, int> lookup(std::uint32_t window, int from_bits) const {
    int bits = from_bits;
    while (window >= limit[bits]) ++bits;  // ends: limit[30] is 2^32
    const std::uint32_t code = window >> (32 - bits);
    return {symbols[first_index[bits] + (code - first_code[bits])], bits};
  }
};

const HuffmanDecodeTables& huffman_decode_tables() {
  static const HuffmanDecodeTables tables;
  return tables;
}

void huffman_encode_into(std::string_view in, char* out) {
  std::uint64_t pending = 0;  // the low `bits` bits are not written yet
  int bits = 0;
  for (unsigned char c : in) {
    const HuffmanCode& code = kHuffmanCodes[c];
    pending = (pending << code.bits) | code.code;
    bits += code.bits;
    while (bits >= 8) {
      bits -= 8;
      *out++ = static_cast<char>(pending >> bits);
    }
  }
  // Padding: the most significant bits of EOS, all ones.
  if (bits > 0) *out = static_cast<char>((pending << (8 - bits)) | (0xffu >> bits));
}

bool is_sensitive(std::string_view name) {
  constexpr std::array<std::string_view, 4> kSensitive = {"authorization", "proxy-authorization",
                                                          "cookie", "set-cookie"};
  for (std::string_view sensitive : kSensitive) {
    if (name.size() == sensitive.size() &&
        std::equal(name.begin(), name.end(), sensitive.begin(), [](char a, char b) {
          return (a >= 'A' && a <= 'Z' ? a + ('a' - 'A') : a) == b;
        })) {
      return true;
    }
  }
  return false;
}

// Fields whose value is new on every message (a deadline, a request or trace id): indexing them
// would only push the fields that do repeat out of both tables. Names as fusebox sends them.
bool is_volatile(std::string_view name) {
  return name == "grpc-timeout" || name == "x-request-id" || name == "traceparent" ||
         name == "grpc-trace-bin";
}

// The unread part of a header block. The readers return nullptr, or why the block is malformed.
struct Cursor {
  const unsigned char* at;
  const unsigned char* end;
};

const char* read_integer(Cursor& in, int prefix_bits, std::uint64_t& value) {
  if (in.at == in.end) return "truncated integer";
  const unsigned mask = (1u << prefix_bits) - 1;
  value = *in.at++ & mask;
  if (value < mask) return nullptr;
  for (int shift = 0;; shift += 7) {
    if (in.at == in.end) return "truncated integer";
    // Five continuation bytes carry 35 bits: a sixth is zero padding or past the bound.
    if (shift > 28) return "integer too large";
    const unsigned char byte = *in.at++;
    value += std::uint64_t{byte & 0x7fu} << shift;
    if (value > kMaxInteger) return "integer too large";
    if ((byte & 0x80) == 0) return nullptr;
  }
}

template <class String>
bool huffman_decode_into(std::string_view in, String& out);

// Into an empty `out`.
const char* read_string(Cursor& in, memory::PooledString& out) {
  if (in.at == in.end) return "truncated string";
  const bool huffman = (*in.at & 0x80) != 0;
  std::uint64_t length = 0;
  if (const char* why = read_integer(in, 7, length)) return why;
  if (length > static_cast<std::uint64_t>(in.end - in.at)) return "string longer than the block";
  const std::string_view data(reinterpret_cast<const char*>(in.at), length);
  in.at += length;
  if (!huffman) {
    out.assign(data);
    return nullptr;
  }
  return huffman_decode_into(data, out) ? nullptr : "malformed Huffman string";
}

}  // namespace

// ---- primitives ----

void hpack_encode_integer(std::uint64_t value, int prefix_bits, std::uint8_t first_byte_flags,
                          std::string& out) {
  const unsigned mask = (1u << prefix_bits) - 1;
  if (value < mask) {
    out.push_back(static_cast<char>(first_byte_flags | value));
    return;
  }
  out.push_back(static_cast<char>(first_byte_flags | mask));
  value -= mask;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void hpack_encode_string(std::string_view value, std::string& out, bool allow_huffman) {
  const std::size_t huffman_size = allow_huffman ? huffman_encoded_size(value) : SIZE_MAX;
  if (huffman_size >= value.size()) {
    hpack_encode_integer(value.size(), 7, 0x00, out);
    out.append(value);
    return;
  }
  hpack_encode_integer(huffman_size, 7, 0x80, out);
  const std::size_t at = out.size();
  out.resize(at + huffman_size);
  huffman_encode_into(value, out.data() + at);
}

std::size_t huffman_encoded_size(std::string_view in) {
  std::size_t bits = 0;
  for (unsigned char c : in) bits += kHuffmanCodes[c].bits;
  return (bits + 7) / 8;
}

void huffman_encode(std::string_view in, std::string& out) {
  const std::size_t at = out.size();
  out.resize(at + huffman_encoded_size(in));
  huffman_encode_into(in, out.data() + at);
}

bool huffman_decode(std::string_view in, std::string& out) { return huffman_decode_into(in, out); }

namespace {

template <class String>
bool huffman_decode_into(std::string_view in, String& out) {
  const HuffmanDecodeTables& tables = huffman_decode_tables();
  const std::size_t start = out.size();
  // Every code is at least 5 bits long: this bounds the output, so the loop never reallocates.
  out.resize(start + in.size() * 8 / 5);
  char* write = out.data() + start;
  const auto* read = reinterpret_cast<const unsigned char*>(in.data());
  const auto* end = read + in.size();
  auto fail = [&] {
    out.resize(start);
    return false;
  };
  std::uint64_t window = 0;  // the next `bits` input bits, left-aligned
  int bits = 0;
  for (;;) {
    if (bits < 30) {  // the longest code: refill only then, a few bytes at once
      for (; bits <= 56 && read != end; bits += 8) window |= std::uint64_t{*read++} << (56 - bits);
    }
    if (bits == 0) break;
    const auto top = static_cast<std::uint32_t>(window >> 32);
    HuffmanDecodeTables::Short code = tables.by_first_byte[top >> 24];
    if (code.bits == 0) {
      const auto [symbol, length] = tables.lookup(top, 9);
      code = {symbol, static_cast<std::uint8_t>(length)};
    }
    if (code.bits > bits) {
      // Only at the end of the input (otherwise 30 bits or more are buffered): the rest must be
      // padding, a prefix of EOS shorter than a byte.
      if (bits > 7 || (top >> (32 - bits)) != (1u << bits) - 1) return fail();
      break;
    }
    if (code.symbol == kHuffmanEos) return fail();
    *write++ = static_cast<char>(code.symbol);
    window <<= code.bits;
    bits -= code.bits;
  }
  out.resize(write - out.data());
  return true;
}

}  // namespace

// ---- HpackTable ----

const HeaderField* HpackTable::at(std::size_t index) const {
  if (index == 0) return nullptr;
  if (index <= kStaticCount) return &static_table()[index - 1];
  index -= kStaticCount + 1;
  return index < entries_.size() ? &entries_[index] : nullptr;
}

void HpackTable::add(std::string_view name, std::string_view value) {
  const std::size_t entry_size = name.size() + value.size() + kEntryOverhead;
  if (entry_size > max_size_) {
    entries_.clear();
    size_ = 0;
    return;
  }
  // Copied before evicting: `name` may be the name of an entry about to be evicted (4.4).
  HeaderField field{memory::PooledString(name), memory::PooledString(value)};
  evict_to(max_size_ - entry_size);
  entries_.push_front(std::move(field));
  size_ += entry_size;
}

void HpackTable::set_max_size(std::size_t max_size) {
  max_size_ = max_size;
  evict_to(max_size);
}

void HpackTable::evict_to(std::size_t limit) {
  while (size_ > limit) {
    const HeaderField& oldest = entries_.back();
    size_ -= oldest.name.size() + oldest.value.size() + kEntryOverhead;
    entries_.pop_back();
  }
}

namespace {

// Where each name sits in the static table: entries with the same name are adjacent there
// (RFC 7541 appendix A), so a name maps to one run [first, first + count).
struct StaticRun {
  std::size_t first = 0;  // 1-based index, 0 when the name is not in the table
  std::size_t count = 0;
};

StaticRun static_run(std::string_view name) {
  static const auto runs = [] {
    std::vector<std::pair<std::string_view, StaticRun>> out;
    const auto& statics = static_table();
    for (std::size_t i = 0; i < statics.size(); ++i) {
      if (!out.empty() && out.back().first == statics[i].name) {
        ++out.back().second.count;
      } else {
        out.push_back({statics[i].name, {i + 1, 1}});
      }
    }
    return out;
  }();
  for (const auto& [n, run] : runs) {
    if (n.size() == name.size() && n == name) return run;
  }
  return {};
}

}  // namespace

HpackTable::Match HpackTable::find(std::string_view name, std::string_view value) const {
  Match match;
  const auto run = static_run(name);
  const auto& statics = static_table();
  for (std::size_t i = run.first; i < run.first + run.count; ++i) {
    if (statics[i - 1].value == value) return {i, true};
  }
  if (run.first != 0) match = {run.first, false};
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].name != name) continue;
    if (entries_[i].value == value) return {kStaticCount + 1 + i, true};
    if (match.index == 0) match = {kStaticCount + 1 + i, false};
  }
  return match;
}

// ---- HpackDecoder ----

HpackDecoder::HpackDecoder(std::size_t max_table_size)
    : table_(max_table_size), max_table_size_(max_table_size) {}

HpackDecoder::Result HpackDecoder::decode(std::string_view block, HeaderList& out,
                                          std::size_t max_list_size) {
  error_.clear();
  const auto* begin = reinterpret_cast<const unsigned char*>(block.data());
  Cursor in{begin, begin + block.size()};
  std::size_t list_size = 0;
  bool too_large = false;
  bool field_seen = false;
  const char* why = nullptr;
  const unsigned char* representation = begin;

  // Counts the field against the limit; false once the list is too large to keep appending.
  auto admit = [&](const HeaderField& field) {
    list_size += field.name.size() + field.value.size() + kEntryOverhead;
    if (list_size > max_list_size) too_large = true;
    return !too_large;
  };

  while (in.at != in.end && why == nullptr) {
    representation = in.at;
    const unsigned char first = *in.at;
    std::uint64_t index = 0;
    if (first & 0x80) {  // indexed field
      if ((why = read_integer(in, 7, index))) break;
      const HeaderField* entry = index == 0 ? nullptr : table_.at(index);
      if (entry == nullptr) {
        why = index == 0 ? "index 0" : "index beyond the table";
        break;
      }
      if (admit(*entry)) out.push_back(*entry);
      field_seen = true;
      continue;
    }
    if ((first & 0xe0) == 0x20) {  // dynamic table size update
      if (field_seen) {
        why = "table size update after a field";
        break;
      }
      if ((why = read_integer(in, 5, index))) break;
      if (index > max_table_size_) {
        why = "table size update above the announced limit";
        break;
      }
      table_.set_max_size(index);
      continue;
    }
    // A literal: with incremental indexing (01), never indexed (0001) or without indexing (0000).
    const bool add_to_table = (first & 0x40) != 0;
    if ((why = read_integer(in, add_to_table ? 6 : 4, index))) break;
    HeaderField field;
    if (index != 0) {
      const HeaderField* entry = table_.at(index);
      if (entry == nullptr) {
        why = "name index beyond the table";
        break;
      }
      field.name = entry->name;
    } else if ((why = read_string(in, field.name))) {
      break;
    }
    if ((why = read_string(in, field.value))) break;
    if (add_to_table) table_.add(field.name, field.value);
    if (admit(field)) out.push_back(std::move(field));
    field_seen = true;
  }

  if (why != nullptr) {
    error_ = std::string("hpack: ") + why + " (representation at byte " +
             std::to_string(representation - begin) + ")";
    return Result::compression_error;
  }
  if (too_large) {
    error_ = "hpack: header list of " + std::to_string(list_size) + " bytes exceeds the limit of " +
             std::to_string(max_list_size);
    return Result::too_large;
  }
  return Result::ok;
}

// ---- HpackEncoder ----

void HpackEncoder::encode(HeaderRefs fields, std::string& out) {
  write_pending_update(out);
  for (const HeaderRef& field : fields) encode(field.name, field.value, out);
}

void HpackEncoder::encode(const HeaderList& fields, std::string& out) {
  encode(views(fields), out);
}

void HpackEncoder::encode(std::string_view name, std::string_view value, std::string& out) {
  write_pending_update(out);
  const HpackTable::Match match = table_.find(name, value);
  const bool sensitive = is_sensitive(name);
  if (match.full && !sensitive) {
    hpack_encode_integer(match.index, 7, 0x80, out);
    return;
  }
  const std::size_t entry_size = name.size() + value.size() + kEntryOverhead;
  std::uint8_t flags = 0x00;  // literal without indexing, 4-bit name index
  int prefix_bits = 4;
  bool add_to_table = false;
  if (sensitive) {
    flags = 0x10;  // never indexed: intermediaries must not index it either (RFC 7541 7.1.3)
  } else if (name.size() + value.size() <= kMaxIndexedField && entry_size <= table_.max_size() &&
             !is_volatile(name)) {
    flags = 0x40;
    prefix_bits = 6;
    add_to_table = true;
  }
  hpack_encode_integer(match.index, prefix_bits, flags, out);
  if (match.index == 0) hpack_encode_string(name, out);
  // A per-message value is read once: coding it costs both ends more than its bytes.
  hpack_encode_string(value, out, /*allow_huffman=*/!is_volatile(name));
  if (add_to_table) table_.add(name, value);
}

void HpackEncoder::set_peer_max_table_size(std::size_t size) {
  const std::size_t limit = std::min(size, kMaxEncoderTable);
  if (limit == table_.max_size()) return;
  table_.set_max_size(limit);
  // The smallest size since the last block goes first, so the peer evicts what we evicted.
  pending_update_ = std::min(pending_update_, limit);
}

void HpackEncoder::write_pending_update(std::string& out) {
  if (pending_update_ == SIZE_MAX) return;
  hpack_encode_integer(pending_update_, 5, 0x20, out);
  if (table_.max_size() != pending_update_) hpack_encode_integer(table_.max_size(), 5, 0x20, out);
  pending_update_ = SIZE_MAX;
}

}  // namespace fusebox::h2
