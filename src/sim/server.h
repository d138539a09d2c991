#pragma once
// tfs-sim's HTTP/1.1 server: one Beast session per connection on a strand of a shared
// io_context (the Beast async server example pattern). Sessions read one request at a time
// (pipelined requests wait in the read buffer), apply the fault snapshot of that moment, and
// answer through RestApi or ControlApi. Nothing blocks: injected latency is a steady_timer.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "sim/control_api.h"
#include "sim/faults.h"
#include "sim/rest_api.h"
#include "sim/stats.h"

namespace tfs_sim {

// Everything a session needs; owned by main() and outliving the io_context.
struct ServerContext {
  const RestApi& api;
  ControlApi& control;
  FaultState& faults;
  SimStats& stats;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::size_t body_limit = 64u << 20;
  std::size_t header_limit = 64u << 10;
  std::optional<std::uint64_t> seed;  // fault dice; per-thread generators derive from it
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Opens, binds and listens; nullptr and `error` filled when any step fails.
  static std::shared_ptr<Listener> create(boost::asio::io_context& ioc,
                                          const boost::asio::ip::tcp::endpoint& endpoint,
                                          const ServerContext& ctx, std::string& error);

  Listener(boost::asio::io_context& ioc, const ServerContext& ctx);

  void run();  // starts accepting (call once)
  std::uint16_t port() const;

 private:
  void do_accept();
  void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  const ServerContext& ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;  // backs off after accept errors such as EMFILE
};

}  // namespace tfs_sim
