#pragma once
// Counters keyed by a small integer code that is only known at run time (an HTTP status, a
// gRPC status), for a fixed set of keys (e.g. route x method). Same threading contract as
// ShardedCounterArray.
//
// Per key and shard there is a fixed table of kCapacity (code, count) slots. The first time a
// code is seen, the recording thread claims the next free slot by publishing the code with a
// compare-and-swap (release), then counts in it; readers load the codes with acquire and stop
// at the first free slot (slots fill in order and are never freed). When the table is full, a
// new code is counted in a per-table overflow counter, exposed as code="other": the label set
// stays bounded even if a backend invents status codes.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "fusebox/metrics/sharded_counter.h"

namespace fusebox::metrics {

class ShardedCodeCounter {
 public:
  static constexpr std::size_t kCapacity = 32;  // distinct codes per key per shard

  ShardedCodeCounter(std::size_t shards, std::size_t keys);

  // Hot path: counts one event with `code` for `key` on `shard`. A code that finds its table
  // full goes to the overflow counter.
  void add(std::size_t shard, std::size_t key, std::uint16_t code,
           std::uint64_t delta = 1) noexcept;
  // Counts straight into the overflow counter (for codes the caller rejects as invalid).
  void add_overflow(std::size_t shard, std::size_t key, std::uint64_t delta = 1) noexcept;

  struct Totals {
    std::vector<std::pair<std::uint16_t, std::uint64_t>> codes;  // ascending by code
    std::uint64_t overflow = 0;
  };
  // Sum over shards for `key`. Any thread.
  Totals totals(std::size_t key) const;

  std::size_t keys() const noexcept { return keys_; }

 private:
  // One cache-line pair of codes (stored as code + 1; 0 marks a free slot), then the counts.
  struct alignas(kShardAlignment) Table {
    std::atomic<std::uint32_t> tags[kCapacity];
    std::atomic<std::uint64_t> counts[kCapacity];
    std::atomic<std::uint64_t> overflow;
  };
  Table& table(std::size_t shard, std::size_t key) const noexcept;

  std::size_t shards_;
  std::size_t keys_;
  std::unique_ptr<Table[]> tables_;  // shard-major: a shard's tables are contiguous
};

}  // namespace fusebox::metrics
