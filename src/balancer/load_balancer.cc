#include "fusebox/balancer/load_balancer.h"

#include <algorithm>

namespace fusebox::balancer {

std::unique_ptr<LoadBalancer> make_load_balancer(const config::LoadBalancingConfig& config,
                                                 std::size_t backends, Random& random) {
  switch (config.policy) {
    case config::BalancerPolicy::least_request:
      return make_least_request(random);
    case config::BalancerPolicy::weighted_round_robin:
      break;
  }
  return make_weighted_round_robin(backends);
}

double slow_start_factor(const config::LoadBalancingConfig& config, TimePoint since,
                         TimePoint now) {
  if (config.slow_start <= Duration::zero() || since > now) return 1.0;
  const auto elapsed = now - since;
  if (elapsed >= config.slow_start) return 1.0;
  const double floor = std::clamp(config.slow_start_min_weight_percent, 0.0, 100.0) / 100.0;
  const double progress =
      std::chrono::duration<double>(elapsed) / std::chrono::duration<double>(config.slow_start);
  return floor + (1.0 - floor) * progress;
}

}  // namespace fusebox::balancer
