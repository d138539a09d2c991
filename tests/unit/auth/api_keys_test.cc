#include "fusebox/auth/api_keys.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace fusebox::auth {
namespace {

// SHA-256 test vectors (FIPS 180-2 "abc", and the empty string), as `printf %s abc | sha256sum`.
constexpr std::string_view kAbcHash =
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr std::string_view kEmptyHash =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(HashApiKey, MatchesSha256sumOutput) {
  EXPECT_EQ(hash_api_key("abc"), kAbcHash);
  EXPECT_EQ(hash_api_key(""), kEmptyHash);
}

TEST(HashApiKey, RoundTripsThroughParse) {
  for (const char* key : {"k", "a-much-longer-key-0123456789-0123456789-0123456789"}) {
    const auto parsed = parse_key_hash(hash_api_key(key));
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_EQ(*parsed, sha256(key)) << key;
  }
}

TEST(ParseKeyHash, AcceptsEitherHexCase) {
  std::string upper(kAbcHash);
  for (std::size_t i = 7; i < upper.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(upper[i]));
  const auto lower = parse_key_hash(kAbcHash);
  const auto mixed = parse_key_hash(upper);
  ASSERT_TRUE(lower.ok());
  ASSERT_TRUE(mixed.ok()) << mixed.error();
  EXPECT_EQ(*lower, *mixed);
  EXPECT_EQ(*lower, sha256("abc"));
}

TEST(ParseKeyHash, RejectsOtherFormsWithoutEchoingThem) {
  const std::string digits63(63, 'a');
  struct Case {
    std::string text;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"", "expected \"sha256:\" followed by 64 hex digits"},
      {"my-secret-api-key", "does not belong in the configuration"},
      {"SHA256:" + std::string(64, 'a'), "expected \"sha256:\""},
      {"sha1:" + std::string(40, 'a'), "expected \"sha256:\""},
      {"sha256:" + digits63, "(got 63 hex digits)"},
      {"sha256:" + std::string(65, 'a'), "(got 65 hex digits)"},
      {"sha256:", "(got 0 hex digits)"},
      {"sha256:" + std::string(63, 'a') + "g", "not hex"},
      {"sha256: " + digits63, "not hex"},
  };
  for (const Case& c : cases) {
    const auto parsed = parse_key_hash(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_NE(parsed.error().find(c.message_part), std::string::npos)
        << c.text << " -> " << parsed.error();
    if (c.text.size() > 8) {
      EXPECT_EQ(parsed.error().find(c.text), std::string::npos);
    }
  }
}

ApiKeyEntry entry(std::string name, std::string_view key) {
  ApiKeyEntry e;
  e.name = std::move(name);
  e.hash = sha256(key);
  return e;
}

ApiKeyStore store_of(std::vector<ApiKeyEntry> entries) {
  auto built = ApiKeyStore::build(std::move(entries));
  if (auto* errors = std::get_if<std::vector<FieldError>>(&built)) {
    ADD_FAILURE() << (*errors)[0].to_string();
    return std::get<ApiKeyStore>(ApiKeyStore::build({}));
  }
  return std::get<ApiKeyStore>(std::move(built));
}

TEST(ApiKeyStore, FindsEachKeyAndNothingElse) {
  ApiKeyEntry batch = entry("batch", "batch-key-0123456789abcdef");
  batch.priority_class = 7;
  batch.rate_limit = RateLimitSettings{.requests_per_second = 5, .burst = 10};
  batch.allowed_models = make_model_allow_list({"resnet"});
  const ApiKeyStore store = store_of({entry("web", "web-key-0123456789abcdef"), std::move(batch),
                                      entry("ops", "ops-key-0123456789abcdef")});
  ASSERT_EQ(store.size(), 3u);

  struct Case {
    std::string presented;
    const char* name;  // nullptr: no match
  };
  const std::vector<Case> cases = {
      {"web-key-0123456789abcdef", "web"},    {"batch-key-0123456789abcdef", "batch"},
      {"ops-key-0123456789abcdef", "ops"},    {"", nullptr},
      {"web-key-0123456789abcde", nullptr},    // a prefix
      {"web-key-0123456789abcdef ", nullptr},  // one byte more
      {"WEB-KEY-0123456789ABCDEF", nullptr},   // keys are case-sensitive
      {std::string(64, 'a'), nullptr},
  };
  for (const Case& c : cases) {
    const ApiKeyEntry* found = store.find(c.presented);
    if (c.name == nullptr) {
      EXPECT_EQ(found, nullptr) << c.presented;
    } else {
      ASSERT_NE(found, nullptr) << c.presented;
      EXPECT_EQ(found->name, c.name);
    }
  }
  const ApiKeyEntry* found = store.find("batch-key-0123456789abcdef");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->priority_class, 7);
  ASSERT_TRUE(found->rate_limit.has_value());
  EXPECT_EQ(found->rate_limit->burst, 10u);
  ASSERT_NE(found->allowed_models, nullptr);
  EXPECT_EQ(*found->allowed_models, std::vector<std::string>{"resnet"});
}

TEST(ApiKeyStore, MatchesAtEveryPositionOfALargeStore) {
  // The selection is arithmetic, not an early return: check it keeps the right index wherever
  // the match sits (first, middle, last) and that a miss after a match does not overwrite it.
  std::vector<ApiKeyEntry> entries;
  for (int i = 0; i < 200; ++i)
    entries.push_back(entry("key" + std::to_string(i), "k" + std::to_string(i)));
  const ApiKeyStore store = store_of(std::move(entries));
  for (const int i : {0, 1, 99, 198, 199}) {
    const ApiKeyEntry* found = store.find("k" + std::to_string(i));
    ASSERT_NE(found, nullptr) << i;
    EXPECT_EQ(found->name, "key" + std::to_string(i));
  }
  EXPECT_EQ(store.find("k200"), nullptr);
}

TEST(ApiKeyStore, EmptyStoreFindsNothing) {
  const ApiKeyStore store = store_of({});
  EXPECT_TRUE(store.empty());
  EXPECT_EQ(store.find("anything"), nullptr);
}

TEST(ApiKeyStore, BuildReportsEveryProblemWithItsField) {
  ApiKeyEntry bad_priority = entry("p", "p");
  bad_priority.priority_class = 10;
  ApiKeyEntry bad_rate = entry("r", "r");
  bad_rate.rate_limit = RateLimitSettings{.requests_per_second = 0, .burst = 0};
  std::vector<ApiKeyEntry> entries = {entry("a", "a"), entry("", "b"), entry("a", "c"),
                                      entry("d", "a"), bad_priority,   bad_rate};
  const auto built = ApiKeyStore::build(std::move(entries));
  const auto* errors = std::get_if<std::vector<FieldError>>(&built);
  ASSERT_NE(errors, nullptr);
  std::vector<std::string> printed;
  for (const FieldError& e : *errors) printed.push_back(e.to_string());
  const std::vector<std::string> expected = {
      "[1].name: must not be empty",
      "[2].name: duplicate API key name \"a\"",
      "[3].hash: the same key hash is listed twice",
      "[4].priority_class: must be 0 (highest) .. 9",
      "[5].rate_limit.requests_per_second: must be > 0",
      "[5].rate_limit.burst: must be >= 1",
  };
  EXPECT_EQ(printed, expected);
}

TEST(ModelAllowList, EmptyMeansEveryModel) {
  EXPECT_EQ(make_model_allow_list({}), nullptr);
  const ModelAllowList two = make_model_allow_list({"a", "b"});
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->size(), 2u);
}

TEST(PresentedCredentials, PicksTheCredentialFromTheHeaders) {
  struct Case {
    std::string_view api_key_header;
    std::string_view authorization;
    std::string_view api_key;
    std::string_view bearer;
    bool unsupported;
  };
  const Case cases[] = {
      {"", "", "", "", false},
      {"k1", "", "k1", "", false},
      {"  k1\t", "", "k1", "", false},
      {" \t ", "", "", "", false},
      {"", "ApiKey k2", "k2", "", false},
      {"", "apikey   k2 ", "k2", "", false},
      {"", "APIKEY k2", "k2", "", false},
      {"", "Bearer t.o.k", "", "t.o.k", false},
      {"", "bearer t.o.k", "", "t.o.k", false},
      {"", "  Bearer\tt.o.k  ", "", "t.o.k", false},
      {"k1", "ApiKey k2", "k1", "", false},  // the header wins
      {"k1", "Bearer t.o.k", "k1", "t.o.k", false},
      {"", "Basic dXNlcjpwYXNz", "", "", true},
      {"", "Bearer", "", "", true},
      {"", "Bearer   ", "", "", true},
      {"", "ApiKey", "", "", true},
      {"", "Bearertoken", "", "", true},
      {"k1", "Basic x", "k1", "", true},
  };
  for (const Case& c : cases) {
    const PresentedCredentials got = presented_credentials(c.api_key_header, c.authorization);
    EXPECT_EQ(got.api_key, c.api_key) << "[" << c.api_key_header << "] [" << c.authorization << "]";
    EXPECT_EQ(got.bearer_token, c.bearer) << "[" << c.authorization << "]";
    EXPECT_EQ(got.unsupported_authorization, c.unsupported) << "[" << c.authorization << "]";
    EXPECT_EQ(got.any(), !c.api_key.empty() || !c.bearer.empty());
  }
}

}  // namespace
}  // namespace fusebox::auth
