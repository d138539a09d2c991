#pragma once
// The admin listener's endpoints: /healthz, /readyz, /metrics, /admin/config, /admin/routes,
// /admin/backends, /admin/reload (GET: the last reload; POST: reload now), and breaker control:
// POST /admin/pools/{pool}/backends/{backend}/breaker.
// Runs on the admin thread, never on a data-path worker.

#include <functional>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>

#include "fusebox/proxy/runtime.h"
#include "fusebox/server/http_session.h"

namespace fusebox::server {

// What the admin endpoints need from the process around them (the gateway).
class AdminContext {
 public:
  virtual ~AdminContext() = default;
  // The configuration serving new requests. Any thread.
  virtual std::shared_ptr<proxy::Runtime> runtime() const = 0;
  // Shutting down (SIGTERM/SIGINT received): /readyz answers 503 from then on. Any thread.
  virtual bool draining() const = 0;
  // Every family /metrics shows: the live configuration's, the totals kept from configurations
  // retired by reloads, and the process's own (reloads). Admin thread.
  virtual void collect_metrics(std::vector<prometheus::MetricFamily>& out) const = 0;
  // The reload history as GET /admin/reload shows it. Admin thread.
  virtual nlohmann::json reload_status() const = 0;
  // Reloads the configuration file; `done(applied, status)` runs on the admin thread when the
  // reload finished (at once when one is already running: it is then queued after it).
  using ReloadDone = std::function<void(bool applied, const nlohmann::json& status)>;
  virtual void request_reload(const char* trigger, ReloadDone done) = 0;
};

class AdminHandler final : public RequestHandler {
 public:
  explicit AdminHandler(AdminContext& context) : context_(context) {}

  void handle(Request&& request, const ConnectionInfo& connection, Clock::time_point start,
              std::shared_ptr<ResponseSink> sink) override;
  void on_rejected(const ConnectionInfo&, const RejectedRequest&) override {}

  // Readiness as /readyz reports it: empty when ready, else the first reason it is not.
  // Any thread.
  std::string not_ready_reason() const;
  // Whether the route's pool has a backend that may serve (healthy, breaker not ejecting).
  // Any thread (reads atomics only).
  static bool route_serving(const proxy::Runtime& runtime, std::size_t route);

 private:
  // 401 when /admin/* needs a token (listeners.admin.token_hash) that the request lacks.
  std::optional<Response> check_admin_token(const proxy::Runtime& runtime,
                                            const Request& request) const;
  // POST /admin/pools/{pool}/backends/{backend}/breaker {"state": ...}
  Response control_breaker(proxy::Runtime& runtime, const Request& request,
                           std::string_view path);

  AdminContext& context_;
};

}  // namespace fusebox::server
