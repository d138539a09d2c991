#pragma once
// Runtime faults tfs-sim injects into /v1 traffic, their JSON form (POST /sim/faults) and the
// thread-safe holder the sessions read on every request.
//
// JSON object, every field optional, unknown fields rejected (an empty object clears all faults):
//   latency_ms            number >= 0      fixed delay before answering
//   latency_jitter_ms     number >= 0      uniform +- jitter around latency_ms (floored at 0)
//   latency_distribution  object           instead of the two above:
//       {"kind": "fixed", "ms": X}
//       {"kind": "uniform", "min_ms": A, "max_ms": B}
//       {"kind": "exponential", "mean_ms": M [, "min_ms": A] [, "max_ms": C]}  A + Exp(M), capped
//   error_rate            0..1             share of requests answered with error_status
//   error_status          100..599         default 503
//   error_message         string           default: a TF-like text for the status
//   hang                  bool             read the request, never answer (connection kept open)
//   reset_rate            0..1             share of requests answered by a TCP RST
//   model_state           UNKNOWN|START|LOADING|AVAILABLE|UNLOADING|END (status reports it;
//                                          inference answers not_available_status unless AVAILABLE)
//   not_available_status  404 or 503       404 mimics TF exactly ("Servable not found ..."),
//                                          503 (default) is an UNAVAILABLE error
//   version               integer >= 0     the version the models serve (as if TF switched)
//   models                [string, ...]    the models these faults apply to (default: all)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sim/model.h"

namespace tfs_sim {

struct LatencySpec {
  enum class Kind { none, fixed, uniform, exponential };
  Kind kind = Kind::none;
  // Which JSON spelling produced this spec, so GET /sim/faults answers in the same terms.
  bool simple_form = true;  // latency_ms / latency_jitter_ms
  double latency_ms = 0;    // simple form
  double jitter_ms = 0;     // simple form
  double min_ms = 0;        // uniform lower bound; exponential offset
  double max_ms = 0;        // uniform upper bound; exponential cap (0: uncapped)
  double mean_ms = 0;       // exponential mean

  // One delay drawn from the distribution (zero for Kind::none).
  std::chrono::microseconds sample(std::mt19937_64& rng) const;
};

struct FaultSet {
  LatencySpec latency;
  double error_rate = 0;
  int error_status = 503;
  std::string error_message;  // empty: default_error_message(error_status)
  bool hang = false;
  double reset_rate = 0;
  std::optional<ModelState> model_state;
  int not_available_status = 503;
  std::optional<std::int64_t> version;
  std::vector<std::string> models;  // empty: every model

  // True when the faults cover this model (an unparseable /v1 path has model "" and is only
  // covered when `models` is empty).
  bool applies_to(std::string_view model) const;
  bool any() const;
};

struct FaultParseResult {
  std::optional<FaultSet> faults;  // set on success
  std::string error;               // otherwise: what is wrong, naming the field
};

// Parses and validates the JSON object described above.
FaultParseResult parse_fault_set(std::string_view json);
// The set as JSON (the same fields; defaults omitted except error_status).
std::string fault_set_to_json(const FaultSet& faults);

// A TF-like message for an injected error status (429 is TF's batch-queue-full text, 504 its
// REST timeout text).
std::string default_error_message(int http_status);

// True with probability `rate` (exactly never at 0 and always at 1).
bool roll(double rate, std::mt19937_64& rng);

// The calling thread's generator for the fault dice: no lock on the request path. With a seed,
// each thread derives its own stream from it (in the order threads first ask); without, each
// is seeded from std::random_device.
std::mt19937_64& thread_rng(const std::optional<std::uint64_t>& seed);

// The current fault set, replaced as a whole. snapshot() is lock-free for readers on the
// request path (an atomic shared_ptr); replace() and clear() may be called from any thread.
class FaultState {
 public:
  explicit FaultState(FaultSet initial = {})
      : current_(std::make_shared<const FaultSet>(std::move(initial))) {}

  std::shared_ptr<const FaultSet> snapshot() const {
    return current_.load(std::memory_order_acquire);
  }
  void replace(FaultSet faults) {
    current_.store(std::make_shared<const FaultSet>(std::move(faults)), std::memory_order_release);
  }
  void clear() { replace(FaultSet{}); }

 private:
  std::atomic<std::shared_ptr<const FaultSet>> current_;
};

}  // namespace tfs_sim
