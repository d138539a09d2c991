// The embedded response cache store: N shards picked by key hash, each with its own mutex,
// LRU list and byte budget, so threads answering different requests rarely meet on a lock.

#include <algorithm>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "fusebox/cache/response_cache.h"

namespace fusebox::cache {

std::uint64_t entry_charge(const CacheKey& key, const CachedResponse& response) {
  return key.text.size() + response.body.size() + response.content_type.size() +
         kCacheEntryOverheadBytes;
}

namespace {

struct Entry {
  std::string key_text;
  std::uint64_t hash = 0;
  std::shared_ptr<const CachedResponse> response;
  TimePoint stored_at;
  std::uint64_t charge = 0;
};

using LruList = std::list<Entry>;  // front: most recently used

// Index key: a view of the key text owned by the list node (nodes never move), plus the hash
// already computed by make_key, so a 64 KB key is never rehashed.
struct KeyRef {
  std::uint64_t hash;
  std::string_view text;
};
struct KeyRefHash {
  std::size_t operator()(const KeyRef& k) const noexcept {
    return static_cast<std::size_t>(k.hash);
  }
};
struct KeyRefEqual {
  bool operator()(const KeyRef& a, const KeyRef& b) const noexcept {
    return a.hash == b.hash && a.text == b.text;
  }
};

class Shard {
 public:
  explicit Shard(std::uint64_t budget) : budget_(budget) {}

  // Removed nodes are spliced into `graveyard` and freed by the caller after unlocking, so a
  // large body is never deallocated under the lock.
  std::optional<ResponseCacheStore::Hit> lookup(const CacheKey& key, bool allow_stale,
                                                TimePoint now, std::chrono::nanoseconds ttl,
                                                std::chrono::nanoseconds keep_for,
                                                LruList& graveyard) {
    std::lock_guard lock(mutex_);
    const auto found = index_.find(KeyRef{key.hash, key.text});
    if (found == index_.end()) {
      ++counters_.misses;
      return std::nullopt;
    }
    const LruList::iterator entry = found->second;
    const auto age = std::max(now - entry->stored_at, TimePoint::duration::zero());
    if (age >= keep_for) {
      remove(found, graveyard);
      ++counters_.expirations;
      ++counters_.misses;
      return std::nullopt;
    }
    ResponseCacheStore::Freshness freshness = ResponseCacheStore::Freshness::fresh;
    if (age >= ttl) {
      if (!allow_stale) {
        ++counters_.misses;
        return std::nullopt;
      }
      freshness = ResponseCacheStore::Freshness::stale;
      ++counters_.stale_hits;
    }
    ++counters_.hits;
    lru_.splice(lru_.begin(), lru_, entry);
    return ResponseCacheStore::Hit{entry->response, freshness,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(age)};
  }

  void insert(Entry fresh, TimePoint now, std::chrono::nanoseconds keep_for, LruList& graveyard) {
    std::lock_guard lock(mutex_);
    const auto found = index_.find(KeyRef{fresh.hash, fresh.key_text});
    // Replaced even when the new answer does not fit: the cache must never serve an answer
    // older than the latest good one it was given.
    if (found != index_.end()) remove(found, graveyard);
    if (fresh.charge > budget_) return;
    lru_.push_front(std::move(fresh));
    index_.emplace(KeyRef{lru_.front().hash, lru_.front().key_text}, lru_.begin());
    bytes_ += lru_.front().charge;
    while (bytes_ > budget_) {
      const LruList::iterator victim = std::prev(lru_.end());
      const bool expired = now - victim->stored_at >= keep_for;
      remove(index_.find(KeyRef{victim->hash, victim->key_text}), graveyard);
      ++(expired ? counters_.expirations : counters_.evictions);
    }
  }

  void add_stats(CacheStats& stats) const {
    std::lock_guard lock(mutex_);
    stats.hits += counters_.hits;
    stats.stale_hits += counters_.stale_hits;
    stats.misses += counters_.misses;
    stats.evictions += counters_.evictions;
    stats.expirations += counters_.expirations;
    stats.bytes += bytes_;
    stats.entries += index_.size();
  }

 private:
  using Index = std::unordered_map<KeyRef, LruList::iterator, KeyRefHash, KeyRefEqual>;

  void remove(Index::iterator found, LruList& graveyard) {
    const LruList::iterator entry = found->second;
    bytes_ -= entry->charge;
    index_.erase(found);  // before the node moves: the index key views its text
    graveyard.splice(graveyard.end(), lru_, entry);
  }

  struct Counters {
    std::uint64_t hits = 0;
    std::uint64_t stale_hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t evictions = 0;
    std::uint64_t expirations = 0;
  };

  mutable std::mutex mutex_;
  const std::uint64_t budget_;
  std::uint64_t bytes_ = 0;
  LruList lru_;
  Index index_;
  Counters counters_;
};

class MemoryCache final : public ResponseCacheStore {
 public:
  MemoryCache(const MemoryCacheConfig& config, const Clock& clock)
      : clock_(clock), ttl_(config.ttl), keep_for_(config.ttl + config.stale_if_error) {
    const std::size_t shard_count = std::max<std::size_t>(config.shards, 1);
    shards_.reserve(shard_count);
    for (std::size_t i = 0; i < shard_count; ++i) {
      shards_.push_back(std::make_unique<Shard>(config.max_bytes / shard_count));
    }
  }

  std::optional<Hit> lookup(const CacheKey& key, bool allow_stale) override {
    LruList graveyard;
    return shard_of(key.hash).lookup(key, allow_stale, clock_.now(), ttl_, keep_for_, graveyard);
  }

  void insert(const CacheKey& key, CachedResponse response) override {
    Entry entry;
    entry.charge = entry_charge(key, response);
    entry.key_text = key.text;
    entry.hash = key.hash;
    entry.response = std::make_shared<const CachedResponse>(std::move(response));
    const TimePoint now = clock_.now();
    entry.stored_at = now;
    LruList graveyard;
    shard_of(key.hash).insert(std::move(entry), now, keep_for_, graveyard);
  }

  CacheStats stats() const override {
    CacheStats stats;
    for (const auto& shard : shards_) shard->add_stats(stats);
    return stats;
  }

 private:
  // The high half picks the shard; the hash map inside the shard uses the whole value.
  Shard& shard_of(std::uint64_t hash) { return *shards_[(hash >> 32) % shards_.size()]; }

  const Clock& clock_;
  const std::chrono::nanoseconds ttl_;
  const std::chrono::nanoseconds keep_for_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace

std::unique_ptr<ResponseCacheStore> make_memory_cache(const MemoryCacheConfig& config,
                                                      const Clock& clock) {
  return std::make_unique<MemoryCache>(config, clock);
}

}  // namespace fusebox::cache
