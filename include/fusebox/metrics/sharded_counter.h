#pragma once
// The building block of every data-path metric: a fixed array of uint64 counters, replicated
// once per recording thread ("shard") so that threads never write the same cache line.
//
// Threading contract (shared by every Sharded* primitive in this folder):
// - A recording thread owns one shard index and only writes that shard; writes are relaxed
//   atomic read-modify-writes, so a shard that is shared by mistake (or on purpose, e.g. a
//   "misc" shard used by several low-rate threads) stays exact, only slower.
// - Readers (a scrape) may run on any thread at any time; they sum the shards with relaxed
//   loads. A scrape is not a point-in-time snapshot across cells: two cells read microseconds
//   apart may disagree by in-flight increments, which Prometheus tolerates.

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace fusebox::metrics {

// Shard storage is aligned (and padded) to this many bytes: two cache lines, because x86's
// adjacent-line prefetcher pulls 64-byte lines in pairs.
inline constexpr std::size_t kShardAlignment = 128;

class ShardedCounterArray {
 public:
  // `shards` >= 1 recording threads, `cells` >= 0 counters per shard. All start at zero.
  ShardedCounterArray(std::size_t shards, std::size_t cells);

  ShardedCounterArray(ShardedCounterArray&&) noexcept = default;
  ShardedCounterArray& operator=(ShardedCounterArray&&) noexcept = default;

  // Hot path: adds `delta` to `cell` of `shard`. shard < shards(), cell < cells().
  void add(std::size_t shard, std::size_t cell, std::uint64_t delta = 1) noexcept {
    slot(shard, cell).fetch_add(delta, std::memory_order_relaxed);
  }

  // Sum of `cell` over all shards (wraps modulo 2^64). Any thread.
  std::uint64_t sum(std::size_t cell) const noexcept;

  std::size_t shards() const noexcept { return shards_; }
  std::size_t cells() const noexcept { return cells_; }

 private:
  static constexpr std::size_t kCellsPerBlock = kShardAlignment / sizeof(std::uint64_t);
  struct alignas(kShardAlignment) Block {
    std::atomic<std::uint64_t> cell[kCellsPerBlock];
  };

  std::atomic<std::uint64_t>& slot(std::size_t shard, std::size_t cell) const noexcept {
    assert(shard < shards_ && cell < cells_);
    return blocks_[shard * blocks_per_shard_ + cell / kCellsPerBlock].cell[cell % kCellsPerBlock];
  }

  std::size_t shards_;
  std::size_t cells_;
  std::size_t blocks_per_shard_;
  std::unique_ptr<Block[]> blocks_;
};

}  // namespace fusebox::metrics
