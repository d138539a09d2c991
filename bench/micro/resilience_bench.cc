// Cost of the per-request resilience decisions: breaker admission and recording, load
// balancer picks. Run: build/bin/micro_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <vector>

#include "fusebox/balancer/load_balancer.h"
#include "fusebox/resilience/shared_breaker.h"

namespace {

using namespace fusebox;

class NeverEject final : public resilience::EjectionGuard {
 public:
  bool may_eject() const override { return false; }
};

void BM_BreakerAdmitClosed(benchmark::State& state) {
  config::CircuitBreakerConfig config;
  resilience::SharedBreaker breaker(config, SteadyClock::instance(), 1);
  std::vector<resilience::Transition> transitions;
  for (auto _ : state) {
    auto a = breaker.try_acquire(transitions);
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_BreakerAdmitClosed)->ThreadRange(1, 2);

void BM_BreakerRecordSuccess(benchmark::State& state) {
  config::CircuitBreakerConfig config;
  static resilience::SharedBreaker breaker(config, SteadyClock::instance(), 1);
  NeverEject guard;
  std::vector<resilience::Transition> transitions;
  for (auto _ : state) {
    auto a = breaker.try_acquire(transitions);
    auto t = breaker.record(a, resilience::CallOutcome::success, std::chrono::milliseconds(3), guard);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_BreakerRecordSuccess)->ThreadRange(1, 2);

std::vector<balancer::Candidate> candidates(std::size_t n) {
  std::vector<balancer::Candidate> c;
  for (std::size_t i = 0; i < n; ++i) c.push_back({i, static_cast<double>(1 + i % 3), static_cast<std::int64_t>(i % 5)});
  return c;
}

void BM_PickWeightedRoundRobin(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  auto lb = balancer::make_weighted_round_robin(n);
  auto c = candidates(n);
  for (auto _ : state) benchmark::DoNotOptimize(lb->pick(c));
}
BENCHMARK(BM_PickWeightedRoundRobin)->Arg(3)->Arg(16)->Arg(256)->ThreadRange(1, 2);

void BM_PickLeastRequest(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  FastRandom random(42);
  auto lb = balancer::make_least_request(random);
  auto c = candidates(n);
  for (auto _ : state) benchmark::DoNotOptimize(lb->pick(c));
}
BENCHMARK(BM_PickLeastRequest)->Arg(3)->Arg(16)->Arg(256)->ThreadRange(1, 2);

}  // namespace
