#pragma once
// Choosing a backend among the eligible ones of a pool. One balancer per worker thread and
// pool, so implementations are single-threaded and take no lock. The caller decides which
// backends are eligible (health, breaker, not tried yet) and their effective weights
// (slow start); the balancer only chooses.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"

namespace fusebox::balancer {

struct Candidate {
  std::size_t backend = 0;      // index of the backend within its pool
  double weight = 1;            // effective weight (> 0), after slow start
  std::int64_t active = 0;      // requests in flight to it (least_request)
};

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // Index (Candidate::backend) of the chosen backend; nullopt when `candidates` is empty.
  virtual std::optional<std::size_t> pick(std::span<const Candidate> candidates) = 0;
};

// Smooth weighted round-robin (nginx): over sum(weights) picks each backend is chosen weight
// times, spread out (5,1,1 -> a a b a c a a). `backends` is the pool size.
std::unique_ptr<LoadBalancer> make_weighted_round_robin(std::size_t backends);
// Weighted power of two choices: draws two distinct candidates with probability proportional
// to weight and keeps the one with fewer requests in flight per unit of weight.
std::unique_ptr<LoadBalancer> make_least_request(Random& random);
std::unique_ptr<LoadBalancer> make_load_balancer(const config::LoadBalancingConfig& config,
                                                 std::size_t backends, Random& random);

// Slow start: the share of its weight a backend gets `since` it returned to rotation, rising
// linearly from min_weight_percent to 100% over the window; 1.0 when slow start is off.
double slow_start_factor(const config::LoadBalancingConfig& config, TimePoint since,
                         TimePoint now);

}  // namespace fusebox::balancer
