#pragma once
// Metrics of calls on the gRPC listener, the gRPC counterpart of fusebox_requests_total:
//   fusebox_grpc_requests_total{route,method,code}   method: Predict, Classify, ...; code: OK...
//   fusebox_grpc_request_duration_seconds{route}
// Labels are bounded: routes from the config (plus "unmatched"), the proxied methods (plus
// "other"), and gRPC's 17 status codes. Recording follows the sharded contract of
// sharded_counter.h.

#include <prometheus/metric_family.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/metrics/sharded_counter.h"
#include "fusebox/metrics/sharded_histogram.h"

namespace fusebox::metrics {

class GrpcMetrics {
 public:
  // `route_names` in config order; index route_names.size() is route="unmatched".
  GrpcMetrics(std::vector<std::string> route_names, std::size_t shards);

  // `method` is the full path ("/tensorflow.serving.PredictionService/Predict"); `code` the
  // numeric gRPC status code (0..16; anything else counts as UNKNOWN).
  void record(std::size_t shard, std::size_t route, std::string_view method, int code,
              double seconds);
  void collect(std::vector<prometheus::MetricFamily>& out) const;

 private:
  std::vector<std::string> routes_;
  ShardedCounterArray calls_;        // [route][method][code]
  ShardedHistogramArray seconds_;    // [route]
};

}  // namespace fusebox::metrics
