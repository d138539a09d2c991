#pragma once
// Parsing of the human units used in configuration: durations ("250ms", "2s", "1m30s")
// and sizes ("64MiB", "512KiB", "1000"). Pure functions, no allocation on success.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusebox {

using Duration = std::chrono::milliseconds;

// Accepts one or more <number><unit> groups with units ms, s, m, h (e.g. "1m30s", "250ms").
// A bare "0" is accepted as zero. Fractions are allowed for s/m/h ("1.5s"); the result is
// rounded to whole milliseconds. Returns nullopt on anything else (empty, negative, overflow).
std::optional<Duration> parse_duration(std::string_view text);

// Accepts <integer>[unit] with units B, KiB, MiB, GiB (binary) and KB, MB, GB (decimal).
// A bare integer is bytes. Returns nullopt on anything else or on overflow of uint64.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Inverse of the above, for /admin/config and docs: "250ms", "2s", "1m30s"; "64MiB", "1000B".
std::string format_duration(Duration d);
std::string format_size(std::uint64_t bytes);

}  // namespace fusebox
