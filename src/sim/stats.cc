#include "sim/stats.h"

#include <nlohmann/json.hpp>

namespace tfs_sim {

namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;
}  // namespace

SimStats::SimStats(std::vector<std::string> model_names)
    : model_names_(std::move(model_names)),
      per_model_(std::make_unique<std::atomic<std::uint64_t>[]>(model_names_.size())) {
  for (std::size_t i = 0; i < model_names_.size(); ++i) per_model_[i].store(0, kRelaxed);
}

void SimStats::on_connection_accepted() {
  connections_accepted_.fetch_add(1, kRelaxed);
  connections_open_.fetch_add(1, kRelaxed);
}

void SimStats::on_connection_closed() { connections_open_.fetch_sub(1, kRelaxed); }

void SimStats::on_v1_request(std::string_view model) {
  requests_.fetch_add(1, kRelaxed);
  for (std::size_t i = 0; i < model_names_.size(); ++i) {
    if (model_names_[i] == model) {
      per_model_[i].fetch_add(1, kRelaxed);
      return;
    }
  }
  other_models_.fetch_add(1, kRelaxed);
}

void SimStats::on_probe_request() { probe_requests_.fetch_add(1, kRelaxed); }

void SimStats::on_v1_response(int http_status) {
  if (http_status < kMinStatus || http_status > kMaxStatus) return;
  by_status_[static_cast<std::size_t>(http_status - kMinStatus)].fetch_add(1, kRelaxed);
}

void SimStats::on_fault(InjectedFault fault) {
  faults_[static_cast<std::size_t>(fault)].fetch_add(1, kRelaxed);
}

std::string SimStats::to_json() const {
  nlohmann::ordered_json j;
  j["requests"] = requests_.load(kRelaxed);
  nlohmann::ordered_json by_model = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < model_names_.size(); ++i) {
    by_model[model_names_[i]] = per_model_[i].load(kRelaxed);
  }
  j["requests_by_model"] = by_model;
  j["requests_other_models"] = other_models_.load(kRelaxed);
  nlohmann::ordered_json by_status = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < by_status_.size(); ++i) {
    const auto n = by_status_[i].load(kRelaxed);
    if (n > 0) by_status[std::to_string(static_cast<int>(i) + kMinStatus)] = n;
  }
  j["responses_by_status"] = by_status;
  j["connections_accepted"] = connections_accepted_.load(kRelaxed);
  j["connections_open"] = connections_open_.load(kRelaxed);
  j["probe_requests"] = probe_requests_.load(kRelaxed);
  j["faults"] = {
      {"errors", faults_[static_cast<std::size_t>(InjectedFault::error)].load(kRelaxed)},
      {"resets", faults_[static_cast<std::size_t>(InjectedFault::reset)].load(kRelaxed)},
      {"hangs", faults_[static_cast<std::size_t>(InjectedFault::hang)].load(kRelaxed)},
      {"delayed", faults_[static_cast<std::size_t>(InjectedFault::delay)].load(kRelaxed)},
  };
  // Model names come from the command line: never throw on invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SimStats::reset() {
  requests_.store(0, kRelaxed);
  probe_requests_.store(0, kRelaxed);
  other_models_.store(0, kRelaxed);
  connections_accepted_.store(0, kRelaxed);
  for (std::size_t i = 0; i < model_names_.size(); ++i) per_model_[i].store(0, kRelaxed);
  for (auto& c : by_status_) c.store(0, kRelaxed);
  for (auto& c : faults_) c.store(0, kRelaxed);
}

}  // namespace tfs_sim
