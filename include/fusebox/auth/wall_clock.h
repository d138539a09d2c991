#pragma once
// Wall-clock time for checks against absolute timestamps (JWT exp, nbf). fusebox::Clock is
// steady time and cannot be compared with a token's "seconds since the epoch", so the auth
// module injects this interface instead; tests use ManualWallClock and never read the real time.

#include <chrono>
#include <cstdint>

namespace fusebox::auth {

class WallClock {
 public:
  virtual ~WallClock() = default;
  // Seconds since 1970-01-01T00:00:00Z (UTC, leap seconds not counted). Thread-safe.
  virtual std::int64_t now_seconds() const = 0;
};

class SystemWallClock final : public WallClock {
 public:
  std::int64_t now_seconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static SystemWallClock& instance() {
    static SystemWallClock clock;
    return clock;
  }
};

// For tests: time moves only when told to. Not thread-safe.
class ManualWallClock final : public WallClock {
 public:
  explicit ManualWallClock(std::int64_t now_seconds = 1'700'000'000) : now_(now_seconds) {}
  std::int64_t now_seconds() const override { return now_; }
  void advance(std::chrono::seconds d) { now_ += d.count(); }
  void set(std::int64_t now_seconds) { now_ = now_seconds; }

 private:
  std::int64_t now_;
};

}  // namespace fusebox::auth
