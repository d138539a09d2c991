#include "fusebox/common/units.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace fusebox {
namespace {

struct Unit {
  std::string_view suffix;
  double factor;
};

// Reads a non-negative decimal number ("250", "1.5") from the front of `text`.
std::optional<double> take_number(std::string_view& text) {
  std::size_t i = 0;
  bool digits = false, dot = false;
  while (i < text.size()) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digits) return std::nullopt;
  double value = 0;
  auto res = std::from_chars(text.data(), text.data() + i, value);
  if (res.ec != std::errc{} || res.ptr != text.data() + i) return std::nullopt;
  text.remove_prefix(i);
  return value;
}

std::string_view take_unit(std::string_view& text) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
    ++i;
  auto unit = text.substr(0, i);
  text.remove_prefix(i);
  return unit;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  static constexpr Unit units[] = {{"ms", 1.0}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
  if (text == "0") return Duration{0};
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  while (!text.empty()) {
    auto number = take_number(text);
    if (!number) return std::nullopt;
    auto suffix = take_unit(text);
    const Unit* unit = nullptr;
    for (const auto& u : units)
      if (u.suffix == suffix) unit = &u;
    if (unit == nullptr) return std::nullopt;
    total_ms += *number * unit->factor;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return std::nullopt;
  return Duration{static_cast<Duration::rep>(std::llround(total_ms))};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  static constexpr struct {
    std::string_view suffix;
    std::uint64_t factor;
  } units[] = {{"", 1},           {"B", 1},           {"KiB", 1ull << 10}, {"MiB", 1ull << 20},
               {"GiB", 1ull << 30}, {"KB", 1000},      {"MB", 1000'000},    {"GB", 1000'000'000}};
  std::uint64_t value = 0;
  auto res = std::from_chars(text.data(), text.data() + text.size(), value);
  if (res.ec != std::errc{} || res.ptr == text.data()) return std::nullopt;
  std::string_view suffix(res.ptr, static_cast<std::size_t>(text.data() + text.size() - res.ptr));
  for (const auto& u : units) {
    if (u.suffix != suffix) continue;
    if (value > std::numeric_limits<std::uint64_t>::max() / u.factor) return std::nullopt;
    return value * u.factor;
  }
  return std::nullopt;
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  auto s = ms / 1000;
  std::string out;
  if (s >= 3600 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s >= 60) {
    out = std::to_string(s / 60) + "m";
    s %= 60;
    if (s == 0) return out;
  }
  return out + std::to_string(s) + "s";
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0) {
    if (bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
    if (bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
    if (bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  }
  return std::to_string(bytes) + "B";
}

}  // namespace fusebox
