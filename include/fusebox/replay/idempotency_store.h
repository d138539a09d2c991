#pragma once
// Idempotent replay (Idempotency-Key) and coalescing of identical concurrent requests. The
// first request for a key leads (the caller sends it upstream), requests with the same key and
// fingerprint arriving meanwhile join it and receive its answer, later ones get the stored
// answer replayed until it expires; a key reused with another fingerprint is a mismatch.
//
//   (none) --begin: lead--> in_flight --complete, retained--> completed --expires--> (none)
//                           in_flight --complete, retain_for <= 0 or too large--> (none)
//   completed --LRU eviction (byte budget)--> (none)
//
// Pure: no sockets, no timers, no background thread; time comes from the injected clock. An
// expired entry is removed when met, and every begin() and complete() also examines up to
// kIdempotencySweepPerCall completed entries of its shard (walking its LRU list from the least
// recently used end round and round), so expired answers leave even when nobody asks again.
// Thread-safe: shards picked by key hash, each with its own mutex, LRU list and an even share
// of the byte budget. No lock is held while a waiter runs, so a waiter may call back into the
// store. Never throws on begin(), complete() or stats() (short of std::bad_alloc).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"

namespace fusebox::replay {

// The answer given to the leader, its joiners and later replays. Immutable once shared.
struct StoredResponse {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Estimated heap footprint of this response: body, header names and values, plus
  // kStoredHeaderOverheadBytes per header and kStoredResponseOverheadBytes. The store adds
  // the key and its per-entry bookkeeping (see completed_charge()).
  std::size_t bytes() const;
};

// A header's pair of std::string in the vector (64 on 64-bit libstdc++).
inline constexpr std::size_t kStoredHeaderOverheadBytes = 64;
// The shared StoredResponse with its control block and allocator header.
inline constexpr std::size_t kStoredResponseOverheadBytes = 128;
// One entry's bookkeeping: list node, hash-map node and bucket, allocator headers.
inline constexpr std::uint64_t kIdempotencyEntryOverheadBytes = 256;

// Completed entries examined for expiry by each begin() and complete(), besides its own key.
inline constexpr std::size_t kIdempotencySweepPerCall = 2;

// What an in-flight entry counts against the byte budget (waiters are not counted: their
// number is bounded by the requests the gateway admits).
std::uint64_t in_flight_charge(std::string_view key);
// What a completed entry counts: in_flight_charge(key) + response.bytes().
std::uint64_t completed_charge(std::string_view key, const StoredResponse& response);

enum class BeginOutcome : std::uint8_t {
  lead,      // no live entry: run the request, then call complete() exactly once
  joined,    // same request in flight: the waiter will be called with the leader's answer
  replay,    // same request completed and not expired: BeginResult::response is the answer
  mismatch,  // the key is live (in flight or completed) with another fingerprint
};
const char* to_string(BeginOutcome outcome);

struct BeginResult {
  BeginOutcome outcome = BeginOutcome::lead;
  // lead only: the shard had no room (full of in-flight entries), so no entry was created and
  // nobody can join or replay this request. The caller runs the request and must NOT call
  // complete(): by then another request may lead the same key.
  bool untracked = false;
  // replay only: the stored answer; null otherwise.
  std::shared_ptr<const StoredResponse> response;
};

struct IdempotencyStats {
  std::uint64_t entries = 0;    // live entries, in flight and completed
  std::uint64_t in_flight = 0;  // of which in flight
  std::uint64_t bytes = 0;      // charged bytes of the live entries
  // Counters since construction. Every begin() counts exactly one of leads, joins, replays,
  // mismatches; overflows counts the untracked leads (included in leads).
  std::uint64_t leads = 0;
  std::uint64_t joins = 0;
  std::uint64_t replays = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t evictions = 0;    // completed entries removed to stay within the byte budget
  std::uint64_t expirations = 0;  // completed entries removed once past their retain_for
  std::uint64_t overflows = 0;    // leads left untracked because the shard was full
  std::uint64_t too_large = 0;    // responses not retained: larger than a shard's budget

  bool operator==(const IdempotencyStats&) const = default;
};

class IdempotencyStore {
 public:
  // Called once, with the leader's answer, on the thread that calls complete(). It should
  // only hand the answer to its own thread (post), and must not throw.
  using Waiter = std::function<void(std::shared_ptr<const StoredResponse>)>;

  // config.max_bytes is split evenly between config.shards shards (0 shards means 1). The
  // clock must outlive the store.
  IdempotencyStore(const config::IdempotencyStoreConfig& config, const Clock& clock);
  // Waiters of entries still in flight are destroyed without being called.
  ~IdempotencyStore();
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // `key`: route + Idempotency-Key value, or route + request fingerprint when coalescing
  // requests without a key. `fingerprint`: hash of target + canonical body. `waiter` is kept
  // only when the outcome is `joined` (an empty waiter is never kept); otherwise it is
  // destroyed before begin() returns. An expired completed entry met here is removed and the
  // call proceeds as if there were none (lead).
  BeginResult begin(std::string_view key, std::uint64_t fingerprint, Waiter waiter);

  // Ends the tracked lead of `key`. First, under the shard lock, keeps `response` for replay
  // until now + retain_for (it expires at that instant) when retain_for is positive, `response`
  // is not null and the entry fits a shard's budget, evicting least recently used completed
  // entries as needed; otherwise removes the entry. Then, outside any lock, calls every waiter
  // with `response`, in join order, on this thread. Returns false, doing nothing, when `key`
  // has no entry in flight (unknown, or already completed).
  bool complete(std::string_view key, std::shared_ptr<const StoredResponse> response,
                std::chrono::nanoseconds retain_for);

  // Summed over the shards, one shard lock at a time (not one atomic snapshot).
  IdempotencyStats stats() const;

 private:
  class Shard;
  Shard& shard_of(std::uint64_t key_hash) const;

  const Clock& clock_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace fusebox::replay
