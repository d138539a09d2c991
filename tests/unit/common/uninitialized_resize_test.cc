#include "fusebox/common/uninitialized_resize.h"

#include <gtest/gtest.h>

#include <cstring>

namespace fusebox {
namespace {

TEST(ResizeUninitialized, GrowsKeepingThePrefixAndTheTerminator) {
  std::string s = "abc";
  resize_uninitialized(s, 100'000);
  ASSERT_EQ(s.size(), 100'000u);
  EXPECT_GE(s.capacity(), 100'000u);
  EXPECT_EQ(s.compare(0, 3, "abc"), 0);
  EXPECT_EQ(s.c_str()[100'000], '\0');
  std::memset(s.data() + 3, 'x', s.size() - 3);  // the new characters are writable
  EXPECT_EQ(s.find_first_not_of('x', 3), std::string::npos);
  s += "!";  // and the string goes on working as usual
  EXPECT_EQ(s.size(), 100'001u);
  EXPECT_EQ(s.back(), '!');
}

TEST(ResizeUninitialized, ShrinksLikeResize) {
  std::string s = "abcdef";
  resize_uninitialized(s, 2);
  EXPECT_EQ(s, "ab");
  resize_uninitialized(s, 0);
  EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace fusebox
