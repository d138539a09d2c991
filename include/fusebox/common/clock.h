#pragma once
// Time and randomness as injectable dependencies: every policy that reads the time or draws a
// random number takes these interfaces, so tests move time by hand and script the randomness.

#include <chrono>
#include <cstdint>
#include <vector>

namespace fusebox {

using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  static SteadyClock& instance() {
    static SteadyClock clock;
    return clock;
  }
};

// For tests: time moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{} + std::chrono::hours(1)) : now_(start) {}
  TimePoint now() const override { return now_; }
  void advance(std::chrono::nanoseconds d) { now_ += d; }
  void set(TimePoint t) { now_ = t; }

 private:
  TimePoint now_;
};

class Random {
 public:
  virtual ~Random() = default;
  virtual std::uint64_t next_u64() = 0;
  // Uniform in [0, 1).
  double next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) { return next_u64() % n; }
};

// xoshiro256** (public-domain algorithm by Blackman and Vigna), seeded by splitmix64.
class FastRandom final : public Random {
 public:
  explicit FastRandom(std::uint64_t seed);
  std::uint64_t next_u64() override;

 private:
  std::uint64_t s_[4];
};

// For tests: returns the given values in order, cycling.
class ScriptedRandom final : public Random {
 public:
  explicit ScriptedRandom(std::vector<std::uint64_t> values) : values_(std::move(values)) {}
  std::uint64_t next_u64() override { return values_[next_++ % values_.size()]; }
  // A value whose next_double() is `fraction` (0 <= fraction < 1).
  static std::uint64_t of_fraction(double fraction) {
    return static_cast<std::uint64_t>(fraction * 0x1.0p53) << 11;
  }

 private:
  std::vector<std::uint64_t> values_;
  std::size_t next_ = 0;
};

}  // namespace fusebox
