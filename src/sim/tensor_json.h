#pragma once
// TF Serving's util/json_tensor.cc for the one signature tfs-sim serves (input "x", output "y",
// both DT_FLOAT): request JSON -> float tensor with TF's validation and error texts, and tensors
// -> response JSON in TF's layout. Pure; no I/O.

#include <cstdint>
#include <string>
#include <vector>

#include "sim/model.h"
#include "sim/tf_json.h"

namespace tfs_sim {

inline constexpr const char* kInputName = "x";
inline constexpr const char* kOutputName = "y";

struct FloatTensor {
  std::vector<std::int64_t> shape;  // empty: scalar
  std::vector<float> values;        // row-major
};

enum class PredictFormat { row, columnar };

struct PredictInput {
  PredictFormat format = PredictFormat::row;
  FloatTensor x;  // row format: shape[0] is the number of instances
};

// ParseJson()'s "We expect top level JSON to be an object" check, after a successful parse.
TfStatus check_request_is_object(JsonRef root);

// FillSignature(): the optional "signature_name" (must be a string). Empty when absent.
TfStatus read_signature_name(JsonRef root, std::string& signature_name);

// The "instances" (row) or "inputs" (columnar) part of FillPredictRequestFromJson(), after the
// model and signature were resolved.
TfStatus read_predict_input(JsonRef root, PredictInput& out);

// MakeJsonFromTensors() for output "y": {"predictions": [...]} for row requests (one entry per
// instance), {"outputs": ...} for columnar ones.
std::string write_predict_response(PredictFormat format, const FloatTensor& y, JsonStyle style);

// FillClassifyRegressRequestFromJson() plus the tf.Example parsing of the model's input
// (feature "x": exactly one float per example; "context" features apply to every example).
// `method` is "classify" or "regress" (TF's message says "classify" for both).
TfStatus read_examples(JsonRef root, std::vector<float>& xs);

// {"results": [[["", score]], ...]} (classify) and {"results": [v, ...]} (regress).
std::string write_classify_response(const std::vector<float>& scores, JsonStyle style);
std::string write_regress_response(const std::vector<float>& values, JsonStyle style);

// The {"error": message} body TF sends with every failed request (MakeJsonFromStatus()).
// compact style: { "error": "..." } (TF Serving 1.x spelling); tfserving: PrettyWriter layout.
std::string write_error_body(std::string_view message, JsonStyle style);

}  // namespace tfs_sim
