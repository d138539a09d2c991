// GrpcApi without a server: request messages in, responses or TF statuses out.

#include "sim/grpc_api.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace tfs_sim {
namespace {

namespace tf = tensorflow;
namespace tfs = tensorflow::serving;

RestApiConfig config() {
  RestApiConfig c;
  c.models = {{"main", ModelKind::half_plus_two}, {"light", ModelKind::half_plus_three}};
  c.version = 4;
  c.labels = {{"stable", std::nullopt}, {"old", 3}};
  return c;
}

class GrpcApiTest : public testing::Test {
 protected:
  const RestApi rest_{config()};
  const GrpcApi api_{rest_};
  const FaultSet no_faults_;
};

tfs::PredictRequest predict_request(const std::string& model, const tf::TensorProto& x) {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name(model);
  (*r.mutable_inputs())["x"] = x;
  return r;
}

tf::TensorProto tensor(const std::vector<std::int64_t>& shape) {
  tf::TensorProto t;
  t.set_dtype(tf::DT_FLOAT);
  for (const auto d : shape) t.mutable_tensor_shape()->add_dim()->set_size(d);
  return t;
}

std::vector<float> y_of(const tfs::PredictResponse& r) {
  const auto& y = r.outputs().at("y");
  return {y.float_val().begin(), y.float_val().end()};
}

TEST_F(GrpcApiTest, TensorContentIsLittleEndianFloat32) {
  auto x = tensor({2});
  // 1.0f = 0x3F800000 and -4.0f = 0xC0800000, written byte by byte, lowest first.
  x.set_tensor_content(std::string("\x00\x00\x80\x3F\x00\x00\x80\xC0", 8));
  tfs::PredictResponse response;
  ASSERT_TRUE(api_.predict(predict_request("light", x), no_faults_, response).ok());
  EXPECT_EQ(y_of(response), (std::vector<float>{3.5f, 1.0f}));
}

TEST_F(GrpcApiTest, FloatValFillsTheShapeLikeTensorFromProto) {
  struct Case {
    std::vector<std::int64_t> shape;
    std::vector<float> given;
    std::vector<float> expected_x;
  };
  const std::vector<Case> cases = {
      {{3}, {}, {0, 0, 0}},         // no values: zeros
      {{3}, {1}, {1, 1, 1}},        // one value everywhere
      {{4}, {1, 2}, {1, 2, 2, 2}},  // the last value repeats
      {{2}, {1, 2, 3}, {1, 2}},     // extra values are ignored
      {{}, {6}, {6}},               // a scalar
      {{0, 5}, {1}, {}},            // an empty batch
  };
  for (const auto& c : cases) {
    auto x = tensor(c.shape);
    for (const float v : c.given) x.add_float_val(v);
    tfs::PredictResponse response;
    const auto status = api_.predict(predict_request("main", x), no_faults_, response);
    ASSERT_TRUE(status.ok()) << status.message;
    std::vector<float> expected;
    for (const float v : c.expected_x) expected.push_back(0.5f * v + 2.0f);
    EXPECT_EQ(y_of(response), expected);
    const auto& shape = response.outputs().at("y").tensor_shape();
    ASSERT_EQ(shape.dim_size(), static_cast<int>(c.shape.size()));
    for (int i = 0; i < shape.dim_size(); ++i) EXPECT_EQ(shape.dim(i).size(), c.shape[i]);
  }
}

TEST_F(GrpcApiTest, ShapesTensorFlowCannotParse) {
  for (const auto& shape :
       std::vector<std::vector<std::int64_t>>{{-1}, {1LL << 40, 1LL << 40}, {1LL << 30}}) {
    auto x = tensor(shape);
    x.add_float_val(1);
    tfs::PredictResponse response;
    const auto status = api_.predict(predict_request("main", x), no_faults_, response);
    EXPECT_EQ(status.code, TfCode::invalid_argument);
    EXPECT_EQ(status.message, "tensor parsing error: x");
  }
  auto unknown_rank = tensor({});
  unknown_rank.mutable_tensor_shape()->set_unknown_rank(true);
  tfs::PredictResponse response;
  EXPECT_EQ(api_.predict(predict_request("main", unknown_rank), no_faults_, response).code,
            TfCode::invalid_argument);
}

TEST_F(GrpcApiTest, VersionsLabelsAndTheVersionFault) {
  auto request = predict_request("main", tensor({1}));
  tfs::PredictResponse response;
  request.mutable_model_spec()->set_version_label("old");  // label -> 3, serving 4
  auto status = api_.predict(request, no_faults_, response);
  EXPECT_EQ(status.code, TfCode::not_found);
  EXPECT_EQ(status.message, "Servable not found for request: Specific(main, 3)");
  FaultSet faults;
  faults.version = 3;
  EXPECT_TRUE(api_.predict(request, faults, response).ok());
  EXPECT_EQ(response.model_spec().version().value(), 3);
}

TEST_F(GrpcApiTest, StatusReportsEveryModelState) {
  const std::vector<std::pair<ModelState, tfs::ModelVersionStatus::State>> states = {
      {ModelState::unknown, tfs::ModelVersionStatus::UNKNOWN},
      {ModelState::start, tfs::ModelVersionStatus::START},
      {ModelState::loading, tfs::ModelVersionStatus::LOADING},
      {ModelState::available, tfs::ModelVersionStatus::AVAILABLE},
      {ModelState::unloading, tfs::ModelVersionStatus::UNLOADING},
      {ModelState::end, tfs::ModelVersionStatus::END},
  };
  tfs::GetModelStatusRequest request;
  request.mutable_model_spec()->set_name("light");
  for (const auto& [state, expected] : states) {
    FaultSet faults;
    faults.model_state = state;
    tfs::GetModelStatusResponse response;
    ASSERT_TRUE(api_.get_model_status(request, faults, response).ok());
    ASSERT_EQ(response.model_version_status_size(), 1);
    EXPECT_EQ(response.model_version_status(0).state(), expected) << to_string(state);
    EXPECT_EQ(response.model_version_status(0).version(), 4);
  }
  request.mutable_model_spec()->set_name("");
  tfs::GetModelStatusResponse response;
  const auto status = api_.get_model_status(request, no_faults_, response);
  EXPECT_EQ(status.code, TfCode::invalid_argument);
  EXPECT_EQ(status.message, "Missing model name in request.");
}

TEST_F(GrpcApiTest, RegressUsesContextFeatures) {
  tfs::RegressionRequest request;
  request.mutable_model_spec()->set_name("main");
  auto* input = request.mutable_input()->mutable_example_list_with_context();
  (*input->mutable_context()->mutable_features()->mutable_feature())["x"]
      .mutable_float_list()
      ->add_value(10.0f);
  input->add_examples();  // takes x from the context
  (*input->add_examples()->mutable_features()->mutable_feature())["x"]
      .mutable_float_list()
      ->add_value(2.0f);  // its own x wins
  tfs::RegressionResponse response;
  ASSERT_TRUE(api_.regress(request, no_faults_, response).ok());
  ASSERT_EQ(response.result().regressions_size(), 2);
  EXPECT_EQ(response.result().regressions(0).value(), 7.0f);
  EXPECT_EQ(response.result().regressions(1).value(), 3.0f);

  request.mutable_input()->mutable_example_list();  // now an empty list
  const auto status = api_.regress(request, no_faults_, response);
  EXPECT_EQ(status.code, TfCode::invalid_argument);
  EXPECT_EQ(status.message, "Input is empty.");
}

}  // namespace
}  // namespace tfs_sim
