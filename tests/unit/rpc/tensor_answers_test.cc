// The gRPC cache key and the rules tier over gRPC: requests written by hand on the wire (with
// libprotobuf's UnknownFieldSet, which writes fields exactly in the order and encoding given),
// the REST JSON view a rule sees, and the PredictResponse built from a rule's answer, checked
// through the generated classes.

#include "fusebox/rpc/tensor_answers.h"

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "fusebox/config/config.h"
#include "fusebox/degrade/rules.h"
#include "tensorflow_serving/apis/classification.pb.h"
#include "tensorflow_serving/apis/predict.pb.h"

namespace fusebox::rpc {
namespace {

using google::protobuf::UnknownFieldSet;
using nlohmann::json;
namespace tf = tensorflow;
namespace tfs = tensorflow::serving;

const std::vector<std::string_view> kKnownMethods = {
    kPredictMethod,        kClassifyMethod,         kRegressMethod,
    kMultiInferenceMethod, kGetModelMetadataMethod, kGetModelStatusMethod,
};

// ---- Wire builders -----------------------------------------------------------------------

// Not UTF-8 (and with a NUL): base64 "/wBh".
std::string binary() { return std::string{'\xFF', '\x00', 'a'}; }

std::string bytes_of(const UnknownFieldSet& fields) {
  std::string out;
  EXPECT_TRUE(fields.SerializeToString(&out));
  return out;
}

// TensorShapeProto { dim { size } ... }.
std::string shape_wire(const std::vector<std::int64_t>& sizes) {
  UnknownFieldSet shape;
  for (std::int64_t size : sizes) {
    UnknownFieldSet dim;
    dim.AddVarint(1, static_cast<std::uint64_t>(size));
    shape.AddLengthDelimited(2, bytes_of(dim));
  }
  return bytes_of(shape);
}

std::string float_bytes(const std::vector<float>& values) {
  std::string out;
  for (float v : values) {
    const auto bits = std::bit_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  return out;
}

enum class Encoding { packed, unpacked };

// A DT_FLOAT TensorProto of shape [values.size()], float_val packed or one field per value;
// with explicit_defaults, version_number = 0 is written too.
std::string float_tensor_wire(const std::vector<float>& values, Encoding encoding,
                              bool explicit_defaults = false) {
  UnknownFieldSet tensor;
  tensor.AddVarint(1, tf::DT_FLOAT);
  tensor.AddLengthDelimited(2, shape_wire({static_cast<std::int64_t>(values.size())}));
  if (explicit_defaults) tensor.AddVarint(3, 0);
  if (encoding == Encoding::packed) {
    tensor.AddLengthDelimited(5, float_bytes(values));
  } else {
    for (float v : values) tensor.AddFixed32(5, std::bit_cast<std::uint32_t>(v));
  }
  return bytes_of(tensor);
}

// ModelSpec { name, signature_name }, the signature written even when empty if asked.
std::string spec_wire(const std::string& name, const std::string& signature,
                      bool explicit_defaults = false) {
  UnknownFieldSet spec;
  spec.AddLengthDelimited(1, name);
  if (!signature.empty() || explicit_defaults) spec.AddLengthDelimited(3, signature);
  return bytes_of(spec);
}

// One entry of the `inputs` map: { key = 1, value = 2 }.
std::string input_entry_wire(const std::string& name, const std::string& tensor) {
  UnknownFieldSet entry;
  entry.AddLengthDelimited(1, name);
  entry.AddLengthDelimited(2, tensor);
  return bytes_of(entry);
}

// A request holding only field 1 (the ModelSpec of every request kind but MultiInference).
std::string request_with_spec(const std::string& spec) {
  UnknownFieldSet request;
  request.AddLengthDelimited(1, spec);
  return bytes_of(request);
}

std::string key_of(std::string_view method, const std::string& bytes) {
  const auto key = deterministic_request_key(method, bytes);
  EXPECT_TRUE(key.has_value()) << method;
  return key.value_or("");
}

// ---- Generated-class builders ------------------------------------------------------------

tf::TensorProto shaped(tf::DataType dtype, const std::vector<std::int64_t>& sizes) {
  tf::TensorProto t;
  t.set_dtype(dtype);
  for (std::int64_t size : sizes) t.mutable_tensor_shape()->add_dim()->set_size(size);
  return t;
}

tf::TensorProto floats(const std::vector<float>& values, std::vector<std::int64_t> sizes = {}) {
  if (sizes.empty()) sizes = {static_cast<std::int64_t>(values.size())};
  tf::TensorProto t = shaped(tf::DT_FLOAT, sizes);
  for (float v : values) t.add_float_val(v);
  return t;
}

tf::TensorProto scalar(float value) {
  tf::TensorProto t = shaped(tf::DT_FLOAT, {});
  t.add_float_val(value);
  return t;
}

tf::TensorProto strings(const std::vector<std::string>& values) {
  tf::TensorProto t = shaped(tf::DT_STRING, {static_cast<std::int64_t>(values.size())});
  for (const auto& v : values) t.add_string_val(v);
  return t;
}

std::string predict_bytes(const std::vector<std::pair<std::string, tf::TensorProto>>& inputs,
                          const std::string& signature = "",
                          const std::vector<std::string>& output_filter = {}) {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name("m");
  r.mutable_model_spec()->mutable_version()->set_value(3);
  r.mutable_model_spec()->set_signature_name(signature);
  for (const auto& [name, tensor] : inputs) (*r.mutable_inputs())[name] = tensor;
  for (const auto& name : output_filter) r.add_output_filter(name);
  return r.SerializeAsString();
}

json view_of(const std::string& request_bytes) {
  const auto view = rules_json_view(kPredictMethod, request_bytes);
  EXPECT_TRUE(view.has_value());
  if (!view) return nullptr;
  json parsed = json::parse(*view, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << *view;
  return parsed;
}

// The row view's instances of a request with the single input `x`.
json instances_of(const tf::TensorProto& x) {
  return view_of(predict_bytes({{"x", x}}))["instances"];
}

tfs::PredictResponse response_of(const std::string& request_bytes, const std::string& answer,
                                 const std::string& hint = "y") {
  const auto bytes = predict_response_from_rules(request_bytes, answer, hint);
  EXPECT_TRUE(bytes.has_value()) << answer;
  tfs::PredictResponse response;
  if (bytes) {
    EXPECT_TRUE(response.ParseFromString(*bytes));
  }
  return response;
}

std::vector<std::int64_t> dims_of(const tf::TensorProto& t) {
  std::vector<std::int64_t> out;
  for (const auto& d : t.tensor_shape().dim()) out.push_back(d.size());
  return out;
}

const tf::TensorProto& output(const tfs::PredictResponse& response, const std::string& name) {
  static const tf::TensorProto kMissing;
  const auto it = response.outputs().find(name);
  EXPECT_NE(it, response.outputs().end()) << "no output " << name;
  return it == response.outputs().end() ? kMissing : it->second;
}

template <typename Field>
auto values(const Field& field) {
  using T = std::decay_t<decltype(field.Get(0))>;
  return std::vector<T>(field.begin(), field.end());
}

// ---- deterministic_request_key -----------------------------------------------------------

TEST(DeterministicRequestKey, MapOrderAndFieldOrderDoNotMatter) {
  const std::string spec = spec_wire("m", "sig");
  std::vector<std::string> entries;
  for (const char* name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    entries.push_back(input_entry_wire(name, float_tensor_wire({1.0f}, Encoding::packed)));
  }
  UnknownFieldSet first;
  first.AddLengthDelimited(1, spec);
  for (const auto& entry : entries) first.AddLengthDelimited(2, entry);
  UnknownFieldSet second;  // inputs reversed, model_spec last
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) second.AddLengthDelimited(2, *it);
  second.AddLengthDelimited(1, spec);
  ASSERT_NE(bytes_of(first), bytes_of(second));
  EXPECT_EQ(key_of(kPredictMethod, bytes_of(first)), key_of(kPredictMethod, bytes_of(second)));
}

TEST(DeterministicRequestKey, NestedMapOrderDoesNotMatter) {
  // tf.Example features are a map<string, Feature> inside Input inside the request.
  auto classify = [](bool reversed) {
    std::vector<std::pair<std::string, float>> entries = {{"age", 30.0f}, {"price", 12.5f}};
    if (reversed) std::swap(entries[0], entries[1]);
    UnknownFieldSet features;  // Features { map<string, Feature> feature = 1 }
    for (const auto& [name, value] : entries) {
      tf::Feature feature;
      feature.mutable_float_list()->add_value(value);
      features.AddLengthDelimited(1, input_entry_wire(name, feature.SerializeAsString()));
    }
    // Request { model_spec = 1, input = 2 { example_list = 1 { examples = 1 { features = 1 }}}}
    UnknownFieldSet request, input, example_list, example;
    request.AddLengthDelimited(1, spec_wire("m", ""));
    example.AddLengthDelimited(1, bytes_of(features));
    example_list.AddLengthDelimited(1, bytes_of(example));
    input.AddLengthDelimited(1, bytes_of(example_list));
    request.AddLengthDelimited(2, bytes_of(input));
    return bytes_of(request);
  };
  ASSERT_NE(classify(false), classify(true));
  EXPECT_EQ(key_of(kClassifyMethod, classify(false)), key_of(kClassifyMethod, classify(true)));
}

TEST(DeterministicRequestKey, PackedAndUnpackedAreTheSame) {
  const std::vector<float> v = {1.0f, 2.0f, 5.0f};
  auto request = [&](Encoding e) {
    UnknownFieldSet r;
    r.AddLengthDelimited(1, spec_wire("half_plus_two", ""));
    r.AddLengthDelimited(2, input_entry_wire("x", float_tensor_wire(v, e)));
    return bytes_of(r);
  };
  ASSERT_NE(request(Encoding::packed), request(Encoding::unpacked));
  EXPECT_EQ(key_of(kPredictMethod, request(Encoding::packed)),
            key_of(kPredictMethod, request(Encoding::unpacked)));
}

TEST(DeterministicRequestKey, ExplicitDefaultsAreTheSameAsAbsentOnes) {
  auto request = [](bool explicit_defaults) {
    UnknownFieldSet r;
    r.AddLengthDelimited(1, spec_wire("m", "", explicit_defaults));
    r.AddLengthDelimited(
        2, input_entry_wire("x", float_tensor_wire({4.0f}, Encoding::packed, explicit_defaults)));
    return bytes_of(r);
  };
  ASSERT_NE(request(false), request(true));
  EXPECT_EQ(key_of(kPredictMethod, request(false)), key_of(kPredictMethod, request(true)));
}

TEST(DeterministicRequestKey, DifferentRequestsGetDifferentKeys) {
  const std::string base = predict_bytes({{"x", floats({1.0f, 2.0f})}});
  EXPECT_EQ(key_of(kPredictMethod, base), key_of(kPredictMethod, base));
  EXPECT_NE(key_of(kPredictMethod, base),
            key_of(kPredictMethod, predict_bytes({{"x", floats({1.0f, 3.0f})}})));
  EXPECT_NE(key_of(kPredictMethod, base),
            key_of(kPredictMethod, predict_bytes({{"z", floats({1.0f, 2.0f})}})));
  EXPECT_NE(
      key_of(kPredictMethod, base),
      key_of(kPredictMethod, predict_bytes({{"x", floats({1.0f, 2.0f})}}, "other_signature")));
  EXPECT_NE(key_of(kPredictMethod, base),
            key_of(kPredictMethod, predict_bytes({{"x", floats({1.0f, 2.0f}, {2, 1})}})));
  // The same bytes under two methods (a request holding only a model_spec) are two keys.
  const std::string spec_only = request_with_spec(spec_wire("m", ""));
  EXPECT_NE(key_of(kPredictMethod, spec_only), key_of(kGetModelStatusMethod, spec_only));
}

TEST(DeterministicRequestKey, IsTheMethodThenTheDeterministicMessage) {
  const std::string bytes = predict_bytes({{"x", floats({1.0f})}, {"w", floats({2.0f})}});
  const std::string key = key_of(kPredictMethod, bytes);
  const std::string prefix = std::string(kPredictMethod) + "\n";
  ASSERT_EQ(key.substr(0, prefix.size()), prefix);
  tfs::PredictRequest back;
  ASSERT_TRUE(back.ParseFromString(key.substr(prefix.size())));
  tfs::PredictRequest original;
  ASSERT_TRUE(original.ParseFromString(bytes));
  EXPECT_EQ(back.DebugString(), original.DebugString());
  // Keys never look like canonical JSON (a cache store shared with REST).
  for (std::string_view method : kKnownMethods) EXPECT_EQ(key_of(method, "").front(), '/');
}

TEST(DeterministicRequestKey, UnknownFieldsArePartOfTheKey) {
  const std::string base = predict_bytes({{"x", floats({1.0f})}});
  auto with_unknown = [&](std::uint64_t value) {
    UnknownFieldSet extra;
    extra.AddVarint(99, value);
    return base + bytes_of(extra);
  };
  const std::string key = key_of(kPredictMethod, with_unknown(7));
  EXPECT_NE(key, key_of(kPredictMethod, base));
  EXPECT_NE(key, key_of(kPredictMethod, with_unknown(8)));
  EXPECT_EQ(key, key_of(kPredictMethod, with_unknown(7)));
  tfs::PredictRequest back;
  ASSERT_TRUE(back.ParseFromString(key.substr(kPredictMethod.size() + 1)));
  const auto& unknown = back.GetReflection()->GetUnknownFields(back);
  ASSERT_EQ(unknown.field_count(), 1);
  EXPECT_EQ(unknown.field(0).number(), 99);
  EXPECT_EQ(unknown.field(0).varint(), 7u);
}

TEST(DeterministicRequestKey, UnknownMethodsAndBrokenBytesHaveNoKey) {
  const std::string bytes;  // the empty message: valid for every request type
  for (std::string_view method : kKnownMethods) {
    EXPECT_TRUE(deterministic_request_key(method, bytes).has_value()) << method;
  }
  EXPECT_FALSE(deterministic_request_key("/tensorflow.serving.PredictionService/Nope", bytes));
  EXPECT_FALSE(deterministic_request_key("Predict", bytes));
  EXPECT_FALSE(deterministic_request_key(
      "/tensorflow.serving.ModelService/HandleReloadConfigRequest", bytes));
  EXPECT_FALSE(deterministic_request_key("", bytes));
  // A length past the end.
  EXPECT_FALSE(deterministic_request_key(kPredictMethod, std::string{'\x0A', '\x05', 'a', 'b'}));
  EXPECT_FALSE(deterministic_request_key(kPredictMethod, "\xFF"));  // truncated tag
  const google::protobuf::LogSilencer quiet;  // libprotobuf logs the string it rejects
  EXPECT_FALSE(
      deterministic_request_key(kPredictMethod, request_with_spec(spec_wire("\xC3\x28", ""))));
  // Bytes are read as the method's request: a PredictRequest is no ClassificationRequest
  // (its field 2, the inputs map entry, does not parse as an Input).
  const std::string predict = predict_bytes({{"x", floats({1.0f})}});
  ASSERT_TRUE(deterministic_request_key(kPredictMethod, predict));
  EXPECT_FALSE(deterministic_request_key(kClassifyMethod, predict));
}

// ---- rules_json_view ---------------------------------------------------------------------

TEST(RulesJsonView, OneInputIsRowFormatWithScalarInstances) {
  const json view = view_of(predict_bytes({{"x", floats({1.0f, 2.0f, 5.0f})}}));
  EXPECT_EQ(view, json::parse(R"({"instances": [1.0, 2.0, 5.0]})"));
  // Floats read back as the client wrote them, not as their double widening.
  EXPECT_EQ(instances_of(floats({0.1f, -1e-3f})), json::parse("[0.1, -0.001]"));
}

TEST(RulesJsonView, NestedInstancesKeepTheirShape) {
  EXPECT_EQ(instances_of(floats({1, 2, 3, 4, 5, 6}, {2, 3})),
            json::parse("[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]"));
  EXPECT_EQ(instances_of(floats({1, 2, 3, 4}, {2, 1, 2})),
            json::parse("[[[1.0, 2.0]], [[3.0, 4.0]]]"));
}

TEST(RulesJsonView, SeveralInputsWithOneBatchAreObjectsPerInstance) {
  tf::TensorProto ids = shaped(tf::DT_INT64, {2, 2});
  for (std::int64_t v : {1, 2, 3, 4}) ids.add_int64_val(v);
  const json view = view_of(predict_bytes(
      {{"price", floats({12.5f, 30.0f})}, {"country", strings({"de", "fr"})}, {"ids", ids}},
      "scoring"));
  EXPECT_EQ(view, json::parse(R"({"signature_name": "scoring", "instances": [
      {"price": 12.5, "country": "de", "ids": [1, 2]},
      {"price": 30.0, "country": "fr", "ids": [3, 4]}]})"));
}

TEST(RulesJsonView, OtherwiseColumnar) {
  // Different batch sizes.
  EXPECT_EQ(view_of(predict_bytes({{"a", floats({1, 2})}, {"b", floats({3, 4, 5})}})),
            json::parse(R"({"inputs": {"a": [1.0, 2.0], "b": [3.0, 4.0, 5.0]}})"));
  // A scalar input has no batch dimension.
  EXPECT_EQ(view_of(predict_bytes({{"s", scalar(4.0f)}}, "sig")),
            json::parse(R"({"signature_name": "sig", "inputs": {"s": 4.0}})"));
  EXPECT_EQ(view_of(predict_bytes({{"a", floats({1, 2})}, {"s", scalar(4.0f)}})),
            json::parse(R"({"inputs": {"a": [1.0, 2.0], "s": 4.0}})"));
  // An empty batch has no rows (REST's row format needs at least one instance).
  EXPECT_EQ(view_of(predict_bytes({{"x", shaped(tf::DT_FLOAT, {0, 3})}})),
            json::parse(R"({"inputs": {"x": []}})"));
}

template <typename T>
std::string little_endian(const std::vector<T>& values) {
  std::string out;
  for (T v : values) {
    std::uint64_t bits = 0;
    if constexpr (std::is_same_v<T, bool>) {
      bits = v ? 1 : 0;
    } else if constexpr (sizeof(T) == 8) {
      bits = std::bit_cast<std::uint64_t>(v);
    } else if constexpr (sizeof(T) == 4) {
      bits = std::bit_cast<std::uint32_t>(v);
    } else if constexpr (sizeof(T) == 2) {
      bits = std::bit_cast<std::uint16_t>(v);
    } else {
      bits = std::bit_cast<std::uint8_t>(v);
    }
    for (std::size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  return out;
}

struct DtypeCase {
  const char* name;
  tf::DataType dtype;
  std::function<void(tf::TensorProto&)> typed;  // fills the typed field
  std::string content;                          // the same values as tensor_content ("" = none)
  const char* expected;                         // the instances
};

// A case whose values go into the typed field with `add` (e.g. add_int_val for DT_INT16) and,
// as T, into tensor_content.
template <typename T, typename Field>
DtypeCase numeric_case(const char* name, tf::DataType dtype, void (tf::TensorProto::*add)(Field),
                       std::vector<T> values, const char* expected) {
  auto typed = [add, values](tf::TensorProto& t) {
    for (T v : values) (t.*add)(static_cast<Field>(v));
  };
  return {name, dtype, typed, little_endian<T>(values), expected};
}

std::vector<DtypeCase> dtype_cases() {
  using T = tf::TensorProto;
  constexpr std::int64_t kBig = -9007199254740993;  // not a double
  constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();
  return {
      numeric_case<float>("float", tf::DT_FLOAT, &T::add_float_val, {0.1f, -2.5f}, "[0.1, -2.5]"),
      numeric_case<double>("double", tf::DT_DOUBLE, &T::add_double_val, {0.1, 1e300},
                           "[0.1, 1e300]"),
      numeric_case<std::int32_t>("int32", tf::DT_INT32, &T::add_int_val, {-7, 2147483647},
                                 "[-7, 2147483647]"),
      numeric_case<std::int16_t>("int16", tf::DT_INT16, &T::add_int_val, {-300, 32767},
                                 "[-300, 32767]"),
      numeric_case<std::int8_t>("int8", tf::DT_INT8, &T::add_int_val, {-128, 127}, "[-128, 127]"),
      numeric_case<std::uint8_t>("uint8", tf::DT_UINT8, &T::add_int_val, {0, 255}, "[0, 255]"),
      numeric_case<std::uint16_t>("uint16", tf::DT_UINT16, &T::add_int_val, {65535, 1},
                                  "[65535, 1]"),
      numeric_case<std::int64_t>("int64", tf::DT_INT64, &T::add_int64_val, {kBig, INT64_MAX},
                                 "[-9007199254740993, 9223372036854775807]"),
      numeric_case<std::uint32_t>("uint32", tf::DT_UINT32, &T::add_uint32_val, {4294967295u, 0},
                                  "[4294967295, 0]"),
      numeric_case<std::uint64_t>("uint64", tf::DT_UINT64, &T::add_uint64_val, {kMaxU64, 1},
                                  "[18446744073709551615, 1]"),
      numeric_case<bool>("bool", tf::DT_BOOL, &T::add_bool_val, {true, false}, "[true, false]"),
      {"string", tf::DT_STRING,
       [](tf::TensorProto& t) {
         t.add_string_val("h\xC3\xA9llo");
         t.add_string_val(binary());
       },
       "", R"(["h\u00e9llo", {"b64": "/wBh"}])"},
  };
}

TEST(RulesJsonView, EveryDtypeFromTypedFieldsAndTensorContent) {
  for (const DtypeCase& c : dtype_cases()) {
    SCOPED_TRACE(c.name);
    tf::TensorProto typed = shaped(c.dtype, {2});
    c.typed(typed);
    EXPECT_EQ(instances_of(typed), json::parse(c.expected));
    if (c.content.empty()) continue;
    tf::TensorProto content = shaped(c.dtype, {2});
    content.set_tensor_content(c.content);
    EXPECT_EQ(instances_of(content), json::parse(c.expected));
  }
}

TEST(RulesJsonView, TensorContentIsRowMajor) {
  tf::TensorProto t = shaped(tf::DT_INT32, {2, 3});
  t.set_tensor_content(little_endian<std::int32_t>({1, 2, 3, 4, 5, -6}));
  EXPECT_EQ(instances_of(t), json::parse("[[1, 2, 3], [4, 5, -6]]"));
}

TEST(RulesJsonView, TypedFieldsFollowTensorFlowsFillRule) {
  // One value fills the shape.
  EXPECT_EQ(instances_of(floats({1.5f}, {2, 3})),
            json::parse("[[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]]"));
  tf::TensorProto s = shaped(tf::DT_STRING, {3});
  s.add_string_val("same");
  EXPECT_EQ(instances_of(s), json::parse(R"(["same", "same", "same"])"));
  // Fewer values: the last one repeats.
  EXPECT_EQ(instances_of(floats({1.0f, 2.0f}, {4})), json::parse("[1.0, 2.0, 2.0, 2.0]"));
  // None: zeros (empty strings).
  EXPECT_EQ(instances_of(shaped(tf::DT_INT64, {2})), json::parse("[0, 0]"));
  EXPECT_EQ(instances_of(shaped(tf::DT_BOOL, {2})), json::parse("[false, false]"));
  EXPECT_EQ(instances_of(shaped(tf::DT_STRING, {2})), json::parse(R"(["", ""])"));
  // More: the extra ones are not part of the tensor.
  EXPECT_EQ(instances_of(floats({1.0f, 2.0f, 3.0f}, {2})), json::parse("[1.0, 2.0]"));
}

TEST(RulesJsonView, NonFiniteFloatsAreNull) {
  EXPECT_EQ(instances_of(floats({std::nanf(""), std::numeric_limits<float>::infinity(), 1.0f})),
            json::parse("[null, null, 1.0]"));
}

TEST(RulesJsonView, WhatHasNoViewIsNullopt) {
  const std::string ok = predict_bytes({{"x", floats({1.0f})}});
  ASSERT_TRUE(rules_json_view(kPredictMethod, ok));
  // Other methods, even with bytes that would parse.
  for (std::string_view method : kKnownMethods) {
    if (method != kPredictMethod) {
      EXPECT_FALSE(rules_json_view(method, ok)) << method;
    }
  }
  EXPECT_FALSE(rules_json_view("", ok));
  EXPECT_FALSE(
      rules_json_view(kPredictMethod, std::string{'\x12', '\x09', 'x'}));  // broken framing
  EXPECT_FALSE(rules_json_view(kPredictMethod, predict_bytes({})));        // no inputs

  auto no_view = [](const tf::TensorProto& t) {
    return !rules_json_view(kPredictMethod, predict_bytes({{"x", t}})).has_value();
  };
  tf::TensorProto half = shaped(tf::DT_HALF, {1});
  half.add_half_val(0x3C00);
  EXPECT_TRUE(no_view(half));
  EXPECT_TRUE(no_view(shaped(tf::DT_COMPLEX64, {1})));
  EXPECT_TRUE(no_view(shaped(tf::DT_INVALID, {1})));
  EXPECT_TRUE(no_view(floats({1.0f}, {-1})));
  tf::TensorProto unknown_rank = floats({1.0f});
  unknown_rank.mutable_tensor_shape()->set_unknown_rank(true);
  EXPECT_TRUE(no_view(unknown_rank));
  tf::TensorProto short_content = shaped(tf::DT_FLOAT, {2});
  short_content.set_tensor_content(little_endian<float>({1.0f}));
  EXPECT_TRUE(no_view(short_content));
  tf::TensorProto long_content = shaped(tf::DT_INT8, {2});
  long_content.set_tensor_content(little_endian<std::int8_t>({1, 2, 3}));
  EXPECT_TRUE(no_view(long_content));
  tf::TensorProto string_content = shaped(tf::DT_STRING, {1});
  string_content.set_tensor_content(std::string{'\x01', 'a'});
  EXPECT_TRUE(no_view(string_content));
  // A single value must not expand past the budget, nor empty lists multiply.
  EXPECT_TRUE(no_view(floats({1.0f}, {kMaxRulesViewValues})));
  EXPECT_TRUE(no_view(floats({}, {kMaxRulesViewValues, 0})));
  EXPECT_TRUE(no_view(floats({1.0f}, {std::int64_t{1} << 40, std::int64_t{1} << 40})));
  EXPECT_FALSE(no_view(floats({1.0f}, {kMaxRulesViewValues / 2})));
  // The budget is shared by all inputs.
  EXPECT_FALSE(rules_json_view(kPredictMethod,
                               predict_bytes({{"a", floats({1.0f}, {kMaxRulesViewValues / 2})},
                                              {"b", floats({1.0f}, {kMaxRulesViewValues / 2})}})));
}

// ---- predict_response_from_rules ---------------------------------------------------------

std::string batch_of_three() { return predict_bytes({{"x", floats({1.0f, 2.0f, 5.0f})}}); }

TEST(PredictResponseFromRules, ScalarPredictionsAreOneFloatTensorOfTheBatch) {
  const auto r = response_of(batch_of_three(), R"({"predictions": [2.5, 3, -0.5]})");
  ASSERT_EQ(r.outputs_size(), 1);
  const auto& y = output(r, "y");
  EXPECT_EQ(y.dtype(), tf::DT_FLOAT);  // the integer 3 too
  EXPECT_EQ(dims_of(y), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(values(y.float_val()), (std::vector<float>{2.5f, 3.0f, -0.5f}));
  EXPECT_TRUE(y.tensor_content().empty());
  // model_spec is the request's, with the default signature spelled out.
  EXPECT_EQ(r.model_spec().name(), "m");
  EXPECT_EQ(r.model_spec().version().value(), 3);
  EXPECT_EQ(r.model_spec().signature_name(), "serving_default");
}

TEST(PredictResponseFromRules, OutputNameIsTheHintElseOutputZero) {
  EXPECT_EQ(response_of(batch_of_three(), R"({"predictions": [1, 1, 1]})", "scores")
                .outputs()
                .count("scores"),
            1u);
  const auto r = response_of(batch_of_three(), R"({"predictions": [1, 1, 1]})", "");
  EXPECT_EQ(r.outputs().count(std::string(kDefaultRulesOutputName)), 1u);
  EXPECT_EQ(kDefaultRulesOutputName, "output_0");
}

TEST(PredictResponseFromRules, NestedPredictionsKeepTheirShape) {
  const std::string request = predict_bytes({{"x", floats({1, 2, 3, 4}, {2, 2})}}, "sig");
  const auto r = response_of(request, R"({"predictions": [[[1, 2, 3]], [[4, 5, 6]]]})");
  const auto& y = output(r, "y");
  EXPECT_EQ(dims_of(y), (std::vector<std::int64_t>{2, 1, 3}));
  EXPECT_EQ(values(y.float_val()), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(r.model_spec().signature_name(), "sig");
  // A list that is empty in every prediction: [N, 0], DT_FLOAT.
  const auto empty = response_of(request, R"({"predictions": [[], []]})");
  EXPECT_EQ(dims_of(output(empty, "y")), (std::vector<std::int64_t>{2, 0}));
  EXPECT_EQ(output(empty, "y").dtype(), tf::DT_FLOAT);
}

TEST(PredictResponseFromRules, ObjectPredictionsAreOneTensorPerKey) {
  const auto r = response_of(batch_of_three(), R"({"predictions": [
      {"label": "approve", "score": 0.5, "flag": true, "box": [1, 2]},
      {"label": "approve", "score": 0.5, "flag": false, "box": [3, 4]},
      {"label": "deny", "score": 1e-3, "flag": true, "box": [5, 6]}]})");
  ASSERT_EQ(r.outputs_size(), 4);
  const auto& label = output(r, "label");
  EXPECT_EQ(label.dtype(), tf::DT_STRING);
  EXPECT_EQ(dims_of(label), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(values(label.string_val()), (std::vector<std::string>{"approve", "approve", "deny"}));
  const auto& score = output(r, "score");
  EXPECT_EQ(score.dtype(), tf::DT_FLOAT);
  EXPECT_EQ(values(score.float_val()), (std::vector<float>{0.5f, 0.5f, 1e-3f}));
  const auto& flag = output(r, "flag");
  EXPECT_EQ(flag.dtype(), tf::DT_BOOL);
  EXPECT_EQ(values(flag.bool_val()), (std::vector<bool>{true, false, true}));
  const auto& box = output(r, "box");
  EXPECT_EQ(dims_of(box), (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(values(box.float_val()), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(PredictResponseFromRules, BoolsStringsAndBinary) {
  const auto bools = response_of(batch_of_three(), R"({"predictions": [true, false, true]})");
  EXPECT_EQ(output(bools, "y").dtype(), tf::DT_BOOL);
  EXPECT_EQ(values(output(bools, "y").bool_val()), (std::vector<bool>{true, false, true}));
  const auto text =
      response_of(batch_of_three(), R"({"predictions": ["a", {"b64": "/wBh"}, {"b64": "YQ"}]})");
  EXPECT_EQ(output(text, "y").dtype(), tf::DT_STRING);
  EXPECT_EQ(values(output(text, "y").string_val()), (std::vector<std::string>{"a", binary(), "a"}));
}

TEST(PredictResponseFromRules, ColumnarOutputs) {
  const std::string request = predict_bytes({{"a", floats({1, 2})}, {"b", floats({1, 2, 3})}});
  const auto named = response_of(request, R"({"outputs": {"y": [1, 2], "z": "x"}})");
  ASSERT_EQ(named.outputs_size(), 2);
  EXPECT_EQ(dims_of(output(named, "y")), (std::vector<std::int64_t>{2}));
  EXPECT_EQ(dims_of(output(named, "z")), (std::vector<std::int64_t>{}));
  EXPECT_EQ(values(output(named, "z").string_val()), (std::vector<std::string>{"x"}));
  const auto single = response_of(request, R"({"outputs": 0.25})", "prob");
  EXPECT_EQ(dims_of(output(single, "prob")), (std::vector<std::int64_t>{}));
  EXPECT_EQ(values(output(single, "prob").float_val()), (std::vector<float>{0.25f}));
  const auto matrix = response_of(request, R"({"outputs": [[1, 2], [3, 4], [5, 6]]})");
  EXPECT_EQ(dims_of(output(matrix, "y")), (std::vector<std::int64_t>{3, 2}));
}

TEST(PredictResponseFromRules, OutputFilterKeepsOnlyWhatWasAskedFor) {
  const std::string answer = R"({"predictions": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})";
  const std::string filtered = predict_bytes({{"x", floats({1, 2})}}, "", {"b"});
  const auto r = response_of(filtered, answer);
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_EQ(values(output(r, "b").float_val()), (std::vector<float>{2, 4}));
  EXPECT_FALSE(
      predict_response_from_rules(predict_bytes({{"x", floats({1, 2})}}, "", {"c"}), answer, "y"));
}

TEST(PredictResponseFromRules, WhatCannotBeATensorIsNullopt) {
  auto none = [](const std::string& answer, const std::string& request = batch_of_three()) {
    return !predict_response_from_rules(request, answer, "y").has_value();
  };
  EXPECT_FALSE(none(R"({"predictions": [1, 2, 3]})"));  // the control
  EXPECT_TRUE(none(R"({"predictions": [1, 2]})"));      // batch of 3
  EXPECT_TRUE(none(R"({"predictions": [1, 2, 3, 4]})"));
  EXPECT_TRUE(none(R"({"predictions": []})"));
  EXPECT_TRUE(none(R"({"predictions": 1})"));
  EXPECT_TRUE(none(R"({"predictions": [[1, 2], [3], [4, 5]]})"));  // ragged
  EXPECT_TRUE(none(R"({"predictions": [[1, 2], 3, [4, 5]]})"));
  EXPECT_TRUE(none(R"({"predictions": [1, "a", 3]})"));  // mixed
  EXPECT_TRUE(none(R"({"predictions": [1, true, 3]})"));
  EXPECT_TRUE(none(R"({"predictions": [1, null, 3]})"));
  EXPECT_TRUE(none(R"({"predictions": [{"a": 1}, {"a": 1}, 3]})"));  // object and value
  EXPECT_TRUE(none(R"({"predictions": [1, {"a": 1}, 3]})"));
  EXPECT_TRUE(none(R"({"predictions": [{"a": 1}, {"a": 1}, {"b": 1}]})"));  // other keys
  EXPECT_TRUE(none(R"({"predictions": [{"a": 1}, {"a": 1}, {"a": 1, "b": 1}]})"));
  EXPECT_TRUE(none(R"({"predictions": [{"a": {"deep": 1}}, {"a": 1}, {"a": 1}]})"));
  EXPECT_TRUE(none(R"({"predictions": [1e39, 1, 1]})"));               // beyond float
  EXPECT_FALSE(none(R"({"predictions": [3.4028235e38, 1, 1]})"));      // FLT_MAX as printed
  EXPECT_TRUE(none(R"({"predictions": [{"b64": "**"}, "a", "a"]})"));  // bad base64
  EXPECT_TRUE(none(R"({"predictions": [{"b64": "YQ="}, "a", "a"]})"));
  EXPECT_TRUE(none(R"({"predictions": [{}, {}, {}]})"));  // no outputs
  EXPECT_TRUE(none(R"({"outputs": {}})"));
  EXPECT_TRUE(none(R"({"outputs": null})"));
  EXPECT_TRUE(none(R"({"predictions": [1, 2, 3], "outputs": 1})"));
  EXPECT_TRUE(none(R"({"result": [1, 2, 3]})"));
  EXPECT_TRUE(none(R"([1, 2, 3])"));
  EXPECT_TRUE(none("not json"));
  // Broken request bytes.
  EXPECT_TRUE(none(R"({"predictions": [1, 2, 3]})", std::string{'\x0A', '\x09', 'x'}));
  // A row answer to a request without a row form (scalar input).
  EXPECT_TRUE(none(R"({"predictions": [1]})", predict_bytes({{"s", scalar(1.0f)}})));
}

// ---- The pieces together -----------------------------------------------------------------

config::RuleConditionConfig range_condition(std::string pointer, std::optional<double> max) {
  config::RuleConditionConfig c;
  c.pointer = std::move(pointer);
  c.op = "range";
  c.max = max;
  return c;
}

degrade::RuleSet rule_set() {
  config::RuleConfig cheap;
  cheap.name = "cheap_items";
  cheap.model = "shop";
  cheap.instance_when = {range_condition("/price", 20.0)};
  cheap.prediction_json = R"({"label": "approve", "score": 0.5})";
  config::RuleConfig small_x;
  small_x.name = "small_x";
  small_x.model = "half_plus_two";
  small_x.instance_when = {range_condition("", 10.0)};
  small_x.prediction_json = "2.5";
  config::RuleConfig columnar;
  columnar.name = "columnar";
  columnar.model = "columnar_model";
  columnar.prediction_json = R"({"y": [[0.5, 0.5]], "tag": "fallback"})";
  auto rules = degrade::compile_rules({cheap, small_x, columnar});
  EXPECT_TRUE(degrade::validate(rules).empty());
  return rules;
}

// request -> view -> rules -> PredictResponse; nullopt when no rule answers.
std::optional<tfs::PredictResponse> through_rules(const tfs::PredictRequest& request,
                                                  const std::string& output_name) {
  const std::string bytes = request.SerializeAsString();
  const auto view = rules_json_view(kPredictMethod, bytes);
  EXPECT_TRUE(view.has_value());
  if (!view) return std::nullopt;
  const auto rules = rule_set();
  degrade::RulesRequest rules_request;
  rules_request.model = request.model_spec().name();
  rules_request.signature = request.model_spec().signature_name();
  rules_request.body = *view;
  const auto answer = degrade::evaluate(rules, rules_request);
  if (!answer) return std::nullopt;
  const auto response_bytes = predict_response_from_rules(bytes, answer->body, output_name);
  EXPECT_TRUE(response_bytes.has_value()) << answer->body;
  if (!response_bytes) return std::nullopt;
  tfs::PredictResponse response;
  EXPECT_TRUE(response.ParseFromString(*response_bytes));
  return response;
}

TEST(RulesOverGrpc, RowRequestWithSeveralInputsGetsOneTensorPerPredictionKey) {
  tfs::PredictRequest request;
  request.mutable_model_spec()->set_name("shop");
  (*request.mutable_inputs())["price"] = floats({12.5f, 3.0f, 19.99f, 7.0f});
  (*request.mutable_inputs())["country"] = strings({"de", "fr", "it", "es"});
  const auto response = through_rules(request, "unused");
  ASSERT_TRUE(response.has_value());
  ASSERT_EQ(response->outputs_size(), 2);
  EXPECT_EQ(dims_of(output(*response, "label")), (std::vector<std::int64_t>{4}));
  EXPECT_EQ(values(output(*response, "label").string_val()),
            (std::vector<std::string>(4, "approve")));
  EXPECT_EQ(output(*response, "score").dtype(), tf::DT_FLOAT);
  EXPECT_EQ(values(output(*response, "score").float_val()), (std::vector<float>(4, 0.5f)));
  EXPECT_EQ(response->model_spec().name(), "shop");

  // One instance the rule does not cover: no answer, the chain moves on.
  (*request.mutable_inputs())["price"] = floats({12.5f, 30.0f, 19.99f, 7.0f});
  EXPECT_FALSE(through_rules(request, "unused").has_value());
}

TEST(RulesOverGrpc, HalfPlusTwoOverTensorContent) {
  tfs::PredictRequest request;
  request.mutable_model_spec()->set_name("half_plus_two");
  tf::TensorProto x = shaped(tf::DT_FLOAT, {3});
  x.set_tensor_content(little_endian<float>({1.0f, 2.0f, 5.0f}));
  (*request.mutable_inputs())["x"] = x;
  const auto response = through_rules(request, "y");
  ASSERT_TRUE(response.has_value());
  const auto& y = output(*response, "y");
  EXPECT_EQ(y.dtype(), tf::DT_FLOAT);
  EXPECT_EQ(dims_of(y), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(values(y.float_val()), (std::vector<float>{2.5f, 2.5f, 2.5f}));
  EXPECT_EQ(response->model_spec().signature_name(), "serving_default");

  // The rule's range holds per instance on the decoded values: 11 is out of range.
  x.set_tensor_content(little_endian<float>({1.0f, 11.0f, 5.0f}));
  (*request.mutable_inputs())["x"] = x;
  EXPECT_FALSE(through_rules(request, "y").has_value());
}

TEST(RulesOverGrpc, ColumnarRequestGetsTheRulesOutputs) {
  tfs::PredictRequest request;
  request.mutable_model_spec()->set_name("columnar_model");
  (*request.mutable_inputs())["a"] = floats({1.0f, 2.0f});
  (*request.mutable_inputs())["b"] = floats({1.0f, 2.0f, 3.0f});
  const auto response = through_rules(request, "unused");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(dims_of(output(*response, "y")), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(values(output(*response, "tag").string_val()), (std::vector<std::string>{"fallback"}));
}

}  // namespace
}  // namespace fusebox::rpc
