#include "fusebox/metrics/retained_totals.h"

#include <string>
#include <unordered_map>

namespace fusebox::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Label names and values joined with separators that cannot occur unescaped in either.
std::string series_key(const ClientMetric& metric) {
  std::string key;
  for (const auto& label : metric.label) {
    key += label.name;
    key += '\x01';
    key += label.value;
    key += '\x02';
  }
  return key;
}

void add_histogram(ClientMetric::Histogram& into, const ClientMetric::Histogram& from) {
  if (into.bucket.size() != from.bucket.size()) return;
  for (std::size_t i = 0; i < into.bucket.size(); ++i) {
    if (into.bucket[i].upper_bound != from.bucket[i].upper_bound) return;
  }
  for (std::size_t i = 0; i < into.bucket.size(); ++i) {
    into.bucket[i].cumulative_count += from.bucket[i].cumulative_count;
  }
  into.sample_count += from.sample_count;
  into.sample_sum += from.sample_sum;
}

bool is_total(MetricType type) {
  return type == MetricType::Counter || type == MetricType::Histogram;
}

}  // namespace

void add_totals(std::vector<MetricFamily>& into, const std::vector<MetricFamily>& from) {
  std::unordered_map<std::string, std::size_t> family_at;
  for (std::size_t i = 0; i < into.size(); ++i) family_at.emplace(into[i].name, i);
  for (const auto& source : from) {
    if (!is_total(source.type)) continue;
    auto found = family_at.find(source.name);
    if (found == family_at.end()) {
      family_at.emplace(source.name, into.size());
      into.push_back(source);
      continue;
    }
    auto& target = into[found->second];
    if (target.type != source.type) continue;  // a renamed type: keep the live one
    std::unordered_map<std::string, std::size_t> series_at;
    for (std::size_t i = 0; i < target.metric.size(); ++i) {
      series_at.emplace(series_key(target.metric[i]), i);
    }
    for (const auto& metric : source.metric) {
      auto series = series_at.find(series_key(metric));
      if (series == series_at.end()) {
        target.metric.push_back(metric);
        continue;
      }
      auto& existing = target.metric[series->second];
      if (source.type == MetricType::Counter) {
        existing.counter.value += metric.counter.value;
      } else {
        add_histogram(existing.histogram, metric.histogram);
      }
    }
  }
}

}  // namespace fusebox::metrics
