#include "fusebox/admission/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace fusebox::admission {
namespace {

constexpr std::int64_t kNanoPerToken = 1'000'000'000;

std::int64_t capacity_of(const TokenBucketRule& rule) {
  return static_cast<std::int64_t>(rule.burst) * kNanoPerToken;
}

// Nanoseconds until `missing` nano-tokens accrue at `rate` tokens per second (= nano-tokens per
// nanosecond), rounded up; nanoseconds::max() at a rate of 0.
std::chrono::nanoseconds time_to_accrue(std::int64_t missing, double rate) {
  if (missing <= 0) return std::chrono::nanoseconds(0);
  if (!(rate > 0)) return std::chrono::nanoseconds::max();
  const double ns = std::ceil(static_cast<double>(missing) / rate);
  if (ns >= static_cast<double>(std::chrono::nanoseconds::max().count())) {
    return std::chrono::nanoseconds::max();
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

}  // namespace

TokenBucket::TokenBucket(const TokenBucketRule& rule, TimePoint now)
    : nano_tokens_(capacity_of(rule)), last_refill_(now) {}

std::int64_t TokenBucket::refilled(const TokenBucketRule& rule, TimePoint now) const {
  const std::int64_t capacity = capacity_of(rule);
  const std::int64_t tokens = std::min(nano_tokens_, capacity);  // the burst may have shrunk
  if (now <= last_refill_ || !(rule.rate_per_second > 0)) return tokens;
  // Nano-tokens per nanosecond equals tokens per second. Compared in double before converting,
  // so a bucket idle for days cannot overflow.
  const double added = static_cast<double>((now - last_refill_).count()) * rule.rate_per_second;
  if (added >= static_cast<double>(capacity - tokens)) return capacity;
  return tokens + static_cast<std::int64_t>(added);
}

TakeResult TokenBucket::try_take(const TokenBucketRule& rule, TimePoint now, std::uint32_t n) {
  nano_tokens_ = refilled(rule, now);
  last_refill_ = std::max(last_refill_, now);
  const std::int64_t needed = static_cast<std::int64_t>(n) * kNanoPerToken;
  if (nano_tokens_ >= needed) {
    nano_tokens_ -= needed;
    return TakeResult{.allowed = true};
  }
  if (n > rule.burst) return TakeResult{.retry_after = std::chrono::nanoseconds::max()};
  return TakeResult{.retry_after = time_to_accrue(needed - nano_tokens_, rule.rate_per_second)};
}

double TokenBucket::tokens(const TokenBucketRule& rule, TimePoint now) const {
  return static_cast<double>(refilled(rule, now)) / kNanoPerToken;
}

TimePoint TokenBucket::full_at(const TokenBucketRule& rule) const {
  const auto wait = time_to_accrue(capacity_of(rule) - nano_tokens_, rule.rate_per_second);
  if (wait == std::chrono::nanoseconds::max()) return TimePoint::max();
  return last_refill_ + wait;
}

// --- RateLimiterTable ----------------------------------------------------------------------

namespace {

struct Entry {
  std::string key;
  TokenBucketRule rule;  // the last rule applied (decides when the bucket is idle)
  TokenBucket bucket;
};

}  // namespace

struct RateLimiterTable::Shard {
  std::mutex mutex;
  std::size_t capacity = 1;
  std::list<Entry> lru;  // most recently used first
  // Keys view the strings inside the list nodes, which never move.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;

  bool idle(const Entry& entry, TimePoint now, std::chrono::milliseconds idle_eviction) const {
    const TimePoint full = entry.bucket.full_at(entry.rule);
    return full != TimePoint::max() && now - full >= idle_eviction;
  }
  void erase(std::list<Entry>::iterator it) {
    index.erase(std::string_view(it->key));
    lru.erase(it);
  }
  // Drops idle buckets from the least recently used end, at most `budget` of them. Stops at the
  // first bucket used within idle_eviction (nothing used since can have been full for that
  // long) and, unless `sweep`, at the first that is not idle.
  std::size_t drop_idle(TimePoint now, std::chrono::milliseconds idle_eviction, std::size_t budget,
                        bool sweep) {
    std::size_t dropped = 0;
    auto it = lru.end();
    while (it != lru.begin() && dropped < budget) {
      --it;
      if (now - it->bucket.last_refill() < idle_eviction) break;
      if (idle(*it, now, idle_eviction)) {
        index.erase(std::string_view(it->key));
        it = lru.erase(it);  // the next step back reaches the bucket before it
        ++dropped;
      } else if (!sweep) {
        break;
      }
    }
    return dropped;
  }
};

RateLimiterTable::RateLimiterTable(const RateLimiterTableOptions& options, const Clock& clock)
    : options_(options), clock_(clock) {
  const std::size_t max_clients = std::max<std::size_t>(options.max_clients, 1);
  shard_count_ = std::clamp<std::size_t>(options.shards, 1, max_clients);
  shards_ = std::make_unique<Shard[]>(shard_count_);
  // The shares add up to max_clients exactly.
  for (std::size_t i = 0; i < shard_count_; ++i) {
    shards_[i].capacity = max_clients / shard_count_ + (i < max_clients % shard_count_ ? 1 : 0);
  }
}

RateLimiterTable::~RateLimiterTable() = default;

RateLimiterTable::Shard& RateLimiterTable::shard_for(std::string_view key) const {
  // Mixed (Fibonacci hashing) so the shard does not correlate with the bucket inside the map.
  const std::uint64_t h = std::hash<std::string_view>{}(key)*0x9E3779B97F4A7C15ull;
  return shards_[(h >> 32) % shard_count_];
}

TakeResult RateLimiterTable::try_take(std::string_view key, const TokenBucketRule& rule,
                                      std::uint32_t n) {
  const TimePoint now = clock_.now();
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  // Before the lookup: it may drop this very key's bucket, which is then recreated full, the
  // same state.
  shard.drop_idle(now, options_.idle_eviction, 2, false);
  auto found = shard.index.find(key);
  if (found == shard.index.end()) {
    if (shard.lru.size() >= shard.capacity) shard.erase(std::prev(shard.lru.end()));
    shard.lru.push_front(Entry{std::string(key), rule, TokenBucket(rule, now)});
    found = shard.index.emplace(std::string_view(shard.lru.front().key), shard.lru.begin()).first;
  } else {
    shard.lru.splice(shard.lru.begin(), shard.lru, found->second);
  }
  Entry& entry = *found->second;
  entry.rule = rule;
  return entry.bucket.try_take(rule, now, n);
}

std::size_t RateLimiterTable::evict_idle() {
  const TimePoint now = clock_.now();
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    dropped += shards_[i].drop_idle(now, options_.idle_eviction, SIZE_MAX, true);
  }
  return dropped;
}

std::size_t RateLimiterTable::size() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    total += shards_[i].lru.size();
  }
  return total;
}

std::size_t RateLimiterTable::shard_count() const { return shard_count_; }

}  // namespace fusebox::admission
