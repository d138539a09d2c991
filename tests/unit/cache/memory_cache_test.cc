#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "fusebox/cache/response_cache.h"

namespace fusebox::cache {
namespace {

using std::chrono::milliseconds;
using Freshness = ResponseCacheStore::Freshness;

CacheKey key_of(const std::string& body) { return make_key("r", "m", "", "", body); }

CachedResponse response_of(std::string body) {
  CachedResponse r;
  r.body = std::move(body);
  return r;
}

std::uint64_t charge_of(const std::string& key_body, const std::string& response_body) {
  return entry_charge(key_of(key_body), response_of(response_body));
}

MemoryCacheConfig one_shard(std::uint64_t max_bytes) {
  MemoryCacheConfig config;
  config.max_bytes = max_bytes;
  config.shards = 1;
  config.ttl = milliseconds(1000);
  return config;
}

TEST(MemoryCache, ChargeCountsKeyBodyContentTypeAndOverhead) {
  const auto key = key_of("[1]");
  const auto response = response_of("abc");
  EXPECT_EQ(
      entry_charge(key, response),
      key.text.size() + 3 + std::string("application/json").size() + kCacheEntryOverheadBytes);
}

TEST(MemoryCache, HitReturnsStoredResponse) {
  ManualClock clock;
  auto cache = make_memory_cache(MemoryCacheConfig{}, clock);
  EXPECT_FALSE(cache->lookup(key_of("[1]"), false).has_value());
  CachedResponse r;
  r.status = 201;
  r.content_type = "text/plain";
  r.body = "hello";
  cache->insert(key_of("[1]"), r);
  clock.advance(milliseconds(250));
  const auto hit = cache->lookup(key_of("[1]"), false);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->response->status, 201u);
  EXPECT_EQ(hit->response->content_type, "text/plain");
  EXPECT_EQ(hit->response->body, "hello");
  EXPECT_EQ(hit->freshness, Freshness::fresh);
  EXPECT_EQ(hit->age, milliseconds(250));
  EXPECT_FALSE(cache->lookup(key_of("[2]"), false).has_value());
  const auto stats = cache->stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, entry_charge(key_of("[1]"), r));
}

TEST(MemoryCache, KeysDifferOnlyInHashOrTextDoNotMatch) {
  ManualClock clock;
  auto cache = make_memory_cache(one_shard(1 << 20), clock);
  const auto key = key_of("[1]");
  cache->insert(key, response_of("x"));
  CacheKey same_hash_other_text{key.text + " ", key.hash};  // a forged hash collision
  EXPECT_FALSE(cache->lookup(same_hash_other_text, false).has_value());
  EXPECT_TRUE(cache->lookup(key, false).has_value());
}

TEST(MemoryCache, EvictsLeastRecentlyUsedUnderByteBudget) {
  ManualClock clock;
  const std::string body(100, 'x');
  const std::uint64_t each = charge_of("[1]", body);
  // Room for exactly three entries of the same size.
  auto cache = make_memory_cache(one_shard(3 * each + each / 2), clock);
  cache->insert(key_of("[1]"), response_of(body));
  cache->insert(key_of("[2]"), response_of(body));
  cache->insert(key_of("[3]"), response_of(body));
  ASSERT_TRUE(cache->lookup(key_of("[1]"), false));  // 1 becomes most recent: order 1,3,2
  cache->insert(key_of("[4]"), response_of(body));   // evicts 2
  EXPECT_FALSE(cache->lookup(key_of("[2]"), false));
  cache->insert(key_of("[5]"), response_of(body));  // evicts 3 (1 and 4 were used later)
  EXPECT_FALSE(cache->lookup(key_of("[3]"), false));
  EXPECT_TRUE(cache->lookup(key_of("[1]"), false));
  EXPECT_TRUE(cache->lookup(key_of("[4]"), false));
  EXPECT_TRUE(cache->lookup(key_of("[5]"), false));
  const auto stats = cache->stats();
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_EQ(stats.expirations, 0u);
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.bytes, 3 * each);
  EXPECT_EQ(stats.hits, 4u);
  EXPECT_EQ(stats.misses, 2u);
}

TEST(MemoryCache, BigEntryEvictsSeveralSmallOnes) {
  ManualClock clock;
  const std::uint64_t small = charge_of("[1]", "s");
  const std::string big_body(static_cast<std::size_t>(2 * small), 'b');
  auto cache = make_memory_cache(one_shard(4 * small), clock);
  for (const char* k : {"[1]", "[2]", "[3]", "[4]"}) cache->insert(key_of(k), response_of("s"));
  EXPECT_EQ(cache->stats().entries, 4u);
  cache->insert(key_of("[9]"), response_of(big_body));  // needs 3 small slots
  const auto stats = cache->stats();
  EXPECT_EQ(stats.evictions, 3u);
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_TRUE(cache->lookup(key_of("[4]"), false));
  EXPECT_TRUE(cache->lookup(key_of("[9]"), false));
  EXPECT_LE(stats.bytes, 4 * small);
}

TEST(MemoryCache, ReplaceKeepsAccountingExact) {
  ManualClock clock;
  auto cache = make_memory_cache(one_shard(1 << 20), clock);
  const auto key = key_of("[1]");
  cache->insert(key, response_of("short"));
  cache->insert(key, response_of(std::string(1000, 'l')));
  auto stats = cache->stats();
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, charge_of("[1]", std::string(1000, 'l')));
  EXPECT_EQ(cache->lookup(key, false)->response->body.size(), 1000u);
  cache->insert(key, response_of("x"));
  stats = cache->stats();
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, charge_of("[1]", "x"));
  EXPECT_EQ(stats.evictions, 0u);
}

TEST(MemoryCache, ReplaceRestartsTheClock) {
  ManualClock clock;
  auto cache = make_memory_cache(one_shard(1 << 20), clock);
  cache->insert(key_of("[1]"), response_of("old"));
  clock.advance(milliseconds(900));
  cache->insert(key_of("[1]"), response_of("new"));
  clock.advance(milliseconds(900));
  const auto hit = cache->lookup(key_of("[1]"), false);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->response->body, "new");
  EXPECT_EQ(hit->age, milliseconds(900));
}

TEST(MemoryCache, EntryLargerThanShardBudgetIsNotStored) {
  ManualClock clock;
  MemoryCacheConfig config;
  config.max_bytes = 4 * 4096;
  config.shards = 4;  // 4096 bytes per shard
  auto cache = make_memory_cache(config, clock);
  cache->insert(key_of("[1]"), response_of(std::string(5000, 'x')));
  EXPECT_FALSE(cache->lookup(key_of("[1]"), false));
  auto stats = cache->stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  // An oversized answer also removes the older one it replaces: never serve an older answer.
  cache->insert(key_of("[1]"), response_of("small"));
  ASSERT_TRUE(cache->lookup(key_of("[1]"), false));
  cache->insert(key_of("[1]"), response_of(std::string(5000, 'x')));
  EXPECT_FALSE(cache->lookup(key_of("[1]"), false));
  stats = cache->stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST(MemoryCache, TtlWithoutStaleWindow) {
  ManualClock clock;
  auto cache = make_memory_cache(one_shard(1 << 20), clock);  // ttl 1000 ms, no stale window
  cache->insert(key_of("[1]"), response_of("x"));
  clock.advance(milliseconds(999));
  ASSERT_TRUE(cache->lookup(key_of("[1]"), false));
  clock.advance(milliseconds(1));
  EXPECT_FALSE(cache->lookup(key_of("[1]"), true));  // at ttl: expired and dropped
  const auto stats = cache->stats();
  EXPECT_EQ(stats.expirations, 1u);
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
}

TEST(MemoryCache, StaleIfErrorWindow) {
  ManualClock clock;
  auto config = one_shard(1 << 20);
  config.ttl = milliseconds(1000);
  config.stale_if_error = milliseconds(500);
  auto cache = make_memory_cache(config, clock);
  cache->insert(key_of("[1]"), response_of("x"));

  clock.advance(milliseconds(1200));
  EXPECT_FALSE(cache->lookup(key_of("[1]"), false));  // stale: not for the normal path
  const auto stale = cache->lookup(key_of("[1]"), true);
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->freshness, Freshness::stale);
  EXPECT_EQ(stale->age, milliseconds(1200));
  EXPECT_EQ(cache->stats().entries, 1u);  // kept while within the window

  clock.advance(milliseconds(299));
  EXPECT_TRUE(cache->lookup(key_of("[1]"), true));
  clock.advance(milliseconds(1));  // age 1500 = ttl + stale_if_error
  EXPECT_FALSE(cache->lookup(key_of("[1]"), true));

  const auto stats = cache->stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.stale_hits, 2u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.expirations, 1u);
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
}

TEST(MemoryCache, ExpiredTailCountsAsExpirationNotEviction) {
  ManualClock clock;
  const std::uint64_t each = charge_of("[1]", "x");
  auto cache = make_memory_cache(one_shard(2 * each), clock);
  cache->insert(key_of("[1]"), response_of("x"));
  clock.advance(milliseconds(5000));  // [1] is long expired, never looked up
  cache->insert(key_of("[2]"), response_of("x"));
  cache->insert(key_of("[3]"), response_of("x"));
  const auto stats = cache->stats();
  EXPECT_EQ(stats.expirations, 1u);
  EXPECT_EQ(stats.evictions, 0u);
  EXPECT_EQ(stats.entries, 2u);
}

TEST(MemoryCache, HitOutlivesEviction) {
  ManualClock clock;
  const std::uint64_t each = charge_of("[1]", "body");
  auto cache = make_memory_cache(one_shard(each), clock);
  cache->insert(key_of("[1]"), response_of("body"));
  const auto hit = cache->lookup(key_of("[1]"), false);
  ASSERT_TRUE(hit);
  cache->insert(key_of("[2]"), response_of("body"));  // evicts [1]
  EXPECT_FALSE(cache->lookup(key_of("[1]"), false));
  EXPECT_EQ(hit->response->body, "body");  // the shared_ptr keeps it alive
}

TEST(MemoryCache, ZeroShardsMeansOne) {
  ManualClock clock;
  MemoryCacheConfig config;
  config.shards = 0;
  auto cache = make_memory_cache(config, clock);
  cache->insert(key_of("[1]"), response_of("x"));
  EXPECT_TRUE(cache->lookup(key_of("[1]"), false));
}

// Threads insert and look up their own keys and keys they all share, over several shards
// with a budget small enough to evict; afterwards the books must balance exactly.
TEST(MemoryCache, ConcurrentUseKeepsInvariants) {
  ManualClock clock;  // never advanced while threads run
  MemoryCacheConfig config;
  config.shards = 4;
  config.max_bytes = 4 * 8 * charge_of("[thread 0 key 0]", std::string(64, 'v'));
  auto cache = make_memory_cache(config, clock);

  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::uint64_t> lookups(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string own =
            "[thread " + std::to_string(t) + " key " + std::to_string(i % 50) + "]";
        const std::string shared = "[shared " + std::to_string(i % 20) + "]";
        cache->insert(key_of(own), response_of(std::string(64, 'v')));
        if (i % 3 == 0) cache->insert(key_of(shared), response_of(std::string(32 + t, 's')));
        const auto a = cache->lookup(key_of(own), false);
        const auto b = cache->lookup(key_of(shared), i % 2 == 0);
        lookups[static_cast<std::size_t>(t)] += 2;
        if (a) {
          EXPECT_EQ(a->response->body, std::string(64, 'v'));
        }
        if (b) {
          EXPECT_EQ(b->response->body.front(), 's');
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const auto stats = cache->stats();
  std::uint64_t total_lookups = 0;
  for (auto n : lookups) total_lookups += n;
  EXPECT_EQ(stats.hits + stats.misses, total_lookups);
  EXPECT_GT(stats.hits, 0u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_LE(stats.bytes, config.max_bytes);

  // bytes and entries equal the sum over the live entries: find them all by probing every key
  // that was ever inserted (lookups at the same instant never expire anything).
  std::uint64_t live_bytes = 0;
  std::uint64_t live_entries = 0;
  auto probe = [&](const std::string& k) {
    const auto key = key_of(k);
    if (const auto hit = cache->lookup(key, false)) {
      live_bytes += entry_charge(key, *hit->response);
      ++live_entries;
    }
  };
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < 50; ++i) {
      probe("[thread " + std::to_string(t) + " key " + std::to_string(i) + "]");
    }
  }
  for (int i = 0; i < 20; ++i) probe("[shared " + std::to_string(i) + "]");
  const auto after = cache->stats();
  EXPECT_EQ(after.entries, live_entries);
  EXPECT_EQ(after.bytes, live_bytes);
  EXPECT_EQ(after.bytes, stats.bytes);
  EXPECT_EQ(after.entries, stats.entries);
}

}  // namespace
}  // namespace fusebox::cache
