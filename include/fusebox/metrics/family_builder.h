#pragma once
// Helpers to turn summed shard values into prometheus-cpp's data model at scrape time, so each
// module declares its families the same way:
//
//   auto& f = families.emplace_back(make_family("fusebox_breaker_opened_total",
//                                               "Times a breaker opened.", MetricType::Counter));
//   add_counter(f, {{"pool", pool}, {"backend", backend}}, opened.sum(cell));
//
// and the admin endpoint serializes everything once with serialize(). Not for the hot path.

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <string>
#include <vector>

#include "fusebox/metrics/sharded_histogram.h"

namespace fusebox::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

// `name` must be a valid Prometheus metric name (counters end in "_total"); `help` is one line
// without backslashes (prometheus-cpp writes it unescaped).
prometheus::MetricFamily make_family(std::string name, std::string help,
                                     prometheus::MetricType type);

void add_counter(prometheus::MetricFamily& family, Labels labels, double value);
void add_gauge(prometheus::MetricFamily& family, Labels labels, double value);
void add_histogram(prometheus::MetricFamily& family, Labels labels,
                   const HistogramSnapshot& snapshot);

// Prometheus text exposition format 0.0.4 (prometheus::TextSerializer).
std::string serialize(const std::vector<prometheus::MetricFamily>& families);

}  // namespace fusebox::metrics
