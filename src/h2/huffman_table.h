#pragma once
// The Huffman code of HPACK (RFC 7541 appendix B), shared by the encoder and the decoder.

#include <array>
#include <cstdint>

namespace fusebox::h2 {

struct HuffmanCode {
  std::uint32_t code;  // right-aligned: the code's last bit is bit 0
  std::uint8_t bits;   // 5..30
};

inline constexpr int kHuffmanEos = 256;

// Indexed by symbol: the 256 byte values, then EOS. The code is canonical (codes of one length
// are consecutive and ordered by symbol), which the decoder relies on.
extern const std::array<HuffmanCode, 257> kHuffmanCodes;

}  // namespace fusebox::h2
