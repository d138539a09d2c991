#pragma once
// One deadline per connection for a sequence of operations (read a header, read a body, write
// an answer, wait idle), on one timer that is re-armed lazily.
//
// Arming an Asio timer per operation costs a timer-queue insert, a cancel that posts the
// aborted wait as a completion, and often a memory block, on every request. Here `expire_at`
// only records the time: the timer keeps sleeping towards the time it was armed for, and when
// it wakes before the recorded deadline it sleeps again. To make sure a later, shorter deadline
// never needs the timer moved earlier, the timer never sleeps longer than `longest_sleep` (the
// shortest timeout the owner uses): any deadline set later lies at least that far ahead. A
// deadline nearer than that (rare: a drain grace, a short request deadline) re-arms at once.
//
// Costs: no timer operation per request on a busy connection, one wake-up per `longest_sleep`
// on an idle one, a deadline honoured to the microsecond. Not thread-safe: use it on the
// owner's executor. The expiry callback runs there, never after the LazyDeadline is destroyed.

#include <chrono>
#include <memory>

#include "fusebox/common/inline_function.h"
#include "fusebox/common/io.h"

namespace fusebox::io {

class LazyDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expiry` runs (on `executor`) when a deadline passes before `clear` or a later
  // `expire_at`; typically it cancels the owner's socket.
  // Every open connection has one: the callback keeps a pointer's worth inline (a larger one
  // goes to the heap).
  using Expiry = InlineFunction<void(), sizeof(void*)>;
  LazyDeadline(const Executor& executor, Clock::duration longest_sleep, Expiry on_expiry);
  ~LazyDeadline();
  LazyDeadline(const LazyDeadline&) = delete;
  LazyDeadline& operator=(const LazyDeadline&) = delete;

  void expire_after(Clock::duration timeout) { expire_at(Clock::now() + timeout); }
  void expire_at(Clock::time_point deadline);
  // No deadline until the next expire_at; costs no timer operation.
  void clear() { deadline_ = Clock::time_point::max(); }
  // True once the last deadline set has passed (reset by expire_at).
  bool expired() const { return expired_; }
  Clock::time_point deadline() const { return deadline_; }

 private:
  void arm(Clock::time_point now);
  void on_timer();

  Timer timer_;
  Clock::duration longest_sleep_;
  Expiry on_expiry_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point timer_at_ = Clock::time_point::max();  // max: no wait pending
  bool expired_ = false;
  // Pending waits hold a weak reference: a wait completing after destruction does nothing.
  std::shared_ptr<LazyDeadline*> self_;
};

}  // namespace fusebox::io
