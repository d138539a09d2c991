#include "sim/model.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace tfs_sim {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string TfStatus::to_string() const {
  if (ok()) return "OK";
  return std::string(tf_code_name(code)) + ": " + message;
}

int http_status_for(TfCode code) {
  switch (code) {
    case TfCode::ok:
      return 200;
    case TfCode::cancelled:
      return 499;
    case TfCode::unknown:
      return 500;
    case TfCode::invalid_argument:
      return 400;
    case TfCode::deadline_exceeded:
      return 504;
    case TfCode::not_found:
      return 404;
    case TfCode::already_exists:
      return 409;
    case TfCode::permission_denied:
      return 403;
    case TfCode::resource_exhausted:
      return 429;
    case TfCode::failed_precondition:
      return 400;
    case TfCode::aborted:
      return 409;
    case TfCode::out_of_range:
      return 400;
    case TfCode::unimplemented:
      return 501;
    case TfCode::internal:
      return 500;
    case TfCode::unavailable:
      return 503;
    case TfCode::data_loss:
      return 500;
    case TfCode::unauthenticated:
      return 401;
  }
  return 500;
}

const char* tf_code_name(TfCode code) {
  switch (code) {
    case TfCode::ok:
      return "OK";
    case TfCode::cancelled:
      return "CANCELLED";
    case TfCode::unknown:
      return "UNKNOWN";
    case TfCode::invalid_argument:
      return "INVALID_ARGUMENT";
    case TfCode::deadline_exceeded:
      return "DEADLINE_EXCEEDED";
    case TfCode::not_found:
      return "NOT_FOUND";
    case TfCode::already_exists:
      return "ALREADY_EXISTS";
    case TfCode::permission_denied:
      return "PERMISSION_DENIED";
    case TfCode::resource_exhausted:
      return "RESOURCE_EXHAUSTED";
    case TfCode::failed_precondition:
      return "FAILED_PRECONDITION";
    case TfCode::aborted:
      return "ABORTED";
    case TfCode::out_of_range:
      return "OUT_OF_RANGE";
    case TfCode::unimplemented:
      return "UNIMPLEMENTED";
    case TfCode::internal:
      return "INTERNAL";
    case TfCode::unavailable:
      return "UNAVAILABLE";
    case TfCode::data_loss:
      return "DATA_LOSS";
    case TfCode::unauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

TfCode tf_code_for_http_status(int http_status) {
  switch (http_status) {
    case 200:
      return TfCode::ok;
    case 400:
      return TfCode::invalid_argument;
    case 401:
      return TfCode::unauthenticated;
    case 403:
      return TfCode::permission_denied;
    case 404:
      return TfCode::not_found;
    case 409:
      return TfCode::aborted;
    case 429:
      return TfCode::resource_exhausted;
    case 499:
      return TfCode::cancelled;
    case 500:
      return TfCode::internal;
    case 501:
      return TfCode::unimplemented;
    case 503:
      return TfCode::unavailable;
    case 504:
      return TfCode::deadline_exceeded;
    default:
      return TfCode::unknown;
  }
}

std::optional<ModelKind> parse_model_kind(std::string_view text) {
  if (text == "half_plus_two") return ModelKind::half_plus_two;
  if (text == "half_plus_three") return ModelKind::half_plus_three;
  return std::nullopt;
}

const char* to_string(ModelKind kind) {
  switch (kind) {
    case ModelKind::half_plus_two:
      return "half_plus_two";
    case ModelKind::half_plus_three:
      return "half_plus_three";
  }
  return "half_plus_two";
}

LinearModel LinearModel::of(ModelKind kind) {
  switch (kind) {
    case ModelKind::half_plus_two:
      return LinearModel{0.5f, 2.0f};
    case ModelKind::half_plus_three:
      return LinearModel{0.5f, 3.0f};
  }
  return LinearModel{};
}

float LinearModel::apply(float x) const {
  // Two statements so the product is rounded to float before the add (ISO C++ mode does not
  // contract them into an FMA).
  const float product = slope * x;
  const float sum = product + intercept;
  return sum;
}

void LinearModel::apply_in_place(std::vector<float>& values) const {
  for (float& v : values) v = apply(v);
}

namespace {
constexpr std::array<std::pair<ModelState, const char*>, 6> kStateNames{{
    {ModelState::unknown, "UNKNOWN"},
    {ModelState::start, "START"},
    {ModelState::loading, "LOADING"},
    {ModelState::available, "AVAILABLE"},
    {ModelState::unloading, "UNLOADING"},
    {ModelState::end, "END"},
}};
}  // namespace

std::optional<ModelState> parse_model_state(std::string_view text) {
  for (const auto& [state, name] : kStateNames) {
    if (iequals(text, name)) return state;
  }
  return std::nullopt;
}

const char* to_string(ModelState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "UNKNOWN";
}

}  // namespace tfs_sim
