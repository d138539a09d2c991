#include "sim/rest_api.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "sim/tensor_json.h"

namespace tfs_sim {
namespace {

struct RouteCase {
  std::string method;
  std::string target;
  RouteKind kind;
  std::string model;
  std::optional<std::int64_t> version;
  std::optional<std::string> label;
  std::string error;  // for RouteKind::error
};

class MatchRouteTest : public testing::TestWithParam<RouteCase> {};

TEST_P(MatchRouteTest, ClassifiesLikeTfServing) {
  const auto& c = GetParam();
  const Route r = match_route(c.method, c.target);
  EXPECT_EQ(r.kind, c.kind) << c.method << " " << c.target;
  if (c.kind == RouteKind::error) {
    EXPECT_EQ(r.error.message, c.error) << c.target;
  } else if (c.kind != RouteKind::not_v1 && c.kind != RouteKind::bad_uri) {
    EXPECT_EQ(r.model, c.model) << c.target;
    EXPECT_EQ(r.version, c.version) << c.target;
    EXPECT_EQ(r.label, c.label) << c.target;
  }
}

const std::optional<std::int64_t> kNoVersion;
const std::optional<std::string> kNoLabel;

INSTANTIATE_TEST_SUITE_P(
    Table, MatchRouteTest,
    testing::Values(
        RouteCase{"POST", "/v1/models/m:predict", RouteKind::predict, "m", kNoVersion, kNoLabel,
                  ""},
        RouteCase{"POST", "/v1/models/m:classify", RouteKind::classify, "m", kNoVersion, kNoLabel,
                  ""},
        RouteCase{"POST", "/v1/models/m:regress", RouteKind::regress, "m", kNoVersion, kNoLabel,
                  ""},
        RouteCase{"POST", "/v1/models/m/versions/007:predict", RouteKind::predict, "m", 7, kNoLabel,
                  ""},
        RouteCase{"POST", "/v1/models/m/labels/stable:predict", RouteKind::predict, "m", kNoVersion,
                  "stable", ""},
        RouteCase{"POST", "/V1/MODELS/m/Versions/2:predict", RouteKind::predict, "m", 2, kNoLabel,
                  ""},
        RouteCase{"POST", "/v1/models/my%20model:predict", RouteKind::predict, "my model",
                  kNoVersion, kNoLabel, ""},
        RouteCase{"POST", "/v1/models/a%2Fb:predict", RouteKind::predict, "a/b", kNoVersion,
                  kNoLabel, ""},
        // The verb is matched case-insensitively but compared case-sensitively afterwards.
        RouteCase{"POST", "/v1/models/m:PREDICT", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: POST /v1/models/m:PREDICT"},
        RouteCase{"POST", "/v1/models/m:explain", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: POST /v1/models/m:explain"},
        RouteCase{"POST", "/v1/models/m", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: POST /v1/models/m"},
        RouteCase{"GET", "/v1/models/m:predict", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: GET /v1/models/m:predict"},
        RouteCase{"PUT", "/v1/models/m", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: PUT /v1/models/m"},
        RouteCase{"POST", "/v1/models/m/versions/99999999999999999999:predict", RouteKind::error,
                  "", kNoVersion, kNoLabel,
                  "Failed to convert version: 99999999999999999999 to numeric."},
        RouteCase{"GET", "/v1/models/m", RouteKind::status, "m", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/v1/models/m/versions/3", RouteKind::status, "m", 3, kNoLabel, ""},
        RouteCase{"GET", "/v1/models/m/labels/canary", RouteKind::status, "m", kNoVersion, "canary",
                  ""},
        RouteCase{"GET", "/v1/models/m/metadata", RouteKind::metadata, "m", kNoVersion, kNoLabel,
                  ""},
        RouteCase{"GET", "/v1/models/m/versions/3/metadata", RouteKind::metadata, "m", 3, kNoLabel,
                  ""},
        // "/METADATA" matches the regex but is not == "metadata": a status request.
        RouteCase{"GET", "/v1/models/m/METADATA", RouteKind::status, "m", kNoVersion, kNoLabel, ""},
        // Greedy model group: "metadata" is the model name here.
        RouteCase{"GET", "/v1/models/metadata", RouteKind::status, "metadata", kNoVersion, kNoLabel,
                  ""},
        // Backtracking: no model, version 1.
        RouteCase{"GET", "/v1/models/versions/1", RouteKind::status, "", 1, kNoLabel, ""},
        RouteCase{"GET", "/v1/models", RouteKind::status, "", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/v1/models/", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: GET /v1/models/"},
        RouteCase{"GET", "/v1/models/m/extra", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: GET /v1/models/m/extra"},
        // TF's uri_path() includes the query string.
        RouteCase{"GET", "/v1/models/m?x=1", RouteKind::status, "m?x=1", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/v1/foo", RouteKind::error, "", kNoVersion, kNoLabel,
                  "Malformed request: GET /v1/foo"},
        RouteCase{"GET", "/v1", RouteKind::not_v1, "", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/", RouteKind::not_v1, "", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/v2/models/m", RouteKind::not_v1, "", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/monitoring/prometheus/metrics", RouteKind::not_v1, "", kNoVersion,
                  kNoLabel, ""},
        RouteCase{"GET", "http://host:8501/v1/models/m", RouteKind::status, "m", kNoVersion,
                  kNoLabel, ""},
        RouteCase{"GET", "/v1/models/%zz", RouteKind::bad_uri, "", kNoVersion, kNoLabel, ""},
        RouteCase{"GET", "/v1/models/a\"b", RouteKind::bad_uri, "", kNoVersion, kNoLabel, ""}));

TEST(CurlUnescapeTest, DecodesValidEscapesOnly) {
  EXPECT_EQ(curl_unescape("a%20b+c%2f%zz%4"), "a b+c/%zz%4");
}

RestApi make_api(JsonStyle style = JsonStyle::compact) {
  RestApiConfig c;
  c.models = {{"half_plus_two", ModelKind::half_plus_two}, {"light", ModelKind::half_plus_three}};
  c.version = 1;
  c.labels = {{"stable", std::nullopt}, {"old", 0}};
  c.style = style;
  return RestApi(c);
}

HttpReply call(const RestApi& api, const std::string& method, const std::string& target,
               const std::string& body = "", const FaultSet& faults = {}) {
  return api.handle(match_route(method, target), body, faults);
}

TEST(RestApiTest, PredictRowAndLightModel) {
  const auto api = make_api();
  auto r =
      call(api, "POST", "/v1/models/half_plus_two:predict", R"({"instances": [1.0, 2.0, 5.0]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"predictions": [2.5, 3.0, 4.5]})");
  r = call(api, "POST", "/v1/models/light/versions/1:predict", R"({"inputs": [1.0]})");
  EXPECT_EQ(r.body, R"({"outputs": [3.5]})");
  r = call(api, "POST", "/v1/models/light/labels/stable:regress", R"({"examples": [{"x": 1.0}]})");
  EXPECT_EQ(r.body, R"({"results": [3.5]})");
}

struct ErrorReplyCase {
  std::string method;
  std::string target;
  std::string body;
  int status;
  std::string message;
};

class RestApiErrorTest : public testing::TestWithParam<ErrorReplyCase> {};

TEST_P(RestApiErrorTest, AnswersTfStatusAndMessage) {
  const auto api = make_api();
  const auto& c = GetParam();
  const auto r = call(api, c.method, c.target, c.body);
  EXPECT_EQ(r.status, c.status) << c.target << " " << c.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, write_error_body(c.message, JsonStyle::compact)) << c.target << " " << c.body;
}

INSTANTIATE_TEST_SUITE_P(
    Table, RestApiErrorTest,
    testing::Values(
        ErrorReplyCase{"POST", "/v1/models/nope:predict", R"({"instances": [1]})", 404,
                       "Servable not found for request: Latest(nope)"},
        ErrorReplyCase{"POST", "/v1/models/nope/versions/3:predict", R"({"instances": [1]})", 404,
                       "Servable not found for request: Specific(nope, 3)"},
        ErrorReplyCase{"POST", "/v1/models/half_plus_two/versions/2:predict",
                       R"({"instances": [1]})", 404,
                       "Servable not found for request: Specific(half_plus_two, 2)"},
        ErrorReplyCase{"POST", "/v1/models/half_plus_two/labels/old:predict",
                       R"({"instances": [1]})", 404,
                       "Servable not found for request: Specific(half_plus_two, 0)"},
        ErrorReplyCase{"POST", "/v1/models/half_plus_two/labels/nope:predict",
                       R"({"instances": [1]})", 400, "Unrecognized servable version label: nope"},
        // JSON is parsed before the model is looked up.
        ErrorReplyCase{"POST", "/v1/models/nope:predict", "", 400,
                       "JSON Parse error: The document is empty"},
        ErrorReplyCase{"POST", "/v1/models/nope:predict", "{bad", 400,
                       "JSON Parse error: Missing a name for object member. at offset: 1"},
        ErrorReplyCase{"POST", "/v1/models/half_plus_two:predict",
                       R"({"signature_name": "other", "instances": [1]})", 400,
                       "Serving signature name: \"other\" not found in signature def"},
        ErrorReplyCase{"POST", "/v1/models/half_plus_two:classify",
                       R"({"signature_name": "other", "examples": [{"x": 1.0}]})", 400,
                       "No signature was found with the name: other"},
        ErrorReplyCase{"GET", "/v1/models/nope", "", 404,
                       "Could not find any versions of model nope"},
        ErrorReplyCase{"GET", "/v1/models/half_plus_two/versions/9", "", 404,
                       "Could not find version 9 of model half_plus_two"},
        ErrorReplyCase{"GET", "/v1/models", "", 400, "Missing model name in request."},
        ErrorReplyCase{"GET", "/v1/models/metadata/metadata", "", 404,
                       "Servable not found for request: Latest(metadata)"},
        ErrorReplyCase{"DELETE", "/v1/models/half_plus_two", "", 400,
                       "Malformed request: DELETE /v1/models/half_plus_two"}));

TEST(RestApiTest, NotV1IsLibeventsPlainHtml404) {
  const auto api = make_api();
  const auto r = call(api, "GET", "/healthz");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "text/html; charset=ISO-8859-1");
  EXPECT_TRUE(r.close_connection);
  EXPECT_EQ(r.body,
            "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
            "</BODY></HTML>\n");
}

TEST(RestApiTest, StatusAndMetadata) {
  const auto api = make_api();
  auto r = call(api, "GET", "/v1/models/half_plus_two");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": )"
                    R"({"error_code": "OK", "error_message": ""}}]})");
  r = call(api, "GET", "/v1/models/light/metadata");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(
      r.body.find(R"({"model_spec": {"name": "light", "signature_name": "", "version": "1"})"),
      std::string::npos);
  EXPECT_NE(r.body.find(R"("inputs": {"x": {"dtype": "DT_FLOAT")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("method_name": "tensorflow/serving/predict")"), std::string::npos);
}

TEST(RestApiTest, TfServingStyleStatusIsProtobufJson) {
  const auto api = make_api(JsonStyle::tfserving);
  const auto r = call(api, "GET", "/v1/models/half_plus_two");
  EXPECT_EQ(r.body,
            "{\n \"model_version_status\": [\n  {\n   \"version\": \"1\",\n   \"state\": "
            "\"AVAILABLE\",\n   \"status\": {\n    \"error_code\": \"OK\",\n    \"error_message\": "
            "\"\"\n   }\n  }\n ]\n}\n");
}

TEST(RestApiTest, ModelStateFaultReachesStatusAndInference) {
  const auto api = make_api();
  FaultSet loading;
  loading.model_state = ModelState::loading;
  loading.models = {"half_plus_two"};
  auto r = call(api, "GET", "/v1/models/half_plus_two", "", loading);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("state": "LOADING")"), std::string::npos);
  r = call(api, "POST", "/v1/models/half_plus_two:predict", R"({"instances": [1]})", loading);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, write_error_body("Servable not available for request: Latest(half_plus_two) "
                                     "(model state: LOADING)",
                                     JsonStyle::compact));
  // Another model is untouched.
  r = call(api, "POST", "/v1/models/light:predict", R"({"instances": [1]})", loading);
  EXPECT_EQ(r.status, 200);
  // 404 mode mimics TF's answer while a model loads.
  loading.not_available_status = 404;
  r = call(api, "POST", "/v1/models/half_plus_two:predict", R"({"instances": [1]})", loading);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, write_error_body("Servable not found for request: Latest(half_plus_two)",
                                     JsonStyle::compact));
}

TEST(RestApiTest, VersionFaultSwitchesTheServedVersion) {
  const auto api = make_api();
  FaultSet v2;
  v2.version = 2;
  auto r = call(api, "GET", "/v1/models/half_plus_two", "", v2);
  EXPECT_NE(r.body.find(R"("version": "2")"), std::string::npos);
  r = call(api, "POST", "/v1/models/half_plus_two/versions/1:predict", R"({"instances": [1]})", v2);
  EXPECT_EQ(r.status, 404);
  r = call(api, "POST", "/v1/models/half_plus_two/labels/stable:predict", R"({"instances": [1]})",
           v2);
  EXPECT_EQ(r.status, 200);
}

}  // namespace
}  // namespace tfs_sim
