#include "fusebox/metrics/family_builder.h"

#include <prometheus/text_serializer.h>

namespace fusebox::metrics {

prometheus::MetricFamily make_family(std::string name, std::string help,
                                     prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void add_counter(prometheus::MetricFamily& family, Labels labels, double value) {
  auto& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  metric.counter.value = value;
}

void add_gauge(prometheus::MetricFamily& family, Labels labels, double value) {
  auto& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  metric.gauge.value = value;
}

void add_histogram(prometheus::MetricFamily& family, Labels labels,
                   const HistogramSnapshot& snapshot) {
  auto& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  metric.histogram.sample_count = snapshot.count;
  metric.histogram.sample_sum = snapshot.sum_seconds;
  metric.histogram.bucket.reserve(snapshot.upper_bounds.size());
  for (std::size_t i = 0; i < snapshot.upper_bounds.size(); ++i) {
    // The serializer appends le="+Inf" with sample_count after the finite bounds.
    metric.histogram.bucket.push_back({snapshot.cumulative[i], snapshot.upper_bounds[i]});
  }
}

std::string serialize(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace fusebox::metrics
