#pragma once
// The bulkhead of one route: at most `limit` requests in flight to the backends, and a bounded
// wait queue in front of it ordered by effective priority.
//
// Effective priority with aging: a waiter of base priority p that has waited w has effective
// priority max(0, p - floor(w / aging_step)); it gains one level per aging_step. When a slot
// frees, the waiter with the best (smallest) effective priority at that moment goes next;
// ties go to the earliest arrival (FIFO). Starvation bound: a waiter of priority p reaches
// effective 0 after p * aging_step; from then on nothing that arrives later overtakes it, so it
// is admitted no later than p * aging_step after it arrived plus the time the gate takes to
// grant the waiters that were already queued when it arrived (at most their number of slot
// releases). With aging_step 0 there is no aging (strict priority, FIFO within a priority).
//
// Each waiter has a queue timeout: min(arrival + queue_timeout, the request's own deadline).
// Waiters past it leave through expire() (reason timed_out); release() never admits one.
//
// Waiters are named by Ticket (for cancel) and carry a caller-chosen 64-bit tag that comes
// back in the Wakeup that admits or times them out: e.g. the worker index and a slot in that
// worker's table of parked requests, so the wake-up can be posted to the right thread.
//
// Threading: every method may be called from any thread. One mutex per gate guards the state;
// each operation is O(log queued) (the expiry heap) or O(1), allocates nothing after
// construction (storage for max_queued waiters is reserved up front; the caller supplies and
// reuses the Wakeup vector), and never calls out while holding the lock.

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "fusebox/admission/priority.h"
#include "fusebox/common/clock.h"

namespace fusebox::admission {

struct ConcurrencyGateOptions {
  // Requests in flight at once; 0 admits nothing (everything queues until its timeout).
  std::uint32_t concurrency_limit = 64;
  // Waiters at once, all priorities together; 0: no queue (reject when the limit is reached).
  std::uint32_t max_queued = 256;
  // Waiters at once per BASE priority (index = priority); each is also bounded by max_queued.
  // A small cap on the low priorities keeps queue room for the high ones.
  std::array<std::uint32_t, kPriorityLevels> max_queued_per_priority = {
      UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
      UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
  // Longest wait in the queue (the request's remaining deadline may cut it shorter).
  std::chrono::milliseconds queue_timeout{1000};
  // A waiter gains one priority level per aging_step of waiting; 0 disables aging.
  std::chrono::milliseconds aging_step{100};
  // A request whose wait budget (min of queue_timeout and its remaining deadline) is below this
  // is rejected at once (timeout_too_short) instead of queued for a wait that cannot help.
  std::chrono::milliseconds min_queue_wait{1};
};

// Names one waiter; opaque (a slot index plus a generation: a slot reuses a value only after
// 2^32 waiters).
struct Ticket {
  std::uint64_t value = 0;
  friend bool operator==(Ticket, Ticket) = default;
};

enum class AdmitOutcome : std::uint8_t { admitted, queued, rejected };

// Numeric values are stable (metric label order); to_string() gives the label.
enum class RejectReason : std::uint8_t {
  none = 0,
  queue_full = 1,         // max_queued waiters already
  priority_cap = 2,       // max_queued_per_priority[p] waiters of this priority already
  timeout_too_short = 3,  // the wait budget is below min_queue_wait
};
const char* to_string(RejectReason reason);

struct Admit {
  AdmitOutcome outcome = AdmitOutcome::rejected;
  RejectReason reason = RejectReason::none;  // when rejected
  Ticket ticket;                             // when queued: for cancel(), and in its Wakeup
  TimePoint expires_at{};                    // when queued: the end of its queue wait
};

// A waiter leaving the queue: admitted (it now holds a slot and must release() it), or timed
// out (it holds nothing: answer 503 / degrade).
struct Wakeup {
  enum class Reason : std::uint8_t { admitted, timed_out };
  Reason reason = Reason::admitted;
  Ticket ticket;
  std::uint64_t tag = 0;
  Priority priority = kLowestPriority;  // base priority
  std::chrono::nanoseconds waited{0};   // time in the queue (fusebox_admission_wait_seconds)
};

// Gauges for the integrator (fusebox_admission_queue_depth{priority}, in-flight, limit).
struct GateStats {
  std::uint32_t limit = 0;
  std::uint32_t in_flight = 0;
  std::uint32_t queued = 0;
  std::array<std::uint32_t, kPriorityLevels> queued_by_priority{};  // by base priority
};

class ConcurrencyGate {
 public:
  ConcurrencyGate(const ConcurrencyGateOptions& options, const Clock& clock);

  ConcurrencyGate(const ConcurrencyGate&) = delete;
  ConcurrencyGate& operator=(const ConcurrencyGate&) = delete;

  // Admits now when a slot is free (the queue is then empty: waiters are always served
  // first), else queues the request until a slot frees or min(now + queue_timeout, deadline)
  // passes. `priority` above kLowestPriority counts as kLowestPriority. `deadline`:
  // TimePoint::max() when the request has none. Caps count waiters not yet expired by
  // expire(): arm the timer at next_expiry() so that is prompt.
  Admit try_acquire(Priority priority, TimePoint deadline, std::uint64_t tag = 0);

  // An admitted request finished (or was abandoned). Frees its slot and, if the limit allows,
  // admits the best waiter; waiters already past their queue timeout are expired first. Both
  // are appended to `wakeups` (at most one admission; possibly some time-outs). With nothing
  // in flight it frees nothing (a release without an admission is a caller bug, not an
  // underflow).
  void release(std::vector<Wakeup>& wakeups);

  // Waiters whose queue timeout is at or before `now` leave (appended as timed_out).
  void expire(TimePoint now, std::vector<Wakeup>& wakeups);
  // The earliest queue timeout among the waiters; nullopt when none wait.
  std::optional<TimePoint> next_expiry() const;

  // The client went away. True when the waiter was removed; false when it is no longer
  // waiting: it was already admitted (its Wakeup is on its way and the slot must be released)
  // or timed out, or the ticket is unknown.
  bool cancel(Ticket ticket);

  // New limit (the adaptive controller). A higher limit admits waiters at once (appended to
  // `wakeups`); a lower one admits nobody until in-flight falls below it (nothing is revoked).
  void set_limit(std::uint32_t limit, std::vector<Wakeup>& wakeups);

  GateStats stats() const;
  std::uint32_t in_flight() const;
  std::uint32_t limit() const;

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  struct Waiter {
    std::uint32_t generation = 1;  // from 1, so no ticket equals the default Ticket{}
    bool in_use = false;
    Priority priority = kLowestPriority;
    std::uint64_t sequence = 0;  // arrival order, for FIFO among equals
    std::uint64_t tag = 0;
    TimePoint arrived{};
    TimePoint expires_at{};
    std::uint32_t prev = kNone;  // links of its priority's FIFO list
    std::uint32_t next = kNone;
    std::uint32_t heap_index = 0;  // position in expiry_heap_
  };
  struct FifoList {
    std::uint32_t head = kNone;
    std::uint32_t tail = kNone;
    std::uint32_t size = 0;
  };

  // All below: the caller holds mutex_.
  Priority effective_priority(const Waiter& waiter, TimePoint now) const;
  std::uint32_t best_waiter(TimePoint now) const;  // kNone when the queue is empty
  void admit_waiters(TimePoint now, std::vector<Wakeup>& wakeups);
  void expire_locked(TimePoint now, std::vector<Wakeup>& wakeups);
  Wakeup remove(std::uint32_t slot, Wakeup::Reason reason, TimePoint now);
  std::optional<std::uint32_t> slot_of(Ticket ticket) const;
  Ticket ticket_of(std::uint32_t slot) const;
  // Expiry min-heap of slot indices, with each waiter's position kept for O(log n) removal.
  bool expires_before(std::uint32_t a, std::uint32_t b) const;
  void heap_swap(std::uint32_t i, std::uint32_t j);
  void heap_up(std::uint32_t i);
  void heap_down(std::uint32_t i);
  void heap_erase(std::uint32_t i);

  const ConcurrencyGateOptions options_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::uint32_t limit_;
  std::uint32_t in_flight_ = 0;
  std::uint32_t queued_ = 0;
  std::uint64_t next_sequence_ = 0;
  std::vector<Waiter> waiters_;  // max_queued slots
  std::vector<std::uint32_t> free_slots_;
  std::array<FifoList, kPriorityLevels> fifo_{};
  std::vector<std::uint32_t> expiry_heap_;
};

}  // namespace fusebox::admission
