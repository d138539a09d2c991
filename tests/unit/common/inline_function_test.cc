#include "fusebox/common/inline_function.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>

namespace fusebox {
namespace {

using Handler = InlineFunction<int(std::string&&)>;

TEST(InlineFunction, CallsWhatItHoldsWithTheArgumentsMoved) {
  auto counter = std::make_shared<int>(0);
  std::size_t index = 7;
  Handler h = [counter, index](std::string&& s) {
    ++*counter;
    std::string taken = std::move(s);
    return static_cast<int>(taken.size() + index);
  };
  static_assert(Handler::fits_inline<decltype([counter, index](std::string&&) { return 0; })>(),
                "a shared_ptr and an index stay inline");
  std::string arg = "abc";
  EXPECT_EQ(h(std::move(arg)), 10);
  EXPECT_TRUE(arg.empty()) << "the argument was moved into the callee";
  EXPECT_EQ(*counter, 1);
}

TEST(InlineFunction, MovingHandsOverTheCallableAndItsCaptureOnce) {
  auto alive = std::make_shared<int>(1);
  std::weak_ptr<int> watch = alive;
  Handler a = [keep = std::move(alive)](std::string&&) { return *keep; };
  Handler b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT: checking the moved-from state on purpose
  ASSERT_TRUE(b);
  EXPECT_EQ(b(""), 1);
  EXPECT_EQ(watch.use_count(), 1) << "one capture, not a copy";
  Handler c;
  c = std::move(b);
  EXPECT_EQ(watch.use_count(), 1);
  c = nullptr;
  EXPECT_TRUE(watch.expired()) << "resetting destroys the capture";
}

TEST(InlineFunction, ALargeCaptureWorksFromTheHeapAndIsFreed) {
  auto alive = std::make_shared<int>(2);
  std::weak_ptr<int> watch = alive;
  std::array<char, 200> big{};
  big[199] = 5;
  {
    Handler h = [big, keep = std::move(alive)](std::string&&) { return big[199] + *keep; };
    static_assert(!Handler::fits_inline<decltype(
                      [big](std::string&&) { return static_cast<int>(big[0]); })>());
    Handler moved = std::move(h);
    EXPECT_EQ(moved("x"), 7);
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace fusebox
