// Reading TF Serving's model status, from `GET /v1/models/{m}` (see shared/TFSERVING.md):
//   {"model_version_status": [{"version": "3", "state": "AVAILABLE",
//                              "status": {"error_code": "OK", "error_message": ""}}]}
// or from ModelService/GetModelStatus (the same message, binary). Both are turned into a list
// of ModelVersionState and judged by evaluate_versions(). Pure and exception-free: the answer
// comes from the network and may be anything.

#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/health/health_checker.h"
#include "fusebox/upstream/grpc_upstream.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"

namespace fusebox::health {

namespace {

using nlohmann::json;

// Text copied from a response into a detail is cut so one bad backend cannot flood the logs.
constexpr std::size_t kMaxQuotedText = 200;
// Versions listed in a not_available detail; more are summarised as "(N more)".
constexpr std::size_t kMaxListedVersions = 8;

std::string clipped(std::string_view text) {
  if (text.size() <= kMaxQuotedText) return std::string(text);
  return std::string(text.substr(0, kMaxQuotedText)) + "...";
}

// "version" is an int64 written as a JSON string; a JSON integer is accepted as well.
std::optional<std::int64_t> read_version(const json& value) {
  if (value.is_number_unsigned()) {
    auto v = value.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return {};
    return static_cast<std::int64_t>(v);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (!value.is_string()) return {};
  const auto& text = value.get_ref<const std::string&>();
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return {};
  return v;
}

// Reads status.error_code / status.error_message leniently: a missing or odd status is no
// reason to reject the answer, the state alone decides.
std::string read_error(const json& entry) {
  auto status = entry.find("status");
  if (status == entry.end() || !status->is_object()) return {};
  auto message = status->find("error_message");
  if (message == status->end() || !message->is_string() ||
      message->get_ref<const std::string&>().empty()) {
    return {};
  }
  std::string out;
  auto code = status->find("error_code");
  if (code != status->end() && code->is_string()) out = code->get<std::string>() + ": ";
  out += clipped(message->get_ref<const std::string&>());
  return out;
}

ModelStatusVerdict verdict(ProbeResult result, std::string detail, std::int64_t version = 0) {
  ModelStatusVerdict v;
  v.result = result;
  v.available_version = version;
  v.detail = std::move(detail);
  return v;
}

std::string join_versions(const std::vector<std::int64_t>& versions) {
  std::string out;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(versions[i]);
  }
  return out;
}

}  // namespace

ModelStatusVerdict evaluate_model_status(unsigned http_status, std::string_view body,
                                         std::int64_t expected_version) {
  const json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);

  if (http_status != 200) {
    std::string detail = "HTTP " + std::to_string(http_status);
    if (doc.is_object()) {
      auto error = doc.find("error");
      if (error != doc.end() && error->is_string()) {
        detail += ": " + clipped(error->get_ref<const std::string&>());
      }
    }
    return verdict(ProbeResult::http_error, std::move(detail));
  }

  if (doc.is_discarded()) return verdict(ProbeResult::bad_response, "response is not JSON");
  if (!doc.is_object()) return verdict(ProbeResult::bad_response, "response is not a JSON object");
  auto list = doc.find("model_version_status");
  if (list == doc.end()) return verdict(ProbeResult::bad_response, "no model_version_status");
  if (!list->is_array()) {
    return verdict(ProbeResult::bad_response, "model_version_status is not an array");
  }

  std::vector<ModelVersionState> versions;
  versions.reserve(list->size());
  for (const auto& entry : *list) {
    if (!entry.is_object()) {
      return verdict(ProbeResult::bad_response, "model_version_status entry is not an object");
    }
    auto version_field = entry.find("version");
    if (version_field == entry.end()) {
      return verdict(ProbeResult::bad_response, "model_version_status entry without version");
    }
    auto version = read_version(*version_field);
    if (!version) return verdict(ProbeResult::bad_response, "version is not an int64");
    auto state = entry.find("state");
    if (state == entry.end() || !state->is_string()) {
      return verdict(ProbeResult::bad_response,
                     "version " + std::to_string(*version) + " without a state string");
    }
    versions.push_back(
        {*version, clipped(state->get_ref<const std::string&>()), read_error(entry)});
  }
  return evaluate_versions(versions, expected_version);
}

ModelStatusVerdict evaluate_model_status(
    const grpc::Status& status, const tensorflow::serving::GetModelStatusResponse& response,
    std::int64_t expected_version) {
  if (!status.ok()) {
    std::string detail = std::string("gRPC ") + upstream::grpc_code_name(status.error_code());
    if (!status.error_message().empty()) detail += ": " + clipped(status.error_message());
    const auto result = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                            ? ProbeResult::timeout
                            : ProbeResult::grpc_error;
    return verdict(result, std::move(detail));
  }
  using tensorflow::serving::ModelVersionStatus;
  std::vector<ModelVersionState> versions;
  versions.reserve(static_cast<std::size_t>(response.model_version_status_size()));
  for (const auto& entry : response.model_version_status()) {
    ModelVersionState v;
    v.version = entry.version();
    v.state = ModelVersionStatus::State_Name(entry.state());
    // An open proto3 enum may carry a value this build does not know.
    if (v.state.empty()) v.state = "state " + std::to_string(static_cast<int>(entry.state()));
    if (!entry.status().error_message().empty()) {
      std::string code = tensorflow::error::Code_Name(entry.status().error_code());
      v.error =
          (code.empty() ? std::to_string(static_cast<int>(entry.status().error_code())) : code) +
          ": " + clipped(entry.status().error_message());
    }
    versions.push_back(std::move(v));
  }
  return evaluate_versions(versions, expected_version);
}

ModelStatusVerdict evaluate_versions(const std::vector<ModelVersionState>& versions,
                                     std::int64_t expected_version) {
  if (versions.empty()) return verdict(ProbeResult::not_available, "no versions");
  std::vector<std::int64_t> available;
  for (const auto& v : versions) {
    if (v.state == "AVAILABLE") available.push_back(v.version);
  }

  if (available.empty()) {
    std::string detail;
    for (std::size_t i = 0; i < versions.size() && i < kMaxListedVersions; ++i) {
      if (i > 0) detail += ", ";
      detail += "version " + std::to_string(versions[i].version) + " " + versions[i].state;
      if (!versions[i].error.empty()) detail += " (" + versions[i].error + ")";
    }
    if (versions.size() > kMaxListedVersions) {
      detail += " (" + std::to_string(versions.size() - kMaxListedVersions) + " more)";
    }
    return verdict(ProbeResult::not_available, std::move(detail));
  }

  std::int64_t highest = available.front();
  for (auto v : available) highest = v > highest ? v : highest;

  if (expected_version != 0) {
    for (auto v : available) {
      if (v == expected_version) {
        return verdict(ProbeResult::passed, "version " + std::to_string(v) + " AVAILABLE", highest);
      }
    }
    std::string detail = available.size() == 1 ? "serving version " : "serving versions ";
    detail += join_versions(available) + ", expected " + std::to_string(expected_version);
    return verdict(ProbeResult::version_mismatch, std::move(detail), highest);
  }
  return verdict(ProbeResult::passed, "version " + std::to_string(highest) + " AVAILABLE", highest);
}

const char* to_string(ProbeResult result) {
  switch (result) {
    case ProbeResult::passed:
      return "passed";
    case ProbeResult::not_available:
      return "not_available";
    case ProbeResult::version_mismatch:
      return "version_mismatch";
    case ProbeResult::http_error:
      return "http_error";
    case ProbeResult::bad_response:
      return "bad_response";
    case ProbeResult::connect_failure:
      return "connect_failure";
    case ProbeResult::timeout:
      return "timeout";
    case ProbeResult::grpc_error:
      return "grpc_error";
  }
  return "unknown";
}

}  // namespace fusebox::health
