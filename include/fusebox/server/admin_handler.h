#pragma once
// The admin listener's endpoints: /healthz, /readyz, /metrics, /admin/config, /admin/backends,
// and breaker control: POST /admin/pools/{pool}/backends/{backend}/breaker.
// Runs on the admin thread, never on a data-path worker.

#include "fusebox/proxy/runtime.h"
#include "fusebox/server/http_session.h"

namespace fusebox::server {

class AdminHandler final : public RequestHandler {
 public:
  explicit AdminHandler(proxy::Runtime& runtime) : runtime_(runtime) {}

  void handle(Request&& request, const ConnectionInfo& connection, Clock::time_point start,
              std::shared_ptr<ResponseSink> sink) override;
  void on_rejected(const ConnectionInfo&, const RejectedRequest&) override {}

  // Readiness as /readyz reports it: empty when ready, else the first reason it is not.
  std::string not_ready_reason() const;
  // Whether the route's pool has a backend that may serve (healthy, breaker not ejecting).
  // Any thread (reads atomics only).
  bool route_serving(std::size_t route) const;

 private:
  // POST /admin/pools/{pool}/backends/{backend}/breaker {"state": ...}
  Response control_breaker(const Request& request, std::string_view path);

  proxy::Runtime& runtime_;
};

}  // namespace fusebox::server
