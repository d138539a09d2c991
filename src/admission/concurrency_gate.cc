#include "fusebox/admission/concurrency_gate.h"

#include <algorithm>
#include <utility>

namespace fusebox::admission {

const char* to_string(RejectReason reason) {
  switch (reason) {
    case RejectReason::none:
      return "none";
    case RejectReason::queue_full:
      return "queue_full";
    case RejectReason::priority_cap:
      return "priority_cap";
    case RejectReason::timeout_too_short:
      return "timeout_too_short";
  }
  return "unknown";
}

ConcurrencyGate::ConcurrencyGate(const ConcurrencyGateOptions& options, const Clock& clock)
    : options_(options), clock_(clock), limit_(options.concurrency_limit) {
  waiters_.resize(options_.max_queued);
  free_slots_.reserve(options_.max_queued);
  // Pop order 0, 1, 2, ...: slots are used from the front, which keeps tests readable.
  for (std::uint32_t i = options_.max_queued; i > 0; --i) free_slots_.push_back(i - 1);
  expiry_heap_.reserve(options_.max_queued);
}

Admit ConcurrencyGate::try_acquire(Priority priority, TimePoint deadline, std::uint64_t tag) {
  priority = std::min(priority, kLowestPriority);
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  Admit admit;
  if (in_flight_ < limit_ && queued_ == 0) {
    ++in_flight_;
    admit.outcome = AdmitOutcome::admitted;
    return admit;
  }
  admit.outcome = AdmitOutcome::rejected;
  const TimePoint expires_at = std::min(now + options_.queue_timeout, deadline);
  if (deadline <= now || expires_at - now < options_.min_queue_wait) {
    admit.reason = RejectReason::timeout_too_short;
    return admit;
  }
  if (free_slots_.empty()) {
    admit.reason = RejectReason::queue_full;
    return admit;
  }
  FifoList& list = fifo_[priority];
  if (list.size >= options_.max_queued_per_priority[priority]) {
    admit.reason = RejectReason::priority_cap;
    return admit;
  }

  const std::uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  Waiter& waiter = waiters_[slot];
  waiter.in_use = true;
  waiter.priority = priority;
  waiter.sequence = next_sequence_++;
  waiter.tag = tag;
  waiter.arrived = now;
  waiter.expires_at = expires_at;
  waiter.prev = list.tail;
  waiter.next = kNone;
  if (list.tail != kNone) {
    waiters_[list.tail].next = slot;
  } else {
    list.head = slot;
  }
  list.tail = slot;
  ++list.size;
  ++queued_;
  waiter.heap_index = static_cast<std::uint32_t>(expiry_heap_.size());
  expiry_heap_.push_back(slot);
  heap_up(waiter.heap_index);

  admit.outcome = AdmitOutcome::queued;
  admit.ticket = ticket_of(slot);
  admit.expires_at = expires_at;
  return admit;
}

void ConcurrencyGate::release(std::vector<Wakeup>& wakeups) {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  if (in_flight_ > 0) --in_flight_;
  expire_locked(now, wakeups);
  admit_waiters(now, wakeups);
}

void ConcurrencyGate::expire(TimePoint now, std::vector<Wakeup>& wakeups) {
  std::lock_guard lock(mutex_);
  expire_locked(now, wakeups);
}

std::optional<TimePoint> ConcurrencyGate::next_expiry() const {
  std::lock_guard lock(mutex_);
  if (expiry_heap_.empty()) return std::nullopt;
  return waiters_[expiry_heap_.front()].expires_at;
}

bool ConcurrencyGate::cancel(Ticket ticket) {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  const std::optional<std::uint32_t> slot = slot_of(ticket);
  if (!slot) return false;
  remove(*slot, Wakeup::Reason::timed_out, now);
  return true;
}

void ConcurrencyGate::set_limit(std::uint32_t limit, std::vector<Wakeup>& wakeups) {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  limit_ = limit;
  expire_locked(now, wakeups);
  admit_waiters(now, wakeups);
}

GateStats ConcurrencyGate::stats() const {
  std::lock_guard lock(mutex_);
  GateStats stats;
  stats.limit = limit_;
  stats.in_flight = in_flight_;
  stats.queued = queued_;
  for (std::size_t p = 0; p < kPriorityLevels; ++p) stats.queued_by_priority[p] = fifo_[p].size;
  return stats;
}

std::uint32_t ConcurrencyGate::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

std::uint32_t ConcurrencyGate::limit() const {
  std::lock_guard lock(mutex_);
  return limit_;
}

Priority ConcurrencyGate::effective_priority(const Waiter& waiter, TimePoint now) const {
  if (options_.aging_step.count() <= 0) return waiter.priority;
  const auto levels = (now - waiter.arrived) / options_.aging_step;
  if (levels >= waiter.priority) return 0;
  return static_cast<Priority>(waiter.priority - levels);
}

std::uint32_t ConcurrencyGate::best_waiter(TimePoint now) const {
  // Within one base priority the head is the oldest, hence the most aged and the earliest:
  // the best waiter overall is one of the heads.
  std::uint32_t best = kNone;
  Priority best_priority = kLowestPriority;
  for (const FifoList& list : fifo_) {
    if (list.head == kNone) continue;
    const Waiter& head = waiters_[list.head];
    const Priority effective = effective_priority(head, now);
    if (best == kNone || effective < best_priority ||
        (effective == best_priority && head.sequence < waiters_[best].sequence)) {
      best = list.head;
      best_priority = effective;
    }
  }
  return best;
}

void ConcurrencyGate::admit_waiters(TimePoint now, std::vector<Wakeup>& wakeups) {
  while (in_flight_ < limit_) {
    const std::uint32_t slot = best_waiter(now);
    if (slot == kNone) return;
    ++in_flight_;
    wakeups.push_back(remove(slot, Wakeup::Reason::admitted, now));
  }
}

void ConcurrencyGate::expire_locked(TimePoint now, std::vector<Wakeup>& wakeups) {
  while (!expiry_heap_.empty() && waiters_[expiry_heap_.front()].expires_at <= now) {
    wakeups.push_back(remove(expiry_heap_.front(), Wakeup::Reason::timed_out, now));
  }
}

Wakeup ConcurrencyGate::remove(std::uint32_t slot, Wakeup::Reason reason, TimePoint now) {
  Waiter& waiter = waiters_[slot];
  Wakeup wakeup{.reason = reason,
                .ticket = ticket_of(slot),
                .tag = waiter.tag,
                .priority = waiter.priority,
                .waited = now - waiter.arrived};
  FifoList& list = fifo_[waiter.priority];
  if (waiter.prev != kNone) {
    waiters_[waiter.prev].next = waiter.next;
  } else {
    list.head = waiter.next;
  }
  if (waiter.next != kNone) {
    waiters_[waiter.next].prev = waiter.prev;
  } else {
    list.tail = waiter.prev;
  }
  --list.size;
  --queued_;
  heap_erase(waiter.heap_index);
  waiter.in_use = false;
  ++waiter.generation;  // the old ticket no longer names this slot
  free_slots_.push_back(slot);
  return wakeup;
}

Ticket ConcurrencyGate::ticket_of(std::uint32_t slot) const {
  return Ticket{(static_cast<std::uint64_t>(waiters_[slot].generation) << 32) | slot};
}

std::optional<std::uint32_t> ConcurrencyGate::slot_of(Ticket ticket) const {
  const auto slot = static_cast<std::uint32_t>(ticket.value & 0xffffffffu);
  const auto generation = static_cast<std::uint32_t>(ticket.value >> 32);
  if (slot >= waiters_.size()) return std::nullopt;
  const Waiter& waiter = waiters_[slot];
  if (!waiter.in_use || waiter.generation != generation) return std::nullopt;
  return slot;
}

bool ConcurrencyGate::expires_before(std::uint32_t a, std::uint32_t b) const {
  const Waiter& x = waiters_[a];
  const Waiter& y = waiters_[b];
  if (x.expires_at != y.expires_at) return x.expires_at < y.expires_at;
  return x.sequence < y.sequence;  // equal expiries leave in arrival order
}

void ConcurrencyGate::heap_swap(std::uint32_t i, std::uint32_t j) {
  std::swap(expiry_heap_[i], expiry_heap_[j]);
  waiters_[expiry_heap_[i]].heap_index = i;
  waiters_[expiry_heap_[j]].heap_index = j;
}

void ConcurrencyGate::heap_up(std::uint32_t i) {
  while (i > 0) {
    const std::uint32_t parent = (i - 1) / 2;
    if (!expires_before(expiry_heap_[i], expiry_heap_[parent])) return;
    heap_swap(i, parent);
    i = parent;
  }
}

void ConcurrencyGate::heap_down(std::uint32_t i) {
  const auto size = static_cast<std::uint32_t>(expiry_heap_.size());
  for (;;) {
    std::uint32_t smallest = i;
    for (const std::uint32_t child : {2 * i + 1, 2 * i + 2}) {
      if (child < size && expires_before(expiry_heap_[child], expiry_heap_[smallest])) {
        smallest = child;
      }
    }
    if (smallest == i) return;
    heap_swap(i, smallest);
    i = smallest;
  }
}

void ConcurrencyGate::heap_erase(std::uint32_t i) {
  const auto last = static_cast<std::uint32_t>(expiry_heap_.size() - 1);
  if (i != last) heap_swap(i, last);
  expiry_heap_.pop_back();
  if (i < expiry_heap_.size()) {
    heap_up(i);
    heap_down(i);
  }
}

}  // namespace fusebox::admission
