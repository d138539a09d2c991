#include "sim/tensor_json.h"

#include <gtest/gtest.h>

#include <string>

namespace tfs_sim {
namespace {

// Runs the predict path the way RestApi does for half_plus_two (or another model).
struct PredictResult {
  TfStatus status;
  std::string body;
};

PredictResult predict(const std::string& json, ModelKind kind = ModelKind::half_plus_two,
                      JsonStyle style = JsonStyle::compact) {
  JsonDocument doc;
  if (const auto error = doc.parse(json)) {
    return {TfStatus::invalid_argument("parse error: " + error->reason), ""};
  }
  PredictInput input;
  auto status = check_request_is_object(doc.root());
  if (status.ok()) status = read_predict_input(doc.root(), input);
  if (!status.ok()) return {status, ""};
  LinearModel::of(kind).apply_in_place(input.x.values);
  return {status, write_predict_response(input.format, input.x, style)};
}

struct OkCase {
  std::string request;
  std::string response;
};

class PredictOkTest : public testing::TestWithParam<OkCase> {};

TEST_P(PredictOkTest, ComputesHalfPlusTwoInTfLayout) {
  const auto r = predict(GetParam().request);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  EXPECT_EQ(r.body, GetParam().response);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PredictOkTest,
    testing::Values(
        OkCase{R"({"instances": [1.0, 2.0, 5.0]})", R"({"predictions": [2.5, 3.0, 4.5]})"},
        OkCase{R"({"instances": [1, 2, 5]})", R"({"predictions": [2.5, 3.0, 4.5]})"},
        OkCase{R"({"signature_name": "serving_default", "instances": [0.1]})",
               R"({"predictions": [2.05]})"},
        OkCase{R"({"instances": [[1.0, 2.0], [3.0, 4.0]]})",
               R"({"predictions": [[2.5, 3.0], [3.5, 4.0]]})"},
        OkCase{R"({"instances": [[[1.0]], [[2.0]]]})", R"({"predictions": [[[2.5]], [[3.0]]]})"},
        OkCase{R"({"instances": [{"x": 1.0}, {"x": 3}]})", R"({"predictions": [2.5, 3.5]})"},
        OkCase{R"({"instances": [{"x": [1.0, 2.0]}]})", R"({"predictions": [[2.5, 3.0]]})"},
        OkCase{R"({"instances": [[]]})", R"({"predictions": [[]]})"},
        OkCase{R"({"inputs": [1.0, 2.0, 5.0]})", R"({"outputs": [2.5, 3.0, 4.5]})"},
        OkCase{R"({"inputs": {"x": [[1.0], [2.0]]}})", R"({"outputs": [[2.5], [3.0]]})"},
        OkCase{R"({"inputs": {"x": 1.0, "ignored": "extra keys"}})", R"({"outputs": 2.5})"},
        OkCase{R"({"inputs": 4})", R"({"outputs": 4.0})"},
        OkCase{R"({"instances": [NaN, Infinity, -Infinity]})",
               R"({"predictions": [NaN, Infinity, -Infinity]})"},
        // 0.5 * 16777215 + 2 = 8388609.5 rounds to the float 8388610, which six digits print.
        OkCase{R"({"instances": [1e6, 16777215]})", R"({"predictions": [500002.0, 8.38861e+06]})"},
        OkCase{R"({"instances": [3.4e38]})", R"({"predictions": [1.7e+38]})"}));

TEST(PredictTest, HalfPlusThreeIsVisiblyDifferent) {
  const auto r = predict(R"({"instances": [1.0, 2.0, 5.0]})", ModelKind::half_plus_three);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.body, R"({"predictions": [3.5, 4.0, 5.5]})");
}

TEST(PredictTest, TfServingStyleMatchesTfBytes) {
  const auto r = predict(R"({"instances": [[1.0, 2.0], [3.0, 4.0]]})", ModelKind::half_plus_two,
                         JsonStyle::tfserving);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.body, "{\n    \"predictions\": [[2.5, 3.0], [3.5, 4.0]\n    ]\n}");
  const auto c = predict(R"({"inputs": [1.0]})", ModelKind::half_plus_two, JsonStyle::tfserving);
  EXPECT_EQ(c.body, "{\n    \"outputs\": [\n        2.5\n    ]\n}");
}

TEST(PredictTest, ComputesInFloatLikeTheModel) {
  // 0.5 * 0.1f + 2 in float is 2.04999995f, printed "2.05" by TF's six-digit rule; 1/3 needs
  // nine digits.
  const auto r = predict(R"({"instances": [0.33333334]})");
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.body, R"({"predictions": [2.16666675]})");
}

struct ErrorCase {
  std::string request;
  std::string message;
};

class PredictErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(PredictErrorTest, ReportsTfMessage) {
  const auto r = predict(GetParam().request);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code, TfCode::invalid_argument);
  EXPECT_EQ(r.status.message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PredictErrorTest,
    testing::Values(
        ErrorCase{"[1]", "JSON Value: [\n    1\n] Is not object"},
        ErrorCase{"{}", "Missing 'inputs' or 'instances' key"},
        ErrorCase{
            R"({"instances": [1], "inputs": [1]})",
            "JSON Value: {\n    \"instances\": [\n        1\n    ],\n    \"inputs\": [\n        "
            "1\n    ]\n} Not formatted correctly expecting only one of 'inputs' or 'instances' "
            "keys to exist "},
        ErrorCase{
            R"({"instances": 1})",
            "JSON Value: {\n    \"instances\": 1\n} Excepting 'instances' to be an list/array"},
        ErrorCase{R"({"instances": []})",
                  "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"},
        ErrorCase{R"({"instances": [1.0, "a"]})",
                  "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: JSON "
                  "Value: \"a\" Type: String is not of expected type: float"},
        ErrorCase{R"({"instances": [[1.0], [1.0, 2.0]]})",
                  "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                  "Expecting tensor size: 1 but got: 2"},
        ErrorCase{R"({"instances": [[1.0, 2.0], [[1.0], [2.0]]]})",
                  "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                  "Expecting shape [2] but got: [2,1]"},
        ErrorCase{R"({"instances": [16777216]})",
                  "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
                  "Cannot convert JSON value: 16777216 to float without loss of precision."},
        ErrorCase{R"({"instances": [true]})",
                  "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON "
                  "Value: true Type: True is not of expected type: float"},
        ErrorCase{R"({"instances": [{"y": 1}]})",
                  "Failed to process element: 0 key: y of 'instances' list. Error: "
                  "INVALID_ARGUMENT: JSON object: does not have named input: y"},
        ErrorCase{R"({"instances": [{"x": 1}, 2]})",
                  "Expecting object but got list at item 1 of input list"},
        ErrorCase{R"({"instances": [1, {"x": 2}]})",
                  "Expecting value/list but got object at item 1 of input list"},
        ErrorCase{R"({"inputs": {"y": 1}})", "Missing named input: x in 'inputs' object."},
        ErrorCase{R"({"inputs": [[1, 2], [3]]})",
                  "Encountered list at unexpected size: 1 at level: 1 expected size: 2"},
        ErrorCase{
            R"({"inputs": [[1, 2], 3]})",
            "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"},
        ErrorCase{R"({"inputs": [1, [2]]})",
                  "Encountered list at unexpected level: 1 expected < 1"}));

TEST(SignatureTest, MustBeAString) {
  JsonDocument doc;
  ASSERT_FALSE(doc.parse(R"({"signature_name": 100})").has_value());
  std::string sig;
  const auto status = read_signature_name(doc.root(), sig);
  EXPECT_EQ(status.message,
            "JSON Value: {\n    \"signature_name\": 100\n} not formatted correctly. "
            "'signature_name' key must be a string value.");
}

TfStatus examples(const std::string& json, std::vector<float>& xs) {
  JsonDocument doc;
  EXPECT_FALSE(doc.parse(json).has_value());
  return read_examples(doc.root(), xs);
}

TEST(ExamplesTest, ClassifyAndRegressLayouts) {
  std::vector<float> xs;
  ASSERT_TRUE(examples(R"({"examples": [{"x": 1.0}, {"x": [2.0]}]})", xs).ok());
  LinearModel::of(ModelKind::half_plus_two).apply_in_place(xs);
  EXPECT_EQ(write_classify_response(xs, JsonStyle::compact),
            R"({"results": [[["", 2.5]], [["", 3.0]]]})");
  EXPECT_EQ(write_regress_response(xs, JsonStyle::compact), R"({"results": [2.5, 3.0]})");
  EXPECT_EQ(write_regress_response(xs, JsonStyle::tfserving), "{\n    \"results\": [2.5, 3.0]\n}");
  EXPECT_EQ(write_classify_response(xs, JsonStyle::tfserving),
            "{\n    \"results\": [[[\"\", 2.5]], [[\"\", 3.0]]\n    ]\n}");
}

TEST(ExamplesTest, ContextSuppliesMissingFeatures) {
  std::vector<float> xs;
  ASSERT_TRUE(examples(R"({"context": {"x": 4.0}, "examples": [{}, {"x": 2.0}]})", xs).ok());
  EXPECT_EQ(xs, (std::vector<float>{4.0f, 2.0f}));
}

TEST(ExamplesTest, Errors) {
  std::vector<float> xs;
  EXPECT_EQ(examples(R"({"instances": []})", xs).message,
            "JSON Value: {\n    \"instances\": []\n} When method is classify, key 'examples' is "
            "expected and was not found");
  EXPECT_EQ(examples(R"({"examples": []})", xs).message,
            "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array");
  EXPECT_EQ(examples(R"({"examples": [1]})", xs).message,
            "Example must be JSON object but got JSON Number");
  EXPECT_EQ(examples(R"({"examples": [{"x": null}]})", xs).message,
            "Feature: x has element with unexpected JSON type: Null");
  EXPECT_EQ(examples(R"({"examples": [{"x": [1.0, "a"]}]})", xs).message,
            "Unexpected element type in feature: x expecting type: float");
  // Integers are int64 features; the model wants floats.
  EXPECT_EQ(examples(R"({"examples": [{"x": 1}]})", xs).message,
            "Name: <unknown>, Key: x, Index: 0.  Data types don't match. Data type: int64 but "
            "expected type: float");
  EXPECT_EQ(examples(R"({"examples": [{"y": 1.0}]})", xs).message,
            "Name: <unknown>, Feature: x (data type: float) is required but could not be found.");
  EXPECT_EQ(examples(R"({"examples": [{"x": [1.0, 2.0]}]})", xs).message,
            "Name: <unknown>, Key: x, Index: 0.  Number of float values != expected.  Values "
            "size: 2 but output shape: [1]");
}

TEST(ErrorBodyTest, Layouts) {
  EXPECT_EQ(write_error_body("Servable not found for request: Latest(m)", JsonStyle::compact),
            R"json({ "error": "Servable not found for request: Latest(m)" })json");
  EXPECT_EQ(write_error_body("a \"quoted\" word", JsonStyle::tfserving),
            "{\n    \"error\": \"a \\\"quoted\\\" word\"\n}");
}

}  // namespace
}  // namespace tfs_sim
