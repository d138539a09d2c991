#pragma once
// Smooth weighted round-robin (the sequence nginx uses): over any window of sum(weights) picks,
// each backend is chosen exactly weight times, and picks of one backend are spread out rather
// than bunched (weights 5,1,1 give a a b a c a a, not a a a a a b c).
//
// Pure and single-threaded: each worker keeps its own instance per pool. Callers say which
// backends are eligible for this pick; ineligible ones neither get picked nor accumulate credit.

#include <cstdint>
#include <optional>
#include <vector>

namespace fusebox::upstream {

class WeightedRoundRobin {
 public:
  explicit WeightedRoundRobin(std::vector<std::uint32_t> weights)
      : weights_(std::move(weights)), current_(weights_.size(), 0) {}

  // Index of the next backend among those for which eligible(i) is true; nullopt when none is.
  template <typename Eligible>
  std::optional<std::size_t> pick(Eligible&& eligible) {
    std::optional<std::size_t> best;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      if (!eligible(i)) continue;
      current_[i] += weights_[i];
      total += weights_[i];
      if (!best || current_[i] > current_[*best]) best = i;
    }
    if (best) current_[*best] -= total;
    return best;
  }

  std::optional<std::size_t> pick() {
    return pick([](std::size_t) { return true; });
  }

  std::size_t size() const { return weights_.size(); }

 private:
  std::vector<std::uint32_t> weights_;
  std::vector<std::int64_t> current_;
};

}  // namespace fusebox::upstream
