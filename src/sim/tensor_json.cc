#include "sim/tensor_json.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>

namespace tfs_sim {

namespace {

constexpr const char* kDtypeName = "float";  // DataTypeString(DT_FLOAT)

std::string format_error(JsonRef value, std::string_view what) {
  std::string m = "JSON Value: " + json_value_to_string(value) + " ";
  m.append(what);
  return m;
}

TfStatus type_error(JsonRef value) {
  return TfStatus::invalid_argument("JSON Value: " + json_value_to_string(value) +
                                    " Type: " + json_type_name(value.type()) +
                                    " is not of expected type: " + kDtypeName);
}

TfStatus lossy_decimal_error(JsonRef value) {
  return TfStatus::invalid_argument("Cannot convert JSON value: " + json_value_to_string(value) +
                                    " to float without loss of precision.");
}

// IsLosslessDecimal<float>(): integers up to 2^24 - 1 in magnitude, decimals within float range.
bool is_lossless_float(JsonRef v) {
  static constexpr std::uint64_t kMaxInt = (1ULL << std::numeric_limits<float>::digits) - 1;
  const double d = v.as_double();
  if (!std::isfinite(d)) return true;
  switch (v.number_kind()) {
    case NumberKind::uint64:
      return v.as_uint64() <= kMaxInt;
    case NumberKind::int64: {
      const std::int64_t i = v.as_int64();
      const std::uint64_t magnitude =
          i < 0 ? 0 - static_cast<std::uint64_t>(i) : static_cast<std::uint64_t>(i);
      return magnitude <= kMaxInt;
    }
    case NumberKind::real:
      return d <= std::numeric_limits<float>::max() && d >= std::numeric_limits<float>::lowest();
  }
  return false;
}

// rapidjson GetFloat(): the double narrowed to float.
float to_float(JsonRef v) { return static_cast<float>(v.as_double()); }

bool is_b64_object(JsonRef v) {
  if (!v.is_object() || v.size() != 1) return false;
  const auto b64 = v.find("b64");
  return b64 && b64->is_string();
}

bool is_element_object(JsonRef v) { return v.is_object() && !is_b64_object(v); }

// GetDenseTensorShape(): dimensions taken from the first element at every level.
void dense_shape(JsonRef v, std::vector<std::int64_t>& shape) {
  while (v.is_array()) {
    shape.push_back(static_cast<std::int64_t>(v.size()));
    if (v.size() == 0) return;
    v = v.element(0);
  }
}

std::string shape_to_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// FillTensorProto() for DT_FLOAT.
TfStatus fill_tensor(JsonRef v, int level, const std::vector<std::int64_t>& shape,
                     std::vector<float>& values, int& count) {
  const int rank = static_cast<int>(shape.size());
  if (!v.is_array()) {
    if (level != rank) {
      return TfStatus::invalid_argument(
          "JSON Value: " + json_value_to_string(v) +
          " found at incorrect level: " + std::to_string(level + 1) +
          " in the JSON DOM. Expected at level: " + std::to_string(rank));
    }
    if (v.is_object() || !v.is_number()) return type_error(v);
    if (!is_lossless_float(v)) return lossy_decimal_error(v);
    values.push_back(to_float(v));
    ++count;
    return {};
  }
  if (level >= rank) {
    return TfStatus::invalid_argument(
        "Encountered list at unexpected level: " + std::to_string(level) + " expected < " +
        std::to_string(rank));
  }
  if (static_cast<std::int64_t>(v.size()) != shape[static_cast<std::size_t>(level)]) {
    return TfStatus::invalid_argument(
        "Encountered list at unexpected size: " + std::to_string(v.size()) +
        " at level: " + std::to_string(level) +
        " expected size: " + std::to_string(shape[static_cast<std::size_t>(level)]));
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto status = fill_tensor(v.element(i), level + 1, shape, values, count);
    if (!status.ok()) return status;
  }
  return {};
}

// AddInstanceItem() for the single input: every instance must have the first one's size/shape.
struct InstanceBatch {
  bool have_first = false;
  int first_size = 0;
  std::vector<std::int64_t> first_shape;
  std::vector<float> values;
};

TfStatus add_instance_item(JsonRef item, std::string_view name, InstanceBatch& batch) {
  if (name != kInputName) {
    return TfStatus::invalid_argument("JSON object: does not have named input: " +
                                      std::string(name));
  }
  std::vector<std::int64_t> shape;
  dense_shape(item, shape);
  int size = 0;
  auto status = fill_tensor(item, 0, shape, batch.values, size);
  if (!status.ok()) return status;
  if (!batch.have_first) {
    batch.have_first = true;
    batch.first_size = size;
    batch.first_shape = shape;
  } else if (batch.first_size != size) {
    return TfStatus::invalid_argument("Expecting tensor size: " + std::to_string(batch.first_size) +
                                      " but got: " + std::to_string(size));
  } else if (batch.first_shape != shape) {
    return TfStatus::invalid_argument("Expecting shape " + shape_to_string(batch.first_shape) +
                                      " but got: " + shape_to_string(shape));
  }
  return {};
}

TfStatus read_instances(JsonRef instances, PredictInput& out) {
  const bool elements_are_objects = is_element_object(instances.element(0));
  InstanceBatch batch;
  for (std::size_t n = 0; n < instances.size(); ++n) {
    const JsonRef elem = instances.element(n);
    const std::string item = std::to_string(n);
    if (elements_are_objects) {
      if (!is_element_object(elem)) {
        return TfStatus::invalid_argument("Expecting object but got list at item " + item +
                                          " of input list");
      }
      std::set<std::string> keys;
      for (std::size_t i = 0; i < elem.size(); ++i) {
        const std::string name(elem.member_name(i));
        keys.insert(name);
        auto status = add_instance_item(elem.member_value(i), name, batch);
        if (!status.ok()) {
          return TfStatus::invalid_argument("Failed to process element: " + item + " key: " + name +
                                            " of 'instances' list. Error: " + status.to_string());
        }
      }
      if (keys != std::set<std::string>{kInputName}) {
        return TfStatus::invalid_argument(
            "Failed to process element: " + item + " of 'instances' list. JSON object: " +
            json_value_to_string(elem) + " keys must be equal to: " + kInputName);
      }
    } else {
      if (is_element_object(elem)) {
        return TfStatus::invalid_argument("Expecting value/list but got object at item " + item +
                                          " of input list");
      }
      auto status = add_instance_item(elem, kInputName, batch);
      if (!status.ok()) {
        return TfStatus::invalid_argument("Failed to process element: " + item +
                                          " of 'instances' list. Error: " + status.to_string());
      }
    }
  }
  out.format = PredictFormat::row;
  out.x.shape.clear();
  out.x.shape.push_back(static_cast<std::int64_t>(instances.size()));
  out.x.shape.insert(out.x.shape.end(), batch.first_shape.begin(), batch.first_shape.end());
  out.x.values = std::move(batch.values);
  return {};
}

TfStatus read_inputs(JsonRef inputs, PredictInput& out) {
  JsonRef value = inputs;
  if (inputs.is_object() && !is_b64_object(inputs)) {
    const auto named = inputs.find(kInputName);
    if (!named) {
      return TfStatus::invalid_argument(std::string("Missing named input: ") + kInputName +
                                        " in 'inputs' object.");
    }
    value = *named;
  }
  out.format = PredictFormat::columnar;
  out.x.shape.clear();
  out.x.values.clear();
  dense_shape(value, out.x.shape);
  int unused = 0;
  return fill_tensor(value, 0, out.x.shape, out.x.values, unused);
}

// AddTensorValues(): nested arrays following `shape` from dimension `dim`.
void write_tensor_values(JsonWriter& w, const std::vector<std::int64_t>& shape, std::size_t dim,
                         const std::vector<float>& values, std::size_t& offset) {
  if (dim >= shape.size()) {
    w.float_value(values[offset++]);
    return;
  }
  w.start_array();
  for (std::int64_t i = 0; i < shape[dim]; ++i) {
    write_tensor_values(w, shape, dim + 1, values, offset);
  }
  w.end_array();
}

// --- classify / regress: tf.Example features ---

enum class FeatureKind { none, bytes, floats, int64 };

const char* feature_kind_name(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::bytes:
      return "bytes";
    case FeatureKind::floats:
      return "float";
    case FeatureKind::int64:
      return "int64";
    case FeatureKind::none:
      return "UNKNOWN";
  }
  return "UNKNOWN";
}

struct Feature {
  FeatureKind kind = FeatureKind::none;
  std::size_t count = 0;
  std::vector<float> floats;
};

TfStatus unexpected_json_type(std::string_view name, JsonRef v) {
  return TfStatus::invalid_argument(
      "Feature: " + std::string(name) +
      " has element with unexpected JSON type: " + json_type_name(v.type()));
}

TfStatus set_kind(std::string_view name, Feature& f, FeatureKind kind) {
  if (f.kind != FeatureKind::none && f.kind != kind) {
    return TfStatus::invalid_argument("Unexpected element type in feature: " + std::string(name) +
                                      " expecting type: " + feature_kind_name(f.kind));
  }
  f.kind = kind;
  ++f.count;
  return {};
}

// AddValueToFeature().
TfStatus add_value_to_feature(JsonRef v, std::string_view name, Feature& f) {
  switch (v.type()) {
    case JsonType::null:
    case JsonType::array:
      return unexpected_json_type(name, v);
    case JsonType::false_value:
    case JsonType::true_value:
      return set_kind(name, f, FeatureKind::int64);
    case JsonType::object:
      if (!is_b64_object(v)) return unexpected_json_type(name, v);
      return set_kind(name, f, FeatureKind::bytes);
    case JsonType::string:
      return set_kind(name, f, FeatureKind::bytes);
    case JsonType::number:
      if (v.number_kind() == NumberKind::real) {
        auto status = set_kind(name, f, FeatureKind::floats);
        if (!status.ok()) return status;
        if (!is_lossless_float(v)) return lossy_decimal_error(v);
        f.floats.push_back(to_float(v));
        return {};
      }
      if (v.number_kind() == NumberKind::uint64) {
        auto status = set_kind(name, f, FeatureKind::int64);
        if (!status.ok()) return status;
        return TfStatus::invalid_argument("Feature: " + std::string(name) +
                                          " has uint64 element. Only int64 is supported.");
      }
      return set_kind(name, f, FeatureKind::int64);
  }
  return {};
}

// MakeExampleFromJsonObject(); keeps only feature "x" (every feature is still validated).
TfStatus read_example(JsonRef v, std::optional<Feature>& x) {
  if (!v.is_object()) {
    return TfStatus::invalid_argument(std::string("Example must be JSON object but got JSON ") +
                                      json_type_name(v.type()));
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string_view name = v.member_name(i);
    const JsonRef content = v.member_value(i);
    Feature feature;
    if (content.is_array()) {
      for (std::size_t j = 0; j < content.size(); ++j) {
        auto status = add_value_to_feature(content.element(j), name, feature);
        if (!status.ok()) return status;
      }
    } else {
      auto status = add_value_to_feature(content, name, feature);
      if (!status.ok()) return status;
    }
    if (name == kInputName) x = std::move(feature);
  }
  return {};
}

// ParseExample with FixedLenFeature x: float, shape [1], no default.
TfStatus example_x_value(std::size_t index, const std::optional<Feature>& x, float& out) {
  const std::string where = "Name: <unknown>, Key: x, Index: " + std::to_string(index) + ".  ";
  if (!x) {
    return TfStatus::invalid_argument(
        "Name: <unknown>, Feature: x (data type: float) is required but could not be found.");
  }
  if (x->kind == FeatureKind::int64 || x->kind == FeatureKind::bytes) {
    return TfStatus::invalid_argument(where + "Data types don't match. Data type: " +
                                      (x->kind == FeatureKind::int64 ? "int64" : "string") +
                                      " but expected type: float");
  }
  if (x->count != 1) {
    return TfStatus::invalid_argument(where + "Number of float values != expected.  Values size: " +
                                      std::to_string(x->count) + " but output shape: [1]");
  }
  out = x->floats[0];
  return {};
}

}  // namespace

TfStatus check_request_is_object(JsonRef root) {
  if (!root.is_object()) return TfStatus::invalid_argument(format_error(root, "Is not object"));
  return {};
}

TfStatus read_signature_name(JsonRef root, std::string& signature_name) {
  signature_name.clear();
  const auto sig = root.find("signature_name");
  if (!sig) return {};
  if (!sig->is_string()) {
    return TfStatus::invalid_argument(format_error(
        root, "not formatted correctly. 'signature_name' key must be a string value."));
  }
  signature_name = std::string(sig->as_string());
  return {};
}

TfStatus read_predict_input(JsonRef root, PredictInput& out) {
  const auto instances = root.find("instances");
  const auto inputs = root.find("inputs");
  if (instances) {
    if (inputs) {
      return TfStatus::invalid_argument(format_error(
          root,
          "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to "
          "exist "));
    }
    if (!instances->is_array()) {
      return TfStatus::invalid_argument(
          format_error(root, "Excepting 'instances' to be an list/array"));
    }
    if (instances->size() == 0) {
      return TfStatus::invalid_argument(format_error(root, "No values in 'instances' array"));
    }
    return read_instances(*instances, out);
  }
  if (inputs) return read_inputs(*inputs, out);
  return TfStatus::invalid_argument("Missing 'inputs' or 'instances' key");
}

std::string write_predict_response(PredictFormat format, const FloatTensor& y, JsonStyle style) {
  JsonWriter w(style);
  w.start_object();
  std::size_t offset = 0;
  if (format == PredictFormat::row) {
    w.key("predictions");
    w.start_array();
    const std::int64_t batch = y.shape.empty() ? 0 : y.shape[0];
    for (std::int64_t item = 0; item < batch; ++item) {
      w.set_single_line_arrays(true);
      write_tensor_values(w, y.shape, 1, y.values, offset);
      w.set_single_line_arrays(false);
    }
    w.end_array();
  } else {
    w.key("outputs");
    write_tensor_values(w, y.shape, 0, y.values, offset);
  }
  w.end_object();
  return w.take();
}

TfStatus read_examples(JsonRef root, std::vector<float>& xs) {
  xs.clear();
  std::optional<Feature> context_x;
  if (const auto context = root.find("context")) {
    auto status = read_example(*context, context_x);
    if (!status.ok()) return status;
  }
  const auto examples = root.find("examples");
  if (!examples) {
    return TfStatus::invalid_argument(format_error(
        root, "When method is classify, key 'examples' is expected and was not found"));
  }
  if (!examples->is_array()) {
    return TfStatus::invalid_argument(
        format_error(root, "Expecting 'examples' value to be an list/array"));
  }
  if (examples->size() == 0) {
    return TfStatus::invalid_argument(format_error(root, "'examples' value is an empty array"));
  }
  std::vector<std::optional<Feature>> per_example(examples->size());
  for (std::size_t i = 0; i < examples->size(); ++i) {
    auto status = read_example(examples->element(i), per_example[i]);
    if (!status.ok()) return status;
  }
  // The model parses the serialized examples; example features win over context features.
  for (std::size_t i = 0; i < per_example.size(); ++i) {
    const auto& x = per_example[i] ? per_example[i] : context_x;
    float value = 0;
    auto status = example_x_value(i, x, value);
    if (!status.ok()) return status;
    xs.push_back(value);
  }
  return {};
}

std::string write_classify_response(const std::vector<float>& scores, JsonStyle style) {
  JsonWriter w(style);
  w.start_object();
  w.key("results");
  w.start_array();
  for (float score : scores) {
    w.set_single_line_arrays(true);
    w.start_array();
    w.start_array();
    w.string("");
    w.float_value(score);
    w.end_array();
    w.end_array();
    w.set_single_line_arrays(false);
  }
  w.end_array();
  w.end_object();
  return w.take();
}

std::string write_regress_response(const std::vector<float>& values, JsonStyle style) {
  JsonWriter w(style);
  w.start_object();
  w.key("results");
  w.set_single_line_arrays(true);
  w.start_array();
  for (float v : values) w.float_value(v);
  w.end_array();
  w.set_single_line_arrays(false);
  w.end_object();
  return w.take();
}

std::string write_error_body(std::string_view message, JsonStyle style) {
  if (style == JsonStyle::compact) {
    std::string out = "{ \"error\": ";
    append_json_string(out, message);
    out += " }";
    return out;
  }
  JsonWriter w(style);
  w.start_object();
  w.key("error");
  w.string(message);
  w.end_object();
  return w.take();
}

}  // namespace tfs_sim
