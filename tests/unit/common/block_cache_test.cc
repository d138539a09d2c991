#include "fusebox/common/block_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "fusebox/http/message.h"

namespace fusebox::memory {
namespace {

// Each test runs on a thread of its own, so it starts with an empty cache.
template <class F>
void on_fresh_thread(F f) {
  std::thread(f).join();
}

TEST(BlockCache, AFreedBlockIsHandedOutAgainForTheSameSizeClass) {
  on_fresh_thread([] {
    void* a = BlockCache::allocate(80);
    EXPECT_EQ(BlockCache::cached(80), 0u);
    BlockCache::deallocate(a, 80);
    EXPECT_EQ(BlockCache::cached(80), 1u);
    EXPECT_EQ(BlockCache::cached(70), 1u) << "70 and 80 bytes share the 96-byte class";
    void* b = BlockCache::allocate(70);
    EXPECT_EQ(b, a);
    EXPECT_EQ(BlockCache::cached(80), 0u);
    void* c = BlockCache::allocate(40);  // another class: a block of its own
    EXPECT_NE(c, a);
    BlockCache::deallocate(b, 70);
    BlockCache::deallocate(c, 40);
  });
}

TEST(BlockCache, LargeBlocksAreNotCached) {
  on_fresh_thread([] {
    void* a = BlockCache::allocate(4096);
    BlockCache::deallocate(a, 4096);
    EXPECT_EQ(BlockCache::cached(4096), 0u);
  });
}

TEST(BlockCache, AClassHoldsAtMostItsShareAndFreesTheRest) {
  on_fresh_thread([] {
    constexpr std::size_t kSize = 1024;
    const std::size_t cap = BlockCache::kBytesPerClass / kSize;
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < cap + 10; ++i) blocks.push_back(BlockCache::allocate(kSize));
    for (void* b : blocks) BlockCache::deallocate(b, kSize);
    EXPECT_EQ(BlockCache::cached(kSize), cap);
  });
}

TEST(BlockCache, ABlockFreedOnAnotherThreadJoinsThatThreadsCache) {
  void* block = nullptr;
  on_fresh_thread([&] { block = BlockCache::allocate(200); });
  on_fresh_thread([&] {
    BlockCache::deallocate(block, 200);
    EXPECT_EQ(BlockCache::cached(200), 1u);
    EXPECT_EQ(BlockCache::allocate(200), block);
    BlockCache::deallocate(block, 200);
  });  // freed with the thread's cache (the sanitizer run would report a leak)
}

TEST(PooledAllocator, SharedObjectsAndHeaderFieldsRecycleTheirBlocks) {
  on_fresh_thread([] {
    struct State {
      char bytes[300];
    };
    void* first = nullptr;
    {
      auto p = std::allocate_shared<State>(PooledAllocator<State>());
      first = p.get();
    }
    auto again = std::allocate_shared<State>(PooledAllocator<State>());
    EXPECT_EQ(static_cast<void*>(again.get()), first) << "the control block's memory came back";

    std::size_t fields_cached = 0;
    {
      http::Request request;
      request.set("X-Request-Id", "0123456789abcdef0123456789abcdef");
      request.set("Content-Type", "application/json");
      EXPECT_EQ(request["X-Request-Id"], "0123456789abcdef0123456789abcdef");
    }
    for (std::size_t bytes = 32; bytes <= 1024; bytes += BlockCache::kGranule) {
      fields_cached += BlockCache::cached(bytes);
    }
    EXPECT_GE(fields_cached, 2u) << "both fields' blocks were kept for reuse";
  });
}

}  // namespace
}  // namespace fusebox::memory
