#include "fusebox/common/lazy_deadline.h"

#include <boost/asio/bind_allocator.hpp>
#include <algorithm>

namespace fusebox::io {
namespace {

// Plain operator new and delete for the pending wait, bypassing Asio's per-thread recycling,
// which would place it in whatever larger block a recent operation left: an idle connection
// keeps this wait pending, so its block should be the wait's own size.
template <class T>
class ExactAllocator {
 public:
  using value_type = T;
  ExactAllocator() noexcept = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* pointer, std::size_t) noexcept { ::operator delete(pointer); }

  template <class U>
  bool operator==(const ExactAllocator<U>&) const noexcept { return true; }
};

}  // namespace

LazyDeadline::LazyDeadline(const Executor& executor, Clock::duration longest_sleep,
                           Expiry on_expiry)
    : timer_(executor),
      longest_sleep_(std::max<Clock::duration>(longest_sleep, std::chrono::milliseconds(1))),
      on_expiry_(std::move(on_expiry)),
      self_(std::make_shared<LazyDeadline*>(this)) {}

LazyDeadline::~LazyDeadline() = default;  // self_ goes first: a wait completing later is a no-op

void LazyDeadline::expire_at(Clock::time_point deadline) {
  deadline_ = deadline;
  expired_ = false;
  if (timer_at_ == Clock::time_point::max()) return arm(Clock::now());
  // The pending wait wakes at or before the deadline and sleeps on from there; only a deadline
  // before that wake-up needs the timer moved (its current wait completes as aborted).
  if (deadline < timer_at_) arm(Clock::now());
}

void LazyDeadline::arm(Clock::time_point now) {
  timer_at_ = std::min(deadline_, now + longest_sleep_);
  timer_.expires_at(timer_at_);
  timer_.async_wait(boost::asio::bind_allocator(
      ExactAllocator<void>(), [weak = std::weak_ptr<LazyDeadline*>(self_)](boost::system::error_code ec) {
        if (ec) return;  // moved (a newer wait is pending) or destroyed
        if (auto self = weak.lock()) (*self)->on_timer();
      }));
}

void LazyDeadline::on_timer() {
  timer_at_ = Clock::time_point::max();
  if (deadline_ == Clock::time_point::max()) return;  // cleared: sleep until the next deadline
  auto now = Clock::now();
  if (now < deadline_) return arm(now);
  deadline_ = Clock::time_point::max();
  expired_ = true;
  on_expiry_();
}

}  // namespace fusebox::io
