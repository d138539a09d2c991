#include "auth/base64url.h"

#include <gtest/gtest.h>

#include <string>

namespace fusebox::auth {
namespace {

TEST(Base64Url, EncodesRfc4648VectorsWithoutPadding) {
  // RFC 4648 section 10, padding removed.
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64url_encode(plain), encoded);
    EXPECT_EQ(base64url_decode(encoded), plain);
  }
}

TEST(Base64Url, UsesTheUrlSafeAlphabet) {
  const std::string bytes = "\xfb\xff\xbf";
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  EXPECT_EQ(base64url_decode("-_-_"), bytes);
}

TEST(Base64Url, RejectsAnythingButTheCanonicalForm) {
  for (const char* text : {"Zg==", "Zm9v=", "Z", "Zm9vY", "+/+/", "Zm 9v", "Zm9v\n", "Zh", "Zm9"}) {
    EXPECT_EQ(base64url_decode(text), std::nullopt) << text;
  }
  // "Zh" and "Zm9" differ from "Zg" and "Zm8" only in bits that padding must leave zero.
  EXPECT_EQ(base64url_decode("Zg"), "f");
}

}  // namespace
}  // namespace fusebox::auth
