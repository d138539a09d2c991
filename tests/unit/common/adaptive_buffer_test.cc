#include "fusebox/common/adaptive_buffer.h"

#include <gtest/gtest.h>

namespace fusebox::io {
namespace {

TEST(AdaptiveReadBuffer, GrowsWhenAReadFillsItAndShrinksWhenQuiet) {
  AdaptiveReadBuffer b;
  EXPECT_EQ(b.size(), AdaptiveReadBuffer::kSmall);
  b.data();
  b.filled(100);
  EXPECT_EQ(b.size(), AdaptiveReadBuffer::kSmall) << "a short read keeps it small";
  b.filled(AdaptiveReadBuffer::kSmall);
  EXPECT_EQ(b.size(), AdaptiveReadBuffer::kLarge) << "a full read asks for more room";
  b.data()[AdaptiveReadBuffer::kLarge - 1] = 'x';
  EXPECT_GE(b.capacity(), AdaptiveReadBuffer::kLarge);
  b.relax();
  EXPECT_EQ(b.size(), AdaptiveReadBuffer::kSmall);
  EXPECT_LT(b.capacity(), AdaptiveReadBuffer::kSmall) << "the large buffer is given back";
  b.data()[0] = 'y';
  EXPECT_EQ(b.view(1), "y");
}

// A grow asked for but not yet made is dropped too: the next read stays small.
TEST(AdaptiveReadBuffer, RelaxCancelsAGrowNotYetMade) {
  AdaptiveReadBuffer b;
  b.data();
  b.filled(AdaptiveReadBuffer::kSmall);
  b.relax();
  EXPECT_EQ(b.size(), AdaptiveReadBuffer::kSmall);
  b.data();
  EXPECT_LT(b.capacity(), AdaptiveReadBuffer::kLarge);
}

TEST(AdaptiveReadBuffer, ClearOutputFreesOnlyLargeBuffers) {
  std::string small(100, 'a');
  const auto small_capacity = small.capacity();
  clear_output(small);
  EXPECT_TRUE(small.empty());
  EXPECT_EQ(small.capacity(), small_capacity) << "kept for the next answer";
  std::string large(1 << 20, 'b');
  clear_output(large);
  EXPECT_TRUE(large.empty());
  EXPECT_LT(large.capacity(), 1000u) << "freed";
}

}  // namespace
}  // namespace fusebox::io
