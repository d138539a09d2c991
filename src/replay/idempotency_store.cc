// The idempotency store: N shards picked by key hash, each with its own mutex, byte budget,
// list of in-flight entries and LRU list of completed ones. Waiters run and removed entries
// are freed after the shard lock is released.

#include "fusebox/replay/idempotency_store.h"

#include <algorithm>
#include <iterator>
#include <list>
#include <mutex>
#include <unordered_map>

namespace fusebox::replay {

std::size_t StoredResponse::bytes() const {
  std::size_t total = kStoredResponseOverheadBytes + body.size();
  for (const auto& [name, value] : headers) {
    total += kStoredHeaderOverheadBytes + name.size() + value.size();
  }
  return total;
}

std::uint64_t in_flight_charge(std::string_view key) {
  return key.size() + kIdempotencyEntryOverheadBytes;
}

std::uint64_t completed_charge(std::string_view key, const StoredResponse& response) {
  return in_flight_charge(key) + response.bytes();
}

const char* to_string(BeginOutcome outcome) {
  switch (outcome) {
    case BeginOutcome::lead:
      return "lead";
    case BeginOutcome::joined:
      return "joined";
    case BeginOutcome::replay:
      return "replay";
    case BeginOutcome::mismatch:
      return "mismatch";
  }
  return "unknown";
}

namespace {

struct Entry {
  std::string key;
  std::uint64_t key_hash = 0;
  std::uint64_t fingerprint = 0;
  std::uint64_t charge = 0;
  bool in_flight = true;
  std::vector<IdempotencyStore::Waiter> waiters;   // in flight only
  std::shared_ptr<const StoredResponse> response;  // completed only
  TimePoint expires_at;                            // completed only
};

// List nodes keep their address when spliced between lists, so the index can key on a view
// of the node's own key text, with the hash that already picked the shard.
using EntryList = std::list<Entry>;

struct IndexKey {
  std::uint64_t key_hash;
  std::string_view key;
  bool operator==(const IndexKey&) const = default;
};

struct IndexKeyHash {
  std::size_t operator()(const IndexKey& k) const noexcept {
    return static_cast<std::size_t>(k.key_hash);
  }
};

std::uint64_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

// now + d, saturating instead of overflowing for a "forever" retain_for.
TimePoint saturating_add(TimePoint now, std::chrono::nanoseconds d) {
  const auto room = TimePoint::max() - now;
  return d >= room ? TimePoint::max() : now + std::chrono::duration_cast<TimePoint::duration>(d);
}

}  // namespace

class IdempotencyStore::Shard {
 public:
  explicit Shard(std::uint64_t budget) : budget_(budget) {}

  // Entries removed under the lock are spliced into `graveyard`, which the caller frees after
  // the lock is gone. A kept waiter is moved out of `waiter`.
  BeginResult begin(std::string_view key, std::uint64_t key_hash, std::uint64_t fingerprint,
                    Waiter& waiter, TimePoint now, EntryList& graveyard) {
    std::lock_guard lock(mutex_);
    sweep(now, graveyard);
    const auto found = index_.find(IndexKey{key_hash, key});
    if (found != index_.end()) {
      const EntryList::iterator entry = found->second;
      if (!entry->in_flight && now >= entry->expires_at) {
        remove(found, graveyard);
        ++counters_.expirations;  // and lead below
      } else if (entry->fingerprint != fingerprint) {
        ++counters_.mismatches;
        return BeginResult{BeginOutcome::mismatch, false, nullptr};
      } else if (entry->in_flight) {
        if (waiter) entry->waiters.push_back(std::move(waiter));
        ++counters_.joins;
        return BeginResult{BeginOutcome::joined, false, nullptr};
      } else {
        touch(entry);
        ++counters_.replays;
        return BeginResult{BeginOutcome::replay, false, entry->response};
      }
    }

    ++counters_.leads;
    const std::uint64_t charge = in_flight_charge(key);
    // Completed answers give way to requests in flight, but only when that makes room.
    if (in_flight_bytes_ + charge > budget_) {
      ++counters_.overflows;
      return BeginResult{BeginOutcome::lead, true, nullptr};
    }
    shrink_to(budget_ - charge, now, graveyard);
    Entry& entry = in_flight_.emplace_front();
    entry.key.assign(key);
    entry.key_hash = key_hash;
    entry.fingerprint = fingerprint;
    entry.charge = charge;
    index_.emplace(IndexKey{key_hash, entry.key}, in_flight_.begin());
    bytes_ += charge;
    in_flight_bytes_ += charge;
    return BeginResult{BeginOutcome::lead, false, nullptr};
  }

  // False when `key` has no entry in flight. Otherwise the entry's waiters are moved into
  // `wake` for the caller to call after unlocking.
  bool complete(std::string_view key, std::uint64_t key_hash,
                const std::shared_ptr<const StoredResponse>& response,
                std::chrono::nanoseconds retain_for, TimePoint now, std::vector<Waiter>& wake,
                EntryList& graveyard) {
    std::lock_guard lock(mutex_);
    sweep(now, graveyard);
    const auto found = index_.find(IndexKey{key_hash, key});
    if (found == index_.end() || !found->second->in_flight) return false;
    const EntryList::iterator entry = found->second;
    wake = std::exchange(entry->waiters, {});
    if (retain_for <= std::chrono::nanoseconds::zero() || response == nullptr) {
      remove(found, graveyard);
      return true;
    }
    const std::uint64_t charge = completed_charge(key, *response);
    if (charge > budget_) {
      remove(found, graveyard);
      ++counters_.too_large;
      return true;
    }
    bytes_ -= entry->charge;
    in_flight_bytes_ -= entry->charge;
    entry->in_flight = false;
    entry->charge = charge;
    entry->response = response;
    entry->expires_at = saturating_add(now, retain_for);
    lru_.splice(lru_.begin(), in_flight_, entry);
    bytes_ += charge;
    // Requests in flight may leave less than the budget: then the new answer goes too.
    shrink_to(budget_, now, graveyard);
    return true;
  }

  // Adds this shard's gauges and counters to `total`.
  void add_stats(IdempotencyStats& total) const {
    std::lock_guard lock(mutex_);
    total.entries += index_.size();
    total.in_flight += in_flight_.size();
    total.bytes += bytes_;
    total.leads += counters_.leads;
    total.joins += counters_.joins;
    total.replays += counters_.replays;
    total.mismatches += counters_.mismatches;
    total.evictions += counters_.evictions;
    total.expirations += counters_.expirations;
    total.overflows += counters_.overflows;
    total.too_large += counters_.too_large;
  }

 private:
  using Index = std::unordered_map<IndexKey, EntryList::iterator, IndexKeyHash>;

  // Evicts completed entries from the least recently used end until bytes_ <= limit (or none
  // is left); those already expired count as expirations.
  void shrink_to(std::uint64_t limit, TimePoint now, EntryList& graveyard) {
    while (bytes_ > limit && !lru_.empty()) {
      const EntryList::iterator victim = std::prev(lru_.end());
      ++(now >= victim->expires_at ? counters_.expirations : counters_.evictions);
      remove(index_.find(IndexKey{victim->key_hash, victim->key}), graveyard);
    }
  }

  // Examines the next few completed entries, walking from the LRU tail towards the front
  // and wrapping; the next one to examine is std::prev(sweep_next_).
  void sweep(TimePoint now, EntryList& graveyard) {
    for (std::size_t i = 0; i < kIdempotencySweepPerCall && !lru_.empty(); ++i) {
      if (sweep_next_ == lru_.begin()) sweep_next_ = lru_.end();
      const EntryList::iterator candidate = std::prev(sweep_next_);
      if (now >= candidate->expires_at) {
        remove(index_.find(IndexKey{candidate->key_hash, candidate->key}), graveyard);
        ++counters_.expirations;
      } else {
        sweep_next_ = candidate;
      }
    }
  }

  // Makes `entry` the most recently used.
  void touch(EntryList::iterator entry) {
    if (entry == sweep_next_) ++sweep_next_;
    lru_.splice(lru_.begin(), lru_, entry);
  }

  void remove(Index::iterator found, EntryList& graveyard) {
    const EntryList::iterator entry = found->second;
    bytes_ -= entry->charge;
    index_.erase(found);  // before the node moves out: the index key views its text
    if (entry->in_flight) {
      in_flight_bytes_ -= entry->charge;
      graveyard.splice(graveyard.end(), in_flight_, entry);
    } else {
      if (entry == sweep_next_) ++sweep_next_;
      graveyard.splice(graveyard.end(), lru_, entry);
    }
  }

  mutable std::mutex mutex_;
  const std::uint64_t budget_;
  std::uint64_t bytes_ = 0;            // in flight and completed
  std::uint64_t in_flight_bytes_ = 0;  // in flight only
  EntryList in_flight_;                // unordered
  EntryList lru_;                      // completed; front: most recently used
  EntryList::iterator sweep_next_ = lru_.end();
  Index index_;
  IdempotencyStats counters_;  // the counters only; the gauges are computed by add_stats()
};

IdempotencyStore::IdempotencyStore(const config::IdempotencyStoreConfig& config, const Clock& clock)
    : clock_(clock) {
  const std::size_t shard_count = std::max<std::size_t>(config.shards, 1);
  shards_.reserve(shard_count);
  for (std::size_t i = 0; i < shard_count; ++i) {
    shards_.push_back(std::make_unique<Shard>(config.max_bytes / shard_count));
  }
}

IdempotencyStore::~IdempotencyStore() = default;

BeginResult IdempotencyStore::begin(std::string_view key, std::uint64_t fingerprint,
                                    Waiter waiter) {
  const std::uint64_t key_hash = hash_of(key);
  EntryList graveyard;
  return shard_of(key_hash).begin(key, key_hash, fingerprint, waiter, clock_.now(), graveyard);
}

bool IdempotencyStore::complete(std::string_view key,
                                std::shared_ptr<const StoredResponse> response,
                                std::chrono::nanoseconds retain_for) {
  const std::uint64_t key_hash = hash_of(key);
  std::vector<Waiter> wake;
  EntryList graveyard;
  const bool completed = shard_of(key_hash).complete(key, key_hash, response, retain_for,
                                                     clock_.now(), wake, graveyard);
  for (Waiter& waiter : wake) waiter(response);
  return completed;
}

IdempotencyStats IdempotencyStore::stats() const {
  IdempotencyStats stats;
  for (const auto& shard : shards_) shard->add_stats(stats);
  return stats;
}

// The high half picks the shard; the index inside the shard uses the whole hash.
IdempotencyStore::Shard& IdempotencyStore::shard_of(std::uint64_t key_hash) const {
  return *shards_[(key_hash >> 32) % shards_.size()];
}

}  // namespace fusebox::replay
