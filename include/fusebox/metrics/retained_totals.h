#pragma once
// Counters and histograms that outlive the configuration that recorded them.
//
// Each configuration (the first, then one per hot reload) records into metrics objects of its
// own, laid out for its routes and backends. A scrape must still show every counter as
// monotonic across reloads, or Prometheus would read each reload as a reset and lose whatever
// was recorded since the last scrape. So when a configuration is retired, its final counters
// and histograms are kept here, and every scrape adds them to the live families: series with
// the same name and labels are summed; series that no longer exist (a removed route) keep
// their last value. Gauges describe the present and are never kept.
//
// Not for the hot path: one merge per scrape.

#include <prometheus/metric_family.h>

#include <vector>

namespace fusebox::metrics {

// Adds the counters and histograms of `from` to `into`: matching series (name and label set)
// are summed, others appended. Histograms are summed bucket by bucket when their bounds match
// and left as they are otherwise. Gauges, summaries and untyped families of `from` are ignored.
void add_totals(std::vector<prometheus::MetricFamily>& into,
                const std::vector<prometheus::MetricFamily>& from);

class RetainedTotals {
 public:
  // Keeps the counters and histograms of a configuration being retired.
  void retire(const std::vector<prometheus::MetricFamily>& final_families) {
    add_totals(kept_, final_families);
  }
  // Adds what was kept to a scrape of the live configuration.
  void add_to(std::vector<prometheus::MetricFamily>& live) const { add_totals(live, kept_); }
  bool empty() const { return kept_.empty(); }

 private:
  std::vector<prometheus::MetricFamily> kept_;
};

}  // namespace fusebox::metrics
