#include "fusebox/metrics/grpc_metrics.h"

#include <gtest/gtest.h>

#include "fusebox/metrics/family_builder.h"

namespace fusebox::metrics {
namespace {

std::string exposition(const GrpcMetrics& m) {
  std::vector<prometheus::MetricFamily> families;
  m.collect(families);
  return serialize(families);
}

TEST(GrpcMetrics, CountsByRouteMethodAndCodeName) {
  GrpcMetrics m({"resnet", "bert"}, 2);
  m.record(0, 0, "/tensorflow.serving.PredictionService/Predict", 0, 0.010);
  m.record(1, 0, "/tensorflow.serving.PredictionService/Predict", 0, 0.020);
  m.record(0, 1, "/tensorflow.serving.ModelService/GetModelStatus", 14, 0.001);
  m.record(0, 2, "/tensorflow.serving.PredictionService/Predict", 5, 0.001);  // unmatched
  m.record(0, 0, "/other.Service/Thing", 12, 0.001);
  m.record(0, 0, "/tensorflow.serving.PredictionService/Predict", 99, 0.001);  // bad code
  auto text = exposition(m);
  EXPECT_NE(text.find(R"(fusebox_grpc_requests_total{route="resnet",method="Predict",code="OK"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(fusebox_grpc_requests_total{route="bert",method="GetModelStatus",code="UNAVAILABLE"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(fusebox_grpc_requests_total{route="unmatched",method="Predict",code="NOT_FOUND"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(fusebox_grpc_requests_total{route="resnet",method="other",code="UNIMPLEMENTED"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(fusebox_grpc_requests_total{route="resnet",method="Predict",code="UNKNOWN"} 1)"),
            std::string::npos);
  EXPECT_EQ(text.find(R"(code="DATA_LOSS")"), std::string::npos) << "zero series are left out";
  EXPECT_NE(text.find(R"(fusebox_grpc_request_duration_seconds_count{route="resnet"} 4)"),
            std::string::npos);
}

}  // namespace
}  // namespace fusebox::metrics
