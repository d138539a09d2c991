#include "fusebox/metrics/retained_totals.h"

#include <gtest/gtest.h>

#include "fusebox/metrics/family_builder.h"

namespace fusebox::metrics {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily counter(const char* name, std::vector<std::pair<const char*, double>> series) {
  auto family = make_family(name, "help", MetricType::Counter);
  for (const auto& [route, value] : series) add_counter(family, {{"route", route}}, value);
  return family;
}

double value_of(const std::vector<MetricFamily>& families, const std::string& name,
                const std::string& route) {
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      if (!m.label.empty() && m.label[0].value == route) {
        return f.type == MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
  }
  return -1;
}

TEST(RetainedTotals, SumsMatchingSeriesAndKeepsRemovedOnes) {
  RetainedTotals retained;
  retained.retire({counter("fusebox_requests_total", {{"a", 5}, {"gone", 2}})});
  std::vector<MetricFamily> live{counter("fusebox_requests_total", {{"a", 1}, {"new", 3}})};
  retained.add_to(live);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(value_of(live, "fusebox_requests_total", "a"), 6);
  EXPECT_EQ(value_of(live, "fusebox_requests_total", "new"), 3);
  EXPECT_EQ(value_of(live, "fusebox_requests_total", "gone"), 2) << "a removed route keeps its total";
}

TEST(RetainedTotals, AccumulatesOverSeveralRetirements) {
  RetainedTotals retained;
  retained.retire({counter("c_total", {{"a", 1}})});
  retained.retire({counter("c_total", {{"a", 2}})});
  std::vector<MetricFamily> live{counter("c_total", {{"a", 4}})};
  retained.add_to(live);
  EXPECT_EQ(value_of(live, "c_total", "a"), 7);
}

TEST(RetainedTotals, GaugesDescribeThePresentOnly) {
  RetainedTotals retained;
  auto gauge = make_family("fusebox_inflight_requests", "help", MetricType::Gauge);
  add_gauge(gauge, {{"route", "a"}}, 9);
  retained.retire({gauge});
  EXPECT_TRUE(retained.empty());
  auto live_gauge = make_family("fusebox_inflight_requests", "help", MetricType::Gauge);
  add_gauge(live_gauge, {{"route", "a"}}, 1);
  std::vector<MetricFamily> live{live_gauge};
  retained.add_to(live);
  EXPECT_EQ(value_of(live, "fusebox_inflight_requests", "a"), 1);
}

TEST(RetainedTotals, HistogramsSumBucketByBucket) {
  HistogramSnapshot old_snapshot{{0.1, 1}, {1, 3}, 3, 2.5};  // bounds, cumulative, count, sum
  HistogramSnapshot new_snapshot{{0.1, 1}, {2, 2}, 2, 0.5};
  auto make = [](const HistogramSnapshot& s) {
    auto family = make_family("d_seconds", "help", MetricType::Histogram);
    add_histogram(family, {{"route", "a"}}, s);
    return family;
  };
  RetainedTotals retained;
  retained.retire({make(old_snapshot)});
  std::vector<MetricFamily> live{make(new_snapshot)};
  retained.add_to(live);
  const auto& h = live[0].metric[0].histogram;
  EXPECT_EQ(h.sample_count, 5u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 3.0);
  ASSERT_FALSE(h.bucket.empty());
  EXPECT_EQ(h.bucket[0].cumulative_count, 3u);
  EXPECT_EQ(h.bucket[1].cumulative_count, 5u);
}

}  // namespace
}  // namespace fusebox::metrics
