#include "fusebox/admission/priority.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusebox::admission {
namespace {

TEST(PriorityHeader, ParsesOnlyASingleDigit) {
  struct Case {
    std::string_view value;
    std::optional<Priority> expected;
  };
  const std::vector<Case> cases = {
      {"0", 0},
      {"5", 5},
      {"9", 9},
      {" 7", 7},
      {"7\t", 7},
      {" \t3 ", 3},
      {"", std::nullopt},
      {" ", std::nullopt},
      {"10", std::nullopt},
      {"-1", std::nullopt},
      {"+3", std::nullopt},
      {"3a", std::nullopt},
      {"a", std::nullopt},
      {"3 4", std::nullopt},
      {"03", std::nullopt},
      {"\xd9\xa3", std::nullopt},
      {std::string_view("\0", 1), std::nullopt},
  };
  for (const Case& row : cases) {
    SCOPED_TRACE("header '" + std::string(row.value) + "'");
    EXPECT_EQ(parse_priority(row.value), row.expected);
  }
}

TEST(ResolvePriority, IdentityOverridesRouteAndHeaderOnlyLowers) {
  struct Case {
    const char* name;
    Priority route_default;
    std::optional<Priority> identity;
    std::optional<std::string_view> header;
    Priority expected;
    bool rejected;
    bool lowered;
  };
  // clang-format off
  const std::vector<Case> cases = {
      {"route only",                     5, std::nullopt, std::nullopt, 5, false, false},
      {"identity raises over route",     5, 1,            std::nullopt, 1, false, false},
      {"identity lowers under route",    2, 7,            std::nullopt, 7, false, false},
      {"header lowers route",            5, std::nullopt, "8",          8, false, true},
      {"header cannot raise route",      5, std::nullopt, "0",          5, false, false},
      {"header equal changes nothing",   5, std::nullopt, "5",          5, false, false},
      {"header lowers identity",         5, 1,            "3",          3, false, true},
      {"header cannot raise identity",   5, 4,            "2",          4, false, false},
      {"header to lowest",               0, 0,            "9",          9, false, true},
      {"malformed header ignored",       5, 1,            "99",         1, true,  false},
      {"empty header ignored",           5, std::nullopt, "",           5, true,  false},
      {"negative header ignored",        5, std::nullopt, "-4",         5, true,  false},
      {"route above 9 clamped",          42, std::nullopt, std::nullopt, 9, false, false},
      {"identity above 9 clamped",       0, 200,          std::nullopt, 9, false, false},
  };
  // clang-format on
  for (const Case& row : cases) {
    SCOPED_TRACE(row.name);
    const ResolvedPriority got = resolve_priority(row.route_default, row.identity, row.header);
    EXPECT_EQ(got.priority, row.expected);
    EXPECT_EQ(got.header_rejected, row.rejected);
    EXPECT_EQ(got.header_lowered, row.lowered);
  }
}

}  // namespace
}  // namespace fusebox::admission
