#include "sim/grpc_api.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "sim/tensor_json.h"

namespace tfs_sim {

namespace tf = tensorflow;
namespace tfs = tensorflow::serving;

namespace {

constexpr const char* kDefaultSignature = "serving_default";
constexpr const char* kPredictMethod = "tensorflow/serving/predict";
// Half a gigabyte of floats: the most tfs-sim agrees to materialise for one tensor (the gRPC
// message limit is about 2 GB; this only guards against shapes like [2^40] with one float_val).
constexpr std::int64_t kMaxElements = std::int64_t{1} << 27;

Route route_of(const tfs::ModelSpec& spec) {
  Route route;
  route.kind = RouteKind::predict;
  route.model = spec.name();
  if (spec.has_version()) route.version = spec.version().value();
  if (spec.version_choice_case() == tfs::ModelSpec::kVersionLabel) {
    route.label = spec.version_label();
  }
  return route;
}

// TF's DataTypeString() names, for error messages.
const char* dtype_name(int dtype) {
  static constexpr const char* kNames[] = {
      "INVALID",   "float",  "double",     "int32", "uint8",    "int16",   "int8",     "string",
      "complex64", "int64",  "bool",       "qint8", "quint8",   "qint32",  "bfloat16", "qint16",
      "quint16",   "uint16", "complex128", "half",  "resource", "variant", "uint32",   "uint64"};
  if (dtype >= 0 && dtype < static_cast<int>(std::size(kNames))) return kNames[dtype];
  return "unknown dtype";
}

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

// predict_util.cc: the request's input aliases must be exactly the signature's.
TfStatus check_input_aliases(const tfs::PredictRequest& request) {
  std::set<std::string> sent;
  for (const auto& [alias, tensor] : request.inputs()) sent.insert(alias);
  const std::set<std::string> expected = {kInputName};
  if (sent == expected) return {};
  std::set<std::string> extra;
  std::set<std::string> missing;
  std::set_difference(sent.begin(), sent.end(), expected.begin(), expected.end(),
                      std::inserter(extra, extra.end()));
  std::set_difference(expected.begin(), expected.end(), sent.begin(), sent.end(),
                      std::inserter(missing, missing.end()));
  return TfStatus::invalid_argument(
      "input size does not match signature: " + std::to_string(sent.size()) + "!=" +
      std::to_string(expected.size()) + " len({" + join(sent) + "}) != len({" + join(expected) +
      "}). Sent extra: {" + join(extra) + "}. Missing but required: {" + join(missing) + "}.");
}

TfStatus check_output_filter(const tfs::PredictRequest& request) {
  std::set<std::string> seen;
  for (const auto& alias : request.output_filter()) {
    if (alias != kOutputName) {
      return TfStatus::invalid_argument("output tensor alias not found in signature: " + alias +
                                        " Outputs expected to be in the set {" +
                                        std::string(kOutputName) + "}.");
    }
    if (!seen.insert(alias).second) {
      return TfStatus::invalid_argument("duplicate output tensor alias: " + alias);
    }
  }
  return {};
}

float float_from_le_bytes(const char* p) {
  std::uint32_t bits = 0;
  for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(p[i]);
  float value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Tensor::FromProto() for DT_FLOAT: a valid shape, then tensor_content (exact size) or
// float_val (missing values repeat the last one; none at all means zeros).
TfStatus read_float_tensor(const tf::TensorProto& proto, FloatTensor& out) {
  const TfStatus parse_error =
      TfStatus::invalid_argument(std::string("tensor parsing error: ") + kInputName);
  if (proto.dtype() != tf::DT_FLOAT) {
    if (proto.dtype() == tf::DT_INVALID) return parse_error;
    return TfStatus::invalid_argument(std::string("Expects arg[0] to be float but ") +
                                      dtype_name(proto.dtype()) + " is provided");
  }
  if (proto.tensor_shape().unknown_rank()) return parse_error;
  std::int64_t n = 1;
  out.shape.clear();
  for (const auto& dim : proto.tensor_shape().dim()) {
    if (dim.size() < 0) return parse_error;
    if (dim.size() > 0 && n > kMaxElements / dim.size()) return parse_error;
    n *= dim.size();
    out.shape.push_back(dim.size());
  }
  if (n > kMaxElements) return parse_error;
  const auto count = static_cast<std::size_t>(n);
  out.values.assign(count, 0.0f);
  const std::string& content = proto.tensor_content();
  if (!content.empty()) {
    if (content.size() != count * sizeof(float)) return parse_error;
    for (std::size_t i = 0; i < count; ++i) {
      out.values[i] = float_from_le_bytes(content.data() + i * sizeof(float));
    }
    return {};
  }
  const auto given = static_cast<std::size_t>(proto.float_val_size());
  if (given == 0) return {};
  for (std::size_t i = 0; i < count; ++i) {
    out.values[i] = proto.float_val(static_cast<int>(std::min(i, given - 1)));
  }
  return {};
}

void write_float_tensor(const FloatTensor& tensor, tf::TensorProto& out) {
  out.set_dtype(tf::DT_FLOAT);
  for (const auto size : tensor.shape) out.mutable_tensor_shape()->add_dim()->set_size(size);
  out.mutable_float_val()->Reserve(static_cast<int>(tensor.values.size()));
  for (const float v : tensor.values) out.add_float_val(v);
}

void set_model_spec(tfs::ModelSpec& spec, const std::string& name, std::int64_t version,
                    const std::string& signature) {
  spec.set_name(name);
  spec.mutable_version()->set_value(version);
  spec.set_signature_name(signature);
}

tf::TensorInfo tensor_info(const char* graph_name) {
  tf::TensorInfo info;
  info.set_name(graph_name);
  info.set_dtype(tf::DT_FLOAT);
  info.mutable_tensor_shape()->add_dim()->set_size(-1);
  return info;
}

// The feature "x" of one example: example features win over the context's.
const tf::Feature* find_x(const tf::Example& example, const tf::Example* context) {
  const auto& features = example.features().feature();
  if (const auto it = features.find(kInputName); it != features.end()) return &it->second;
  if (context != nullptr) {
    const auto& shared = context->features().feature();
    if (const auto it = shared.find(kInputName); it != shared.end()) return &it->second;
  }
  return nullptr;
}

// ParseExample's checks for a required scalar float feature, with its texts.
TfStatus x_value(std::size_t index, const tf::Feature* x, float& out) {
  const std::string where = "Name: <unknown>, Key: x, Index: " + std::to_string(index) + ".  ";
  if (x == nullptr || x->kind_case() == tf::Feature::KIND_NOT_SET) {
    return TfStatus::invalid_argument(
        "Name: <unknown>, Feature: x (data type: float) is required but could not be found.");
  }
  if (x->kind_case() != tf::Feature::kFloatList) {
    return TfStatus::invalid_argument(
        where + "Data types don't match. Data type: " +
        (x->kind_case() == tf::Feature::kInt64List ? "int64" : "string") +
        " but expected type: float");
  }
  if (x->float_list().value_size() != 1) {
    return TfStatus::invalid_argument(where + "Number of float values != expected.  Values size: " +
                                      std::to_string(x->float_list().value_size()) +
                                      " but output shape: [1]");
  }
  out = x->float_list().value(0);
  return {};
}

tfs::ModelVersionStatus::State proto_state(ModelState state) {
  switch (state) {
    case ModelState::unknown:
      return tfs::ModelVersionStatus::UNKNOWN;
    case ModelState::start:
      return tfs::ModelVersionStatus::START;
    case ModelState::loading:
      return tfs::ModelVersionStatus::LOADING;
    case ModelState::available:
      return tfs::ModelVersionStatus::AVAILABLE;
    case ModelState::unloading:
      return tfs::ModelVersionStatus::UNLOADING;
    case ModelState::end:
      return tfs::ModelVersionStatus::END;
  }
  return tfs::ModelVersionStatus::UNKNOWN;
}

}  // namespace

TfStatus GrpcApi::predict(const tfs::PredictRequest& request, const FaultSet& faults,
                          tfs::PredictResponse& response) const {
  const auto& spec = request.model_spec();
  LinearModel model;
  std::int64_t version = 0;
  if (auto status = rest_.resolve_servable(route_of(spec), faults, model, version); !status.ok()) {
    return status;
  }
  const std::string& signature = spec.signature_name();
  if (!signature.empty() && signature != kDefaultSignature) {
    return TfStatus::invalid_argument("Serving signature name: \"" + signature +
                                      "\" not found in signature def");
  }
  if (auto status = check_input_aliases(request); !status.ok()) return status;
  if (auto status = check_output_filter(request); !status.ok()) return status;
  FloatTensor tensor;
  if (auto status = read_float_tensor(request.inputs().at(kInputName), tensor); !status.ok()) {
    return status;
  }
  model.apply_in_place(tensor.values);
  set_model_spec(*response.mutable_model_spec(), spec.name(), version, kDefaultSignature);
  write_float_tensor(tensor, (*response.mutable_outputs())[kOutputName]);
  return {};
}

TfStatus GrpcApi::run_examples(const tfs::ModelSpec& spec, const tfs::Input& input,
                               const FaultSet& faults, const char* own_signature,
                               tfs::ModelSpec& served, std::vector<float>& ys) const {
  LinearModel model;
  std::int64_t version = 0;
  if (auto status = rest_.resolve_servable(route_of(spec), faults, model, version); !status.ok()) {
    return status;
  }
  const std::string& signature = spec.signature_name();
  if (!signature.empty() && signature != kDefaultSignature && signature != own_signature) {
    return TfStatus::invalid_argument("No signature was found with the name: " + signature);
  }
  const tf::Example* context = nullptr;
  const google::protobuf::RepeatedPtrField<tf::Example>* examples = nullptr;
  switch (input.kind_case()) {
    case tfs::Input::kExampleList:
      examples = &input.example_list().examples();
      break;
    case tfs::Input::kExampleListWithContext:
      examples = &input.example_list_with_context().examples();
      context = &input.example_list_with_context().context();
      break;
    case tfs::Input::KIND_NOT_SET:
      break;
  }
  if (examples == nullptr || examples->empty()) {
    return TfStatus::invalid_argument("Input is empty.");
  }
  ys.clear();
  for (int i = 0; i < examples->size(); ++i) {
    float x = 0;
    if (auto status = x_value(static_cast<std::size_t>(i), find_x(examples->Get(i), context), x);
        !status.ok()) {
      return status;
    }
    ys.push_back(model.apply(x));
  }
  set_model_spec(served, spec.name(), version,
                 spec.signature_name().empty() ? kDefaultSignature : spec.signature_name());
  return {};
}

TfStatus GrpcApi::classify(const tfs::ClassificationRequest& request, const FaultSet& faults,
                           tfs::ClassificationResponse& response) const {
  std::vector<float> ys;
  if (auto status = run_examples(request.model_spec(), request.input(), faults, "classify_x_to_y",
                                 *response.mutable_model_spec(), ys);
      !status.ok()) {
    return status;
  }
  for (const float y : ys) {
    auto* c = response.mutable_result()->add_classifications()->add_classes();
    c->set_label("");
    c->set_score(y);
  }
  return {};
}

TfStatus GrpcApi::regress(const tfs::RegressionRequest& request, const FaultSet& faults,
                          tfs::RegressionResponse& response) const {
  std::vector<float> ys;
  if (auto status = run_examples(request.model_spec(), request.input(), faults, "regress_x_to_y",
                                 *response.mutable_model_spec(), ys);
      !status.ok()) {
    return status;
  }
  for (const float y : ys) response.mutable_result()->add_regressions()->set_value(y);
  return {};
}

TfStatus GrpcApi::multi_inference(const tfs::MultiInferenceRequest& /*request*/,
                                  const FaultSet& /*faults*/,
                                  tfs::MultiInferenceResponse& /*response*/) const {
  return {TfCode::unimplemented,
          "MultiInference is not implemented by tfs-sim; use Classify or Regress"};
}

TfStatus GrpcApi::get_model_metadata(const tfs::GetModelMetadataRequest& request,
                                     const FaultSet& faults,
                                     tfs::GetModelMetadataResponse& response) const {
  // get_model_metadata_impl.cc: the fields are checked before the model is looked up.
  if (request.metadata_field().empty()) {
    return TfStatus::invalid_argument(
        "GetModelMetadataRequest must specify at least one metadata_field");
  }
  for (const auto& field : request.metadata_field()) {
    if (field != "signature_def") {
      return TfStatus::invalid_argument("Metadata field " + field + " is not supported");
    }
  }
  const auto& spec = request.model_spec();
  LinearModel model;
  std::int64_t version = 0;
  if (auto status = rest_.resolve_servable(route_of(spec), faults, model, version); !status.ok()) {
    return status;
  }
  response.mutable_model_spec()->set_name(spec.name());
  response.mutable_model_spec()->mutable_version()->set_value(version);
  tfs::SignatureDefMap signatures;
  tf::SignatureDef& def = (*signatures.mutable_signature_def())[kDefaultSignature];
  (*def.mutable_inputs())[kInputName] = tensor_info("x:0");
  (*def.mutable_outputs())[kOutputName] = tensor_info("y:0");
  def.set_method_name(kPredictMethod);
  // Any::PackFrom writes the same type URL TF Serving uses.
  (*response.mutable_metadata())["signature_def"].PackFrom(signatures);
  return {};
}

TfStatus GrpcApi::get_model_status(const tfs::GetModelStatusRequest& request,
                                   const FaultSet& faults,
                                   tfs::GetModelStatusResponse& response) const {
  const auto lookup = rest_.lookup_status(route_of(request.model_spec()), faults);
  if (!lookup.error.ok()) return lookup.error;
  auto* status = response.add_model_version_status();
  status->set_version(lookup.version);
  status->set_state(proto_state(lookup.state));
  status->mutable_status()->set_error_code(tf::error::OK);
  status->mutable_status()->set_error_message("");
  return {};
}

}  // namespace tfs_sim
