#include "fusebox/common/listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <string>

namespace fusebox::io {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A connection the kernel completed before the filter stays in the queue and is accepted with
// its bytes; one attempted after it is never completed, and the queue stays empty.
TEST(StopCompletingConnections, QueuedConnectionsStayNewOnesAreNotCompleted) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto endpoint = acceptor.local_endpoint();

  tcp::socket before(ioc);
  before.connect(endpoint);
  asio::write(before, asio::buffer(std::string("request")));

  std::string error;
  ASSERT_TRUE(stop_completing_connections(acceptor.native_handle(), error)) << error;

  // A connect that does not wait (Asio's connect() would wait for the SYN retries).
  const int after = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(after, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(endpoint.port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_NE(::connect(after, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
  ASSERT_EQ(errno, EINPROGRESS);
  pollfd pending{after, POLLOUT, 0};
  EXPECT_EQ(::poll(&pending, 1, /*ms=*/300), 0) << "the handshake must not complete";
  ::close(after);

  tcp::socket accepted(ioc);
  acceptor.accept(accepted);
  std::string got(7, '\0');
  asio::read(accepted, asio::buffer(got));
  EXPECT_EQ(got, "request") << "the queued connection keeps what its client sent";

  acceptor.non_blocking(true);
  tcp::socket none(ioc);
  boost::system::error_code ec;
  acceptor.accept(none, ec);
  EXPECT_EQ(ec, asio::error::would_block) << "nothing else was queued";
}

TEST(StopCompletingConnections, SaysWhyItCannot) {
  std::string error;
  EXPECT_FALSE(stop_completing_connections(-1, error));
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace fusebox::io
