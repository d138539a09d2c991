#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "fusebox/cache/response_cache.h"

namespace fusebox::cache {
namespace {

struct CanonicalCase {
  std::string name;
  std::string input;
  std::string expected;
};

class CanonicalJsonTest : public testing::TestWithParam<CanonicalCase> {};

TEST_P(CanonicalJsonTest, WritesCanonicalForm) {
  const auto& c = GetParam();
  const auto out = canonical_json(c.input);
  ASSERT_TRUE(out.has_value()) << c.input;
  EXPECT_EQ(*out, c.expected) << c.input;
  // Idempotent: the canonical form is its own canonical form.
  EXPECT_EQ(canonical_json(*out), *out);
}

INSTANTIATE_TEST_SUITE_P(
    Table, CanonicalJsonTest,
    testing::Values(
        // Structure, key order and whitespace.
        CanonicalCase{"sorted_keys", R"({"b":1,"a":2})", R"({"a":2,"b":1})"},
        CanonicalCase{"nested_sort", R"({"z":{"y":1,"x":[{"d":0,"c":0}]},"a":null})",
                      R"({"a":null,"z":{"x":[{"c":0,"d":0}],"y":1}})"},
        CanonicalCase{"whitespace", " \t\n\r{ \"a\" : [ 1 , 2 ] ,\n\"b\" :true } \n",
                      R"({"a":[1,2],"b":true})"},
        CanonicalCase{"empty_containers", R"({ "a" : { } , "b" : [ ] })", R"({"a":{},"b":[]})"},
        CanonicalCase{"duplicates_keep_order", R"({"b":0,"a":2,"a":1})", R"({"a":2,"a":1,"b":0})"},
        CanonicalCase{"key_byte_order", R"({"é":1,"z":2,"Z":3,"":4})",
                      R"({"":4,"Z":3,"z":2,"é":1})"},
        CanonicalCase{"scalars_true", "true", "true"},
        CanonicalCase{"scalars_null", " null ", "null"},
        CanonicalCase{"scalar_string", R"("x")", R"("x")"},
        // Numbers by value.
        CanonicalCase{"one", "1", "1"}, CanonicalCase{"one_point_zero", "1.0", "1"},
        CanonicalCase{"one_e0", "1e0", "1"}, CanonicalCase{"ten_e_minus_one", "10e-1", "1"},
        CanonicalCase{"one_E_plus0", "1E+0", "1"}, CanonicalCase{"hundred", "1e2", "100"},
        CanonicalCase{"minus_zero", "-0", "0"}, CanonicalCase{"minus_zero_float", "-0.0", "0"},
        CanonicalCase{"minus_zero_exp", "-0e5", "0"}, CanonicalCase{"negative", "-12.50", "-12.5"},
        CanonicalCase{"point_one", "0.1", "0.1"},
        CanonicalCase{"point_one_long", "0.1000000000000000055511151231257827", "0.1"},
        CanonicalCase{"third", "0.333333333333333314829616256247", "0.3333333333333333"},
        CanonicalCase{"small", "1.5e-10", "1.5e-10"},
        CanonicalCase{"small_decimal", "0.00000000015", "1.5e-10"},
        CanonicalCase{"two_pow_53_float", "9007199254740992.0", "9007199254740992"},
        CanonicalCase{"two_pow_53_exp", "9.007199254740992e15", "9007199254740992"},
        CanonicalCase{"above_2_53_float", "1e16", "1e+16"},
        CanonicalCase{"above_2_53_float_spelled", "10000000000000000.0", "1e+16"},
        CanonicalCase{"big_integer_literal", "9007199254740993", "9007199254740993"},
        CanonicalCase{"huge_integer_literal", "-123456789012345678901234567890",
                      "-123456789012345678901234567890"},
        CanonicalCase{"max_double", "1.7976931348623157e308", "1.7976931348623157e+308"},
        CanonicalCase{"min_subnormal", "5e-324", "5e-324"},
        CanonicalCase{"overflow_kept", "1E400", "1E400"},
        CanonicalCase{"numbers_in_array", "[1.0, 2.50, -3e0, 4]", "[1,2.5,-3,4]"},
        // NaN and Infinity, as TF Serving accepts them.
        CanonicalCase{"nan", "NaN", "NaN"}, CanonicalCase{"minus_nan", "-NaN", "NaN"},
        CanonicalCase{"infinity", "Infinity", "Infinity"},
        CanonicalCase{"minus_infinity", "-Infinity", "-Infinity"},
        CanonicalCase{"inf_short", "[Inf,-Inf]", "[Infinity,-Infinity]"},
        // Strings: one escaping.
        CanonicalCase{"escaped_e_acute", R"("\u00e9")", "\"\xC3\xA9\""},
        CanonicalCase{"raw_e_acute", "\"\xC3\xA9\"", "\"\xC3\xA9\""},
        CanonicalCase{"uppercase_hex", R"("\u00C9")", "\"\xC3\x89\""},
        CanonicalCase{"surrogate_pair", R"("\ud83d\ude00")", "\"\xF0\x9F\x98\x80\""},
        CanonicalCase{"raw_emoji", "\"\xF0\x9F\x98\x80\"", "\"\xF0\x9F\x98\x80\""},
        CanonicalCase{"solidus", R"("a\/b")", R"("a/b")"},
        CanonicalCase{"short_escapes", R"("\"\\\b\f\n\r\t")", R"("\"\\\b\f\n\r\t")"},
        CanonicalCase{"control_escape", R"("\u0001\u001F")", R"("\u0001\u001f")"},
        CanonicalCase{"escaped_newline_as_u", R"("\u000a")", R"("\n")"},
        CanonicalCase{"nul", R"("a\u0000b")", R"("a\u0000b")"},
        CanonicalCase{"escaped_ascii", R"("\u0041")", R"("A")"},
        CanonicalCase{"escaped_key_sorts_decoded", R"({"\u0062":1,"a":2})", R"({"a":2,"b":1})"},
        CanonicalCase{"del_raw", "\"\x7F\"", "\"\x7F\""}),
    [](const testing::TestParamInfo<CanonicalCase>& info) { return info.param.name; });

struct InvalidCase {
  std::string name;
  std::string input;
};

class CanonicalJsonInvalidTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(CanonicalJsonInvalidTest, ReturnsNullopt) {
  EXPECT_EQ(canonical_json(GetParam().input), std::nullopt) << GetParam().input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CanonicalJsonInvalidTest,
    testing::Values(
        InvalidCase{"empty", ""}, InvalidCase{"spaces", "   "},
        InvalidCase{"trailing_garbage", "{} x"}, InvalidCase{"two_values", "1 2"},
        InvalidCase{"trailing_comma_array", "[1,]"},
        InvalidCase{"trailing_comma_obj", R"({"a":1,})"},
        InvalidCase{"missing_colon", R"({"a" 1})"}, InvalidCase{"unquoted_key", "{a:1}"},
        InvalidCase{"single_quotes", "'a'"}, InvalidCase{"unterminated_string", R"("abc)"},
        InvalidCase{"unterminated_array", "[1,2"}, InvalidCase{"unterminated_object", R"({"a":1)"},
        InvalidCase{"leading_zero", "01"}, InvalidCase{"leading_plus", "+1"},
        InvalidCase{"bare_dot", ".5"}, InvalidCase{"dot_no_digits", "1."},
        InvalidCase{"exp_no_digits", "1e"}, InvalidCase{"exp_sign_only", "1e+"},
        InvalidCase{"minus_only", "-"}, InvalidCase{"hex_number", "0x10"},
        InvalidCase{"nan_lowercase", "nan"}, InvalidCase{"infinit", "Infinit"},
        InvalidCase{"truex", "truex"}, InvalidCase{"nul_literal", "nul"},
        InvalidCase{"raw_newline_in_string", "\"a\nb\""},
        InvalidCase{"raw_tab_in_string", "\"a\tb\""}, InvalidCase{"bad_escape", R"("\x41")"},
        InvalidCase{"short_unicode_escape", R"("\u12")"}, InvalidCase{"bad_hex", R"("\u12g4")"},
        InvalidCase{"lone_high_surrogate", R"("\ud83d")"},
        InvalidCase{"high_then_char", R"("\ud83dx")"},
        InvalidCase{"high_then_high", R"("\ud83d\ud83d")"},
        InvalidCase{"lone_low_surrogate", R"("\ude00")"},
        InvalidCase{"invalid_utf8_byte", "\"\xFF\""}, InvalidCase{"truncated_utf8", "\"\xC3\""},
        InvalidCase{"overlong_utf8", "\"\xC0\xAF\""},
        InvalidCase{"utf8_surrogate", "\"\xED\xA0\x80\""},
        InvalidCase{"above_max_code_point", "\"\xF4\x90\x80\x80\""},
        InvalidCase{"nul_byte_outside", std::string("1\0", 2)},
        InvalidCase{"comment", "[1 /* c */]"}),
    [](const testing::TestParamInfo<InvalidCase>& info) { return info.param.name; });

TEST(CanonicalJson, EquivalentSpellingsShareOneForm) {
  const std::vector<std::vector<std::string>> groups = {
      {R"({"instances":[[1.0,2],[3,4.5]]})", R"({ "instances" : [ [1, 2.0e0], [3e0, 45e-1] ] })",
       "{\n  \"instances\": [\n    [10e-1, 2.00],\n    [0.3e1, 4.50]\n  ]\n}"},
      {R"({"signature_name":"s","inputs":{"b":[0.1],"a":"\u00e9"}})",
       "{\"inputs\":{\"a\":\"\xC3\xA9\",\"b\":[1e-1]},\"signature_name\":\"s\"}"},
  };
  for (const auto& group : groups) {
    const auto first = canonical_json(group.front());
    ASSERT_TRUE(first.has_value());
    for (const auto& spelling : group) EXPECT_EQ(canonical_json(spelling), first) << spelling;
  }
}

TEST(CanonicalJson, DifferentValuesStayDifferent) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"9007199254740993", "9007199254740992"},  // int64 ids beyond 2^53
      {"10000000000000000", "1e16"},             // literal digits vs a double
      {"0.1", "0.10000000000000002"},
      {"1", "\"1\""},
      {"[1,2]", "[2,1]"},
      {R"({"a":1,"a":2})", R"({"a":2,"a":1})"},
      {"NaN", "null"},
      {"Infinity", "-Infinity"},
      {"1E400", "1e400"},  // out of range: kept as written (never a false match)
  };
  for (const auto& [a, b] : pairs) {
    const auto ca = canonical_json(a);
    const auto cb = canonical_json(b);
    ASSERT_TRUE(ca && cb) << a << " / " << b;
    EXPECT_NE(*ca, *cb) << a << " / " << b;
  }
}

// The documented rule for numbers with a fraction or exponent, written the slow, obvious way,
// against many random literals (the implementation skips the conversion when it can).
std::string reference_number(const std::string& literal) {
  double d = 0;
  std::from_chars(literal.data(), literal.data() + literal.size(), d);
  char buffer[64];
  std::to_chars_result written{};
  if (std::fabs(d) <= 9007199254740992.0 && d == std::trunc(d)) {
    written = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(d));
  } else if (std::fabs(d) > 9007199254740992.0) {
    written = std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::scientific);
  } else {
    written = std::to_chars(buffer, buffer + sizeof buffer, d);
  }
  return std::string(buffer, written.ptr);
}

TEST(CanonicalJson, RandomDecimalsFollowTheRule) {
  std::mt19937_64 random(12345);
  auto digits = [&](int n, bool leading_nonzero) {
    std::string s;
    for (int i = 0; i < n; ++i) {
      const auto low = (i == 0 && leading_nonzero) ? 1 : 0;
      s.push_back(static_cast<char>('0' + low + static_cast<int>(random() % (10 - low))));
    }
    return s;
  };
  for (int i = 0; i < 200'000; ++i) {
    std::string literal = random() % 2 ? "-" : "";
    const int int_digits = static_cast<int>(random() % 18);
    literal += int_digits == 0 ? "0" : digits(int_digits, true);
    literal += "." + digits(1 + static_cast<int>(random() % 18), false);
    if (random() % 4 == 0) literal += "e" + std::to_string(static_cast<int>(random() % 40) - 20);
    ASSERT_EQ(canonical_json(literal), reference_number(literal)) << literal;
  }
}

std::string nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(CanonicalJson, DepthLimit) {
  EXPECT_EQ(canonical_json(nested(kCanonicalJsonMaxDepth)), nested(kCanonicalJsonMaxDepth));
  EXPECT_EQ(canonical_json(nested(kCanonicalJsonMaxDepth + 1)), std::nullopt);
  std::string objects;
  for (int i = 0; i < kCanonicalJsonMaxDepth + 1; ++i) objects += R"({"a":)";
  objects += "1" + std::string(kCanonicalJsonMaxDepth + 1, '}');
  EXPECT_EQ(canonical_json(objects), std::nullopt);
  // Far beyond the limit: refused without exhausting the stack.
  EXPECT_EQ(canonical_json(std::string(1'000'000, '[')), std::nullopt);
}

// Our output is JSON that an independent parser reads as the same value.
TEST(CanonicalJson, AgreesWithNlohmann) {
  const std::vector<std::string> documents = {
      R"({"instances":[{"x":[0.25,-1e-3,3],"id":"a\"b"},{"x":[1e10,2.5e-8,0],"id":"\u00e9\ud83d\ude00"}],"signature_name":"serving_default"})",
      R"({"inputs":{"z":[[1,2],[3,4]],"a":{"c":true,"b":null}},"k":"\n\t\\"})",
      R"([123456789, -0.000001, 1.7976931348623157e308, 4.9e-324, 0.30000000000000004])",
  };
  for (const auto& doc : documents) {
    const auto out = canonical_json(doc);
    ASSERT_TRUE(out.has_value()) << doc;
    const auto ours = nlohmann::json::parse(*out, nullptr, false);
    ASSERT_FALSE(ours.is_discarded()) << *out;
    EXPECT_EQ(ours, nlohmann::json::parse(doc)) << *out;
  }
}

}  // namespace
}  // namespace fusebox::cache
