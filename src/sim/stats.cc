#include "sim/stats.h"

#include <nlohmann/json.hpp>

#include "sim/model.h"

namespace tfs_sim {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

nlohmann::ordered_json faults_json(const std::array<std::atomic<std::uint64_t>, 4>& faults) {
  return {
      {"errors", faults[static_cast<std::size_t>(InjectedFault::error)].load(kRelaxed)},
      {"resets", faults[static_cast<std::size_t>(InjectedFault::reset)].load(kRelaxed)},
      {"hangs", faults[static_cast<std::size_t>(InjectedFault::hang)].load(kRelaxed)},
      {"delayed", faults[static_cast<std::size_t>(InjectedFault::delay)].load(kRelaxed)},
  };
}

}  // namespace

const char* to_string(GrpcMethod method) {
  switch (method) {
    case GrpcMethod::predict:
      return "Predict";
    case GrpcMethod::classify:
      return "Classify";
    case GrpcMethod::regress:
      return "Regress";
    case GrpcMethod::multi_inference:
      return "MultiInference";
    case GrpcMethod::get_model_metadata:
      return "GetModelMetadata";
    case GrpcMethod::get_model_status:
      return "GetModelStatus";
  }
  return "Unknown";
}

SimStats::TrafficCounters::TrafficCounters(std::size_t model_count)
    : per_model(std::make_unique<std::atomic<std::uint64_t>[]>(model_count)) {
  reset(model_count);
}

void SimStats::TrafficCounters::reset(std::size_t model_count) {
  requests.store(0, kRelaxed);
  probe_requests.store(0, kRelaxed);
  other_models.store(0, kRelaxed);
  for (std::size_t i = 0; i < model_count; ++i) per_model[i].store(0, kRelaxed);
  for (auto& c : faults) c.store(0, kRelaxed);
}

SimStats::SimStats(std::vector<std::string> model_names)
    : model_names_(std::move(model_names)),
      rest_(model_names_.size()),
      grpc_(model_names_.size()) {}

void SimStats::count_request(TrafficCounters& counters, std::string_view model) const {
  counters.requests.fetch_add(1, kRelaxed);
  for (std::size_t i = 0; i < model_names_.size(); ++i) {
    if (model_names_[i] == model) {
      counters.per_model[i].fetch_add(1, kRelaxed);
      return;
    }
  }
  counters.other_models.fetch_add(1, kRelaxed);
}

nlohmann::ordered_json SimStats::models_json(const TrafficCounters& counters) const {
  nlohmann::ordered_json by_model = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < model_names_.size(); ++i) {
    by_model[model_names_[i]] = counters.per_model[i].load(kRelaxed);
  }
  return by_model;
}

void SimStats::on_connection_accepted() {
  connections_accepted_.fetch_add(1, kRelaxed);
  connections_open_.fetch_add(1, kRelaxed);
}

void SimStats::on_connection_closed() { connections_open_.fetch_sub(1, kRelaxed); }

void SimStats::on_v1_request(std::string_view model) { count_request(rest_, model); }

void SimStats::on_probe_request() { rest_.probe_requests.fetch_add(1, kRelaxed); }

void SimStats::on_v1_response(int http_status) {
  if (http_status < kMinStatus || http_status > kMaxStatus) return;
  by_status_[static_cast<std::size_t>(http_status - kMinStatus)].fetch_add(1, kRelaxed);
}

void SimStats::on_fault(InjectedFault fault) {
  rest_.faults[static_cast<std::size_t>(fault)].fetch_add(1, kRelaxed);
}

void SimStats::on_grpc_call(const GrpcCallInfo& call) {
  if (call.probe) {
    grpc_.probe_requests.fetch_add(1, kRelaxed);
    return;
  }
  count_request(grpc_, call.model);
  grpc_by_method_[static_cast<std::size_t>(call.method)].fetch_add(1, kRelaxed);
  grpc_last_deadline_ms_.store(call.deadline_ms.value_or(kNoDeadline), kRelaxed);
  grpc_last_request_id_.store(
      call.request_id ? std::make_shared<const std::string>(*call.request_id) : nullptr);
  grpc_last_metadata_keys_.store(std::make_shared<const std::string>(call.metadata_keys));
}

void SimStats::on_grpc_response(int code) {
  if (code < 0 || static_cast<std::size_t>(code) >= grpc_by_code_.size()) return;
  grpc_by_code_[static_cast<std::size_t>(code)].fetch_add(1, kRelaxed);
  if (code != 0) grpc_errors_.fetch_add(1, kRelaxed);
}

void SimStats::on_grpc_fault(InjectedFault fault) {
  grpc_.faults[static_cast<std::size_t>(fault)].fetch_add(1, kRelaxed);
}

std::string SimStats::to_json() const {
  nlohmann::ordered_json j;
  j["requests"] = rest_.requests.load(kRelaxed);
  j["requests_by_model"] = models_json(rest_);
  j["requests_other_models"] = rest_.other_models.load(kRelaxed);
  nlohmann::ordered_json by_status = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < by_status_.size(); ++i) {
    const auto n = by_status_[i].load(kRelaxed);
    if (n > 0) by_status[std::to_string(static_cast<int>(i) + kMinStatus)] = n;
  }
  j["responses_by_status"] = by_status;
  j["connections_accepted"] = connections_accepted_.load(kRelaxed);
  j["connections_open"] = connections_open_.load(kRelaxed);
  j["probe_requests"] = rest_.probe_requests.load(kRelaxed);
  j["faults"] = faults_json(rest_.faults);

  nlohmann::ordered_json grpc;
  grpc["requests"] = grpc_.requests.load(kRelaxed);
  nlohmann::ordered_json by_method = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < kGrpcMethodCount; ++i) {
    by_method[to_string(static_cast<GrpcMethod>(i))] = grpc_by_method_[i].load(kRelaxed);
  }
  grpc["requests_by_method"] = by_method;
  grpc["requests_by_model"] = models_json(grpc_);
  grpc["requests_other_models"] = grpc_.other_models.load(kRelaxed);
  nlohmann::ordered_json by_code = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < grpc_by_code_.size(); ++i) {
    const auto n = grpc_by_code_[i].load(kRelaxed);
    if (n > 0) by_code[tf_code_name(static_cast<TfCode>(i))] = n;
  }
  grpc["responses_by_code"] = by_code;
  grpc["errors"] = grpc_errors_.load(kRelaxed);
  grpc["probe_requests"] = grpc_.probe_requests.load(kRelaxed);
  grpc["faults"] = faults_json(grpc_.faults);
  const auto deadline = grpc_last_deadline_ms_.load(kRelaxed);
  grpc["last_deadline_ms"] =
      deadline == kNoDeadline ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(deadline);
  const auto request_id = grpc_last_request_id_.load();
  grpc["last_request_id"] =
      request_id ? nlohmann::ordered_json(*request_id) : nlohmann::ordered_json(nullptr);
  auto keys = nlohmann::ordered_json::array();
  if (const auto joined = grpc_last_metadata_keys_.load(); joined && !joined->empty()) {
    std::string_view rest(*joined);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      keys.push_back(std::string(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  grpc["last_metadata_keys"] = keys;
  j["grpc"] = grpc;
  // Model names and request ids come from outside: never throw on invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SimStats::reset() {
  rest_.reset(model_names_.size());
  connections_accepted_.store(0, kRelaxed);
  for (auto& c : by_status_) c.store(0, kRelaxed);
  grpc_.reset(model_names_.size());
  grpc_errors_.store(0, kRelaxed);
  for (auto& c : grpc_by_method_) c.store(0, kRelaxed);
  for (auto& c : grpc_by_code_) c.store(0, kRelaxed);
  grpc_last_deadline_ms_.store(kNoDeadline, kRelaxed);
  grpc_last_request_id_.store(nullptr);
  grpc_last_metadata_keys_.store(nullptr);
}

}  // namespace tfs_sim
