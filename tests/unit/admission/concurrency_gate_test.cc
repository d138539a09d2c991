#include "fusebox/admission/concurrency_gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

namespace fusebox::admission {
namespace {

using namespace std::chrono_literals;

constexpr TimePoint kNoDeadline = TimePoint::max();

ConcurrencyGateOptions options(std::uint32_t limit, std::chrono::milliseconds aging_step) {
  ConcurrencyGateOptions o;
  o.concurrency_limit = limit;
  o.max_queued = 100;
  o.queue_timeout = 10s;
  o.aging_step = aging_step;
  return o;
}

// A gate with every slot taken by a priority-0 request: the next requests queue.
struct BusyGate {
  explicit BusyGate(const ConcurrencyGateOptions& o) : gate(o, clock) {
    for (std::uint32_t i = 0; i < o.concurrency_limit; ++i) {
      EXPECT_EQ(gate.try_acquire(0, kNoDeadline).outcome, AdmitOutcome::admitted);
    }
  }
  ManualClock clock;
  ConcurrencyGate gate;
};

// The tags of the admitted wake-ups, in order.
std::vector<std::uint64_t> admitted_tags(const std::vector<Wakeup>& wakeups) {
  std::vector<std::uint64_t> tags;
  for (const Wakeup& w : wakeups) {
    if (w.reason == Wakeup::Reason::admitted) tags.push_back(w.tag);
  }
  return tags;
}

std::vector<std::uint64_t> timed_out_tags(const std::vector<Wakeup>& wakeups) {
  std::vector<std::uint64_t> tags;
  for (const Wakeup& w : wakeups) {
    if (w.reason == Wakeup::Reason::timed_out) tags.push_back(w.tag);
  }
  return tags;
}

// Releases one slot and returns the tag admitted in its place, if any.
std::optional<std::uint64_t> release_one(ConcurrencyGate& gate) {
  std::vector<Wakeup> wakeups;
  gate.release(wakeups);
  const auto tags = admitted_tags(wakeups);
  EXPECT_LE(tags.size(), 1u);
  if (tags.empty()) return std::nullopt;
  return tags.front();
}

TEST(ConcurrencyGate, AdmitsUpToTheLimitThenQueues) {
  ManualClock clock;
  ConcurrencyGate gate(options(2, 0ms), clock);
  EXPECT_EQ(gate.try_acquire(5, kNoDeadline).outcome, AdmitOutcome::admitted);
  EXPECT_EQ(gate.try_acquire(5, kNoDeadline).outcome, AdmitOutcome::admitted);
  const Admit third = gate.try_acquire(5, kNoDeadline, 3);
  EXPECT_EQ(third.outcome, AdmitOutcome::queued);
  EXPECT_EQ(third.expires_at, clock.now() + 10s);
  EXPECT_EQ(gate.in_flight(), 2u);

  clock.advance(250ms);
  std::vector<Wakeup> wakeups;
  gate.release(wakeups);
  ASSERT_EQ(wakeups.size(), 1u);
  EXPECT_EQ(wakeups[0].reason, Wakeup::Reason::admitted);
  EXPECT_EQ(wakeups[0].tag, 3u);
  EXPECT_EQ(wakeups[0].ticket, third.ticket);
  EXPECT_EQ(wakeups[0].priority, 5);
  EXPECT_EQ(wakeups[0].waited, 250ms);
  EXPECT_EQ(gate.in_flight(), 2u);  // the slot passed to the waiter

  EXPECT_EQ(release_one(gate), std::nullopt);
  EXPECT_EQ(release_one(gate), std::nullopt);
  EXPECT_EQ(gate.in_flight(), 0u);
}

TEST(ConcurrencyGate, ServesByPriorityThenArrival) {
  struct Case {
    const char* name;
    std::vector<Priority> arrivals;            // tag = index
    std::vector<std::uint64_t> expected_tags;  // order of admission
  };
  const std::vector<Case> cases = {
      {"strict priority", {5, 2, 8, 0}, {3, 1, 0, 2}},
      {"fifo within a priority", {4, 4, 4}, {0, 1, 2}},
      {"mixed", {7, 1, 7, 1, 9, 0}, {5, 1, 3, 0, 2, 4}},
      {"above lowest counts as lowest", {42, 9}, {0, 1}},
  };
  for (const Case& row : cases) {
    SCOPED_TRACE(row.name);
    BusyGate busy(options(1, 0ms));
    auto& [clock, gate] = busy;
    for (std::size_t i = 0; i < row.arrivals.size(); ++i) {
      clock.advance(1ms);
      ASSERT_EQ(gate.try_acquire(row.arrivals[i], kNoDeadline, i).outcome, AdmitOutcome::queued);
    }
    std::vector<std::uint64_t> order;
    while (auto tag = release_one(gate)) order.push_back(*tag);
    EXPECT_EQ(order, row.expected_tags);
  }
}

// One slot, 10ms per request; a priority-0 request arrives every 10ms, so without aging the
// low-priority waiter (queued first, at t = 0) would wait forever. With aging it reaches
// effective priority 0 after p * aging_step and, being the earliest arrival among those at 0,
// is admitted by the first release at or after that: the documented bound.
struct StarvationRun {
  std::optional<std::chrono::nanoseconds> admitted_after;
  std::uint32_t high_admitted_before = 0;
};

StarvationRun run_against_high_priority_flood(Priority low, std::chrono::milliseconds aging_step,
                                              std::chrono::milliseconds horizon) {
  BusyGate busy(options(1, aging_step));
  auto& [clock, gate] = busy;
  constexpr std::uint64_t kLowTag = 1'000'000;
  EXPECT_EQ(gate.try_acquire(low, kNoDeadline, kLowTag).outcome, AdmitOutcome::queued);
  StarvationRun run;
  for (std::uint64_t tick = 1; tick * 10ms <= horizon; ++tick) {
    clock.advance(10ms);
    EXPECT_EQ(gate.try_acquire(0, kNoDeadline, tick).outcome, AdmitOutcome::queued);
    std::vector<Wakeup> wakeups;
    gate.release(wakeups);
    EXPECT_EQ(wakeups.size(), 1u);
    if (wakeups.empty()) break;
    if (wakeups[0].tag == kLowTag) {
      run.admitted_after = wakeups[0].waited;
      return run;
    }
    ++run.high_admitted_before;
  }
  return run;
}

TEST(ConcurrencyGate, AgingAdmitsAStarvingRequestWithinTheBound) {
  struct Case {
    Priority low;
    std::chrono::milliseconds aging_step;
    std::chrono::milliseconds expected_wait;  // p * aging_step, rounded up to the 10ms ticks
  };
  const std::vector<Case> cases = {
      {9, 100ms, 900ms}, {5, 100ms, 500ms}, {1, 100ms, 100ms}, {9, 25ms, 230ms}, {3, 15ms, 50ms},
  };
  for (const Case& row : cases) {
    SCOPED_TRACE("priority " + std::to_string(row.low) + " aging step " +
                 std::to_string(row.aging_step.count()) + "ms");
    const StarvationRun run = run_against_high_priority_flood(row.low, row.aging_step, 5s);
    ASSERT_TRUE(run.admitted_after.has_value());
    EXPECT_EQ(*run.admitted_after, row.expected_wait);
    // Until then every slot went to the flood: aging does not promote it early.
    EXPECT_EQ(run.high_admitted_before, row.expected_wait / 10ms - 1);
  }
}

TEST(ConcurrencyGate, WithoutAgingTheFloodStarvesTheLowPriority) {
  const StarvationRun run = run_against_high_priority_flood(9, 0ms, 5s);
  EXPECT_FALSE(run.admitted_after.has_value());
  EXPECT_EQ(run.high_admitted_before, 500u);
}

TEST(ConcurrencyGate, AgingReordersWaitersAndTiesGoToTheEarlierArrival) {
  BusyGate busy(options(1, 100ms));
  auto& [clock, gate] = busy;
  ASSERT_EQ(gate.try_acquire(3, kNoDeadline, 0).outcome, AdmitOutcome::queued);  // t = 0
  clock.advance(50ms);
  ASSERT_EQ(gate.try_acquire(2, kNoDeadline, 1).outcome, AdmitOutcome::queued);  // t = 50ms
  clock.advance(50ms);
  ASSERT_EQ(gate.try_acquire(1, kNoDeadline, 2).outcome, AdmitOutcome::queued);  // t = 100ms
  // At t = 150ms the effective priorities are 2, 1 and 1: the priority-2 request, aged one
  // level, ties with the younger priority-1 request and goes first (without aging: 2, 1, 0).
  clock.advance(50ms);
  EXPECT_EQ(release_one(gate), 1u);
  EXPECT_EQ(release_one(gate), 2u);
  EXPECT_EQ(release_one(gate), 0u);
}

TEST(ConcurrencyGate, CapsRejectWithTheirReason) {
  ConcurrencyGateOptions o = options(1, 0ms);
  o.max_queued = 4;
  o.max_queued_per_priority[9] = 2;
  BusyGate busy(o);
  auto& [clock, gate] = busy;
  EXPECT_EQ(gate.try_acquire(9, kNoDeadline, 1).outcome, AdmitOutcome::queued);
  EXPECT_EQ(gate.try_acquire(9, kNoDeadline, 2).outcome, AdmitOutcome::queued);
  const Admit capped = gate.try_acquire(9, kNoDeadline, 3);
  EXPECT_EQ(capped.outcome, AdmitOutcome::rejected);
  EXPECT_EQ(capped.reason, RejectReason::priority_cap);
  EXPECT_STREQ(to_string(capped.reason), "priority_cap");
  EXPECT_EQ(gate.try_acquire(0, kNoDeadline, 4).outcome, AdmitOutcome::queued);
  EXPECT_EQ(gate.try_acquire(1, kNoDeadline, 5).outcome, AdmitOutcome::queued);
  const Admit full = gate.try_acquire(0, kNoDeadline, 6);
  EXPECT_EQ(full.outcome, AdmitOutcome::rejected);
  EXPECT_EQ(full.reason, RejectReason::queue_full);

  const GateStats stats = gate.stats();
  EXPECT_EQ(stats.queued, 4u);
  EXPECT_EQ(stats.queued_by_priority[0], 1u);
  EXPECT_EQ(stats.queued_by_priority[1], 1u);
  EXPECT_EQ(stats.queued_by_priority[9], 2u);
  EXPECT_EQ(stats.in_flight, 1u);
  EXPECT_EQ(stats.limit, 1u);

  // A waiter leaving makes room again.
  EXPECT_EQ(release_one(gate), 4u);
  EXPECT_EQ(gate.try_acquire(0, kNoDeadline, 7).outcome, AdmitOutcome::queued);
}

TEST(ConcurrencyGate, NoQueueRejectsAtTheLimit) {
  ConcurrencyGateOptions o = options(1, 0ms);
  o.max_queued = 0;
  BusyGate busy(o);
  auto& [clock, gate] = busy;
  EXPECT_EQ(gate.try_acquire(0, kNoDeadline).reason, RejectReason::queue_full);
}

TEST(ConcurrencyGate, QueueTimeoutIsTheEarlierOfTimeoutAndDeadline) {
  ConcurrencyGateOptions o = options(1, 0ms);
  o.queue_timeout = 200ms;
  BusyGate busy(o);
  auto& [clock, gate] = busy;
  const TimePoint t0 = clock.now();
  EXPECT_EQ(gate.next_expiry(), std::nullopt);
  EXPECT_EQ(gate.try_acquire(5, kNoDeadline, 0).expires_at, t0 + 200ms);
  EXPECT_EQ(gate.try_acquire(5, t0 + 80ms, 1).expires_at, t0 + 80ms);
  EXPECT_EQ(gate.try_acquire(5, t0 + 150ms, 2).expires_at, t0 + 150ms);
  EXPECT_EQ(gate.next_expiry(), t0 + 80ms);

  std::vector<Wakeup> wakeups;
  gate.expire(t0 + 79ms, wakeups);
  EXPECT_TRUE(wakeups.empty());
  clock.set(t0 + 80ms);
  gate.expire(clock.now(), wakeups);
  EXPECT_EQ(timed_out_tags(wakeups), std::vector<std::uint64_t>{1});
  EXPECT_EQ(wakeups[0].waited, 80ms);
  EXPECT_EQ(gate.next_expiry(), t0 + 150ms);

  // A release after 150ms does not admit the waiter whose time is up: it times out instead,
  // and the slot goes to the next one.
  clock.set(t0 + 160ms);
  wakeups.clear();
  gate.release(wakeups);
  EXPECT_EQ(timed_out_tags(wakeups), std::vector<std::uint64_t>{2});
  EXPECT_EQ(admitted_tags(wakeups), std::vector<std::uint64_t>{0});
  EXPECT_EQ(gate.next_expiry(), std::nullopt);
  EXPECT_EQ(gate.stats().queued, 0u);
}

TEST(ConcurrencyGate, RejectsWaitsTooShortToHelp) {
  ManualClock clock;
  ConcurrencyGateOptions o = options(1, 0ms);
  o.min_queue_wait = 5ms;
  ConcurrencyGate gate(o, clock);
  const TimePoint now = clock.now();
  // A free slot admits whatever the deadline: the caller owns deadline checks before the gate.
  ASSERT_EQ(gate.try_acquire(0, now + 1ms).outcome, AdmitOutcome::admitted);
  for (const TimePoint deadline : {now - 1ms, now, now + 4ms}) {
    const Admit admit = gate.try_acquire(0, deadline);
    EXPECT_EQ(admit.outcome, AdmitOutcome::rejected);
    EXPECT_EQ(admit.reason, RejectReason::timeout_too_short);
  }
  EXPECT_EQ(gate.try_acquire(0, now + 5ms).outcome, AdmitOutcome::queued);
}

TEST(ConcurrencyGate, CancelRemovesOnlyAWaiter) {
  BusyGate busy(options(1, 0ms));
  auto& [clock, gate] = busy;
  const Admit a = gate.try_acquire(0, kNoDeadline, 1);
  const Admit b = gate.try_acquire(5, kNoDeadline, 2);
  EXPECT_FALSE(gate.cancel(Ticket{}));
  EXPECT_TRUE(gate.cancel(a.ticket));
  EXPECT_FALSE(gate.cancel(a.ticket));  // already gone
  EXPECT_EQ(gate.stats().queued_by_priority[0], 0u);
  EXPECT_EQ(gate.next_expiry(), b.expires_at);

  // The slot of `a` is reused; a's old ticket must not cancel the new waiter.
  const Admit c = gate.try_acquire(0, kNoDeadline, 3);
  EXPECT_NE(c.ticket, a.ticket);
  EXPECT_FALSE(gate.cancel(a.ticket));
  EXPECT_EQ(release_one(gate), 3u);
  EXPECT_FALSE(gate.cancel(c.ticket));  // admitted: the caller must release it instead
  EXPECT_EQ(release_one(gate), 2u);
}

TEST(ConcurrencyGate, RaisingTheLimitAdmitsWaitersLoweringItRevokesNothing) {
  BusyGate busy(options(1, 0ms));
  auto& [clock, gate] = busy;
  for (std::uint64_t tag = 0; tag < 4; ++tag) {
    ASSERT_EQ(gate.try_acquire(static_cast<Priority>(9 - tag), kNoDeadline, tag).outcome,
              AdmitOutcome::queued);
  }
  std::vector<Wakeup> wakeups;
  gate.set_limit(3, wakeups);
  EXPECT_EQ(admitted_tags(wakeups), (std::vector<std::uint64_t>{3, 2}));
  EXPECT_EQ(gate.in_flight(), 3u);
  EXPECT_EQ(gate.limit(), 3u);

  wakeups.clear();
  gate.set_limit(1, wakeups);
  EXPECT_TRUE(wakeups.empty());
  EXPECT_EQ(gate.in_flight(), 3u);
  EXPECT_EQ(release_one(gate), std::nullopt);  // 2 in flight, limit 1
  EXPECT_EQ(release_one(gate), std::nullopt);  // 1
  EXPECT_EQ(release_one(gate), 1u);            // 0 -> the next waiter
  EXPECT_EQ(gate.in_flight(), 1u);

  wakeups.clear();
  gate.set_limit(0, wakeups);
  EXPECT_EQ(release_one(gate), std::nullopt);
  EXPECT_EQ(gate.try_acquire(0, kNoDeadline).outcome, AdmitOutcome::queued);
  EXPECT_EQ(gate.stats().queued, 2u);
}

TEST(ConcurrencyGate, ManyWaitersLeaveInExpiryOrder) {
  // Exercises the expiry heap with interleaved removals.
  ConcurrencyGateOptions o = options(1, 0ms);
  o.max_queued = 64;
  o.queue_timeout = 1000ms;
  BusyGate busy(o);
  auto& [clock, gate] = busy;
  const TimePoint t0 = clock.now();
  // Distinct deadlines 1..64ms in a scrambled order (37 is coprime to 64).
  auto deadline_of = [&](std::uint64_t tag) {
    return t0 + std::chrono::milliseconds((tag * 37) % 64 + 1);
  };
  std::vector<Ticket> tickets;
  for (std::uint64_t i = 0; i < 64; ++i) {
    tickets.push_back(gate.try_acquire(static_cast<Priority>(i % 10), deadline_of(i), i).ticket);
  }
  for (std::uint64_t i = 0; i < 64; i += 3) ASSERT_TRUE(gate.cancel(tickets[i]));
  std::vector<Wakeup> wakeups;
  gate.expire(t0 + 1000ms, wakeups);
  ASSERT_EQ(wakeups.size(), 64u - 22u);
  for (std::size_t i = 1; i < wakeups.size(); ++i) {
    EXPECT_LT(deadline_of(wakeups[i - 1].tag), deadline_of(wakeups[i].tag));
  }
  EXPECT_EQ(gate.stats().queued, 0u);
}

// Threads race admissions and releases through one gate; a request admitted from the queue is
// run by whichever thread received its wake-up. The slots held never exceed the limit, and
// every request is either run or rejected.
TEST(ConcurrencyGate, InFlightNeverExceedsTheLimitAcrossThreads) {
  constexpr std::uint32_t kLimit = 3;
  constexpr int kThreads = 6;
  constexpr int kRequestsPerThread = 10000;
  ManualClock clock;
  ConcurrencyGateOptions o = options(kLimit, 1ms);
  o.max_queued = 8;
  ConcurrencyGate gate(o, clock);
  std::atomic<std::uint32_t> holding{0};
  std::atomic<std::uint32_t> most_held{0};
  std::atomic<int> run{0};
  std::atomic<int> rejected{0};
  std::atomic<bool> over_gate_limit{false};

  auto hold_then_release = [&](std::vector<Wakeup>& wakeups) {
    int slots = 1;
    while (slots > 0) {
      --slots;
      const std::uint32_t now_held = holding.fetch_add(1) + 1;
      std::uint32_t seen = most_held.load();
      while (now_held > seen && !most_held.compare_exchange_weak(seen, now_held)) {
      }
      if (gate.in_flight() > kLimit) over_gate_limit = true;
      std::this_thread::yield();  // hold the slot a moment, so that holders overlap
      run.fetch_add(1);
      holding.fetch_sub(1);
      wakeups.clear();
      gate.release(wakeups);
      for (const Wakeup& w : wakeups) slots += w.reason == Wakeup::Reason::admitted ? 1 : 0;
    }
  };

  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Wakeup> wakeups;
      wakeups.reserve(8);
      start.arrive_and_wait();
      for (int i = 0; i < kRequestsPerThread; ++i) {
        const Admit admit = gate.try_acquire(static_cast<Priority>((i + t) % 10), kNoDeadline);
        if (admit.outcome == AdmitOutcome::admitted) hold_then_release(wakeups);
        if (admit.outcome == AdmitOutcome::rejected) rejected.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_LE(most_held.load(), kLimit);
  EXPECT_FALSE(over_gate_limit.load());
  EXPECT_EQ(run.load() + rejected.load(), kThreads * kRequestsPerThread);
  const GateStats stats = gate.stats();
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.queued, 0u);
}

}  // namespace
}  // namespace fusebox::admission
