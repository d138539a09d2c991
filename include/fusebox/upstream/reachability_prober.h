#pragma once
// Periodic TCP connect checks of every backend, so /readyz can tell whether each route has a
// backend to send to even when no traffic flows. Runs on one io_context (the admin thread).
// The model-aware active health checks of the resilience pipeline build on this.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

#include "fusebox/proxy/runtime.h"

namespace fusebox::upstream {

class ReachabilityProber {
 public:
  ReachabilityProber(boost::asio::io_context& ioc, proxy::Runtime& runtime);
  ~ReachabilityProber();
  void start();  // probes every backend now, then every pool's reachability_interval
  void stop();

  class Probe;

 private:
  boost::asio::io_context& ioc_;
  proxy::Runtime& runtime_;
  std::vector<std::shared_ptr<Probe>> probes_;
};

}  // namespace fusebox::upstream
