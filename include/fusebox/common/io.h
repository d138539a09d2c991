#pragma once
// Socket and stream types bound to one io_context's executor. Naming the executor type (instead
// of Asio's type-erased any_io_executor) saves a copy and a virtual call on every asynchronous
// operation of the data path.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace fusebox::io {

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Stream = boost::beast::basic_stream<boost::asio::ip::tcp, Executor,
                                          boost::beast::unlimited_rate_policy>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                boost::asio::wait_traits<std::chrono::steady_clock>,
                                                Executor>;

}  // namespace fusebox::io
