#include "fusebox/admission/load_shedder.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace fusebox::admission {

std::uint32_t shed_levels_for(std::uint64_t value, std::uint64_t threshold,
                              std::uint32_t step_percent) {
  if (threshold == 0 || value <= threshold) return 0;
  // ceil(excess / (threshold * step / 100)) in integers: exactly 1 level up to and including
  // threshold * (1 + step), 2 just above, ... (no floating point at the boundaries). The
  // products saturate, which only matters for values beyond 10^17.
  const auto times = [](std::uint64_t a, std::uint64_t b) {
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
  };
  const std::uint64_t excess = times(value - threshold, 100);
  const std::uint64_t step = times(threshold, std::max<std::uint32_t>(step_percent, 1));
  const std::uint64_t levels = excess / step + (excess % step != 0 ? 1 : 0);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(levels, kLowestPriority));
}

LoadShedder::LoadShedder(const LoadShedderOptions& options, const Clock& clock)
    : options_(options), clock_(clock) {}

std::uint32_t LoadShedder::target_levels(const LoadReading& reading,
                                         std::uint32_t hysteresis) const {
  // With a hysteresis margin, each signal is judged as if it were that share of its threshold
  // higher: it must be that far below a boundary before the level below counts.
  const auto padded = [&](std::uint64_t value, std::uint64_t threshold) {
    return value + threshold * hysteresis / 100;
  };
  return std::max(shed_levels_for(padded(reading.inflight, options_.max_inflight),
                                  options_.max_inflight, options_.step_percent),
                  shed_levels_for(padded(reading.rss_bytes, options_.max_memory_bytes),
                                  options_.max_memory_bytes, options_.step_percent));
}

std::optional<ShedChange> LoadShedder::update(const LoadReading& reading) {
  const TimePoint now = clock_.now();
  const std::uint32_t current = levels_.load(std::memory_order_relaxed);
  std::uint32_t next = current;
  const std::uint32_t raise_to = target_levels(reading, 0);
  if (raise_to > current) {
    next = raise_to;
  } else if (target_levels(reading, options_.hysteresis_percent) < current &&
             now - last_change_ >= options_.min_hold) {
    next = current - 1;
  }
  if (next == current) return std::nullopt;
  levels_.store(next, std::memory_order_relaxed);
  last_change_ = now;
  return ShedChange{.from_levels = current, .to_levels = next, .reason = describe(reading, next)};
}

std::string LoadShedder::describe(const LoadReading& reading, std::uint32_t levels) const {
  std::string out = levels == 0 ? std::string("shedding stopped")
                    : levels == 1
                        ? std::string("shedding priority 9")
                        : fmt::format("shedding priorities {}-9", kLowestPriority + 1 - levels);
  char separator = ':';
  const auto signal = [&](const char* name, std::uint64_t value, std::uint64_t threshold,
                          std::uint32_t shift, const char* unit) {
    if (threshold == 0) return;
    out += fmt::format("{} {} {}{} {} {}{} ({}%)", separator, name, value >> shift, unit,
                       value > threshold ? ">" : "<=", threshold >> shift, unit,
                       value * 100 / threshold);
    separator = ',';
  };
  signal("inflight", reading.inflight, options_.max_inflight, 0, "");
  signal("memory", reading.rss_bytes, options_.max_memory_bytes, 20, "MiB");
  return out;
}

std::optional<std::uint64_t> parse_statm_rss_bytes(std::string_view statm,
                                                   std::uint64_t page_size) {
  // Fields: size resident shared text lib data dt. We want the second.
  const auto skip_spaces = [&] {
    while (!statm.empty() && statm.front() == ' ') statm.remove_prefix(1);
  };
  const auto next_number = [&]() -> std::optional<std::uint64_t> {
    skip_spaces();
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(statm.data(), statm.data() + statm.size(), value);
    if (ec != std::errc() || end == statm.data()) return std::nullopt;
    statm.remove_prefix(static_cast<std::size_t>(end - statm.data()));
    return value;
  };
  if (!next_number()) return std::nullopt;
  const std::optional<std::uint64_t> pages = next_number();
  if (!pages) return std::nullopt;
  return *pages * page_size;
}

std::optional<std::uint64_t> read_rss_bytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return std::nullopt;
  char buffer[256];
  const std::size_t n = std::fread(buffer, 1, sizeof(buffer), file);
  std::fclose(file);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return std::nullopt;
  return parse_statm_rss_bytes(std::string_view(buffer, n), static_cast<std::uint64_t>(page_size));
}

}  // namespace fusebox::admission
