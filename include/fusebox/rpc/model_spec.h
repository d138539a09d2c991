#pragma once
// The routing part of a TF Serving gRPC request, read from and written into the serialized
// request bytes without parsing the rest: the gateway forwards the client's bytes and touches
// only `model_spec` (tensorflow.serving.ModelSpec). No protobuf library involved; pure
// functions, no exceptions, thread-safe.
//
// Where the ModelSpec sits:
//  - PredictRequest, ClassificationRequest, RegressionRequest, GetModelStatusRequest,
//    GetModelMetadataRequest: field 1 of the request (use parse_model_spec / rewrite_model_spec);
//  - MultiInferenceRequest: field 1 is `repeated InferenceTask tasks`, and each task holds its
//    own model_spec as field 1 (use parse_task_model_specs / rewrite_task_model_specs).
//
// ModelSpec fields: name = 1 (string), version = 2 (google.protobuf.Int64Value, value = 1),
// signature_name = 3 (string), version_label = 4 (string); version and version_label are a
// oneof.
//
// Reading follows libprotobuf's rules, so the gateway sees what TF Serving will see:
//  - an embedded message that occurs several times is merged: each scalar takes its last value,
//    a repeated Int64Value merges too, and setting one member of the version oneof clears the
//    other;
//  - a known field number with an unexpected wire type is an unknown field (kept, not read);
//  - unknown fields (any wire type, groups included) are skipped on reading and kept on writing;
//  - strings must be valid UTF-8 (libprotobuf rejects proto3 strings that are not).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fusebox/rpc/protobuf_wire.h"  // WireError, to_string(WireError), kMaxGroupDepth

namespace fusebox::rpc {

struct ModelSpec {
  std::string name;
  std::optional<std::int64_t> version;       // field 2; nullopt when absent
  std::optional<std::string> version_label;  // field 4; never set together with version
  std::string signature_name;                // field 3; empty means the default signature

  friend bool operator==(const ModelSpec&, const ModelSpec&) = default;
};

struct ModelSpecResult {
  WireError error = WireError::none;
  // The merged value of every occurrence; nullopt when the request has no model_spec (or on
  // error).
  std::optional<ModelSpec> spec;

  bool ok() const { return error == WireError::none; }
};

// Reads field 1 of a serialized request (see the list above). Checks the framing of the whole
// top-level message (every tag and length), but looks inside field 1 only.
ModelSpecResult parse_model_spec(std::string_view request);

// Reads a serialized ModelSpec message itself (the payload of field 1).
ModelSpecResult parse_model_spec_message(std::string_view spec);

struct TaskModelSpecsResult {
  WireError error = WireError::none;
  // One entry per InferenceTask, in request order; nullopt for a task without model_spec.
  std::vector<std::optional<ModelSpec>> tasks;

  bool ok() const { return error == WireError::none; }
};

// Reads the model_spec of every task of a serialized MultiInferenceRequest. Tasks are a
// repeated field: each occurrence of field 1 is its own task (no merging across tasks); within
// a task, repeated model_spec occurrences merge as above.
TaskModelSpecsResult parse_task_model_specs(std::string_view request);

// "Serve whatever version is the latest": clears both version forms.
struct LatestVersion {
  friend bool operator==(LatestVersion, LatestVersion) = default;
};

// A change to a ModelSpec; every member left empty keeps the request's value.
struct ModelSpecRewrite {
  std::optional<std::string> name;
  // LatestVersion clears version and version_label, an int64 sets version (and clears the
  // label), a string sets version_label (and clears version).
  std::optional<std::variant<LatestVersion, std::int64_t, std::string>> version;
  std::optional<std::string> signature_name;
};

// `spec` with `rewrite` applied.
ModelSpec apply_rewrite(const ModelSpec& spec, const ModelSpecRewrite& rewrite);

// The ModelSpec serialized the way libprotobuf does it: fields in number order, empty strings
// and an absent version omitted (version 0 is an empty Int64Value, which is not the same as no
// version).
std::string serialize_model_spec(const ModelSpec& spec);

struct RewriteResult {
  WireError error = WireError::none;
  std::string bytes;  // the rewritten request; empty on error

  bool ok() const { return error == WireError::none; }
};

// Rewrites field 1 of a serialized request: every occurrence is replaced by one occurrence, at
// the place of the first, holding the merged spec with `rewrite` applied. Unknown fields inside
// the ModelSpec are kept (after the known ones, as libprotobuf writes them); unknown fields
// inside the Int64Value wrapper are not. Every other byte of the request is kept as is and in
// order. A request without model_spec gets one at the front, unless the rewritten spec is empty
// (then the request is returned unchanged). The result parses, with libprotobuf or
// parse_model_spec, to apply_rewrite(original spec, rewrite).
RewriteResult rewrite_model_spec(std::string_view request, const ModelSpecRewrite& rewrite);

// The same for every task of a serialized MultiInferenceRequest: each task's model_spec is
// rewritten in place (the task re-framed with its new length); tasks, their order and every
// other byte are kept. A task without model_spec gets one unless the rewritten spec is empty.
RewriteResult rewrite_task_model_specs(std::string_view request, const ModelSpecRewrite& rewrite);

}  // namespace fusebox::rpc
