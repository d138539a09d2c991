#include "fusebox/common/read_watch.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace fusebox::io {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;

// Two connected loopback sockets, `near` read through a watch, `far` written to directly.
// Every test runs the io_context in bounded steps until what it waits for has happened.
class ReadWatchTest : public ::testing::Test {
 protected:
  ReadWatchTest() {
    asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    far.connect(acceptor.local_endpoint());
    acceptor.accept(near);
  }

  struct Read {
    bool done = false;
    error_code ec;
    std::string bytes;
  };

  // Starts a read through `watch`; `result` is filled when it completes.
  void read(ReadWatch& watch, Read& result) {
    result = {};
    watch.async_read_some(asio::buffer(buffer), [this, &result](error_code ec, std::size_t n) {
      result.done = true;
      result.ec = ec;
      result.bytes.assign(buffer, n);
    });
  }

  // Runs handlers until `done()` or 5 s; false if it never happened.
  template <class Done>
  bool run_until(Done done) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      if (ioc.stopped()) ioc.restart();
      ioc.run_one_for(100ms);
    }
    return true;
  }

  // Lets the reactor collect what the kernel has for the sockets while nothing reads: a timer
  // keeps the loop in epoll_wait for a moment.
  void turn_the_loop() {
    asio::steady_timer timer(ioc, 1ms);
    bool fired = false;
    timer.async_wait([&](error_code) { fired = true; });
    ASSERT_TRUE(run_until([&] { return fired; }));
  }

  void send(const std::string& bytes) { asio::write(far, asio::buffer(bytes)); }

  asio::io_context ioc{1};
  Socket near{ioc};
  asio::ip::tcp::socket far{ioc};
  char buffer[64];
};

TEST_F(ReadWatchTest, RequestAnswerExchangesMakeNoEmptyReceive) {
  ReadWatch watch(near);
  Read result;
  for (int i = 0; i < 50; ++i) {
    read(watch, result);  // queued before the bytes exist: an Asio read would try it first
    send("request " + std::to_string(i));
    ASSERT_TRUE(run_until([&] { return result.done; })) << "exchange " << i;
    ASSERT_FALSE(result.ec) << result.ec.message();
    EXPECT_EQ(result.bytes, "request " + std::to_string(i));
  }
  // Only the very first read, with nothing queued before it, tried the socket at once.
  EXPECT_LE(watch.empty_receives(), 1u);
}

TEST_F(ReadWatchTest, BytesThatCameWhileNothingReadAreReadWhenAsked) {
  ReadWatch watch(near);
  Read result;
  send("one");
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.bytes, "one");
  EXPECT_FALSE(watch.ready()) << "a short read leaves nothing behind";

  // The next bytes come while nothing reads, and the event loop takes their edge meanwhile:
  // an edge Asio would drop, so only the watching operation can know of them.
  send("two");
  turn_the_loop();
  EXPECT_TRUE(watch.ready());
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; })) << "the bytes that came were never read";
  EXPECT_EQ(result.bytes, "two");
}

TEST_F(ReadWatchTest, AFullBufferLeavesTheWatchReadyForTheRest) {
  ReadWatch watch(near);
  Read result;
  send(std::string(sizeof buffer + 10, 'x'));
  turn_the_loop();  // the bytes' edge is spent before anything reads
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.bytes.size(), sizeof buffer);
  EXPECT_TRUE(watch.ready()) << "a full buffer may have left bytes behind";
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.bytes, std::string(10, 'x'));
}

TEST_F(ReadWatchTest, WaitCompletesWhenReadableAndLeavesTheBytes) {
  ReadWatch watch(near);
  Read first;
  send("a");
  read(watch, first);
  ASSERT_TRUE(run_until([&] { return first.done; }));

  std::optional<error_code> waited;
  watch.async_wait([&](error_code ec) { waited = ec; });
  turn_the_loop();
  EXPECT_FALSE(waited) << "nothing to read yet";
  send("bc");
  ASSERT_TRUE(run_until([&] { return waited.has_value(); }));
  EXPECT_FALSE(*waited);
  error_code ec;
  EXPECT_EQ(watch.read_now(asio::buffer(buffer), ec), 2u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::string(buffer, 2), "bc");
}

TEST_F(ReadWatchTest, ReadNowFindsNothingWithoutBlocking) {
  ReadWatch watch(near);
  near.non_blocking(true);
  error_code ec;
  EXPECT_EQ(watch.read_now(asio::buffer(buffer), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
  EXPECT_FALSE(watch.ready());
  send("xyz");
  EXPECT_EQ(watch.read_now(asio::buffer(buffer), ec), 3u);
  EXPECT_FALSE(ec);
}

TEST_F(ReadWatchTest, EndOfStreamIsReportedToEveryRead) {
  ReadWatch watch(near);
  Read result;
  send("last");
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  far.close();
  for (int i = 0; i < 2; ++i) {
    read(watch, result);
    ASSERT_TRUE(run_until([&] { return result.done; })) << "read " << i << " after the close";
    EXPECT_EQ(result.ec, asio::error::eof);
  }
}

// The close that comes right behind the last bytes spends its edge with theirs: the read that
// takes the bytes must know the end is still there to read.
TEST_F(ReadWatchTest, TheCloseThatCameWithTheLastBytesIsReadNext) {
  ReadWatch watch(near);
  Read result;
  send("x");
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));

  send("last words");
  far.shutdown(asio::socket_base::shutdown_send);
  turn_the_loop();  // one edge for both
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.bytes, "last words");
  EXPECT_TRUE(watch.ready()) << "the close is still to be read";
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; })) << "the close was never seen";
  EXPECT_EQ(result.ec, asio::error::eof);
}

TEST_F(ReadWatchTest, CancelEndsAPendingReadAndTheNextStartsAfresh) {
  ReadWatch watch(near);
  Read result;
  send("x");
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));

  read(watch, result);  // takes over the watching operation
  near.cancel();
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.ec, asio::error::operation_aborted);

  send("after");
  read(watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_FALSE(result.ec);
  EXPECT_EQ(result.bytes, "after");
}

TEST_F(ReadWatchTest, CloseEndsAPendingReadWithOperationAborted) {
  ReadWatch watch(near);
  Read result;
  read(watch, result);
  near.close();
  ASSERT_TRUE(run_until([&] { return result.done; }));
  EXPECT_EQ(result.ec, asio::error::operation_aborted);
}

TEST_F(ReadWatchTest, ASecondReadWhileOneIsPendingIsRefused) {
  ReadWatch watch(near);
  Read first, second;
  read(watch, first);
  watch.async_read_some(asio::buffer(buffer), [&](error_code ec, std::size_t) {
    second.done = true;
    second.ec = ec;
  });
  ASSERT_TRUE(run_until([&] { return second.done; }));
  EXPECT_EQ(second.ec, asio::error::in_progress);
  send("for the first");
  ASSERT_TRUE(run_until([&] { return first.done; }));
  EXPECT_EQ(first.bytes, "for the first");
}

TEST_F(ReadWatchTest, WatchingIsNotWorkThatKeepsRunGoing) {
  ReadWatch watch(near);
  Read result;
  send("x");
  read(watch, result);
  ioc.run_for(5s);  // returns as soon as the read is done and only the watch is left
  EXPECT_TRUE(result.done);
  EXPECT_TRUE(ioc.stopped()) << "the watching operation kept the io_context running";
}

TEST_F(ReadWatchTest, WatchGoneBeforeItsSocketLeavesNothingBehind) {
  auto watch = std::make_unique<ReadWatch>(near);
  Read result;
  send("x");
  read(*watch, result);
  ASSERT_TRUE(run_until([&] { return result.done; }));
  watch.reset();  // its watching operation is still queued on the socket
  send("unread");
  turn_the_loop();  // the orphaned operation sees the edge
  near.close();     // and is let go of: freed, no upcall (the sanitizers check the rest)
  ioc.restart();
  ioc.run_for(1s);
  EXPECT_TRUE(ioc.stopped());
}

}  // namespace
}  // namespace fusebox::io
