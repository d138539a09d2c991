#include "fusebox/common/lazy_deadline.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <memory>

namespace fusebox::io {
namespace {

using namespace std::chrono_literals;
using Clock = LazyDeadline::Clock;

// Each test runs the io_context until no wait is left: a deadline either fires or its last
// wait wakes up, finds nothing to do and stops. No test sleeps; timers only ever fire late.
class LazyDeadlineTest : public ::testing::Test {
 protected:
  boost::asio::io_context ioc{1};
  int fired = 0;
  Clock::time_point fired_at{};
  std::unique_ptr<LazyDeadline> make(Clock::duration longest_sleep) {
    return std::make_unique<LazyDeadline>(ioc.get_executor(), longest_sleep, [this] {
      ++fired;
      fired_at = Clock::now();
    });
  }
  void run() { ASSERT_GT(ioc.run_for(10s), 0u) << "nothing ran"; }
};

TEST_F(LazyDeadlineTest, FiresOnceWhenTheDeadlinePasses) {
  auto deadline = make(1s);
  auto start = Clock::now();
  deadline->expire_after(2ms);
  run();
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(deadline->expired());
  EXPECT_GE(fired_at - start, 2ms);
  EXPECT_EQ(deadline->deadline(), Clock::time_point::max()) << "a passed deadline is spent";
}

TEST_F(LazyDeadlineTest, ClearedDeadlineNeverFires) {
  auto deadline = make(1s);
  deadline->expire_after(2ms);
  deadline->clear();
  run();  // the pending wait wakes, finds no deadline and stops
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(deadline->expired());
}

TEST_F(LazyDeadlineTest, LaterDeadlineReplacesAnEarlierOne) {
  auto deadline = make(5ms);
  auto start = Clock::now();
  deadline->expire_after(1ms);
  deadline->expire_after(40ms);  // no timer operation: the wait sleeps on when it wakes early
  run();
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - start, 40ms);
}

TEST_F(LazyDeadlineTest, EarlierDeadlineMovesTheTimer) {
  auto deadline = make(1h);
  auto start = Clock::now();
  deadline->expire_after(1h);
  deadline->expire_after(3ms);  // before the pending wake-up: the timer is moved
  run();
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - start, 3ms);
}

TEST_F(LazyDeadlineTest, NeverSleepsPastTheLongestSleep) {
  // Armed for a far deadline, then given a nearer one that is still beyond the longest sleep:
  // the nearer deadline is met by the periodic wake-up, not by moving the timer.
  auto deadline = make(2ms);
  auto start = Clock::now();
  deadline->expire_after(1h);
  deadline->expire_after(10ms);
  run();
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at - start, 10ms);
}

TEST_F(LazyDeadlineTest, RearmsAfterExpiry) {
  auto deadline = make(1s);
  deadline->expire_after(1ms);
  run();
  ASSERT_EQ(fired, 1);
  ioc.restart();
  deadline->expire_after(1ms);
  EXPECT_FALSE(deadline->expired()) << "a new deadline resets the flag";
  run();
  EXPECT_EQ(fired, 2);
  EXPECT_TRUE(deadline->expired());
}

TEST_F(LazyDeadlineTest, DestroyedWithAWaitPendingCallsNothing) {
  auto deadline = make(1s);
  deadline->expire_after(1ms);
  deadline.reset();
  ioc.run_for(10s);  // the cancelled wait completes without touching the destroyed object
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace fusebox::io
