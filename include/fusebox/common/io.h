#pragma once
// Socket and stream types bound to one io_context's executor. Naming the executor type (instead
// of Asio's type-erased any_io_executor) saves a copy and a virtual call on every asynchronous
// operation of the data path.

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstddef>

namespace fusebox::io {

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Stream = boost::beast::basic_stream<boost::asio::ip::tcp, Executor,
                                          boost::beast::unlimited_rate_policy>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                boost::asio::wait_traits<std::chrono::steady_clock>,
                                                Executor>;

// Completion condition for asio::async_write: everything, in sends of up to 256 KiB.
// asio::transfer_all() passes at most 64 KiB per send, so a 64 KiB body and its header take two
// system calls and a 1 MiB body sixteen. Unbounded sends measured slower for 1 MiB bodies on
// loopback: one call then does the whole transfer's work while the receiver waits for it.
struct TransferAllInLargeSends {
  std::size_t operator()(const boost::system::error_code& ec, std::size_t) const {
    return ec ? 0 : std::size_t{256 * 1024};
  }
};

// The most send_now sends in one call (as TransferAllInLargeSends).
inline constexpr std::size_t kSendNowMax = 256 * 1024;

// The first step of writing a message of up to kSendNowMax on a socket in non-blocking mode:
// sends what the kernel takes at once, so a message that fits (most) needs no asynchronous
// operation, no posted completion. Returns the bytes sent (0 for a larger message); `ec` is set
// only for a real error, not when the socket has no room (the rest is then written
// asynchronously).
template <class ConstBuffers>
std::size_t send_now(Socket& socket, const ConstBuffers& buffers, boost::system::error_code& ec) {
  ec = {};
  if (boost::asio::buffer_size(buffers) > kSendNowMax) return 0;
  std::size_t sent = socket.write_some(buffers, ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
    ec = {};
    sent = 0;
  }
  return sent;
}

}  // namespace fusebox::io
