#pragma once
// UTF-8 well-formedness (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF. Used where fusebox must reject what its peers reject: JSON strings in cache
// keys, protobuf string fields (libprotobuf refuses proto3 strings that are not UTF-8). Pure.

#include <cstddef>
#include <string_view>

namespace fusebox {

// Length (2..4) of the well-formed multi-byte sequence starting at p, or 0 when it is malformed
// or runs past `end`. `p` must point at a byte >= 0x80 before `end`.
std::size_t utf8_sequence_length(const unsigned char* p, const unsigned char* end);

// True when all of `text` is well-formed UTF-8 (the empty string is).
bool is_valid_utf8(std::string_view text);

}  // namespace fusebox
