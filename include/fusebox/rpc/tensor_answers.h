#pragma once
// The response cache and rules tiers of the degradation chain for gRPC calls: a cache key that
// two equal requests share however they were encoded, the REST JSON view of a PredictRequest
// that the rules engine (degrade/rules.h) evaluates, and the PredictResponse built from the
// rules engine's JSON answer. Pure functions on serialized messages (parsed with the generated
// classes of fusebox_proto): no I/O, no exceptions escape (allocation failure included: the
// answer is then nullopt), thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusebox::rpc {

// The full gRPC paths of the calls the functions below know.
inline constexpr std::string_view kPredictMethod = "/tensorflow.serving.PredictionService/Predict";
inline constexpr std::string_view kClassifyMethod =
    "/tensorflow.serving.PredictionService/Classify";
inline constexpr std::string_view kRegressMethod = "/tensorflow.serving.PredictionService/Regress";
inline constexpr std::string_view kMultiInferenceMethod =
    "/tensorflow.serving.PredictionService/MultiInference";
inline constexpr std::string_view kGetModelMetadataMethod =
    "/tensorflow.serving.PredictionService/GetModelMetadata";
inline constexpr std::string_view kGetModelStatusMethod =
    "/tensorflow.serving.ModelService/GetModelStatus";

// The cache identity of a call. `method` is the full gRPC path, one of the six above.
// The key is `method`, a '\n', then the request re-serialized deterministically (libprotobuf's
// SetSerializationDeterministic: map entries sorted by key, fields in number order, packed
// repeated fields, proto3 defaults left out). So requests that are equal as messages get the
// same key whatever the map order, field order, packed or unpacked encoding, or explicitly
// written defaults of their bytes. Unknown fields are kept (after the known ones, in the order
// received): they are part of what the backend sees. The method is part of the key because
// different request types can have the same bytes (a request with only a model_spec), and it starts
// with '/', so a key never equals the canonical JSON of a REST body in a store shared by both
// protocols. nullopt when the method is not one of the above or the bytes do not parse as its
// request (broken framing, invalid UTF-8 in a string field, nesting beyond libprotobuf's limit).
std::optional<std::string> deterministic_request_key(std::string_view method,
                                                     std::string_view request_bytes);

// Above this many JSON values over all inputs (elements, after TensorProto's fill rule below,
// plus the nested lists holding them) a request has no rules view: a rule is not worth turning
// a large tensor (an image) into JSON, and a single value with a huge shape must not make a
// tiny request expand.
inline constexpr std::int64_t kMaxRulesViewValues = std::int64_t{1} << 20;

// The REST request a TF Serving REST client would send for the same PredictRequest, so the
// rules written for REST apply unchanged:
//  - row format, {"signature_name": s, "instances": [...]}, when every input has rank >= 1 and
//    all share the same, non-zero, first (batch) dimension: with one input each instance is that
//    input's row (a scalar for a 1-D input, else a nested list); with several, an object keyed
//    by input name;
//  - else columnar, {"signature_name": s, "inputs": {name: nested list (or scalar), ...}}.
// "signature_name" is written only when the request's model_spec names one.
// Values are read the way TensorFlow reads a TensorProto: tensor_content (little-endian,
// row-major; its size must be exactly elements x element size), else the typed field, where
// fewer values than elements are completed with the last one (so a single value fills the
// shape), none means zeros (empty strings), and extra values are ignored.
// dtypes: DT_FLOAT, DT_DOUBLE, DT_INT32/INT16/INT8/UINT8/UINT16 (int_val), DT_INT64, DT_UINT32,
// DT_UINT64, DT_BOOL, DT_STRING (string_val only: a JSON string when valid UTF-8, else
// {"b64": standard base64}). Floats are written as the shortest decimal that reads back to the
// same float (0.1f -> 0.1, so a rule's `equals: 0.1` holds as it does for the REST request);
// NaN and infinities are written as null (the rules engine's JSON has no NaN).
// nullopt for methods other than kPredictMethod (Classify, Regress and MultiInference carry
// tf.Examples, which have no REST rules form yet), bytes that do not parse, a request without
// inputs, an input with another dtype, an invalid shape (unknown rank, a negative dimension, more
// than 254 dimensions), a tensor_content of the wrong size, or more than kMaxRulesViewValues.
std::optional<std::string> rules_json_view(std::string_view method, std::string_view request_bytes);

// The output name used when the rules answer has one unnamed output and no hint is given:
// what Keras-exported SavedModels call their single output.
inline constexpr std::string_view kDefaultRulesOutputName = "output_0";

// A serialized PredictResponse (deterministic serialization) carrying the rules engine's
// answer `answer_json` to the PredictRequest `request_bytes`, shaped like a model's answer:
//  - {"predictions": [p0, ..., pN-1]} (the answer to a row view): N must equal the request's
//    batch size (the row view's instance count). When every p is an object (not {"b64": ...}),
//    each key is one output tensor of shape [N, ...] (every p must have the same keys, and a
//    key's values the same shape); otherwise the list is one output tensor of shape [N, ...]
//    named `output_name_hint` (kDefaultRulesOutputName when empty).
//  - {"outputs": v} (the answer to a columnar view): an object v (not {"b64": ...}) gives one
//    tensor per key, each of its value's shape; any other v is one tensor named as above, of
//    its own shape ([] for a scalar).
// dtypes: every number is DT_FLOAT (most models answer floats; an integer such as 0 written
// in a rule is a float score too), narrowed from the JSON value; true/false are DT_BOOL;
// strings and {"b64": ...} objects are DT_STRING (the b64 text decoded). Values go in the typed
// fields (float_val, bool_val, string_val), as TF Serving writes them. A tensor without any
// value (shape [N, 0]) is DT_FLOAT.
// model_spec is the request's, with signature_name "serving_default" when the request left it
// empty (as TF Serving reports it). When the request has an output_filter, only the outputs it
// names are returned, and all of them must be in the answer.
// nullopt when the answer cannot be expressed as such a response (the caller moves down the
// chain): request bytes or answer JSON that do not parse, neither or both of
// "predictions"/"outputs", no predictions, a batch size mismatch, ragged nesting, a null, an
// object where a value is expected, numbers mixed with strings or booleans, a number outside
// float's range, invalid base64, objects with different keys or none, a filtered output
// missing.
std::optional<std::string> predict_response_from_rules(std::string_view request_bytes,
                                                       std::string_view answer_json,
                                                       const std::string& output_name_hint);

}  // namespace fusebox::rpc
