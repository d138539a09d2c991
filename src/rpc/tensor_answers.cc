#include "fusebox/rpc/tensor_answers.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusebox/common/utf8.h"
#include "tensorflow_serving/apis/classification.pb.h"
#include "tensorflow_serving/apis/get_model_metadata.pb.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"
#include "tensorflow_serving/apis/inference.pb.h"
#include "tensorflow_serving/apis/predict.pb.h"
#include "tensorflow_serving/apis/regression.pb.h"

namespace fusebox::rpc {

namespace {

using nlohmann::json;
namespace tf = tensorflow;
namespace tfs = tensorflow::serving;

constexpr std::string_view kDefaultSignature = "serving_default";

// TensorShape's limit on dimensions.
constexpr int kMaxRank = 254;

// ---- Messages ----------------------------------------------------------------------------

std::unique_ptr<google::protobuf::Message> request_message(std::string_view method) {
  if (method == kPredictMethod) return std::make_unique<tfs::PredictRequest>();
  if (method == kClassifyMethod) return std::make_unique<tfs::ClassificationRequest>();
  if (method == kRegressMethod) return std::make_unique<tfs::RegressionRequest>();
  if (method == kMultiInferenceMethod) return std::make_unique<tfs::MultiInferenceRequest>();
  if (method == kGetModelMetadataMethod) return std::make_unique<tfs::GetModelMetadataRequest>();
  if (method == kGetModelStatusMethod) return std::make_unique<tfs::GetModelStatusRequest>();
  return nullptr;
}

bool parse_message(std::string_view bytes, google::protobuf::Message& message) {
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// `prefix` followed by `message` serialized with map entries sorted by key.
std::optional<std::string> serialize_deterministic(const google::protobuf::Message& message,
                                                   std::string prefix) {
  std::string out = std::move(prefix);
  bool ok = false;
  {
    // The stream appends to `out`; the coded stream must be gone before `out` is read.
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    ok = message.SerializeToCodedStream(&coded) && !coded.HadError();
  }
  if (!ok) return std::nullopt;
  return out;
}

// ---- Base64 (standard alphabet, as TF Serving's {"b64": ...}) ------------------------------

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out += kBase64Alphabet[(n >> shift) & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    const std::uint32_t n = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Padding is optional (absl::Base64Unescape, which TF Serving uses, accepts both); anything
// outside the alphabet, whitespace included, is an error.
std::optional<std::string> base64_decode(std::string_view text) {
  std::size_t padding = 0;
  while (padding < 2 && !text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (padding > 0 && (text.size() + padding) % 4 != 0) return std::nullopt;
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (char c : text) {
    const std::size_t digit = kBase64Alphabet.find(c);
    if (digit == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(digit);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out += static_cast<char>((bits >> bit_count) & 0xFF);
    }
  }
  return out;
}

// ---- TensorProto -> JSON -----------------------------------------------------------------

// The shortest decimal that reads back to the same float, as a double: 0.1f -> 0.1 rather than
// 0.10000000149011612, so the JSON says what the client wrote.
double shortest_double(float value) {
  if (!std::isfinite(value)) return static_cast<double>(value);  // dumped as null
  char text[32];
  const auto written = std::to_chars(text, text + sizeof text, value);
  double widened = static_cast<double>(value);
  std::from_chars(text, written.ptr, widened);
  return widened;
}

json string_json(const std::string& bytes) {
  if (is_valid_utf8(bytes)) return bytes;
  json b64 = json::object();
  b64["b64"] = base64_encode(bytes);
  return b64;
}

template <typename T>
json element_json(const T& value) {
  if constexpr (std::is_same_v<T, float>) {
    return shortest_double(value);
  } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, bool>) {
    return value;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return string_json(value);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<std::int64_t>(value);
  } else {
    return static_cast<std::uint64_t>(value);
  }
}

template <typename T>
T load_little_endian(const unsigned char* p) {
  if constexpr (std::is_same_v<T, bool>) {
    return p[0] != 0;
  } else {
    using Bits = std::conditional_t<
        sizeof(T) == 1, std::uint8_t,
        std::conditional_t<sizeof(T) == 2, std::uint16_t,
                           std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    Bits bits = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) bits = static_cast<Bits>((bits << 8) | p[i]);
    return std::bit_cast<T>(bits);
  }
}

// The `count` elements of `tensor` read as TensorFlow reads them (Tensor::FromProto):
// tensor_content when present (exactly count elements), else the typed field, completed with
// its last value, or with zeros when it is empty; values beyond `count` are ignored.
template <typename T, typename Field>
std::optional<std::vector<json>> values_of(const tf::TensorProto& tensor, const Field& field,
                                           std::int64_t count) {
  std::vector<json> values;
  if (count == 0) return values;  // TF reads nothing for an empty shape
  values.reserve(static_cast<std::size_t>(count));
  const std::string& content = tensor.tensor_content();
  if (!content.empty()) {
    if constexpr (std::is_arithmetic_v<T>) {
      if (content.size() != static_cast<std::size_t>(count) * sizeof(T)) return std::nullopt;
      const auto* p = reinterpret_cast<const unsigned char*>(content.data());
      for (std::int64_t i = 0; i < count; ++i) {
        values.push_back(element_json(load_little_endian<T>(p + i * sizeof(T))));
      }
      return values;
    } else {
      return std::nullopt;  // strings in tensor_content have TF's own framing; not read
    }
  }
  const std::int64_t given = field.size();
  for (std::int64_t i = 0; i < count; ++i) {
    if (given == 0) {
      values.push_back(element_json(T{}));
    } else {
      const int at = static_cast<int>(std::min(i, given - 1));
      values.push_back(element_json(static_cast<T>(field.Get(at))));
    }
  }
  return values;
}

std::optional<std::vector<json>> tensor_values(const tf::TensorProto& t, std::int64_t count) {
  switch (t.dtype()) {
    case tf::DT_FLOAT:
      return values_of<float>(t, t.float_val(), count);
    case tf::DT_DOUBLE:
      return values_of<double>(t, t.double_val(), count);
    case tf::DT_INT32:
      return values_of<std::int32_t>(t, t.int_val(), count);
    case tf::DT_INT16:
      return values_of<std::int16_t>(t, t.int_val(), count);
    case tf::DT_INT8:
      return values_of<std::int8_t>(t, t.int_val(), count);
    case tf::DT_UINT8:
      return values_of<std::uint8_t>(t, t.int_val(), count);
    case tf::DT_UINT16:
      return values_of<std::uint16_t>(t, t.int_val(), count);
    case tf::DT_INT64:
      return values_of<std::int64_t>(t, t.int64_val(), count);
    case tf::DT_UINT32:
      return values_of<std::uint32_t>(t, t.uint32_val(), count);
    case tf::DT_UINT64:
      return values_of<std::uint64_t>(t, t.uint64_val(), count);
    case tf::DT_BOOL:
      return values_of<bool>(t, t.bool_val(), count);
    case tf::DT_STRING:
      return values_of<std::string>(t, t.string_val(), count);
    default:
      return std::nullopt;
  }
}

struct Dims {
  std::vector<std::int64_t> sizes;
  std::int64_t elements = 1;
};

// The dimensions of a shape TensorFlow accepts, charging its JSON values (every nested list and
// every element) to `budget`; nullopt when invalid or over budget.
std::optional<Dims> dims_of(const tf::TensorShapeProto& shape, std::int64_t& budget) {
  if (shape.unknown_rank() || shape.dim_size() > kMaxRank) return std::nullopt;
  Dims dims;
  std::int64_t values = 1;  // the outermost value
  for (const auto& dim : shape.dim()) {
    const std::int64_t size = dim.size();
    if (size < 0) return std::nullopt;
    if (size > 0 && dims.elements > budget / size) return std::nullopt;
    dims.elements *= size;
    values += dims.elements;
    dims.sizes.push_back(size);
  }
  if (values > budget) return std::nullopt;
  budget -= values;
  return dims;
}

json nest(std::vector<json>& flat, const std::vector<std::int64_t>& sizes, std::size_t depth,
          std::size_t& next) {
  if (depth == sizes.size()) return std::move(flat[next++]);
  json list = json::array();
  for (std::int64_t i = 0; i < sizes[depth]; ++i) {
    list.push_back(nest(flat, sizes, depth + 1, next));
  }
  return list;
}

// The tensor as TF Serving's REST API writes it: a scalar or nested lists.
std::optional<json> tensor_json(const tf::TensorProto& tensor, std::int64_t& budget) {
  const auto dims = dims_of(tensor.tensor_shape(), budget);
  if (!dims) return std::nullopt;
  auto flat = tensor_values(tensor, dims->elements);
  if (!flat) return std::nullopt;
  std::size_t next = 0;
  return nest(*flat, dims->sizes, 0, next);
}

// The instance count of the row view: the first dimension every input shares (inputs of rank 0,
// or an empty batch, have no row form).
std::optional<std::int64_t> row_batch(const tfs::PredictRequest& request) {
  std::optional<std::int64_t> batch;
  for (const auto& [name, tensor] : request.inputs()) {
    const auto& shape = tensor.tensor_shape();
    if (shape.unknown_rank() || shape.dim_size() == 0) return std::nullopt;
    const std::int64_t first = shape.dim(0).size();
    if (first <= 0 || (batch && *batch != first)) return std::nullopt;
    batch = first;
  }
  return batch;
}

// ---- JSON -> TensorProto -----------------------------------------------------------------

bool is_b64_object(const json& value) {
  if (!value.is_object() || value.size() != 1) return false;
  const auto b64 = value.find("b64");
  return b64 != value.end() && b64->is_string();
}

bool is_plain_object(const json& value) { return value.is_object() && !is_b64_object(value); }

// A JSON number as a float; nullopt when it would overflow to infinity.
std::optional<float> to_float(double value) {
  constexpr double kMax = std::numeric_limits<float>::max();
  // Up to half a unit in the last place above FLT_MAX still rounds to FLT_MAX.
  const double limit = kMax + std::ldexp(1.0, std::numeric_limits<float>::max_exponent - 25);
  if (std::fabs(value) >= limit) return std::nullopt;
  if (std::fabs(value) > kMax) return static_cast<float>(std::copysign(kMax, value));
  return static_cast<float>(value);
}

enum class LeafKind : std::uint8_t { none, number, boolean, string };

bool append_leaf(const json& leaf, tf::TensorProto& tensor, LeafKind& kind) {
  LeafKind leaf_kind = LeafKind::none;
  if (leaf.is_number()) {
    leaf_kind = LeafKind::number;
  } else if (leaf.is_boolean()) {
    leaf_kind = LeafKind::boolean;
  } else if (leaf.is_string() || is_b64_object(leaf)) {
    leaf_kind = LeafKind::string;
  } else {
    return false;  // null, or an object that is not a value
  }
  if (kind != LeafKind::none && kind != leaf_kind) return false;
  kind = leaf_kind;
  switch (leaf_kind) {
    case LeafKind::number: {
      const auto value = to_float(leaf.get<double>());
      if (!value) return false;
      tensor.add_float_val(*value);
      return true;
    }
    case LeafKind::boolean:
      tensor.add_bool_val(leaf.get<bool>());
      return true;
    case LeafKind::string: {
      if (leaf.is_string()) {
        tensor.add_string_val(leaf.get_ref<const std::string&>());
        return true;
      }
      auto bytes = base64_decode(leaf.find("b64")->get_ref<const std::string&>());
      if (!bytes) return false;
      tensor.add_string_val(std::move(*bytes));
      return true;
    }
    case LeafKind::none:
      break;
  }
  return false;
}

bool append_values(const json& node, const std::vector<std::int64_t>& sizes, std::size_t depth,
                   tf::TensorProto& tensor, LeafKind& kind) {
  if (depth == sizes.size()) return append_leaf(node, tensor, kind);
  if (!node.is_array() || static_cast<std::int64_t>(node.size()) != sizes[depth]) return false;
  for (const json& child : node) {
    if (!append_values(child, sizes, depth + 1, tensor, kind)) return false;
  }
  return true;
}

// A scalar or nested lists of equal length at every level as one tensor; nullopt when ragged,
// mixed or not a value.
std::optional<tf::TensorProto> tensor_from_json(const json& value) {
  std::vector<std::int64_t> sizes;
  for (const json* node = &value; node->is_array(); node = &node->front()) {
    if (sizes.size() == static_cast<std::size_t>(kMaxRank)) return std::nullopt;
    sizes.push_back(static_cast<std::int64_t>(node->size()));
    if (node->empty()) break;
  }
  tf::TensorProto tensor;
  for (std::int64_t size : sizes) tensor.mutable_tensor_shape()->add_dim()->set_size(size);
  LeafKind kind = LeafKind::none;
  if (!append_values(value, sizes, 0, tensor, kind)) return std::nullopt;
  tensor.set_dtype(kind == LeafKind::boolean  ? tf::DT_BOOL
                   : kind == LeafKind::string ? tf::DT_STRING
                                              : tf::DT_FLOAT);
  return tensor;
}

using Outputs = google::protobuf::Map<std::string, tf::TensorProto>;

bool add_output(Outputs& outputs, const std::string& name, const json& value) {
  auto tensor = tensor_from_json(value);
  if (!tensor) return false;
  outputs[name] = std::move(*tensor);
  return true;
}

// {"predictions": [...]}: N entries, each a value (one output) or an object (one output per
// key), stacked along a new first dimension.
bool outputs_from_predictions(json& predictions, const std::string& output_name, Outputs& outputs) {
  if (!is_plain_object(predictions.front())) return add_output(outputs, output_name, predictions);
  std::vector<std::string> keys;
  for (const auto& item : predictions.front().items()) keys.push_back(item.key());
  if (keys.empty()) return false;
  for (const json& p : predictions) {
    if (!is_plain_object(p) || p.size() != keys.size()) return false;
  }
  for (const std::string& key : keys) {
    json column = json::array();
    for (json& p : predictions) {
      const auto it = p.find(key);
      if (it == p.end()) return false;
      column.push_back(std::move(*it));
    }
    if (!add_output(outputs, key, column)) return false;
  }
  return true;
}

// {"outputs": v}: an object is one output per key, anything else one output.
bool outputs_from_columns(const json& columns, const std::string& output_name, Outputs& outputs) {
  if (!is_plain_object(columns)) return add_output(outputs, output_name, columns);
  if (columns.empty()) return false;
  for (const auto& [key, value] : columns.items()) {
    if (!add_output(outputs, key, value)) return false;
  }
  return true;
}

// Keeps only the outputs the request asked for; false when one of them is missing.
bool apply_output_filter(const tfs::PredictRequest& request, Outputs& outputs) {
  if (request.output_filter().empty()) return true;
  const std::set<std::string> wanted(request.output_filter().begin(),
                                     request.output_filter().end());
  for (const std::string& name : wanted) {
    if (outputs.find(name) == outputs.end()) return false;
  }
  for (auto it = outputs.begin(); it != outputs.end();) {
    it = wanted.count(it->first) != 0 ? std::next(it) : outputs.erase(it);
  }
  return true;
}

std::optional<std::string> build_predict_response(std::string_view request_bytes,
                                                  std::string_view answer_json,
                                                  const std::string& output_name_hint) {
  tfs::PredictRequest request;
  if (!parse_message(request_bytes, request)) return std::nullopt;
  json answer = json::parse(answer_json, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded() || !answer.is_object()) return std::nullopt;
  const auto predictions = answer.find("predictions");
  const auto columns = answer.find("outputs");
  if ((predictions == answer.end()) == (columns == answer.end())) return std::nullopt;

  const std::string output_name =
      output_name_hint.empty() ? std::string(kDefaultRulesOutputName) : output_name_hint;
  tfs::PredictResponse response;
  Outputs& outputs = *response.mutable_outputs();
  if (predictions != answer.end()) {
    const auto batch = row_batch(request);
    if (!predictions->is_array() || predictions->empty() || !batch ||
        static_cast<std::int64_t>(predictions->size()) != *batch) {
      return std::nullopt;
    }
    if (!outputs_from_predictions(*predictions, output_name, outputs)) return std::nullopt;
  } else if (!outputs_from_columns(*columns, output_name, outputs)) {
    return std::nullopt;
  }
  if (!apply_output_filter(request, outputs)) return std::nullopt;

  *response.mutable_model_spec() = request.model_spec();
  if (response.model_spec().signature_name().empty()) {
    response.mutable_model_spec()->set_signature_name(std::string(kDefaultSignature));
  }
  return serialize_deterministic(response, {});
}

std::optional<std::string> build_rules_view(std::string_view request_bytes) {
  tfs::PredictRequest request;
  if (!parse_message(request_bytes, request) || request.inputs().empty()) return std::nullopt;
  std::int64_t budget = kMaxRulesViewValues;
  json inputs = json::object();  // sorted by name, so the view does not depend on map order
  for (const auto& [name, tensor] : request.inputs()) {
    auto value = tensor_json(tensor, budget);
    if (!value) return std::nullopt;
    inputs[name] = std::move(*value);
  }

  json view = json::object();
  if (!request.model_spec().signature_name().empty()) {
    view["signature_name"] = request.model_spec().signature_name();
  }
  if (const auto batch = row_batch(request)) {
    json instances = json::array();
    for (std::int64_t i = 0; i < *batch; ++i) {
      const auto row = static_cast<std::size_t>(i);
      if (inputs.size() == 1) {
        instances.push_back(std::move(inputs.begin().value()[row]));
        continue;
      }
      json instance = json::object();
      for (auto& [name, value] : inputs.items()) instance[name] = std::move(value[row]);
      instances.push_back(std::move(instance));
    }
    view["instances"] = std::move(instances);
  } else {
    view["inputs"] = std::move(inputs);
  }
  return view.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::optional<std::string> deterministic_request_key(std::string_view method,
                                                     std::string_view request_bytes) {
  try {
    auto message = request_message(method);
    if (!message || !parse_message(request_bytes, *message)) return std::nullopt;
    std::string prefix(method);
    prefix += '\n';
    return serialize_deterministic(*message, std::move(prefix));
  } catch (...) {
    return std::nullopt;  // allocation failure: no key, the cache is passed over
  }
}

std::optional<std::string> rules_json_view(std::string_view method,
                                           std::string_view request_bytes) {
  if (method != kPredictMethod) return std::nullopt;
  try {
    return build_rules_view(request_bytes);
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::string> predict_response_from_rules(std::string_view request_bytes,
                                                       std::string_view answer_json,
                                                       const std::string& output_name_hint) {
  try {
    return build_predict_response(request_bytes, answer_json, output_name_hint);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace fusebox::rpc
