#include "fusebox/balancer/load_balancer.h"

namespace fusebox::balancer {
namespace {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// Weighted power of two choices: two distinct candidates drawn with probability proportional
// to weight; the one with fewer requests in flight per unit of weight wins, counting the
// request about to be sent ((active + 1) / weight), so idle backends still compare by weight.
class WeightedLeastRequest final : public LoadBalancer {
 public:
  explicit WeightedLeastRequest(Random& random) : random_(random) {}

  std::optional<std::size_t> pick(std::span<const Candidate> candidates) override {
    if (candidates.empty()) return std::nullopt;
    if (candidates.size() == 1) return candidates[0].backend;

    double total = 0;
    for (const Candidate& candidate : candidates) total += candidate.weight;
    const std::size_t first = draw(candidates, total, kNone);
    const std::size_t second = draw(candidates, total - candidates[first].weight, first);

    const Candidate& a = candidates[first];
    const Candidate& b = candidates[second];
    // (b.active + 1) / b.weight < (a.active + 1) / a.weight, without dividing; ties keep `a`.
    const double load_a = static_cast<double>(a.active + 1) * b.weight;
    const double load_b = static_cast<double>(b.active + 1) * a.weight;
    return load_b < load_a ? b.backend : a.backend;
  }

 private:
  // Position of a candidate drawn by weight among all but `excluded`; `total` is their sum.
  std::size_t draw(std::span<const Candidate> candidates, double total, std::size_t excluded) {
    double point = random_.next_double() * total;
    std::size_t last = kNone;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (i == excluded) continue;
      last = i;
      if (point < candidates[i].weight) return i;
      point -= candidates[i].weight;
    }
    return last;  // rounding left `point` just past the end
  }

  Random& random_;
};

}  // namespace

std::unique_ptr<LoadBalancer> make_least_request(Random& random) {
  return std::make_unique<WeightedLeastRequest>(random);
}

}  // namespace fusebox::balancer
