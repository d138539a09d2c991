#include "fusebox/common/shared_bytes.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace fusebox {
namespace {

TEST(SharedBytes, AdoptsALongStringsBufferWithoutCopyingIt) {
  std::string message(1000, 'm');
  message.replace(0, 5, "PPPPP");  // a gRPC prefix in front of the message
  const char* buffer = message.data();
  SharedBytes bytes(std::move(message), 5, 995);
  EXPECT_EQ(bytes.data(), buffer + 5) << "the bytes stay where they arrived";
  EXPECT_EQ(bytes.view(), std::string(995, 'm'));
}

TEST(SharedBytes, KeepsAShortStringsInlineBytesValid) {
  // A short string keeps its bytes inside the string object, which moves into the shared block.
  SharedBytes bytes(std::string("\0\0\0\0\x03" "abc", 8), 5, 3);
  EXPECT_EQ(bytes.view(), "abc");
  SharedBytes whole(std::string("xyz"));
  EXPECT_EQ(whole.view(), "xyz");
}

TEST(SharedBytes, CopiesShareTheBytesAndOutliveTheOriginal) {
  SharedBytes copy;
  {
    SharedBytes original(std::string(100, 'a'));
    copy = original;
    EXPECT_EQ(copy.data(), original.data());
    EXPECT_EQ(copy.owner(), original.owner());
  }
  EXPECT_EQ(copy.view(), std::string(100, 'a'));
  SharedBytes moved = std::move(copy);
  EXPECT_EQ(moved.size(), 100u);
}

TEST(SharedBytes, ClipsAPartBeyondTheEndAndKeepsNothingForNoBytes) {
  SharedBytes tail(std::string("0123456789"), 7, 100);
  EXPECT_EQ(tail.view(), "789");
  SharedBytes past(std::string("0123456789"), 20, 5);
  EXPECT_TRUE(past.empty());
  EXPECT_EQ(past.owner(), nullptr);
  SharedBytes none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.size(), 0u);
}

TEST(SharedBytes, SharesBytesAnotherObjectOwns) {
  auto cached = std::make_shared<const std::string>(300, 'c');
  SharedBytes bytes(cached, *cached);
  EXPECT_EQ(bytes.data(), cached->data());
  EXPECT_EQ(cached.use_count(), 2) << "the owner is held, the bytes are not copied";
}

}  // namespace
}  // namespace fusebox
