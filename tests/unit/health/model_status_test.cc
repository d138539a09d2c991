#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fusebox/health/health_checker.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"

namespace fusebox::health {
namespace {

struct StatusCase {
  std::string name;
  unsigned http_status;
  std::string body;
  std::int64_t expected_version;
  ProbeResult result;
  std::int64_t available_version;
  std::string detail;
};

class ModelStatusTest : public testing::TestWithParam<StatusCase> {};

TEST_P(ModelStatusTest, ReadsTfServingAnswer) {
  const auto& c = GetParam();
  const auto v = evaluate_model_status(c.http_status, c.body, c.expected_version);
  EXPECT_EQ(v.result, c.result) << to_string(v.result) << " / " << v.detail;
  EXPECT_EQ(v.available_version, c.available_version);
  EXPECT_EQ(v.detail, c.detail);
}

// Bodies as TF Serving writes them (model_version_status, string versions, status objects).
const std::string kAvailable3 = R"({
 "model_version_status": [
  {
   "version": "3",
   "state": "AVAILABLE",
   "status": {
    "error_code": "OK",
    "error_message": ""
   }
  }
 ]
})";
const std::string kLoading1 = R"({"model_version_status": [{"version": "1", "state": "LOADING",)"
                              R"( "status": {"error_code": "OK", "error_message": ""}}]})";
const std::string kOneOfTwoAvailable =
    R"({"model_version_status": [)"
    R"({"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},)"
    R"({"version": "1", "state": "UNLOADING", "status": {"error_code": "OK", "error_message": ""}}]})";
const std::string kTwoAvailable =
    R"({"model_version_status": [)"
    R"({"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},)"
    R"({"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})";
const std::string kEndWithError =
    R"({"model_version_status": [{"version": "4", "state": "END", "status": )"
    R"({"error_code": "NOT_FOUND", "error_message": "Could not find base path /models/m/4"}}]})";
const std::string kLoadingAndEnd =
    R"({"model_version_status": [)"
    R"({"version": "2", "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}},)"
    R"({"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]})";

INSTANTIATE_TEST_SUITE_P(
    Table, ModelStatusTest,
    testing::Values(
        StatusCase{"available", 200, kAvailable3, 0, ProbeResult::passed, 3, "version 3 AVAILABLE"},
        StatusCase{"loading", 200, kLoading1, 0, ProbeResult::not_available, 0,
                   "version 1 LOADING"},
        StatusCase{"one_of_two_available", 200, kOneOfTwoAvailable, 0, ProbeResult::passed, 2,
                   "version 2 AVAILABLE"},
        StatusCase{"two_available_highest_reported", 200, kTwoAvailable, 0, ProbeResult::passed, 2,
                   "version 2 AVAILABLE"},
        StatusCase{"loading_and_end", 200, kLoadingAndEnd, 0, ProbeResult::not_available, 0,
                   "version 2 LOADING, version 1 END"},
        StatusCase{"end_with_error", 200, kEndWithError, 0, ProbeResult::not_available, 0,
                   "version 4 END (NOT_FOUND: Could not find base path /models/m/4)"},
        StatusCase{"empty_list", 200, R"({"model_version_status": []})", 0,
                   ProbeResult::not_available, 0, "no versions"},
        StatusCase{"expected_version_matches", 200, kAvailable3, 3, ProbeResult::passed, 3,
                   "version 3 AVAILABLE"},
        StatusCase{"expected_version_mismatch", 200,
                   R"({"model_version_status": [{"version": "2", "state": "AVAILABLE"}]})", 3,
                   ProbeResult::version_mismatch, 2, "serving version 2, expected 3"},
        StatusCase{"expected_among_two_available", 200, kTwoAvailable, 1, ProbeResult::passed, 2,
                   "version 1 AVAILABLE"},
        StatusCase{"expected_missing_among_two", 200, kTwoAvailable, 7,
                   ProbeResult::version_mismatch, 2, "serving versions 1, 2, expected 7"},
        StatusCase{"expected_version_only_loading", 200, kLoading1, 1, ProbeResult::not_available,
                   0, "version 1 LOADING"},
        StatusCase{"version_as_number", 200,
                   R"({"model_version_status": [{"version": 5, "state": "AVAILABLE"}]})", 5,
                   ProbeResult::passed, 5, "version 5 AVAILABLE"},
        StatusCase{
            "large_int64_version", 200,
            R"({"model_version_status": [{"version": "1700000000123", "state": "AVAILABLE"}]})",
            1700000000123, ProbeResult::passed, 1700000000123, "version 1700000000123 AVAILABLE"},
        StatusCase{"not_found_with_error_body", 404,
                   R"({ "error": "Could not find any versions of model half_plus_two" })", 0,
                   ProbeResult::http_error, 0,
                   "HTTP 404: Could not find any versions of model half_plus_two"},
        StatusCase{"server_error_without_json", 503, "<html>busy</html>", 0,
                   ProbeResult::http_error, 0, "HTTP 503"},
        StatusCase{"status_200_required_even_with_available_body", 500, kAvailable3, 0,
                   ProbeResult::http_error, 0, "HTTP 500"},
        StatusCase{"garbage", 200, "not json at all", 0, ProbeResult::bad_response, 0,
                   "response is not JSON"},
        StatusCase{"empty_body", 200, "", 0, ProbeResult::bad_response, 0, "response is not JSON"},
        StatusCase{"truncated_json", 200, kAvailable3.substr(0, 40), 0, ProbeResult::bad_response,
                   0, "response is not JSON"},
        StatusCase{"array_document", 200, "[]", 0, ProbeResult::bad_response, 0,
                   "response is not a JSON object"},
        StatusCase{"missing_list", 200, R"({"error": "x"})", 0, ProbeResult::bad_response, 0,
                   "no model_version_status"},
        StatusCase{"list_not_array", 200, R"({"model_version_status": {"version": "1"}})", 0,
                   ProbeResult::bad_response, 0, "model_version_status is not an array"},
        StatusCase{"entry_not_object", 200, R"({"model_version_status": ["AVAILABLE"]})", 0,
                   ProbeResult::bad_response, 0, "model_version_status entry is not an object"},
        StatusCase{"missing_version", 200, R"({"model_version_status": [{"state": "AVAILABLE"}]})",
                   0, ProbeResult::bad_response, 0, "model_version_status entry without version"},
        StatusCase{"missing_state", 200, R"({"model_version_status": [{"version": "1"}]})", 0,
                   ProbeResult::bad_response, 0, "version 1 without a state string"},
        StatusCase{"version_not_numeric", 200,
                   R"({"model_version_status": [{"version": "v1", "state": "AVAILABLE"}]})", 0,
                   ProbeResult::bad_response, 0, "version is not an int64"},
        StatusCase{
            "version_overflows_int64", 200,
            R"({"model_version_status": [{"version": "99999999999999999999", "state": "AVAILABLE"}]})",
            0, ProbeResult::bad_response, 0, "version is not an int64"},
        StatusCase{"version_fraction", 200,
                   R"({"model_version_status": [{"version": 1.5, "state": "AVAILABLE"}]})", 0,
                   ProbeResult::bad_response, 0, "version is not an int64"},
        StatusCase{"state_case_matters", 200,
                   R"({"model_version_status": [{"version": "1", "state": "available"}]})", 0,
                   ProbeResult::not_available, 0, "version 1 available"}),
    [](const testing::TestParamInfo<StatusCase>& info) { return info.param.name; });

TEST(ModelStatus, LongErrorTextIsCut) {
  const std::string body = R"({"error": ")" + std::string(5000, 'x') + R"("})";
  const auto v = evaluate_model_status(404, body, 0);
  EXPECT_EQ(v.result, ProbeResult::http_error);
  EXPECT_LT(v.detail.size(), 300u);
  EXPECT_EQ(v.detail.substr(0, 10), "HTTP 404: ");
}

TEST(ModelStatus, ManyVersionsAreSummarised) {
  std::string body = R"({"model_version_status": [)";
  for (int i = 1; i <= 20; ++i) {
    if (i > 1) body += ",";
    body += R"({"version": ")" + std::to_string(i) + R"(", "state": "LOADING"})";
  }
  body += "]}";
  const auto v = evaluate_model_status(200, body, 0);
  EXPECT_EQ(v.result, ProbeResult::not_available);
  EXPECT_NE(v.detail.find("version 8 LOADING (12 more)"), std::string::npos) << v.detail;
  EXPECT_EQ(v.detail.find("version 9 "), std::string::npos) << v.detail;
}

TEST(ModelStatus, ProbeResultNames) {
  EXPECT_STREQ(to_string(ProbeResult::passed), "passed");
  EXPECT_STREQ(to_string(ProbeResult::not_available), "not_available");
  EXPECT_STREQ(to_string(ProbeResult::version_mismatch), "version_mismatch");
  EXPECT_STREQ(to_string(ProbeResult::http_error), "http_error");
  EXPECT_STREQ(to_string(ProbeResult::bad_response), "bad_response");
  EXPECT_STREQ(to_string(ProbeResult::connect_failure), "connect_failure");
  EXPECT_STREQ(to_string(ProbeResult::timeout), "timeout");
  EXPECT_STREQ(to_string(ProbeResult::grpc_error), "grpc_error");
}

// ---- the same answer over gRPC (GetModelStatusResponse) -------------------------------------

namespace tfs = tensorflow::serving;

struct Version {
  std::int64_t version;
  tfs::ModelVersionStatus::State state;
  std::string error_code;  // "" = OK without message
  std::string error_message;
};

// The REST body TF Serving writes for these versions.
std::string rest_body(const std::vector<Version>& versions) {
  std::string body = R"({"model_version_status": [)";
  for (std::size_t i = 0; i < versions.size(); ++i) {
    const auto& v = versions[i];
    if (i > 0) body += ",";
    body += R"({"version": ")" + std::to_string(v.version) + R"(", "state": ")" +
            tfs::ModelVersionStatus::State_Name(v.state) + R"(", "status": {"error_code": ")" +
            (v.error_code.empty() ? "OK" : v.error_code) + R"(", "error_message": ")" +
            v.error_message + R"("}})";
  }
  return body + "]}";
}

tfs::GetModelStatusResponse grpc_response(const std::vector<Version>& versions) {
  tfs::GetModelStatusResponse response;
  for (const auto& v : versions) {
    auto* entry = response.add_model_version_status();
    entry->set_version(v.version);
    entry->set_state(v.state);
    if (!v.error_code.empty()) {
      tensorflow::error::Code code{};
      EXPECT_TRUE(tensorflow::error::Code_Parse(v.error_code, &code)) << v.error_code;
      entry->mutable_status()->set_error_code(code);
    }
    entry->mutable_status()->set_error_message(v.error_message);
  }
  return response;
}

struct SameVerdictCase {
  std::string name;
  std::vector<Version> versions;
  std::int64_t expected_version;
  ProbeResult result;
  std::string detail;
};

class BothProtocolsTest : public testing::TestWithParam<SameVerdictCase> {};

// Both protocols feed evaluate_versions(): the same versions give the same verdict, word for
// word, whether they came as JSON or as a protobuf.
TEST_P(BothProtocolsTest, SameVersionsSameVerdict) {
  const auto& c = GetParam();
  const auto rest = evaluate_model_status(200, rest_body(c.versions), c.expected_version);
  const auto grpc =
      evaluate_model_status(grpc::Status::OK, grpc_response(c.versions), c.expected_version);
  EXPECT_EQ(rest.result, c.result) << rest.detail;
  EXPECT_EQ(rest.detail, c.detail);
  EXPECT_EQ(grpc.result, rest.result) << grpc.detail;
  EXPECT_EQ(grpc.detail, rest.detail);
  EXPECT_EQ(grpc.available_version, rest.available_version);
}

using State = tfs::ModelVersionStatus;

INSTANTIATE_TEST_SUITE_P(
    Table, BothProtocolsTest,
    testing::Values(
        SameVerdictCase{"available",
                        {{3, State::AVAILABLE, "", ""}},
                        0,
                        ProbeResult::passed,
                        "version 3 AVAILABLE"},
        SameVerdictCase{"loading",
                        {{1, State::LOADING, "", ""}},
                        0,
                        ProbeResult::not_available,
                        "version 1 LOADING"},
        SameVerdictCase{"unloading_and_end",
                        {{2, State::UNLOADING, "", ""}, {1, State::END, "", ""}},
                        0,
                        ProbeResult::not_available,
                        "version 2 UNLOADING, version 1 END"},
        SameVerdictCase{"end_with_error",
                        {{4, State::END, "NOT_FOUND", "Could not find base path /models/m/4"}},
                        0,
                        ProbeResult::not_available,
                        "version 4 END (NOT_FOUND: Could not find base path /models/m/4)"},
        SameVerdictCase{"no_versions", {}, 0, ProbeResult::not_available, "no versions"},
        SameVerdictCase{"expected_version_matches",
                        {{1, State::AVAILABLE, "", ""}, {2, State::AVAILABLE, "", ""}},
                        1,
                        ProbeResult::passed,
                        "version 1 AVAILABLE"},
        SameVerdictCase{"expected_version_mismatch",
                        {{2, State::AVAILABLE, "", ""}},
                        3,
                        ProbeResult::version_mismatch,
                        "serving version 2, expected 3"},
        SameVerdictCase{"expected_version_only_loading",
                        {{3, State::LOADING, "", ""}},
                        3,
                        ProbeResult::not_available,
                        "version 3 LOADING"}),
    [](const testing::TestParamInfo<SameVerdictCase>& info) { return info.param.name; });

struct CallFailureCase {
  std::string name;
  grpc::StatusCode code;
  std::string message;
  ProbeResult result;
  std::string detail;
};

class GrpcCallFailureTest : public testing::TestWithParam<CallFailureCase> {};

TEST_P(GrpcCallFailureTest, StatusOtherThanOkFails) {
  const auto& c = GetParam();
  // An answer that would pass: a failed call's response is never read.
  const auto v = evaluate_model_status(grpc::Status(c.code, c.message),
                                       grpc_response({{1, State::AVAILABLE, "", ""}}), 0);
  EXPECT_EQ(v.result, c.result);
  EXPECT_EQ(v.detail, c.detail);
  EXPECT_EQ(v.available_version, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Table, GrpcCallFailureTest,
    testing::Values(
        CallFailureCase{"not_found", grpc::StatusCode::NOT_FOUND,
                        "Could not find any versions of model m", ProbeResult::grpc_error,
                        "gRPC NOT_FOUND: Could not find any versions of model m"},
        CallFailureCase{"unavailable", grpc::StatusCode::UNAVAILABLE, "Socket closed",
                        ProbeResult::grpc_error, "gRPC UNAVAILABLE: Socket closed"},
        CallFailureCase{"deadline", grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded",
                        ProbeResult::timeout, "gRPC DEADLINE_EXCEEDED: Deadline Exceeded"},
        CallFailureCase{"unimplemented_without_message", grpc::StatusCode::UNIMPLEMENTED, "",
                        ProbeResult::grpc_error, "gRPC UNIMPLEMENTED"}),
    [](const testing::TestParamInfo<CallFailureCase>& info) { return info.param.name; });

TEST(ModelStatus, GrpcLongErrorTextIsCut) {
  const auto v =
      evaluate_model_status(grpc::Status(grpc::StatusCode::INTERNAL, std::string(5000, 'x')),
                            tfs::GetModelStatusResponse(), 0);
  EXPECT_EQ(v.result, ProbeResult::grpc_error);
  EXPECT_LT(v.detail.size(), 300u);
}

TEST(ModelStatus, GrpcUnknownStateIsNotAvailable) {
  tfs::GetModelStatusResponse response;
  auto* entry = response.add_model_version_status();
  entry->set_version(1);
  entry->set_state(static_cast<State::State>(35));  // a value this build does not know
  const auto v = evaluate_model_status(grpc::Status::OK, response, 0);
  EXPECT_EQ(v.result, ProbeResult::not_available);
  EXPECT_EQ(v.detail, "version 1 state 35");
}

}  // namespace
}  // namespace fusebox::health
