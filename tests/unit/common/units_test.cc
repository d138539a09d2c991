#include "fusebox/common/units.h"

#include <gtest/gtest.h>

namespace fusebox {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsUnitsAndCompounds) {
  struct Case {
    const char* text;
    Duration expected;
  } cases[] = {
      {"0", 0ms},          {"250ms", 250ms}, {"2s", 2000ms},  {"1.5s", 1500ms},
      {"1m30s", 90'000ms}, {"1h", 3'600'000ms}, {"0ms", 0ms}, {"10m", 600'000ms},
      {"1s500ms", 1500ms},
  };
  for (const auto& c : cases) {
    auto d = parse_duration(c.text);
    ASSERT_TRUE(d.has_value()) << c.text;
    EXPECT_EQ(*d, c.expected) << c.text;
  }
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* text : {"", "5", "ms", "-1s", "1x", "2 s", "1.2.3s", "s1", "1e3s", "10sec",
                           "99999999999999999h"}) {
    EXPECT_FALSE(parse_duration(text).has_value()) << text;
  }
}

TEST(ParseSize, AcceptsUnits) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1000"), 1000u);
  EXPECT_EQ(parse_size("12B"), 12u);
  EXPECT_EQ(parse_size("4KiB"), 4096u);
  EXPECT_EQ(parse_size("64MiB"), 64ull << 20);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_size("3KB"), 3000u);
  EXPECT_EQ(parse_size("5MB"), 5'000'000u);
}

TEST(ParseSize, RejectsMalformed) {
  for (const char* text : {"", "MiB", "-1", "1.5MiB", "64mib", "64 MiB", "1TiB",
                           "99999999999999999999", "18446744073709551615GiB"}) {
    EXPECT_FALSE(parse_size(text).has_value()) << text;
  }
}

TEST(FormatUnits, RoundTrips) {
  for (const char* text : {"250ms", "2s", "1m30s", "1h", "10m"}) {
    EXPECT_EQ(format_duration(*parse_duration(text)), text);
  }
  EXPECT_EQ(format_duration(Duration{0}), "0s");
  EXPECT_EQ(format_size(64ull << 20), "64MiB");
  EXPECT_EQ(format_size(16ull << 10), "16KiB");
  EXPECT_EQ(format_size(1000), "1000B");
  EXPECT_EQ(format_size(0), "0B");
}

}  // namespace
}  // namespace fusebox
