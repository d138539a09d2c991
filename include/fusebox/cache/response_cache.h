#pragma once
// The response cache of the degradation chain (and, in `first` mode, an ordinary response
// cache): the last good answer for the same request.
//
// Keys are built from the route, the model, its version or label, the signature and the
// request body in canonical JSON form, so that key order, whitespace and the spelling of a
// number (1, 1.0, 1e0) do not matter. The store is an interface: the embedded, sharded,
// in-process LRU below is the default; a shared store (Redis) can implement it later.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fusebox/common/clock.h"

namespace fusebox::cache {

// Canonical JSON: objects with keys sorted by their UTF-8 bytes, no insignificant whitespace,
// strings re-escaped the one way (only the escapes JSON requires, \u00XX for other control
// characters, no escaping of '/' or non-ASCII), numbers by value: every number that has an
// exact integer value within +-2^53 is written as that integer (1, 1.0, 1e0 -> "1"; -0 -> "0"),
// every other finite number as the shortest text that reads back to the same double.
// Exceptions, so that two different requests never share a key:
// - an integer literal (no fraction, no exponent) keeps its exact digits at any size, since
//   TF Serving reads int64 tensors exactly: 9007199254740993 stays distinct from
//   9007199254740992; a number beyond +-2^53 with a fraction or exponent is compared as a
//   double and always written with an exponent ("1e+16"), so it never equals an integer literal;
// - a number outside the range of double (1e400) is kept as written.
// Duplicate object keys are kept, in input order (last-wins parsers read them differently).
// NaN and Infinity (which TF Serving accepts) are written as NaN, Infinity, -Infinity; the
// spellings -NaN, Inf and -Inf (accepted by TF Serving's parser) are accepted too.
// Returns nullopt when `body` is not one valid JSON value (trailing garbage included), holds
// malformed UTF-8 or a lone surrogate escape, or nests deeper than kCanonicalJsonMaxDepth.
// Never throws.
std::optional<std::string> canonical_json(std::string_view body);

// Arrays and objects nested deeper than this make canonical_json() return nullopt.
inline constexpr int kCanonicalJsonMaxDepth = 512;

// A 64-bit hash of arbitrary bytes (stable across runs and machines; not cryptographic).
std::uint64_t hash64(std::string_view bytes);

struct CacheKey {
  std::string text;        // the full key; equality is on this
  std::uint64_t hash = 0;  // hash64(text); stores trust it (build keys with make_key)
};

// version_or_label: "" (latest), "v:<n>" or "l:<label>"; signature "" = serving_default.
// The text is a format tag, then each field as `<length>:<bytes>;`, so no two field tuples
// share a text (("ab","c") != ("a","bc")).
CacheKey make_key(std::string_view route, std::string_view model,
                  std::string_view version_or_label, std::string_view signature,
                  std::string_view canonical_body);

struct CachedResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t stale_hits = 0;   // included in hits
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;    // removed to stay within the byte budget
  std::uint64_t expirations = 0;  // removed because older than ttl + stale_if_error
  std::uint64_t bytes = 0;        // current size (keys + bodies + per-entry overhead)
  std::uint64_t entries = 0;
};

class ResponseCacheStore {
 public:
  enum class Freshness : std::uint8_t { fresh, stale };
  struct Hit {
    std::shared_ptr<const CachedResponse> response;
    Freshness freshness = Freshness::fresh;
    std::chrono::milliseconds age{0};
  };

  virtual ~ResponseCacheStore() = default;
  // A fresh entry (younger than ttl), or with allow_stale an entry within ttl + stale_if_error.
  // Thread-safe.
  virtual std::optional<Hit> lookup(const CacheKey& key, bool allow_stale) = 0;
  // Stores or replaces. An entry larger than the budget (for the memory cache: a shard's
  // share, max_bytes / shards) is not stored, and the entry it would replace is removed.
  // Thread-safe.
  virtual void insert(const CacheKey& key, CachedResponse response) = 0;
  virtual CacheStats stats() const = 0;
};

struct MemoryCacheConfig {
  std::uint64_t max_bytes = 64ull << 20;
  std::chrono::milliseconds ttl{60'000};
  std::chrono::milliseconds stale_if_error{0};  // extra age a stale entry may be served at
  std::size_t shards = 16;                      // each with its own lock and LRU list
};

// Bytes counted per entry beyond key, body and content type: on 64-bit libstdc++ the LRU list
// node with its Entry (~96), the hash-map node and bucket (~56), the shared CachedResponse with
// its control block (~96), rounded up for allocator headers.
inline constexpr std::uint64_t kCacheEntryOverheadBytes = 256;

// What an entry counts against the byte budget.
std::uint64_t entry_charge(const CacheKey& key, const CachedResponse& response);

// In-process LRU: the byte budget is split evenly between shards; a shard evicts its least
// recently used entries to make room. Entries past ttl + stale_if_error are dropped when met.
std::unique_ptr<ResponseCacheStore> make_memory_cache(const MemoryCacheConfig& config,
                                                      const Clock& clock);

}  // namespace fusebox::cache
