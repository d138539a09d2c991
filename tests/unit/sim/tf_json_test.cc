#include "sim/tf_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace tfs_sim {
namespace {

struct FloatCase {
  float value;
  const char* text;
};

class FormatFloatTest : public testing::TestWithParam<FloatCase> {};

TEST_P(FormatFloatTest, MatchesTfWriteDecimal) {
  EXPECT_EQ(format_float(GetParam().value), GetParam().text);
}

INSTANTIATE_TEST_SUITE_P(
    Table, FormatFloatTest,
    testing::Values(FloatCase{2.5f, "2.5"}, FloatCase{3.0f, "3.0"}, FloatCase{4.5f, "4.5"},
                    FloatCase{0.1f, "0.1"}, FloatCase{-2.0f, "-2.0"}, FloatCase{-0.0f, "-0.0"},
                    FloatCase{0.0f, "0.0"},
                    // %g switches to exponent notation and TF appends no ".0" there.
                    FloatCase{1e6f, "1e+06"}, FloatCase{1e-5f, "1e-05"},
                    // Six digits do not round-trip: TF falls back to max_digits10 (9) digits.
                    FloatCase{1234567.0f, "1234567.0"}, FloatCase{3.14159274f, "3.14159274"},
                    FloatCase{16777216.0f, "16777216.0"}, FloatCase{0.3f, "0.3"},
                    FloatCase{std::numeric_limits<float>::quiet_NaN(), "NaN"},
                    FloatCase{std::numeric_limits<float>::infinity(), "Infinity"},
                    FloatCase{-std::numeric_limits<float>::infinity(), "-Infinity"}));

TEST(FormatDoubleTest, UsesSeventeenDigitsWhenSixDoNotRoundTrip) {
  EXPECT_EQ(format_double(2.5), "2.5");
  EXPECT_EQ(format_double(0.1), "0.1");
  EXPECT_EQ(format_double(1.0 / 3.0), "0.33333333333333331");
}

TEST(JsonWriterTest, CompactLayoutHasSpacesAfterCommasAndColons) {
  JsonWriter w(JsonStyle::compact);
  w.start_object();
  w.key("predictions");
  w.start_array();
  w.float_value(2.5f);
  w.float_value(3.0f);
  w.float_value(4.5f);
  w.end_array();
  w.key("empty");
  w.start_array();
  w.end_array();
  w.key("obj");
  w.start_object();
  w.end_object();
  w.end_object();
  EXPECT_EQ(w.str(), R"({"predictions": [2.5, 3.0, 4.5], "empty": [], "obj": {}})");
}

TEST(JsonWriterTest, TfServingLayoutReproducesRapidjsonPrettyWriter) {
  // What TF Serving sends for {"instances": [1.0, 2.0, 5.0]}.
  JsonWriter w(JsonStyle::tfserving);
  w.start_object();
  w.key("predictions");
  w.start_array();
  for (float v : {2.5f, 3.0f, 4.5f}) {
    w.set_single_line_arrays(true);
    w.float_value(v);
    w.set_single_line_arrays(false);
  }
  w.end_array();
  w.end_object();
  EXPECT_EQ(w.str(), "{\n    \"predictions\": [2.5, 3.0, 4.5\n    ]\n}");
}

TEST(JsonWriterTest, TfServingLayoutWithoutSingleLineArrays) {
  JsonWriter w(JsonStyle::tfserving);
  w.start_object();
  w.key("outputs");
  w.start_array();
  w.float_value(2.5f);
  w.float_value(3.0f);
  w.end_array();
  w.end_object();
  EXPECT_EQ(w.str(), "{\n    \"outputs\": [\n        2.5,\n        3.0\n    ]\n}");
}

TEST(JsonWriterTest, EscapesLikeRapidjson) {
  std::string out;
  append_json_string(out, std::string("a\"b\\c\n\t\x01/\x7f", 10));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001/\x7f\"");
}

// --- parser ---

struct ErrorCase {
  std::string text;
  std::string reason;
  std::size_t offset;
};

class JsonParseErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(JsonParseErrorTest, ReportsRapidjsonReasonAndOffset) {
  JsonDocument doc;
  const auto error = doc.parse(GetParam().text);
  ASSERT_TRUE(error.has_value()) << GetParam().text;
  EXPECT_EQ(error->reason, GetParam().reason) << GetParam().text;
  EXPECT_EQ(error->offset, GetParam().offset) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, JsonParseErrorTest,
    testing::Values(
        ErrorCase{"", "The document is empty.", 0}, ErrorCase{"   ", "The document is empty.", 3},
        ErrorCase{"{bad", "Missing a name for object member.", 1},
        ErrorCase{R"({"a" 1})", "Missing a colon after a name of object member.", 5},
        ErrorCase{R"({"a": 1 "b"})", "Missing a comma or '}' after an object member.", 8},
        ErrorCase{"[1 2]", "Missing a comma or ']' after an array element.", 3},
        ErrorCase{"[1,]", "Invalid value.", 3}, ErrorCase{"tru", "Invalid value.", 3},
        ErrorCase{"{} x", "The document root must not be followed by other values.", 3},
        ErrorCase{"\"abc", "Missing a closing quotation mark in string.", 4},
        ErrorCase{R"("\x")", "Invalid escape character in string.", 1},
        ErrorCase{R"("\u12G4")", "Incorrect hex digit after \\u escape in string.", 1},
        ErrorCase{R"("\uDC00")", "The surrogate pair in string is invalid.", 1},
        ErrorCase{"\"a\tb\"", "Invalid encoding in string.", 2},
        ErrorCase{"1.", "Miss fraction part in number.", 2},
        ErrorCase{"1e", "Miss exponent in number.", 2}, ErrorCase{"-", "Invalid value.", 1},
        ErrorCase{"1e400", "Number too big to be stored in double.", 0},
        ErrorCase{"Nan", "Invalid value.", 2},
        ErrorCase{std::string(JsonDocument::kMaxDepth + 1, '['),
                  "Terminate parsing due to Handler error.",
                  static_cast<std::size_t>(JsonDocument::kMaxDepth + 1)}));

TEST(JsonParseTest, AcceptsNanAndInfinityLikeKParseNanAndInfFlag) {
  JsonDocument doc;
  ASSERT_FALSE(doc.parse("[NaN, Infinity, -Infinity, Inf, -Inf]").has_value());
  const auto root = doc.root();
  ASSERT_EQ(root.size(), 5u);
  EXPECT_TRUE(std::isnan(root.element(0).as_double()));
  EXPECT_EQ(root.element(1).as_double(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(root.element(2).as_double(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(root.element(3).as_double(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(root.element(4).as_double(), -std::numeric_limits<double>::infinity());
}

TEST(JsonParseTest, KeepsIntegersExactAndObjectsOrdered) {
  JsonDocument doc;
  ASSERT_FALSE(
      doc.parse(
             R"( {"b": 18446744073709551615, "a": [-9223372036854775808, 1.5, "s\u00e9"], "b": 2} )")
          .has_value());
  const auto root = doc.root();
  ASSERT_TRUE(root.is_object());
  ASSERT_EQ(root.size(), 3u);
  EXPECT_EQ(root.member_name(0), "b");
  EXPECT_EQ(root.member_value(0).number_kind(), NumberKind::uint64);
  EXPECT_EQ(root.member_value(0).as_uint64(), 18446744073709551615ULL);
  const auto a = root.find("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->element(0).as_int64(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(a->element(1).number_kind(), NumberKind::real);
  EXPECT_EQ(a->element(2).as_string(), "s\xc3\xa9");
  // FindMember semantics: the first "b" wins.
  EXPECT_EQ(root.find("b")->number_kind(), NumberKind::uint64);
}

TEST(JsonValueToStringTest, PrintsLikeTfErrorMessages) {
  JsonDocument doc;
  ASSERT_FALSE(doc.parse(R"({"instances": [1, 2.5, "a"], "e": {}})").has_value());
  EXPECT_EQ(
      json_value_to_string(doc.root()),
      "{\n    \"instances\": [\n        1,\n        2.5,\n        \"a\"\n    ],\n    \"e\": {}\n}");
  JsonDocument scalar;
  ASSERT_FALSE(scalar.parse("0.1").has_value());
  EXPECT_EQ(json_value_to_string(scalar.root()), "0.1");
}

}  // namespace
}  // namespace tfs_sim
