#include "fusebox/http/rest_path.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace fusebox::http {
namespace {

// One request and what TF Serving makes of it. Expectations were cross-checked against TF
// Serving's own RE2 patterns and libcurl's curl_easy_unescape.
struct Row {
  std::string method;
  std::string target;
  std::optional<RestTarget> expected;  // success
  RestPathError error = RestPathError::malformed;
  std::string message;
};

Row ok(std::string method, std::string target, RestVerb verb, std::string model,
       std::optional<std::int64_t> version = std::nullopt,
       std::optional<std::string> label = std::nullopt) {
  return {std::move(method), std::move(target),
          RestTarget{verb, std::move(model), version, std::move(label)}};
}

Row fail(std::string method, std::string target, RestPathError error, std::string message = {}) {
  return {std::move(method), std::move(target), std::nullopt, error, std::move(message)};
}

Row malformed(std::string method, std::string target, std::string path_in_message) {
  std::string message = "Malformed request: " + method + " " + path_in_message;
  return fail(std::move(method), std::move(target), RestPathError::malformed, std::move(message));
}

Row malformed(const std::string& method, const std::string& target) {
  return malformed(method, target, target);
}

constexpr auto kPredict = RestVerb::predict;
constexpr auto kClassify = RestVerb::classify;
constexpr auto kRegress = RestVerb::regress;
constexpr auto kStatus = RestVerb::status;
constexpr auto kMetadata = RestVerb::metadata;
constexpr auto kNotV1 = RestPathError::not_v1;
constexpr auto kMissing = RestPathError::missing_model;
constexpr auto kBadVersion = RestPathError::bad_version;
constexpr auto kMissingText = "Missing model name in request.";
constexpr std::int64_t kMaxVersion = std::numeric_limits<std::int64_t>::max();

std::string describe(const Row& row) { return row.method + " " + row.target; }

void check(const Row& row) {
  SCOPED_TRACE(describe(row));
  const RestPathResult result = parse_rest_path(row.method, row.target);
  if (row.expected) {
    ASSERT_TRUE(result.target.has_value())
        << "error " << static_cast<int>(result.error) << ": " << result.message;
    EXPECT_EQ(to_string(result.target->verb), std::string(to_string(row.expected->verb)));
    EXPECT_EQ(result.target->model, row.expected->model);
    EXPECT_EQ(result.target->version, row.expected->version);
    EXPECT_EQ(result.target->label, row.expected->label);
  } else {
    ASSERT_FALSE(result.target.has_value()) << "matched model " << result.target->model;
    EXPECT_EQ(static_cast<int>(result.error), static_cast<int>(row.error));
    EXPECT_EQ(result.message, row.message);
  }
}

TEST(RestPath, PredictClassifyRegress) {
  const std::vector<Row> rows = {
      ok("POST", "/v1/models/half_plus_two:predict", kPredict, "half_plus_two"),
      ok("POST", "/v1/models/half_plus_two:classify", kClassify, "half_plus_two"),
      ok("POST", "/v1/models/half_plus_two:regress", kRegress, "half_plus_two"),
      ok("POST", "/v1/models/m/versions/3:predict", kPredict, "m", 3),
      ok("POST", "/v1/models/m/versions/0:predict", kPredict, "m", 0),
      ok("POST", "/v1/models/m/versions/007:predict", kPredict, "m", 7),
      ok("POST", "/v1/models/m/versions/9223372036854775807:predict", kPredict, "m", kMaxVersion),
      ok("POST", "/v1/models/m/labels/stable:predict", kPredict, "m", std::nullopt, "stable"),
      ok("POST", "/v1/models/m/labels/canary:classify", kClassify, "m", std::nullopt, "canary"),
      // Names may hold anything but '/' and ':'; "metadata" and "versions" are plain names here.
      ok("POST", "/v1/models/metadata:predict", kPredict, "metadata"),
      ok("POST", "/v1/models/versions:predict", kPredict, "versions"),
      ok("POST", "/v1/models/labels:regress", kRegress, "labels"),
      ok("POST", "/v1/models/resnet-50.v2_final:predict", kPredict, "resnet-50.v2_final"),
      ok("POST", "/v1/models/a b:predict", kPredict, "a b"),
      ok("POST", "/v1/models/caf\xC3\xA9:predict", kPredict, "caf\xC3\xA9"),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, StatusAndMetadata) {
  const std::vector<Row> rows = {
      ok("GET", "/v1/models/half_plus_two", kStatus, "half_plus_two"),
      ok("GET", "/v1/models/m/versions/3", kStatus, "m", 3),
      ok("GET", "/v1/models/m/labels/stable", kStatus, "m", std::nullopt, "stable"),
      ok("GET", "/v1/models/m/metadata", kMetadata, "m"),
      ok("GET", "/v1/models/m/versions/3/metadata", kMetadata, "m", 3),
      ok("GET", "/v1/models/m/labels/stable/metadata", kMetadata, "m", std::nullopt, "stable"),
      // The optional model group is tried first (leftmost-first), so these are model names.
      ok("GET", "/v1/models/metadata", kStatus, "metadata"),
      ok("GET", "/v1/models/metadata/metadata", kMetadata, "metadata"),
      ok("GET", "/v1/models/versions", kStatus, "versions"),
      ok("GET", "/v1/models/versions/metadata", kMetadata, "versions"),
      ok("GET", "/v1/models/labels/metadata", kMetadata, "labels"),
      ok("GET", "/v1/models/m/labels/metadata", kStatus, "m", std::nullopt, "metadata"),
      ok("GET", "/v1/models/m/versions/3/metadata", kMetadata, "m", 3),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, KeywordsAreCaseInsensitiveNamesAreNot) {
  const std::vector<Row> rows = {
      ok("POST", "/V1/MODELS/m:PREDICT", kPredict, "m"),
      ok("POST", "/v1/Models/MyModel/Versions/2:Classify", kClassify, "MyModel", 2),
      ok("POST", "/V1/models/M/LABELS/Stable:rEgReSs", kRegress, "M", std::nullopt, "Stable"),
      ok("GET", "/V1/MODELS/M/METADATA", kMetadata, "M"),
      ok("GET", "/v1/MoDeLs/Half_Plus_Two/VeRsIoNs/1", kStatus, "Half_Plus_Two", 1),
      // RE2's (?i) uses Unicode simple case folding: U+017F (long s) matches 's'.
      ok("POST", "/v1/model\xC5\xBF/m:predict", kPredict, "m"),
      ok("POST", "/v1/models/m:cla\xC5\xBF\xC5\xBFify", kClassify, "m"),
      ok("GET", "/v1/models/m/ver\xC5\xBFions/4", kStatus, "m", 4),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, NamesAndLabelsAreCurlUnescaped) {
  const std::vector<Row> rows = {
      ok("POST", "/v1/models/my%20model:predict", kPredict, "my model"),
      ok("POST", "/v1/models/a%2Fb:predict", kPredict, "a/b"),
      ok("POST", "/v1/models/a%2fb:predict", kPredict, "a/b"),
      ok("POST", "/v1/models/a%3Ab:predict", kPredict, "a:b"),
      ok("POST", "/v1/models/a+b:predict", kPredict, "a+b"),  // '+' is not a space in paths
      ok("POST", "/v1/models/%41%42:predict", kPredict, "AB"),
      ok("POST", "/v1/models/m/labels/can%61ry:predict", kPredict, "m", std::nullopt, "canary"),
      ok("GET", "/v1/models/my%20model/metadata", kMetadata, "my model"),
      ok("GET", "/v1/models/m/labels/a%2Fb", kStatus, "m", std::nullopt, "a/b"),
      // curl_easy_unescape never fails: an escape without two hex digits stays as it is,
      // and TF Serving then looks up a model with that literal name.
      ok("POST", "/v1/models/a%G1:predict", kPredict, "a%G1"),
      ok("POST", "/v1/models/a%4:predict", kPredict, "a%4"),
      ok("POST", "/v1/models/%:predict", kPredict, "%"),
      ok("POST", "/v1/models/%4%41:predict", kPredict, "%4A"),
      ok("POST", "/v1/models/%zz%20:predict", kPredict, "%zz "),
      ok("GET", "/v1/models/m/labels/%G1", kStatus, "m", std::nullopt, "%G1"),
      ok("POST", "/v1/models/a%00b:predict", kPredict, std::string("a\0b", 3)),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, QueryStringIsIgnored) {
  const std::vector<Row> rows = {
      ok("POST", "/v1/models/m:predict?x=1", kPredict, "m"),
      ok("GET", "/v1/models/m?version=3", kStatus, "m"),
      ok("GET", "/v1/models/m/metadata?", kMetadata, "m"),
      ok("POST", "/v1/models/m/versions/2:regress?a=b/c:d", kRegress, "m", 2),
      fail("GET", "/v1/models?name=m", kMissing, kMissingText),
      malformed("GET", "/v1/models/m/?q=1", "/v1/models/m/"),
      malformed("POST", "/v1/models/m:explain?x", "/v1/models/m:explain"),
      fail("GET", "?/v1/models/m", kNotV1),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, OutsideV1IsPlainNotFound) {
  const std::vector<Row> rows = {
      fail("GET", "/", kNotV1),
      fail("GET", "", kNotV1),
      fail("GET", "/v1", kNotV1),
      fail("GET", "/v1?x=/v1/", kNotV1),
      fail("GET", "/v2/models/m", kNotV1),
      fail("POST", "/models/m:predict", kNotV1),
      fail("GET", "/v1models/m", kNotV1),
      fail("GET", "/monitoring/prometheus/metrics", kNotV1),
      fail("GET", "//v1/models/m", kNotV1),
      fail("PUT", "/healthz", kNotV1),
      // The dispatcher pattern (?i)/v1/.* must match the whole path: RE2 reads UTF-8 and '.'
      // matches neither '\n' nor a byte that starts no character.
      fail("GET", "/v1/models/\xFF", kNotV1),
      fail("POST", "/v1/models/caf\xC3:predict", kNotV1),
      fail("POST", "/v1/models/\xC0\x80:predict", kNotV1),
      fail("GET", "/v1/models/a\nb", kNotV1),
      fail("POST", "/v1/models/m:predict\n", kNotV1),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, MalformedUnderV1) {
  const std::vector<Row> rows = {
      malformed("GET", "/v1/"),
      malformed("GET", "/V1/"),
      malformed("GET", "/v1/model/m"),
      malformed("GET", "/v1/models/"),  // trailing slash
      malformed("GET", "/v1/models/m/"),
      malformed("GET", "/v1/models//m"),
      malformed("GET", "/v1/models/m/versions/"),
      malformed("GET", "/v1/models/m/versions/3/"),
      malformed("GET", "/v1/models/m/versions/abc"),
      malformed("GET", "/v1/models/m/versions/-1"),
      malformed("GET", "/v1/models/m/versions/+1"),
      malformed("GET", "/v1/models/m/versions/\xD9\xA3"),  // \d is ASCII only
      malformed("GET", "/v1/models/m/labels/"),
      malformed("GET", "/v1/models/m/versions/3/labels/x"),  // version and label together
      malformed("GET", "/v1/models/m/labels/x/versions/3"),
      malformed("GET", "/v1/models/m/metadata/"),
      malformed("GET", "/v1/models/m/metadatax"),
      malformed("GET", "/v1/models/m/status"),
      malformed("GET", "/v1/models/m/metadata/metadata"),
      malformed("GET", "/v1/models/m:predict"),  // ':' is not a name character
      malformed("GET", "/v1/models/m:metadata"),
      malformed("POST", "/v1/models/m"),
      malformed("POST", "/v1/models/m/metadata"),
      malformed("POST", "/v1/models:predict"),
      malformed("POST", "/v1/models/:predict"),
      malformed("POST", "/v1/models/m:"),
      malformed("POST", "/v1/models/m:predict/"),
      malformed("POST", "/v1/models/m:predictx"),
      malformed("POST", "/v1/models/m:predict:predict"),
      malformed("POST", "/v1/models/m:explain"),
      malformed("POST", "/v1/models/m/versions/:predict"),  // empty version
      malformed("POST", "/v1/models/m/labels/:predict"),    // empty label
      malformed("POST", "/v1/models/m/versions/1/labels/x:predict"),
      malformed("POST", "/v1/models/m/versions/1.5:predict"),
      malformed("POST", "/v1/models/m//versions/1:predict"),
      malformed("POST", "/v1/models/m/versions/1/metadata:predict"),
      malformed("POST", "/v1/models/a/b:predict"),
      malformed("POST", "/v1/models/m:predict\r"),  // '.' takes '\r', the verb does not
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, OnlyExactGetAndPostMatch) {
  const std::vector<Row> rows = {
      malformed("PUT", "/v1/models/m:predict"),
      malformed("post", "/v1/models/m:predict"),
      malformed("Post", "/v1/models/m:predict"),
      malformed("GET", "/v1/models/m:predict"),
      malformed("POST", "/v1/models/m/metadata"),
      malformed("HEAD", "/v1/models/m"),
      malformed("get", "/v1/models/m"),
      malformed("DELETE", "/v1/models/m"),
      malformed("OPTIONS", "/v1/models/m:predict"),
      malformed("PATCH", "/v1/models/m/versions/1"),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, MissingModelName) {
  const std::vector<Row> rows = {
      fail("GET", "/v1/models", kMissing, kMissingText),
      fail("GET", "/V1/MODELS", kMissing, kMissingText),
      // Without the model group the version, label and metadata parts still match; the model
      // name is then empty.
      fail("GET", "/v1/models/versions/3", kMissing, kMissingText),
      fail("GET", "/v1/models/versions/3/metadata", kMissing, kMissingText),
      fail("GET", "/v1/models/labels/stable", kMissing, kMissingText),
      fail("GET", "/v1/models/labels/metadata/metadata", kMissing, kMissingText),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, VersionOverflow) {
  const std::vector<Row> rows = {
      fail("POST", "/v1/models/m/versions/9223372036854775808:predict", kBadVersion,
           "Failed to convert version: 9223372036854775808 to numeric."),
      fail("GET", "/v1/models/m/versions/99999999999999999999999", kBadVersion,
           "Failed to convert version: 99999999999999999999999 to numeric."),
      fail("GET", "/v1/models/m/versions/18446744073709551616/metadata", kBadVersion,
           "Failed to convert version: 18446744073709551616 to numeric."),
      // TF Serving converts the version before it checks for an empty model name.
      fail("GET", "/v1/models/versions/99999999999999999999", kBadVersion,
           "Failed to convert version: 99999999999999999999 to numeric."),
      // Leading zeros do not count towards overflow.
      ok("POST", "/v1/models/m/versions/00000000000000000000009223372036854775807:predict",
         kPredict, "m", kMaxVersion),
  };
  for (const Row& row : rows) check(row);
}

TEST(RestPath, NotV1HasNoMessage) {
  const RestPathResult result = parse_rest_path("GET", "/healthz");
  EXPECT_FALSE(result.target.has_value());
  EXPECT_EQ(result.error, RestPathError::not_v1);
  EXPECT_TRUE(result.message.empty());
}

TEST(RestPath, VerbNames) {
  EXPECT_STREQ(to_string(RestVerb::status), "status");
  EXPECT_STREQ(to_string(RestVerb::metadata), "metadata");
  EXPECT_STREQ(to_string(RestVerb::predict), "predict");
  EXPECT_STREQ(to_string(RestVerb::classify), "classify");
  EXPECT_STREQ(to_string(RestVerb::regress), "regress");
}

TEST(RestPathDecode, CurlUnescape) {
  const struct {
    std::string in;
    std::string out;
  } cases[] = {
      {"", ""},
      {"plain", "plain"},
      {"my%20model", "my model"},
      {"a+b", "a+b"},
      {"%2F%2f", "//"},
      {"%G1", "%G1"},
      {"%4", "%4"},
      {"%", "%"},
      {"%%41", "%A"},
      {"%4%41", "%4A"},
      {"100%", "100%"},
      {"%e2%82%AC", "\xE2\x82\xAC"},
      {"%00", std::string(1, '\0')},
  };
  for (const auto& c : cases) EXPECT_EQ(curl_unescape(c.in), c.out) << c.in;
}

}  // namespace
}  // namespace fusebox::http
