#include <vector>

#include "fusebox/balancer/load_balancer.h"

namespace fusebox::balancer {
namespace {

// nginx's smooth weighted round-robin: each candidate gains its weight in credit, the richest
// is chosen and pays the total. Credit is kept per backend of the pool; backends that are not
// candidates for a pick neither gain nor pay. Doubles, because slow start makes weights
// fractional.
class SmoothWeightedRoundRobin final : public LoadBalancer {
 public:
  explicit SmoothWeightedRoundRobin(std::size_t backends) : credit_(backends, 0.0) {}

  std::optional<std::size_t> pick(std::span<const Candidate> candidates) override {
    double total = 0;
    double* best = nullptr;
    std::size_t chosen = 0;
    for (const Candidate& candidate : candidates) {
      if (candidate.backend >= credit_.size()) continue;  // not of this pool: never chosen
      double& credit = credit_[candidate.backend];
      credit += candidate.weight;
      total += candidate.weight;
      if (best == nullptr || credit > *best) {  // ties: the first candidate
        best = &credit;
        chosen = candidate.backend;
      }
    }
    if (best == nullptr) return std::nullopt;
    *best -= total;
    return chosen;
  }

 private:
  std::vector<double> credit_;  // per backend index
};

}  // namespace

std::unique_ptr<LoadBalancer> make_weighted_round_robin(std::size_t backends) {
  return std::make_unique<SmoothWeightedRoundRobin>(backends);
}

}  // namespace fusebox::balancer
