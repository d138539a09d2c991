#pragma once
// Process-wide load shedding: when the gateway itself is overloaded (requests in flight, or
// resident memory, above a threshold), requests of the lowest priorities are refused before
// they queue anywhere, so the important ones keep their latency and the process its memory.
//
// Graded response per signal (a threshold of 0 turns the signal off), the worse signal wins:
//   value <= threshold                                 -> shed nothing
//   threshold < value <= threshold * (1 + step)        -> shed priority 9
//   each further step (step_percent of the threshold)  -> shed one more level (8, 7, ...)
// Priority 0 is never shed: it is the class an operator reserves for traffic that must get
// through (and it is what the queue caps, timeouts and rate limits still bound), so at most 9
// levels are shed, reached above threshold * (1 + 8 * step).
//
// Hysteresis, so a reading that wobbles around a boundary does not flap: a higher level
// applies at once; a lower one only when the signals are hysteresis_percent of their threshold
// below the boundary, no sooner than min_hold after the last change, and one level at a time.
//
// For the integrator: admin and health endpoints (/healthz, /readyz, /metrics, /admin) must
// not pass through the shedder at all; it only sees proxied requests, after their priority is
// resolved. A shed request gets 503 JSON with Retry-After (gRPC UNAVAILABLE: the server is
// overloaded, not the client over a quota), counted as
// fusebox_admission_rejected_total{reason="shed"}.
//
// Threading: update() from one thread (the sampling timer); admits() and lowest_admitted()
// from any thread (one relaxed atomic load, no lock).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fusebox/admission/priority.h"
#include "fusebox/common/clock.h"

namespace fusebox::admission {

struct LoadShedderOptions {
  std::uint64_t max_inflight = 0;      // requests in flight in the whole process; 0: off
  std::uint64_t max_memory_bytes = 0;  // resident set size; 0: off
  std::uint32_t step_percent = 10;     // of the threshold, per further level shed; >= 1
  std::uint32_t hysteresis_percent = 5;
  std::chrono::milliseconds min_hold{5000};
};

// One sample, taken by the caller on a timer.
struct LoadReading {
  std::uint64_t inflight = 0;
  std::uint64_t rss_bytes = 0;
};

// Levels one signal asks to shed, 0..kLowestPriority (see the table above). Pure.
std::uint32_t shed_levels_for(std::uint64_t value, std::uint64_t threshold,
                              std::uint32_t step_percent);

struct ShedChange {
  std::uint32_t from_levels = 0;
  std::uint32_t to_levels = 0;
  // For the log line: "shedding priorities 8-9: inflight 1150 > 1000 (115%), memory 600MiB of
  // 1024MiB (58%)" or "shedding stopped: ...".
  std::string reason;
};

class LoadShedder {
 public:
  LoadShedder(const LoadShedderOptions& options, const Clock& clock);

  // Applies one reading; returns the change when the level moved (log it, count it).
  std::optional<ShedChange> update(const LoadReading& reading);

  // Whether a request of this (resolved) priority may proceed.
  bool admits(Priority priority) const noexcept { return priority <= lowest_admitted(); }
  // kLowestPriority when nothing is shed; never below 0's level (priority 0 always passes).
  Priority lowest_admitted() const noexcept {
    return static_cast<Priority>(kLowestPriority - levels_.load(std::memory_order_relaxed));
  }
  std::uint32_t shed_levels() const noexcept { return levels_.load(std::memory_order_relaxed); }
  bool enabled() const { return options_.max_inflight > 0 || options_.max_memory_bytes > 0; }

 private:
  std::uint32_t target_levels(const LoadReading& reading, std::uint32_t hysteresis) const;
  std::string describe(const LoadReading& reading, std::uint32_t levels) const;

  const LoadShedderOptions options_;
  const Clock& clock_;
  std::atomic<std::uint32_t> levels_{0};
  TimePoint last_change_{};
};

// The resident set size from a /proc/<pid>/statm line ("size resident shared ..." in pages).
std::optional<std::uint64_t> parse_statm_rss_bytes(std::string_view statm, std::uint64_t page_size);
// This process's resident set size, from /proc/self/statm. Reads a file: call it from a timer
// off the I/O threads, never per request. nullopt where /proc is missing or unreadable.
std::optional<std::uint64_t> read_rss_bytes();

}  // namespace fusebox::admission
