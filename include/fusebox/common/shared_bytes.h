#pragma once
// Immutable bytes shared by reference: copies share one buffer (a reference count), moves are
// free. A gRPC message keeps the buffer it arrived in: the request a client's stream carried,
// or a backend's answer, is a part of that stream's data, adopted without a copy, and every
// hop of the call (the pipeline's attempts, the cache, the answer's frames) shares it.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "fusebox/common/block_cache.h"

namespace fusebox {

class SharedBytes {
 public:
  SharedBytes() = default;
  // Takes over all of `bytes`.
  explicit SharedBytes(std::string bytes) : SharedBytes(std::move(bytes), 0, std::string::npos) {}
  // Takes over `bytes` and shares [offset, offset + length) of it (length clipped to the end).
  SharedBytes(std::string&& bytes, std::size_t offset, std::size_t length) {
    if (offset > bytes.size()) offset = bytes.size();
    length = std::min(length, bytes.size() - offset);
    if (length == 0) return;
    // The string object moves into the shared block; its heap buffer (if any) does not move,
    // and a short string's inline bytes are read from their new place.
    auto owner = std::allocate_shared<std::string>(memory::PooledAllocator<std::string>(),
                                                   std::move(bytes));
    view_ = std::string_view(*owner).substr(offset, length);
    owner_ = std::move(owner);
  }

  // Shares `view`, whose bytes `owner` keeps alive (a cached answer's body).
  SharedBytes(std::shared_ptr<const void> owner, std::string_view view)
      : owner_(std::move(owner)), view_(view) {}

  std::string_view view() const { return view_; }
  const char* data() const { return view_.data(); }
  std::size_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }
  // What keeps the bytes alive: for output that holds them until they are written.
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  std::shared_ptr<const void> owner_;
  std::string_view view_;
};

}  // namespace fusebox
