#include "fusebox/metrics/gateway_metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fusebox/metrics/family_builder.h"
#include "fusebox/metrics/sharded_code_counter.h"
#include "fusebox/metrics/sharded_counter.h"
#include "fusebox/metrics/sharded_histogram.h"

namespace fusebox::metrics {
namespace {

// ---- A small reader of the Prometheus text format, enough to assert on exact values. ----

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> help;  // family -> text
  std::map<std::string, std::string> type;  // family -> type
};

Exposition parse(const std::string& text) {
  Exposition out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto space = rest.find(' ');
      auto& target = line[2] == 'H' ? out.help : out.type;
      target[rest.substr(0, space)] = rest.substr(space + 1);
      continue;
    }
    Sample sample;
    std::size_t pos = line.find_first_of("{ ");
    sample.name = line.substr(0, pos);
    if (line[pos] == '{') {
      ++pos;
      while (line[pos] != '}') {
        const auto eq = line.find('=', pos);
        const std::string name = line.substr(pos, eq - pos);
        std::string value;
        pos = eq + 2;  // skip ="
        while (line[pos] != '"') {
          if (line[pos] == '\\') ++pos;
          value.push_back(line[pos++]);
        }
        ++pos;  // closing quote
        if (line[pos] == ',') ++pos;
        sample.labels[name] = value;
      }
      ++pos;  // '}'
    }
    sample.value = std::stod(line.substr(pos + 1));
    out.samples.push_back(std::move(sample));
  }
  return out;
}

// Value of the one sample with exactly these labels; "le" compares numerically. NaN if absent
// (and fails the test if there are several).
double value_of(const Exposition& e, const std::string& name,
                std::map<std::string, std::string> labels) {
  const auto same = [&](const Sample& s) {
    if (s.name != name || s.labels.size() != labels.size()) return false;
    for (const auto& [key, want] : labels) {
      const auto it = s.labels.find(key);
      if (it == s.labels.end()) return false;
      if (key == "le" && want != "+Inf" && it->second != "+Inf") {
        if (std::stod(it->second) != std::stod(want)) return false;
      } else if (it->second != want) {
        return false;
      }
    }
    return true;
  };
  double found = std::numeric_limits<double>::quiet_NaN();
  int matches = 0;
  for (const Sample& s : e.samples) {
    if (same(s)) {
      found = s.value;
      ++matches;
    }
  }
  EXPECT_LE(matches, 1) << name;
  return found;
}

std::size_t count_samples(const Exposition& e, const std::string& name) {
  std::size_t n = 0;
  for (const Sample& s : e.samples) n += s.name == name;
  return n;
}

std::vector<PoolLayout> two_pools() {
  return {{"heavy", {"10.0.0.1:8501", "10.0.0.2:8501"}}, {"light", {"10.0.0.3:8501"}}};
}

// ---- GatewayMetrics ----

TEST(GatewayMetrics, ConcurrentShardsSumExactly) {
  GatewayMetrics metrics({"predict", "status"}, two_pools(), 2, "1.2.3-test");
  const std::size_t unmatched = metrics.unmatched_route();
  ASSERT_EQ(unmatched, 2u);
  ASSERT_EQ(metrics.shard_count(), 2u);

  constexpr int kIterations = 20000;
  std::latch start(2);
  // Shard 0: every request is a 3 ms predict 200; every 10th also an unmatched GET 404 (0.5 ms).
  std::thread first([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kIterations; ++i) {
      metrics.record_request(0, 0, HttpMethod::post, 200, 0.003);
      metrics.record_upstream(0, 0, 1, UpstreamOutcome::success, 0.002);
      if (i % 10 == 0) metrics.record_request(0, unmatched, HttpMethod::get, 404, 0.0005);
      metrics.add_inflight(+1);
      metrics.add_inflight(-1);
    }
  });
  // Shard 1: the same 200s on the same route and method (same cells, other shard), plus every
  // 4th a 2 s predict 503 and a timed-out attempt on the light pool.
  std::thread second([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kIterations; ++i) {
      metrics.record_request(1, 0, HttpMethod::post, 200, 0.003);
      if (i % 4 == 0) {
        metrics.record_request(1, 0, HttpMethod::post, 503, 2.0);
        metrics.record_upstream(1, 1, 0, UpstreamOutcome::timeout, 30.0);
      }
      metrics.add_downstream_connections(+1);
    }
  });
  first.join();
  second.join();

  const std::string text = metrics.expose();
  const Exposition e = parse(text);

  // fusebox_requests_total{route,method,code}
  const auto requests = [&](const char* route, const char* method, const char* code) {
    return value_of(e, "fusebox_requests_total",
                    {{"route", route}, {"method", method}, {"code", code}});
  };
  EXPECT_EQ(requests("predict", "POST", "200"), 2.0 * kIterations);
  EXPECT_EQ(requests("predict", "POST", "503"), kIterations / 4);
  EXPECT_EQ(requests("unmatched", "GET", "404"), kIterations / 10);
  EXPECT_EQ(count_samples(e, "fusebox_requests_total"), 3u);  // only codes that happened

  // fusebox_request_duration_seconds{route}
  const auto bucket = [&](const char* route, const char* le) {
    return value_of(e, "fusebox_request_duration_seconds_bucket", {{"route", route}, {"le", le}});
  };
  EXPECT_EQ(bucket("predict", "0.0025"), 0);
  EXPECT_EQ(bucket("predict", "0.005"), 2.0 * kIterations);
  EXPECT_EQ(bucket("predict", "1"), 2.0 * kIterations);
  EXPECT_EQ(bucket("predict", "2.5"), 2.0 * kIterations + kIterations / 4);
  EXPECT_EQ(bucket("predict", "+Inf"), 2.0 * kIterations + kIterations / 4);
  EXPECT_EQ(value_of(e, "fusebox_request_duration_seconds_count", {{"route", "predict"}}),
            2.0 * kIterations + kIterations / 4);
  EXPECT_NEAR(value_of(e, "fusebox_request_duration_seconds_sum", {{"route", "predict"}}),
              2 * kIterations * 0.003 + (kIterations / 4) * 2.0, 1e-6);
  EXPECT_EQ(bucket("unmatched", "0.001"), kIterations / 10);
  EXPECT_EQ(bucket("unmatched", "+Inf"), kIterations / 10);
  EXPECT_NEAR(value_of(e, "fusebox_request_duration_seconds_sum", {{"route", "unmatched"}}),
              (kIterations / 10) * 0.0005, 1e-6);
  EXPECT_EQ(bucket("status", "+Inf"), 0);  // every route is exposed, zeros included
  EXPECT_EQ(value_of(e, "fusebox_request_duration_seconds_sum", {{"route", "status"}}), 0);
  EXPECT_EQ(count_samples(e, "fusebox_request_duration_seconds_bucket"), 3u * 16);

  // fusebox_upstream_requests_total{pool,backend,outcome}: every outcome of every backend.
  const auto upstream = [&](const char* pool, const char* backend, const char* outcome) {
    return value_of(e, "fusebox_upstream_requests_total",
                    {{"pool", pool}, {"backend", backend}, {"outcome", outcome}});
  };
  EXPECT_EQ(upstream("heavy", "10.0.0.2:8501", "success"), kIterations);
  EXPECT_EQ(upstream("light", "10.0.0.3:8501", "timeout"), kIterations / 4);
  EXPECT_EQ(upstream("heavy", "10.0.0.1:8501", "success"), 0);
  EXPECT_EQ(upstream("heavy", "10.0.0.2:8501", "http_5xx"), 0);
  EXPECT_EQ(upstream("light", "10.0.0.3:8501", "protocol_error"), 0);
  EXPECT_EQ(count_samples(e, "fusebox_upstream_requests_total"), 3u * kUpstreamOutcomeCount);

  // fusebox_upstream_request_duration_seconds{pool,backend}
  const auto upstream_bucket = [&](const char* pool, const char* backend, const char* le) {
    return value_of(e, "fusebox_upstream_request_duration_seconds_bucket",
                    {{"pool", pool}, {"backend", backend}, {"le", le}});
  };
  EXPECT_EQ(upstream_bucket("heavy", "10.0.0.2:8501", "0.001"), 0);
  EXPECT_EQ(upstream_bucket("heavy", "10.0.0.2:8501", "0.0025"), kIterations);
  EXPECT_EQ(upstream_bucket("light", "10.0.0.3:8501", "10"), 0);
  EXPECT_EQ(upstream_bucket("light", "10.0.0.3:8501", "30"), kIterations / 4);  // le inclusive
  EXPECT_EQ(upstream_bucket("heavy", "10.0.0.1:8501", "+Inf"), 0);
  EXPECT_NEAR(value_of(e, "fusebox_upstream_request_duration_seconds_sum",
                       {{"pool", "light"}, {"backend", "10.0.0.3:8501"}}),
              (kIterations / 4) * 30.0, 1e-6);

  // Gauges and build info.
  EXPECT_EQ(value_of(e, "fusebox_inflight_requests", {}), 0);
  EXPECT_EQ(value_of(e, "fusebox_downstream_connections", {}), kIterations);
  EXPECT_EQ(value_of(e, "fusebox_build_info", {{"version", "1.2.3-test"}}), 1);

  // HELP and TYPE for every family.
  const std::map<std::string, std::string> types = {
      {"fusebox_requests_total", "counter"},
      {"fusebox_request_duration_seconds", "histogram"},
      {"fusebox_upstream_requests_total", "counter"},
      {"fusebox_upstream_request_duration_seconds", "histogram"},
      {"fusebox_inflight_requests", "gauge"},
      {"fusebox_downstream_connections", "gauge"},
      {"fusebox_build_info", "gauge"},
  };
  EXPECT_EQ(e.type, types);
  for (const auto& [family, type] : types) {
    ASSERT_TRUE(e.help.count(family)) << family;
    EXPECT_GT(e.help.at(family).size(), 10u) << family;
  }
  EXPECT_EQ(e.help.at("fusebox_build_info"),
            "Always 1; the version label tells which fusebox build is running.");
}

TEST(GatewayMetrics, BucketBoundariesAreInclusive) {
  GatewayMetrics metrics({"r"}, {}, 1, "v");
  for (double seconds : kLatencyBucketsSeconds)
    metrics.record_request(0, 0, HttpMethod::get, 200, seconds);
  metrics.record_request(0, 0, HttpMethod::get, 200, 60.000001);
  const Exposition e = parse(metrics.expose());
  double expected = 0;
  for (double bound : kLatencyBucketsSeconds) {
    ++expected;
    std::ostringstream le;
    le << bound;
    EXPECT_EQ(
        value_of(e, "fusebox_request_duration_seconds_bucket", {{"route", "r"}, {"le", le.str()}}),
        expected)
        << "le=" << bound;
  }
  EXPECT_EQ(
      value_of(e, "fusebox_request_duration_seconds_bucket", {{"route", "r"}, {"le", "+Inf"}}),
      expected + 1);
}

TEST(GatewayMetrics, OddStatusesAndMethodsAreBounded) {
  GatewayMetrics metrics({"r"}, {}, 1, "v");
  metrics.record_request(0, 0, HttpMethod::other, 0, 0.01);     // no status
  metrics.record_request(0, 0, HttpMethod::other, 1000, 0.01);  // not a status
  metrics.record_request(0, 0, HttpMethod::other, 99, 0.01);
  metrics.record_request(0, 0, HttpMethod::other, 999, 0.01);
  metrics.record_request(0, 0, HttpMethod::other, 100, 0.01);
  // 40 distinct codes on one (route, method): 32 get a slot, the rest count as "other".
  for (unsigned code = 200; code < 240; ++code) {
    metrics.record_request(0, metrics.unmatched_route(), HttpMethod::post, code, 0.01);
  }
  const Exposition e = parse(metrics.expose());
  const auto requests = [&](const char* route, const char* method, const char* code) {
    return value_of(e, "fusebox_requests_total",
                    {{"route", route}, {"method", method}, {"code", code}});
  };
  EXPECT_EQ(requests("r", "other", "other"), 3);
  EXPECT_EQ(requests("r", "other", "100"), 1);
  EXPECT_EQ(requests("r", "other", "999"), 1);
  EXPECT_EQ(requests("unmatched", "POST", "200"), 1);
  EXPECT_EQ(requests("unmatched", "POST", "231"), 1);
  EXPECT_TRUE(std::isnan(requests("unmatched", "POST", "232")));
  EXPECT_EQ(requests("unmatched", "POST", "other"), 8);
  EXPECT_EQ(count_samples(e, "fusebox_requests_total"), 3u + 32u + 1u);
}

TEST(GatewayMetrics, MethodLabels) {
  EXPECT_EQ(method_label("GET"), HttpMethod::get);
  EXPECT_EQ(method_label("POST"), HttpMethod::post);
  EXPECT_EQ(method_label("get"), HttpMethod::other);
  EXPECT_EQ(method_label("PUT"), HttpMethod::other);
  EXPECT_EQ(method_label(""), HttpMethod::other);
}

TEST(GatewayMetrics, CollectAppendsToOtherFamilies) {
  GatewayMetrics metrics({"r"}, two_pools(), 1, "v");
  std::vector<prometheus::MetricFamily> families;
  auto& other = families.emplace_back(make_family(
      "fusebox_breaker_opened_total", "Times a breaker opened.", prometheus::MetricType::Counter));
  add_counter(other, {{"pool", "heavy"}}, 3);
  metrics.collect(families);
  ASSERT_EQ(families.size(), 8u);
  EXPECT_EQ(families[0].name, "fusebox_breaker_opened_total");
  EXPECT_EQ(families[1].name, "fusebox_requests_total");
  EXPECT_EQ(families.back().name, "fusebox_build_info");
  const Exposition e = parse(serialize(families));
  EXPECT_EQ(value_of(e, "fusebox_breaker_opened_total", {{"pool", "heavy"}}), 3);
}

// ---- promtool ----

// Runs `promtool check metrics` on `text`; returns its exit status and fills `output`.
int promtool_check(const std::string& text, std::string& output) {
  char path[] = "/tmp/fusebox_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -1;
  {
    std::ofstream file(path);
    file << text;
  }
  close(fd);
  const std::string command = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    unlink(path);
    return -1;
  }
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(GatewayMetricsPromtool, ExpositionPassesCheckMetrics) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "/usr/bin/promtool not installed";

  GatewayMetrics idle({"predict"}, two_pools(), 2, "0.1.0");
  std::string output;
  EXPECT_EQ(promtool_check(idle.expose(), output), 0) << output;

  GatewayMetrics busy({"predict", "status \"quoted\" \\ route"}, two_pools(), 2, "0.1.0");
  busy.record_request(0, 0, HttpMethod::post, 200, 0.004);
  busy.record_request(1, 1, HttpMethod::get, 404, 0.0001);
  busy.record_request(1, busy.unmatched_route(), HttpMethod::other, 1000, 0.2);
  busy.record_upstream(0, 0, 0, UpstreamOutcome::connect_failure, 0.05);
  busy.record_upstream(1, 1, 0, UpstreamOutcome::reset, 1.5);
  busy.add_inflight(3);
  busy.add_downstream_connections(5);
  output.clear();
  EXPECT_EQ(promtool_check(busy.expose(), output), 0) << output << "\n" << busy.expose();
}

// ---- Primitives ----

TEST(ShardedMetrics, CounterArraySumsShardsAcrossBlocks) {
  ShardedCounterArray counters(3, 40);  // 40 cells span three 128-byte blocks per shard
  for (std::size_t cell = 0; cell < 40; ++cell) {
    counters.add(0, cell, cell);
    counters.add(1, cell);
    counters.add(2, cell, 1000);
  }
  for (std::size_t cell = 0; cell < 40; ++cell) EXPECT_EQ(counters.sum(cell), cell + 1001) << cell;
  EXPECT_EQ(counters.shards(), 3u);
  EXPECT_EQ(counters.cells(), 40u);
}

TEST(ShardedMetrics, HistogramClampsGarbageDurations) {
  ShardedHistogramArray histogram(1, 2, {0.5, 1.0});
  histogram.observe(0, 1, -3.0);
  histogram.observe(0, 1, std::numeric_limits<double>::quiet_NaN());
  histogram.observe(0, 1, 0.5);
  histogram.observe(0, 1, 1.0000001);
  histogram.observe(0, 1, std::numeric_limits<double>::infinity());
  const HistogramSnapshot snap = histogram.snapshot(1);
  EXPECT_EQ(snap.upper_bounds, (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(snap.cumulative, (std::vector<std::uint64_t>{3, 3}));
  EXPECT_EQ(snap.count, 5u);
  EXPECT_NEAR(snap.sum_seconds, 0.5 + 1.0000001 + ShardedHistogramArray::kMaxObservationSeconds,
              1e-6);
  EXPECT_EQ(histogram.snapshot(0).count, 0u);
}

TEST(ShardedMetrics, CodeCounterMergesShardsInCodeOrder) {
  ShardedCodeCounter codes(2, 3);
  codes.add(0, 2, 503);
  codes.add(0, 2, 200, 5);
  codes.add(1, 2, 200);
  codes.add(1, 2, 0);  // gRPC OK: code 0 is a real code
  codes.add(1, 2, 65535);
  codes.add_overflow(1, 2, 2);
  codes.add(0, 1, 404);
  const auto totals = codes.totals(2);
  using Entry = std::pair<std::uint16_t, std::uint64_t>;
  EXPECT_EQ(totals.codes, (std::vector<Entry>{{0, 1}, {200, 6}, {503, 1}, {65535, 1}}));
  EXPECT_EQ(totals.overflow, 2u);
  EXPECT_EQ(codes.totals(0).codes.size(), 0u);
  EXPECT_EQ(codes.totals(1).codes, (std::vector<Entry>{{404, 1}}));
}

TEST(ShardedMetrics, CodeCounterSharedShardStaysExact) {
  // Two threads on one shard racing to insert the same new codes: no slot is claimed twice and
  // no increment is lost.
  ShardedCodeCounter codes(1, 1);
  constexpr int kIterations = 20000;
  std::latch start(2);
  auto work = [&] {
    start.arrive_and_wait();
    for (int i = 0; i < kIterations; ++i) codes.add(0, 0, static_cast<std::uint16_t>(200 + i % 40));
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  const auto totals = codes.totals(0);
  ASSERT_EQ(totals.codes.size(), ShardedCodeCounter::kCapacity);
  std::uint64_t total = totals.overflow;
  for (const auto& [code, count] : totals.codes) total += count;
  EXPECT_EQ(total, 2u * kIterations);
  EXPECT_EQ(totals.overflow, 2u * kIterations * 8 / 40);
}

}  // namespace
}  // namespace fusebox::metrics
