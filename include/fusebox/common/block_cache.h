#pragma once
// Per-thread recycling of small memory blocks, for what the data path makes and drops on every
// request: HTTP header fields, a call's shared state.
//
// glibc's per-thread cache keeps 7 freed blocks of each size. A worker with tens of requests in
// flight frees more than that of each size before it allocates again, and the rest go through
// malloc's general bins (sorting, splitting, merging), which showed as several percent of a
// worker's time. Here each thread keeps freed blocks by size class (multiples of 32 bytes, up
// to 1 KiB), up to 256 KiB per class, and hands them out again without calling malloc. Larger
// blocks, and blocks beyond a full class, go to operator new and delete.
//
// A block freed on another thread than the one that allocated it joins that thread's cache:
// every cached block is plain operator new memory of its class's size. A thread's cache is freed
// when the thread ends; what is freed after that (by later thread_local or static destructors)
// goes straight to operator delete.

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace fusebox::memory {

class BlockCache {
 public:
  static constexpr std::size_t kGranule = 32;
  static constexpr std::size_t kClasses = 32;  // blocks of up to 1 KiB
  static constexpr std::size_t kBytesPerClass = 256 * 1024;

  static void* allocate(std::size_t bytes) {
    const std::size_t c = size_class(bytes);
    if (c >= kClasses || lists_gone) return ::operator new(bytes);
    auto& lists = thread_lists();
    if (Free* block = lists.head[c]) {
      lists.head[c] = block->next;
      --lists.count[c];
      return block;
    }
    return ::operator new(class_bytes(c));
  }

  static void deallocate(void* block, std::size_t bytes) noexcept {
    const std::size_t c = size_class(bytes);
    if (c >= kClasses || lists_gone) return ::operator delete(block);
    auto& lists = thread_lists();
    if (lists.count[c] >= kBytesPerClass / class_bytes(c)) return ::operator delete(block);
    lists.head[c] = ::new (block) Free{lists.head[c]};
    ++lists.count[c];
  }

  // Blocks of `bytes`' class this thread holds (for tests).
  static std::size_t cached(std::size_t bytes) {
    const std::size_t c = size_class(bytes);
    return c < kClasses && !lists_gone ? thread_lists().count[c] : 0;
  }

  static constexpr std::size_t size_class(std::size_t bytes) {
    return bytes == 0 ? 0 : (bytes - 1) / kGranule;
  }
  static constexpr std::size_t class_bytes(std::size_t c) { return (c + 1) * kGranule; }

 private:
  struct Free {
    Free* next;
  };
  struct Lists {
    Free* head[kClasses] = {};
    std::uint32_t count[kClasses] = {};
    Lists() = default;
    Lists(const Lists&) = delete;
    Lists& operator=(const Lists&) = delete;
    ~Lists() {
      lists_gone = true;
      for (auto* list : head) {
        while (list) ::operator delete(std::exchange(list, list->next));
      }
    }
  };
  // Trivially destructible, so still readable while the thread's other destructors run.
  static inline thread_local bool lists_gone = false;
  static Lists& thread_lists() {
    thread_local Lists lists;
    return lists;
  }
};

// A stateless allocator over BlockCache, for containers and std::allocate_shared.
template <class T>
class PooledAllocator {
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned type");

 public:
  using value_type = T;
  using is_always_equal = std::true_type;
  PooledAllocator() noexcept = default;
  template <class U>
  PooledAllocator(const PooledAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(BlockCache::allocate(n * sizeof(T))); }
  void deallocate(T* block, std::size_t n) noexcept { BlockCache::deallocate(block, n * sizeof(T)); }

  template <class U>
  bool operator==(const PooledAllocator<U>&) const noexcept {
    return true;
  }
};

// A string whose bytes (when they do not fit inline) come from the thread's cache: for strings
// made and dropped per request (header fields, a serialized head).
using PooledString = std::basic_string<char, std::char_traits<char>, PooledAllocator<char>>;

}  // namespace fusebox::memory
