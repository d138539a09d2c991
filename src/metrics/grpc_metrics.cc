#include "fusebox/metrics/grpc_metrics.h"

#include <array>

#include "fusebox/metrics/family_builder.h"

namespace fusebox::metrics {
namespace {

constexpr std::array<std::string_view, 7> kMethods = {
    "Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata", "GetModelStatus",
    "other"};
constexpr std::size_t kCodes = 17;
constexpr std::array<const char*, kCodes> kCodeNames = {
    "OK",        "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",   "UNIMPLEMENTED",    "INTERNAL",
    "UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED"};

std::size_t method_index(std::string_view method) {
  auto slash = method.rfind('/');
  auto name = slash == std::string_view::npos ? method : method.substr(slash + 1);
  for (std::size_t i = 0; i + 1 < kMethods.size(); ++i) {
    if (kMethods[i] == name) return i;
  }
  return kMethods.size() - 1;
}

}  // namespace

GrpcMetrics::GrpcMetrics(std::vector<std::string> route_names, std::size_t shards)
    : routes_([&] {
        route_names.push_back("unmatched");
        return std::move(route_names);
      }()),
      calls_(shards, routes_.size() * kMethods.size() * kCodes),
      seconds_(shards, routes_.size()) {}

void GrpcMetrics::record(std::size_t shard, std::size_t route, std::string_view method, int code,
                         double seconds) {
  if (route >= routes_.size()) route = routes_.size() - 1;
  auto c = code >= 0 && code < static_cast<int>(kCodes) ? static_cast<std::size_t>(code) : 2;
  calls_.add(shard, (route * kMethods.size() + method_index(method)) * kCodes + c);
  seconds_.observe(shard, route, seconds);
}

void GrpcMetrics::collect(std::vector<prometheus::MetricFamily>& out) const {
  auto& calls = out.emplace_back(make_family(
      "fusebox_grpc_requests_total",
      "Calls answered on the gRPC listener, by route, method and gRPC status code.",
      prometheus::MetricType::Counter));
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    for (std::size_t m = 0; m < kMethods.size(); ++m) {
      for (std::size_t c = 0; c < kCodes; ++c) {
        auto n = calls_.sum((r * kMethods.size() + m) * kCodes + c);
        if (n == 0) continue;  // 7 x 17 series per route would be mostly zeros
        add_counter(calls,
                    {{"route", routes_[r]}, {"method", std::string(kMethods[m])},
                     {"code", kCodeNames[c]}},
                    static_cast<double>(n));
      }
    }
  }
  auto& seconds = out.emplace_back(make_family(
      "fusebox_grpc_request_duration_seconds",
      "Time from reading a gRPC call's request to finishing it, by route.",
      prometheus::MetricType::Histogram));
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    add_histogram(seconds, {{"route", routes_[r]}}, seconds_.snapshot(r));
  }
}

}  // namespace fusebox::metrics
