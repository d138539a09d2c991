#pragma once
// Counters tfs-sim exposes on GET /sim/stats. Relaxed atomics: every method is thread-safe and
// wait-free; a reader may see counters from slightly different instants.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tfs_sim {

enum class InjectedFault { error, reset, hang, delay };

class SimStats {
 public:
  // Requests are counted per served model; a /v1 request naming any other model (or none) is
  // counted under "other" so the counter set stays bounded.
  explicit SimStats(std::vector<std::string> model_names);

  void on_connection_accepted();
  void on_connection_closed();
  void on_v1_request(std::string_view model);
  // A /v1 request from a gateway health check (User-Agent "fusebox-health-check"): counted only
  // as "probe_requests", never in "requests" or "responses_by_status".
  void on_probe_request();
  void on_v1_response(int http_status);
  void on_fault(InjectedFault fault);

  // {"requests": N, "requests_by_model": {"m": N, ...}, "requests_other_models": N,
  //  "responses_by_status": {"200": N, ...}, "connections_accepted": N, "connections_open": N,
  //  "faults": {"errors": N, "resets": N, "hangs": N, "delayed": N}, "probe_requests": N}
  std::string to_json() const;
  // Zeroes every counter except connections_open (a gauge).
  void reset();

  std::uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  std::uint64_t connections_accepted() const {
    return connections_accepted_.load(std::memory_order_relaxed);
  }
  std::int64_t connections_open() const {
    return connections_open_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr int kMinStatus = 100;
  static constexpr int kMaxStatus = 599;
  std::vector<std::string> model_names_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> per_model_;
  std::atomic<std::uint64_t> other_models_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> probe_requests_{0};
  std::atomic<std::uint64_t> connections_accepted_{0};
  std::atomic<std::int64_t> connections_open_{0};
  std::array<std::atomic<std::uint64_t>, kMaxStatus - kMinStatus + 1> by_status_{};
  std::array<std::atomic<std::uint64_t>, 4> faults_{};
};

}  // namespace tfs_sim
