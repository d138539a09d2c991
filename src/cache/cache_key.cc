// Cache keys: hash64 and the length-prefixed key text.

#include <bit>
#include <cstring>

#include "fusebox/cache/response_cache.h"

namespace fusebox::cache {
namespace {

constexpr std::uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t kPrime3 = 0x165667B19E3779F9ull;
constexpr std::uint64_t kPrime4 = 0x85EBCA77C2B2AE63ull;

// Little-endian on every machine, so a hash is the same everywhere (a shared store may
// later hold keys written by other replicas).
std::uint64_t load_le64(const char* p) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) {
    v = ((v & 0x00000000000000FFull) << 56) | ((v & 0x000000000000FF00ull) << 40) |
        ((v & 0x0000000000FF0000ull) << 24) | ((v & 0x00000000FF000000ull) << 8) |
        ((v & 0x000000FF00000000ull) >> 8) | ((v & 0x0000FF0000000000ull) >> 24) |
        ((v & 0x00FF000000000000ull) >> 40) | ((v & 0xFF00000000000000ull) >> 56);
  }
  return v;
}

std::uint64_t lane_round(std::uint64_t acc, std::uint64_t word) {
  acc += word * kPrime2;
  acc = std::rotl(acc, 31);
  return acc * kPrime1;
}

std::uint64_t merge(std::uint64_t h, std::uint64_t lane) {
  h ^= lane_round(0, lane);
  return h * kPrime1 + kPrime4;
}

// MurmurHash3's fmix64: every input bit flips each output bit with probability ~1/2.
std::uint64_t avalanche(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

void append_field(std::string& text, std::string_view field) {
  text += std::to_string(field.size());
  text.push_back(':');
  text.append(field);
  text.push_back(';');
}

}  // namespace

// Four independent multiply-rotate lanes over 32-byte blocks (the round structure of xxHash64,
// not bit-compatible with it), so the multiplies of one block overlap: ~1 byte per cycle is
// far more than needed next to canonicalisation. The length is mixed in before the tail, so
// zero padding of the last word is unambiguous.
std::uint64_t hash64(std::string_view bytes) {
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  std::uint64_t h = 0;
  if (bytes.size() >= 32) {
    std::uint64_t a = kPrime1 + kPrime2;
    std::uint64_t b = kPrime2;
    std::uint64_t c = 0;
    std::uint64_t d = 0 - kPrime1;
    for (; end - p >= 32; p += 32) {
      a = lane_round(a, load_le64(p));
      b = lane_round(b, load_le64(p + 8));
      c = lane_round(c, load_le64(p + 16));
      d = lane_round(d, load_le64(p + 24));
    }
    h = std::rotl(a, 1) + std::rotl(b, 7) + std::rotl(c, 12) + std::rotl(d, 18);
    h = merge(h, a);
    h = merge(h, b);
    h = merge(h, c);
    h = merge(h, d);
  } else {
    h = kPrime3;
  }
  h += static_cast<std::uint64_t>(bytes.size());
  for (; end - p >= 8; p += 8) {
    h ^= lane_round(0, load_le64(p));
    h = std::rotl(h, 27) * kPrime1 + kPrime4;
  }
  if (p != end) {
    char tail[8] = {};
    std::memcpy(tail, p, static_cast<std::size_t>(end - p));
    h ^= lane_round(0, load_le64(tail));
    h = std::rotl(h, 23) * kPrime2 + kPrime3;
  }
  return avalanche(h);
}

CacheKey make_key(std::string_view route, std::string_view model, std::string_view version_or_label,
                  std::string_view signature, std::string_view canonical_body) {
  CacheKey key;
  key.text.reserve(canonical_body.size() + route.size() + model.size() + version_or_label.size() +
                   signature.size() + 48);
  key.text += "fbk1;";  // format tag: a shared store must not mix key layouts
  append_field(key.text, route);
  append_field(key.text, model);
  append_field(key.text, version_or_label);
  append_field(key.text, signature);
  append_field(key.text, canonical_body);
  key.hash = hash64(key.text);
  return key;
}

}  // namespace fusebox::cache
