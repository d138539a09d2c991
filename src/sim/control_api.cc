#include "sim/control_api.h"

#include <nlohmann/json.hpp>

namespace tfs_sim {

namespace {

HttpReply json_reply(int status, std::string body) {
  HttpReply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

HttpReply error(int status, const std::string& message) {
  return json_reply(status, nlohmann::json{{"error", message}}.dump(
                                -1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string_view path_of(std::string_view target) {
  const auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

bool ControlApi::owns(std::string_view target) {
  const auto path = path_of(target);
  return path == "/sim" || path.substr(0, 5) == "/sim/";
}

HttpReply ControlApi::handle(std::string_view method, std::string_view target,
                             std::string_view body) {
  const auto path = path_of(target);
  auto wrong_method = [&](const char* allowed) {
    return error(405, std::string("method ") + std::string(method) + " not allowed on " +
                          std::string(path) + " (allowed: " + allowed + ")");
  };
  if (path == "/sim/faults") {
    if (method == "GET") return json_reply(200, fault_set_to_json(*faults_.snapshot()));
    if (method == "POST" || method == "PUT") {
      auto parsed = parse_fault_set(body);
      if (!parsed.faults) return error(400, "invalid fault set: " + parsed.error);
      const std::string echo = fault_set_to_json(*parsed.faults);
      faults_.replace(std::move(*parsed.faults));
      return json_reply(200, echo);
    }
    if (method == "DELETE") {
      faults_.clear();
      return json_reply(200, fault_set_to_json(FaultSet{}));
    }
    return wrong_method("GET, POST, PUT, DELETE");
  }
  if (path == "/sim/stats") {
    if (method == "GET") return json_reply(200, stats_.to_json());
    return wrong_method("GET");
  }
  if (path == "/sim/stats/reset") {
    if (method == "POST") {
      stats_.reset();
      return json_reply(200, stats_.to_json());
    }
    return wrong_method("POST");
  }
  if (path == "/sim/health") {
    if (method == "GET") return json_reply(200, R"({"status": "ok"})");
    return wrong_method("GET");
  }
  return error(404, "unknown tfs-sim control endpoint: " + std::string(path));
}

}  // namespace tfs_sim
