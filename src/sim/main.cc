// tfs-sim: a TensorFlow Serving REST (and, with --grpc-port, gRPC) stand-in with fault
// injection, for fusebox's tests, demo and benchmarks. See docs/tfs-sim.md.
//
// Exit codes: 0 after SIGTERM/SIGINT (or --help), 1 when a port cannot be bound, 2 on bad
// flags. The first line on stdout is the bound REST port; with --grpc-port, the second line is
// the bound gRPC port.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sim/control_api.h"
#include "sim/faults.h"
#include "sim/grpc_api.h"
#include "sim/grpc_server.h"
#include "sim/options.h"
#include "sim/rest_api.h"
#include "sim/server.h"
#include "sim/stats.h"

namespace net = boost::asio;

int main(int argc, char** argv) {
  using namespace tfs_sim;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const OptionsResult parsed = parse_options(args);
  if (!parsed.options) {
    std::cerr << "tfs-sim: " << parsed.error << "\nTry 'tfs-sim --help'.\n";
    return 2;
  }
  const SimOptions& o = *parsed.options;
  if (o.help) {
    std::cout << usage();
    return 0;
  }
  boost::system::error_code ec;
  const auto address = net::ip::make_address(o.address, ec);
  if (ec) {
    std::cerr << "tfs-sim: --address: not an IP address: " << o.address << "\n";
    return 2;
  }

  // Declared before the io_context so they outlive every session it still holds at exit.
  RestApiConfig api_config;
  api_config.models = o.models;
  api_config.version = o.version;
  api_config.labels = o.labels;
  api_config.style = o.json_style;
  const RestApi api(std::move(api_config));
  FaultState faults(o.faults);
  std::vector<std::string> names;
  for (const auto& m : o.models) names.push_back(m.name);
  SimStats stats(names);
  ControlApi control(faults, stats);
  ServerContext ctx{api, control, faults, stats};
  ctx.idle_timeout = o.idle_timeout;
  ctx.body_limit = o.body_limit;
  ctx.header_limit = o.header_limit;
  ctx.seed = o.seed;

  net::io_context ioc(o.threads);
  std::string error;
  const auto listener = Listener::create(ioc, {address, o.rest_port}, ctx, error);
  if (!listener) {
    std::cerr << "tfs-sim: cannot listen on " << o.address << ":" << o.rest_port << ": " << error
              << "\n";
    return 1;
  }
  const GrpcApi grpc_api(api);
  const GrpcServerContext grpc_ctx{grpc_api, faults, stats, o.seed};
  std::unique_ptr<GrpcServer> grpc_server;
  if (o.grpc_port) {
    grpc_server = GrpcServer::start(o.address, *o.grpc_port, grpc_ctx, error);
    if (!grpc_server) {
      std::cerr << "tfs-sim: cannot listen on " << o.address << ":" << *o.grpc_port
                << " (gRPC): " << error << "\n";
      return 1;
    }
  }
  listener->run();
  // Installed before the port is announced: a test may send SIGTERM right after reading it.
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&ioc](const boost::system::error_code&, int) { ioc.stop(); });

  std::printf("%u\n", static_cast<unsigned>(listener->port()));
  if (grpc_server) std::printf("%u\n", static_cast<unsigned>(grpc_server->port()));
  std::fflush(stdout);
  std::string model_list;
  for (const auto& m : o.models) {
    model_list += (model_list.empty() ? "" : ", ") + m.name + " (" + to_string(m.kind) + ")";
  }
  std::cerr << "tfs-sim: serving " << model_list << " version " << o.version << " on " << o.address
            << ":" << listener->port()
            << (grpc_server ? " (gRPC :" + std::to_string(grpc_server->port()) + ")" : "")
            << " with " << o.threads << " thread(s)"
            << (o.faults.any() ? "; faults " + fault_set_to_json(o.faults) : std::string()) << "\n";

  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(o.threads - 1));
  for (int i = 1; i < o.threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();
  // Calls still in flight (a hang fault never ends on its own) are cancelled after a short grace.
  if (grpc_server) grpc_server->shutdown(std::chrono::milliseconds(200));
  return 0;
}
