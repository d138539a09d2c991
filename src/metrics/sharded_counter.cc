#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::metrics {

ShardedCounterArray::ShardedCounterArray(std::size_t shards, std::size_t cells)
    : shards_(shards),
      cells_(cells),
      blocks_per_shard_((cells + kCellsPerBlock - 1) / kCellsPerBlock),
      // Value-initialised: every atomic starts at zero. Aligned new keeps each shard's first
      // block (and so the whole shard) on its own cache lines.
      blocks_(new Block[shards * blocks_per_shard_]()) {
  assert(shards >= 1);
}

std::uint64_t ShardedCounterArray::sum(std::size_t cell) const noexcept {
  std::uint64_t total = 0;
  for (std::size_t shard = 0; shard < shards_; ++shard) {
    total += slot(shard, cell).load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace fusebox::metrics
