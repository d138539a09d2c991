#pragma once
// Model-aware active health checks of TF Serving backends.
//
// For every backend of a pool, the model status of each of the pool's models: REST
// `GET /v1/models/{model}` on the backend's port, or (health_check.protocol: grpc)
// ModelService/GetModelStatus on its grpc_port. The backend passes only if every model has a
// version in state AVAILABLE (TF Serving answers OK while a model is LOADING, so the answer
// must be read) and, with expected_version, that version is the expected one. Consecutive
// passes/failures move the backend between healthy and unhealthy (thresholds); a wrong version
// makes it version_mismatch at once.
//
// HealthState and the evaluate_*() functions are pure; both protocols end in
// evaluate_versions(). HealthChecker does the I/O on one io_context (the admin thread): one
// probe loop per backend, keep-alive connection (REST) or a gRPC channel of its own reused,
// interval with jitter (faster while unhealthy), per-probe timeout. Probes are never counted
// as client traffic.

#include <grpcpp/support/status.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"
#include "fusebox/upstream/backend.h"

namespace tensorflow::serving {
class GetModelStatusResponse;
}

namespace fusebox::health {

// Stored in BackendState::health. Numeric values are stable (metrics, atomics).
enum class HealthStatus : std::uint8_t { unknown = 0, healthy = 1, unhealthy = 2, version_mismatch = 3 };
const char* to_string(HealthStatus status);
// Whether a backend in this status may receive traffic (unknown: yes, until the first probe).
inline bool eligible(HealthStatus s) { return s == HealthStatus::unknown || s == HealthStatus::healthy; }

enum class ProbeResult : std::uint8_t {
  passed,
  not_available,     // 200 but no version AVAILABLE (LOADING, UNLOADING, END, ...)
  version_mismatch,  // AVAILABLE, but not expected_version
  http_error,        // a status other than 200 (e.g. 404: the model is not served there)
  bad_response,      // unparsable JSON / unexpected shape
  connect_failure,
  timeout,
  grpc_error,        // a gRPC status other than OK (NOT_FOUND, UNAVAILABLE, ...)
};
const char* to_string(ProbeResult result);

struct ModelStatusVerdict {
  ProbeResult result = ProbeResult::bad_response;
  std::int64_t available_version = 0;  // highest AVAILABLE version, when there is one
  std::string detail;                  // e.g. "state LOADING", "version 2, expected 3"
};

// One entry of model_version_status, as either protocol reports it.
struct ModelVersionState {
  std::int64_t version = 0;
  std::string state;  // the State enum's name: "AVAILABLE", "LOADING", ...
  std::string error;  // "<error_code>: <error_message>" when the status carries a message
};

// The judgement both protocols share: whether a model with these versions passes.
// `expected_version` 0 = any.
ModelStatusVerdict evaluate_versions(const std::vector<ModelVersionState>& versions,
                                     std::int64_t expected_version);

// Reads TF Serving's REST model status answer (status code and JSON body).
ModelStatusVerdict evaluate_model_status(unsigned http_status, std::string_view body,
                                         std::int64_t expected_version);

// Reads the outcome of a ModelService/GetModelStatus call: `response` counts only when
// `status` is OK. DEADLINE_EXCEEDED is a timeout, any other status a grpc_error.
ModelStatusVerdict evaluate_model_status(
    const grpc::Status& status, const tensorflow::serving::GetModelStatusResponse& response,
    std::int64_t expected_version);

// Threshold logic of one backend (pure).
class HealthState {
 public:
  explicit HealthState(const config::HealthCheckConfig& config) : config_(config) {}
  // Applies one probe's overall result; returns true when the status changed.
  bool on_probe(ProbeResult result);
  HealthStatus status() const { return status_; }
  // Starts from a status already established (a backend carried over by a config reload);
  // pass and failure counts start from zero.
  void resume(HealthStatus status) {
    status_ = status;
    passes_ = failures_ = 0;
  }
  // Delay until the next probe: interval (unhealthy_interval while not healthy) +- jitter.
  std::chrono::milliseconds next_delay(Random& random) const;

 private:
  config::HealthCheckConfig config_;
  HealthStatus status_ = HealthStatus::unknown;
  std::uint32_t passes_ = 0;
  std::uint32_t failures_ = 0;
};

// Told about every probe and every status change; called on the checker's thread.
class HealthListener {
 public:
  virtual ~HealthListener() = default;
  virtual void on_probe(upstream::BackendState& backend, ProbeResult result,
                        const std::string& detail) = 0;
  virtual void on_status_change(upstream::BackendState& backend, HealthStatus from,
                                HealthStatus to, const std::string& detail) = 0;
};

class HealthChecker {
 public:
  // `models[p]`: the models probed on pool p's backends (the pool's health_check.models, or
  // the models of the routes that use the pool). A pool with health checks disabled, or with
  // no models (a route matching "*" only), is not probed: its backends stay `unknown`.
  HealthChecker(boost::asio::io_context& ioc, std::vector<upstream::PoolState*> pools,
                std::vector<std::vector<std::string>> models, HealthListener& listener,
                Random& random);
  ~HealthChecker();
  void start();  // first probes at once
  void stop();   // cancels everything; safe to call twice

  class Prober;

 private:
  boost::asio::io_context& ioc_;
  std::vector<std::shared_ptr<Prober>> probers_;
};

}  // namespace fusebox::health
