#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "fusebox/cache/response_cache.h"

namespace fusebox::cache {
namespace {

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xFF);
  return s;
}

// Fixed values: a change here changes every key a shared store holds.
TEST(CacheHash, StableValues) {
  EXPECT_EQ(hash64(""), 0xF490368ABA8BFEACull);
  EXPECT_EQ(hash64("a"), 0x9872EDBE4D4647C9ull);
  EXPECT_EQ(hash64("fusebox"), 0xABF4FBF7089B2333ull);
  EXPECT_EQ(hash64(R"({"instances":[[1,2,3],[4,5,6]]})"), 0x761A8BA62EBC89E8ull);
  EXPECT_EQ(hash64(pattern(1000)), 0x582AA798F89BB8E3ull);
}

TEST(CacheHash, EveryLengthAndBitMatters) {
  std::set<std::uint64_t> seen;
  // Zero-filled inputs of every length: the length is part of the hash.
  for (std::size_t n = 0; n <= 100; ++n) seen.insert(hash64(std::string(n, '\0')));
  EXPECT_EQ(seen.size(), 101u);
  // Every single-bit flip of a 100-byte input gives a different value.
  const std::string base = pattern(100);
  seen.clear();
  seen.insert(hash64(base));
  for (std::size_t i = 0; i < base.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = base;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      seen.insert(hash64(flipped));
    }
  }
  EXPECT_EQ(seen.size(), 1u + 100u * 8u);
}

TEST(CacheHash, AvalanchesOnOneBit) {
  // A one-bit change flips about half the output bits (well within 16..48 each time).
  const std::string base = pattern(64);
  for (std::size_t i = 0; i < base.size(); ++i) {
    std::string flipped = base;
    flipped[i] = static_cast<char>(flipped[i] ^ 1);
    const int changed = __builtin_popcountll(hash64(base) ^ hash64(flipped));
    EXPECT_GE(changed, 16) << i;
    EXPECT_LE(changed, 48) << i;
  }
}

TEST(CacheKey, SameFieldsSameKey) {
  const auto a = make_key("predict", "resnet", "v:3", "", R"({"instances":[1]})");
  const auto b = make_key("predict", "resnet", "v:3", "", R"({"instances":[1]})");
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.hash, hash64(a.text));
}

TEST(CacheKey, FieldBoundariesAreUnambiguous) {
  struct Fields {
    std::string route, model, version, signature, body;
  };
  // Each pair would collide under naive concatenation (with or without a separator).
  const std::vector<Fields> fields = {
      {"ab", "c", "", "", "{}"},   {"a", "bc", "", "", "{}"},   {"a", "b", "c", "", "{}"},
      {"a;", "b", "", "", "{}"},   {"a", ";b", "", "", "{}"},   {"r", "m", "v:1", "", "{}"},
      {"r", "m", "", "v:1", "{}"}, {"r", "m", "", "", "v:1{}"}, {"r", "m", "l:1", "", "{}"},
      {"r", "1:m;", "", "", "{}"}, {"r1:", "m;", "", "", "{}"}, {"", "", "", "", ""},
      {"", "", "", "", "0:;"},
  };
  std::set<std::string> texts;
  std::set<std::uint64_t> hashes;
  for (const auto& f : fields) {
    const auto key = make_key(f.route, f.model, f.version, f.signature, f.body);
    texts.insert(key.text);
    hashes.insert(key.hash);
  }
  EXPECT_EQ(texts.size(), fields.size());
  EXPECT_EQ(hashes.size(), fields.size());
}

}  // namespace
}  // namespace fusebox::cache
