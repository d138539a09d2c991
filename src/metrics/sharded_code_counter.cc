#include "fusebox/metrics/sharded_code_counter.h"

#include <algorithm>
#include <cassert>

namespace fusebox::metrics {

ShardedCodeCounter::ShardedCodeCounter(std::size_t shards, std::size_t keys)
    : shards_(shards), keys_(keys), tables_(new Table[shards * keys]()) {
  assert(shards >= 1);
}

ShardedCodeCounter::Table& ShardedCodeCounter::table(std::size_t shard,
                                                     std::size_t key) const noexcept {
  assert(shard < shards_ && key < keys_);
  return tables_[shard * keys_ + key];
}

void ShardedCodeCounter::add(std::size_t shard, std::size_t key, std::uint16_t code,
                             std::uint64_t delta) noexcept {
  Table& t = table(shard, key);
  const std::uint32_t tag = std::uint32_t{code} + 1;
  for (std::size_t i = 0; i < kCapacity; ++i) {
    std::uint32_t seen = t.tags[i].load(std::memory_order_acquire);
    if (seen == 0) {
      // Claim the free slot. Only another writer of this shard can race us here; if it wins,
      // `seen` receives its code and we go on as if we had read it.
      if (t.tags[i].compare_exchange_strong(seen, tag, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
        seen = tag;
      }
    }
    if (seen == tag) {
      t.counts[i].fetch_add(delta, std::memory_order_relaxed);
      return;
    }
  }
  t.overflow.fetch_add(delta, std::memory_order_relaxed);
}

void ShardedCodeCounter::add_overflow(std::size_t shard, std::size_t key,
                                      std::uint64_t delta) noexcept {
  table(shard, key).overflow.fetch_add(delta, std::memory_order_relaxed);
}

ShardedCodeCounter::Totals ShardedCodeCounter::totals(std::size_t key) const {
  Totals totals;
  for (std::size_t shard = 0; shard < shards_; ++shard) {
    const Table& t = table(shard, key);
    for (std::size_t i = 0; i < kCapacity; ++i) {
      const std::uint32_t tag = t.tags[i].load(std::memory_order_acquire);
      if (tag == 0) break;  // slots fill in order
      const auto code = static_cast<std::uint16_t>(tag - 1);
      const std::uint64_t count = t.counts[i].load(std::memory_order_relaxed);
      auto it =
          std::lower_bound(totals.codes.begin(), totals.codes.end(), code,
                           [](const auto& entry, std::uint16_t c) { return entry.first < c; });
      if (it != totals.codes.end() && it->first == code) {
        it->second += count;
      } else {
        totals.codes.insert(it, {code, count});
      }
    }
    totals.overflow += t.overflow.load(std::memory_order_relaxed);
  }
  return totals;
}

}  // namespace fusebox::metrics
