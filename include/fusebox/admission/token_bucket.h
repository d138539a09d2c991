#pragma once
// Rate limiting by token bucket: a bucket holds up to `burst` tokens and gains
// `rate_per_second` tokens per second; a request takes one (or n). Refill is lazy: a bucket
// stores its tokens and the time it last refilled, and tops up from the elapsed time when it
// is next used, so an idle bucket costs nothing.
//
// Tokens are counted in integer nano-tokens, so whole-number rates are exact over any run (no
// floating-point drift: 10/s with burst 5 allows exactly 5 + 10 * t requests over t seconds).
//
// TokenBucket is a value, single-threaded, and reads no clock (it is given `now`): the
// per-client buckets live in RateLimiterTable, which is thread-safe. A per-route limit shared
// by all workers can be a RateLimiterTable entry keyed by the route's name.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "fusebox/common/clock.h"

namespace fusebox::admission {

struct TokenBucketRule {
  double rate_per_second = 10;  // tokens added per second; 0: none (the burst only)
  std::uint32_t burst = 20;     // >= 1; bucket capacity (and the size of a burst from full)
};

struct TakeResult {
  bool allowed = false;
  // When refused: how long until the bucket holds the tokens asked for (exact, rounded up to
  // the nanosecond). The caller rounds it up to whole seconds for Retry-After. nanoseconds::max()
  // when it never will (n above burst, or a rate of 0). Zero when allowed.
  std::chrono::nanoseconds retry_after{0};
};

class TokenBucket {
 public:
  // Starts full.
  TokenBucket(const TokenBucketRule& rule, TimePoint now);

  // Takes n tokens if the bucket holds them (after refilling up to `now`). A refused take
  // takes nothing. A `now` earlier than the last refill adds nothing (no refill backwards).
  TakeResult try_take(const TokenBucketRule& rule, TimePoint now, std::uint32_t n = 1);

  // Tokens after refilling to `now` (does not store the refill); for tests and /admin.
  double tokens(const TokenBucketRule& rule, TimePoint now) const;
  // When the bucket is (or was) full again if nothing takes from it.
  TimePoint full_at(const TokenBucketRule& rule) const;
  TimePoint last_refill() const { return last_refill_; }

 private:
  std::int64_t refilled(const TokenBucketRule& rule, TimePoint now) const;  // nano-tokens

  std::int64_t nano_tokens_;
  TimePoint last_refill_;
};

struct RateLimiterTableOptions {
  // Buckets kept at most (memory bound: about 150 bytes each plus the key). When a shard is at
  // its share, the least recently used bucket there makes room; an evicted client starts again
  // with a full bucket, so the bound should exceed the number of clients active at one time.
  std::size_t max_clients = 100'000;
  // A bucket that has been full (untouched) for this long is forgotten: it is the same as the
  // fresh bucket a returning client would get.
  std::chrono::milliseconds idle_eviction{60'000};
  // Independent locks; clamped to [1, max_clients].
  std::size_t shards = 16;
};

// Buckets keyed by client identity (API key name, or client IP when anonymous), shared by all
// worker threads.
//
// Threading: every method may be called from any thread. Keys hash to one of `shards` shards,
// each with its own mutex, LRU list and map: a take locks one shard, looks the key up without
// copying it, and allocates only when it creates a bucket for a new key. Each take also looks
// at up to two least-recently-used buckets of its shard and drops them if idle, so idle buckets
// leave without a timer; evict_idle() sweeps everything (e.g. once a minute).
class RateLimiterTable {
 public:
  RateLimiterTable(const RateLimiterTableOptions& options, const Clock& clock);
  ~RateLimiterTable();

  RateLimiterTable(const RateLimiterTable&) = delete;
  RateLimiterTable& operator=(const RateLimiterTable&) = delete;

  // Takes n tokens from `key`'s bucket, creating it (full) under `rule` if absent. The rule is
  // passed on every call so a reloaded rule applies at once to existing buckets.
  TakeResult try_take(std::string_view key, const TokenBucketRule& rule, std::uint32_t n = 1);

  // Forgets every bucket idle for idle_eviction; returns how many. One shard locked at a time.
  std::size_t evict_idle();

  // Buckets held now (locks each shard in turn; a gauge, not for the data path).
  std::size_t size() const;
  std::size_t shard_count() const;

 private:
  struct Shard;
  Shard& shard_for(std::string_view key) const;

  const RateLimiterTableOptions options_;
  const Clock& clock_;
  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
};

}  // namespace fusebox::admission
