#pragma once
// The models tfs-sim serves and TF's status vocabulary. Pure; no I/O.
//
// Every model is elementwise linear, y = slope * x + intercept, computed in float (DT_FLOAT) with
// one rounding per operation, like the TF graph of saved_model_half_plus_two:
//   half_plus_two   y = 0.5 x + 2   (TF Serving's canonical test model)
//   half_plus_three y = 0.5 x + 3   (a visibly different "light" fallback model)

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tfs_sim {

// tensorflow::error::Code; numeric values are TF's (and gRPC's).
enum class TfCode : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

// A TF Status: code plus message. The REST layer turns it into an HTTP status (http_status_for)
// and a {"error": message} body.
struct TfStatus {
  TfCode code = TfCode::ok;
  std::string message;

  bool ok() const { return code == TfCode::ok; }
  // Status::ToString() as nested TF messages quote it: "INVALID_ARGUMENT: <message>".
  std::string to_string() const;

  static TfStatus invalid_argument(std::string m) {
    return {TfCode::invalid_argument, std::move(m)};
  }
  static TfStatus not_found(std::string m) { return {TfCode::not_found, std::move(m)}; }
  static TfStatus unavailable(std::string m) { return {TfCode::unavailable, std::move(m)}; }
};

// TF Serving's http_server.cc ToHTTPStatusCode().
int http_status_for(TfCode code);
// "OK", "INVALID_ARGUMENT", ... (the names in ModelVersionStatus.status.error_code).
const char* tf_code_name(TfCode code);
// The TF code a given HTTP status most plausibly came from (for injected errors): 503 ->
// UNAVAILABLE, 429 -> RESOURCE_EXHAUSTED, ... ; UNKNOWN when nothing maps.
TfCode tf_code_for_http_status(int http_status);

enum class ModelKind { half_plus_two, half_plus_three };

std::optional<ModelKind> parse_model_kind(std::string_view text);
const char* to_string(ModelKind kind);

struct LinearModel {
  float slope = 0.5f;
  float intercept = 2.0f;

  static LinearModel of(ModelKind kind);
  // One float multiply and one float add, each rounded (no fused multiply-add), like TF's
  // Mul and Add kernels.
  float apply(float x) const;
  void apply_in_place(std::vector<float>& values) const;
};

// ModelVersionStatus.State names: UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END.
enum class ModelState { unknown, start, loading, available, unloading, end };

std::optional<ModelState> parse_model_state(std::string_view text);  // case-insensitive
const char* to_string(ModelState state);

struct ServedModel {
  std::string name;
  ModelKind kind = ModelKind::half_plus_two;
};

}  // namespace tfs_sim
