// Cost of the response cache on the request path: canonicalising and hashing a TF Serving
// predict body, and store lookups and inserts. Run: build/bin/micro_bench --benchmark_filter=Cache
#include <benchmark/benchmark.h>

#include <charconv>
#include <string>
#include <vector>

#include "fusebox/cache/response_cache.h"

namespace {

using namespace fusebox;

// {"instances": [[0.123456, ...], ...]} of about `bytes` bytes. Floats with 6 decimals (as
// printf or rounded client code writes them), or with `full_precision` the 16-17 digits Python's
// json.dumps writes for float32 values converted by .tolist().
std::string predict_body(std::size_t bytes, bool full_precision = false) {
  std::string body = R"({"signature_name": "serving_default", "instances": [)";
  std::uint64_t state = 42;
  bool first_row = true;
  while (body.size() < bytes) {
    body += first_row ? "[" : ", [";
    first_row = false;
    for (int i = 0; i < 16; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const double v = static_cast<double>(state >> 11) * 0x1.0p-53 * 2.0 - 1.0;
      if (i > 0) body += ", ";
      if (full_precision) {
        char buffer[32];
        const auto written = std::to_chars(buffer, buffer + sizeof buffer,
                                           static_cast<double>(static_cast<float>(v)));
        body.append(buffer, written.ptr);
      } else {
        body += std::to_string(v);
      }
    }
    body += "]";
  }
  body += "]}";
  return body;
}

void BM_CacheCanonicalJsonAndHash(benchmark::State& state) {
  const std::string body =
      predict_body(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
  for (auto _ : state) {
    auto canonical = cache::canonical_json(body);
    auto key = cache::make_key("predict", "resnet", "", "", *canonical);
    benchmark::DoNotOptimize(key.hash);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}
// Args: body bytes, full-precision floats.
BENCHMARK(BM_CacheCanonicalJsonAndHash)->ArgsProduct({{1 << 10, 64 << 10}, {0, 1}});

void BM_CacheHash64(benchmark::State& state) {
  const std::string body = predict_body(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(cache::hash64(body));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}
BENCHMARK(BM_CacheHash64)->Arg(1 << 10)->Arg(64 << 10);

// 1 KB predict bodies told apart by version, as a gateway would see for one model.
const std::vector<cache::CacheKey>& keys() {
  static const std::vector<cache::CacheKey> all = [] {
    const std::string canonical = *cache::canonical_json(predict_body(1024));
    std::vector<cache::CacheKey> out;
    for (int i = 0; i < 1024; ++i) {
      out.push_back(cache::make_key("predict", "resnet", "v:" + std::to_string(i), "", canonical));
    }
    return out;
  }();
  return all;
}

cache::CachedResponse response() { return {200, "application/json", std::string(1024, 'r')}; }

void BM_CacheLookupHit(benchmark::State& state) {
  // One store shared by the benchmark threads, as the I/O threads share it.
  static const auto store = [] {
    auto s = cache::make_memory_cache(cache::MemoryCacheConfig{}, SteadyClock::instance());
    for (const auto& key : keys()) s->insert(key, response());
    return s;
  }();
  const auto& all = keys();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7;
  for (auto _ : state) {
    auto hit = store->lookup(all[i++ % all.size()], false);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_CacheLookupHit)->ThreadRange(1, 2);

void BM_CacheLookupMiss(benchmark::State& state) {
  auto store = cache::make_memory_cache(cache::MemoryCacheConfig{}, SteadyClock::instance());
  const auto& all = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    auto hit = store->lookup(all[i++ % all.size()], false);
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_CacheLookupMiss);

void BM_CacheInsert(benchmark::State& state) {
  cache::MemoryCacheConfig config;
  config.max_bytes = 1 << 20;  // small enough that inserts also evict
  auto store = cache::make_memory_cache(config, SteadyClock::instance());
  const auto& all = keys();
  std::size_t i = 0;
  for (auto _ : state) store->insert(all[i++ % all.size()], response());
}
BENCHMARK(BM_CacheInsert);

}  // namespace
