#pragma once
// Counters tfs-sim exposes on GET /sim/stats. Relaxed atomics: every method is thread-safe and
// wait-free; a reader may see counters from slightly different instants.

#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tfs_sim {

enum class InjectedFault { error, reset, hang, delay };

// The gRPC methods tfs-sim serves (PredictionService's five and ModelService.GetModelStatus).
enum class GrpcMethod {
  predict,
  classify,
  regress,
  multi_inference,
  get_model_metadata,
  get_model_status,
};
inline constexpr std::size_t kGrpcMethodCount = 6;
// "Predict", "Classify", ... (the method part of the gRPC path).
const char* to_string(GrpcMethod method);

// What a gRPC call arrived with, recorded for tests that observe a gateway in front.
struct GrpcCallInfo {
  GrpcMethod method = GrpcMethod::predict;
  std::string_view model;                      // ModelSpec.name
  std::optional<std::int64_t> deadline_ms;     // time left until the deadline; nullopt: none
  std::optional<std::string_view> request_id;  // the x-request-id metadata value
  std::string metadata_keys;                   // the metadata keys, sorted, comma-separated
  bool probe = false;                          // user-agent starts with fusebox-health-check
};

class SimStats {
 public:
  // Requests are counted per served model; a /v1 request naming any other model (or none) is
  // counted under "other" so the counter set stays bounded.
  explicit SimStats(std::vector<std::string> model_names);

  void on_connection_accepted();
  void on_connection_closed();
  void on_v1_request(std::string_view model);
  // A /v1 request from a gateway health check (User-Agent "fusebox-health-check"): counted only
  // as "probe_requests", never in "requests" or "responses_by_status".
  void on_probe_request();
  void on_v1_response(int http_status);
  void on_fault(InjectedFault fault);

  // gRPC calls, counted apart from the /v1 counters above (under "grpc" in the JSON). A probe
  // is counted only in grpc.probe_requests and does not change the last deadline / request id;
  // its response is not reported (on_grpc_response), its faults are.
  void on_grpc_call(const GrpcCallInfo& call);
  // `code` is the gRPC status code (0..16) the call finished with.
  void on_grpc_response(int code);
  void on_grpc_fault(InjectedFault fault);

  // {"requests": N, "requests_by_model": {"m": N, ...}, "requests_other_models": N,
  //  "responses_by_status": {"200": N, ...}, "connections_accepted": N, "connections_open": N,
  //  "faults": {"errors": N, "resets": N, "hangs": N, "delayed": N}, "probe_requests": N,
  //  "grpc": {"requests": N, "requests_by_method": {"Predict": N, ...},
  //           "requests_by_model": {"m": N, ...}, "requests_other_models": N,
  //           "responses_by_code": {"OK": N, "NOT_FOUND": N, ...}, "errors": N,
  //           "probe_requests": N, "faults": {...as above},
  //           "last_deadline_ms": N or null, "last_request_id": "..." or null,
  //           "last_metadata_keys": ["k", ...] (sorted)}}
  std::string to_json() const;
  // Zeroes every counter except connections_open (a gauge).
  void reset();

  std::uint64_t requests() const { return rest_.requests.load(std::memory_order_relaxed); }
  std::uint64_t connections_accepted() const {
    return connections_accepted_.load(std::memory_order_relaxed);
  }
  std::int64_t connections_open() const {
    return connections_open_.load(std::memory_order_relaxed);
  }

 private:
  // What REST and gRPC both count, each in its own set.
  struct TrafficCounters {
    explicit TrafficCounters(std::size_t model_count);
    void reset(std::size_t model_count);

    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> probe_requests{0};
    std::unique_ptr<std::atomic<std::uint64_t>[]> per_model;  // indexed like model_names_
    std::atomic<std::uint64_t> other_models{0};
    std::array<std::atomic<std::uint64_t>, 4> faults{};  // indexed by InjectedFault
  };

  // One more request for `model` in `counters`.
  void count_request(TrafficCounters& counters, std::string_view model) const;
  // The counters' "requests_by_model" object.
  nlohmann::ordered_json models_json(const TrafficCounters& counters) const;

  static constexpr int kMinStatus = 100;
  static constexpr int kMaxStatus = 599;
  static constexpr std::int64_t kNoDeadline = INT64_MIN;
  std::vector<std::string> model_names_;
  TrafficCounters rest_;
  std::atomic<std::uint64_t> connections_accepted_{0};
  std::atomic<std::int64_t> connections_open_{0};
  std::array<std::atomic<std::uint64_t>, kMaxStatus - kMinStatus + 1> by_status_{};

  TrafficCounters grpc_;
  std::atomic<std::uint64_t> grpc_errors_{0};
  std::array<std::atomic<std::uint64_t>, kGrpcMethodCount> grpc_by_method_{};
  std::array<std::atomic<std::uint64_t>, 17> grpc_by_code_{};  // gRPC codes 0..16
  std::atomic<std::int64_t> grpc_last_deadline_ms_{kNoDeadline};
  std::atomic<std::shared_ptr<const std::string>> grpc_last_request_id_;
  std::atomic<std::shared_ptr<const std::string>> grpc_last_metadata_keys_;
};

}  // namespace tfs_sim
