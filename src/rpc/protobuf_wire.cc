#include "fusebox/rpc/protobuf_wire.h"

#include "fusebox/common/utf8.h"

namespace fusebox::rpc {

const char* to_string(WireError error) {
  switch (error) {
    case WireError::none:
      return "none";
    case WireError::truncated:
      return "truncated";
    case WireError::bad_varint:
      return "bad_varint";
    case WireError::bad_tag:
      return "bad_tag";
    case WireError::bad_length:
      return "bad_length";
    case WireError::unbalanced_group:
      return "unbalanced_group";
    case WireError::too_deep:
      return "too_deep";
    case WireError::invalid_utf8:
      return "invalid_utf8";
  }
  return "unknown";
}

WireError WireReader::read_string(std::string_view& text) {
  std::string_view payload;
  if (const auto e = read_length_delimited(payload); e != WireError::none) return e;
  if (!is_valid_utf8(payload)) return WireError::invalid_utf8;
  text = payload;
  return WireError::none;
}

WireError WireReader::skip(const Tag& tag, int depth) {
  switch (tag.wire_type) {
    case kVarint: {
      std::uint64_t ignored = 0;
      return read_varint(ignored);
    }
    case kFixed64:
      return skip_bytes(8);
    case kLengthDelimited: {
      std::string_view ignored;
      return read_length_delimited(ignored);
    }
    case kStartGroup: {
      if (depth >= kMaxGroupDepth) return WireError::too_deep;
      for (;;) {
        if (done()) return WireError::unbalanced_group;
        Tag inner;
        if (const auto e = read_tag(inner); e != WireError::none) return e;
        if (inner.wire_type == kEndGroup) {
          return inner.field == tag.field ? WireError::none : WireError::unbalanced_group;
        }
        if (const auto e = skip(inner, depth + 1); e != WireError::none) return e;
      }
    }
    case kEndGroup:
      return WireError::unbalanced_group;  // an end without its start
    case kFixed32:
      return skip_bytes(4);
    default:
      return WireError::bad_tag;
  }
}

}  // namespace fusebox::rpc
