#include "fusebox/auth/auth_policy.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "jwt_test_signer.h"

namespace fusebox::auth {
namespace {

using nlohmann::json;

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kKey = "web-key-4f0c1d2e3a5b6c7d8e9f";
const std::string kUnknownKey = "not-a-configured-key-123456";
const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::string token(std::int64_t exp, const std::string& secret = kSecret) {
  const json claims = {{"sub", "alice"},
                       {"aud", "fusebox"},
                       {"exp", exp},
                       {"fusebox_priority", 4},
                       {"models", {"bert"}}};
  return testing::sign_hs256({{"alg", "HS256"}, {"kid", "hs1"}}, claims, secret);
}

class AuthPolicyTest : public ::testing::Test {
 protected:
  AuthPolicyTest() {
    ApiKeyEntry web;
    web.name = "web";
    web.hash = sha256(kKey);
    web.priority_class = 2;
    web.rate_limit = RateLimitSettings{.requests_per_second = 50, .burst = 100};
    web.allowed_models = make_model_allow_list({"resnet"});
    std::vector<ApiKeyEntry> entries;
    entries.push_back(std::move(web));
    api_keys_ = std::make_unique<ApiKeyStore>(
        std::get<ApiKeyStore>(ApiKeyStore::build(std::move(entries))));
    std::vector<JwtKey> keys;
    keys.push_back(*JwtKey::hs256("hs1", kSecret));
    jwt_keys_ = *JwtKeySet::build(std::move(keys));
    jwt_options_.audience = "fusebox";
    jwt_options_.priority_claim = "fusebox_priority";
    jwt_options_.models_claim = "models";
    stores_ = {
        .api_keys = api_keys_.get(), .jwt_keys = jwt_keys_.get(), .jwt_options = &jwt_options_};
  }

  AuthResult run(AuthPolicy policy, std::string_view key_header, std::string_view authorization) {
    return authenticate(policy, presented_credentials(key_header, authorization), stores_, clock_);
  }

  ManualWallClock clock_{kNow};
  std::unique_ptr<ApiKeyStore> api_keys_;
  std::shared_ptr<const JwtKeySet> jwt_keys_;
  JwtValidationOptions jwt_options_;
  AuthStores stores_;
};

// "anonymous", "api_key:<name>", "jwt:<subject>" or "<status> <reason>".
std::string outcome(const AuthResult& result) {
  if (const auto* identity = std::get_if<Identity>(&result)) {
    if (identity->kind == IdentityKind::anonymous) return "anonymous";
    return std::string(to_string(identity->kind)) + ":" + identity->name;
  }
  const auto& failure = std::get<AuthFailure>(result);
  return std::to_string(failure.status) + " " + to_string(failure.reason);
}

TEST_F(AuthPolicyTest, EveryPolicyWithEveryCredential) {
  const std::string valid = "Bearer " + token(kNow + 300);
  const std::string expired = "Bearer " + token(kNow - 300);
  const std::string bad_signature = "Bearer " + token(kNow + 300, std::string(32, 'x'));
  struct Case {
    const char* what;
    std::string key_header;
    std::string authorization;
    // Expected outcome under none, api_key, jwt, any.
    std::array<const char*, 4> expected;
  };
  const std::vector<Case> cases = {
      {"nothing", "", "", {"anonymous", "401 missing", "401 missing", "401 missing"}},
      {"valid key", kKey, "", {"anonymous", "api_key:web", "401 missing", "api_key:web"}},
      {"valid key as ApiKey scheme",
       "",
       "ApiKey " + kKey,
       {"anonymous", "api_key:web", "401 missing", "api_key:web"}},
      {"unknown key",
       kUnknownKey,
       "",
       {"anonymous", "401 invalid_key", "401 missing", "401 invalid_key"}},
      {"valid token", "", valid, {"anonymous", "401 missing", "jwt:alice", "jwt:alice"}},
      {"expired token", "", expired, {"anonymous", "401 missing", "401 expired", "401 expired"}},
      {"badly signed token",
       "",
       bad_signature,
       {"anonymous", "401 missing", "401 bad_token", "401 bad_token"}},
      {"garbage token",
       "",
       "Bearer abc",
       {"anonymous", "401 missing", "401 bad_token", "401 bad_token"}},
      {"valid key and valid token",
       kKey,
       valid,
       {"anonymous", "api_key:web", "jwt:alice", "api_key:web"}},
      {"valid key and bad token",
       kKey,
       bad_signature,
       {"anonymous", "api_key:web", "401 bad_token", "401 bad_token"}},
      {"unknown key and valid token",
       kUnknownKey,
       valid,
       {"anonymous", "401 invalid_key", "jwt:alice", "401 invalid_key"}},
      {"Basic credentials",
       "",
       "Basic dXNlcjpwYXNz",
       {"anonymous", "401 unsupported_scheme", "401 unsupported_scheme", "401 unsupported_scheme"}},
      {"Basic credentials and a valid key",
       kKey,
       "Basic dXNlcjpwYXNz",
       {"anonymous", "api_key:web", "401 unsupported_scheme", "api_key:web"}},
  };
  const AuthPolicy policies[] = {AuthPolicy::none, AuthPolicy::api_key, AuthPolicy::jwt,
                                 AuthPolicy::any};
  for (const Case& c : cases) {
    for (std::size_t p = 0; p < 4; ++p) {
      SCOPED_TRACE(std::string(c.what) + " under " + to_string(policies[p]));
      const AuthResult result = run(policies[p], c.key_header, c.authorization);
      EXPECT_EQ(outcome(result), c.expected[p]);
      if (const auto* failure = std::get_if<AuthFailure>(&result)) {
        EXPECT_FALSE(failure->www_authenticate.empty());
        EXPECT_FALSE(failure->message.empty());
        // No credential is ever echoed.
        for (const std::string& secret :
             {kKey, kUnknownKey, valid.substr(7), expired.substr(7), bad_signature.substr(7)}) {
          EXPECT_EQ(failure->message.find(secret), std::string::npos);
          EXPECT_EQ(failure->www_authenticate.find(secret), std::string::npos);
        }
      }
    }
  }
}

TEST_F(AuthPolicyTest, ChallengesFollowRfc6750) {
  const auto failure = [&](AuthPolicy policy, std::string_view key, std::string_view auth) {
    return std::get<AuthFailure>(run(policy, key, auth));
  };
  EXPECT_EQ(failure(AuthPolicy::api_key, "", "").www_authenticate, "ApiKey realm=\"fusebox\"");
  EXPECT_EQ(failure(AuthPolicy::jwt, "", "").www_authenticate, "Bearer realm=\"fusebox\"");
  EXPECT_EQ(failure(AuthPolicy::any, "", "").www_authenticate,
            "Bearer realm=\"fusebox\", ApiKey realm=\"fusebox\"");
  EXPECT_EQ(failure(AuthPolicy::any, kUnknownKey, "").www_authenticate, "ApiKey realm=\"fusebox\"");

  const AuthFailure expired = failure(AuthPolicy::jwt, "", "Bearer " + token(kNow - 300));
  EXPECT_EQ(expired.www_authenticate,
            "Bearer realm=\"fusebox\", error=\"invalid_token\", "
            "error_description=\"token expired\"");
  EXPECT_EQ(expired.message, "invalid bearer token: token expired");
  EXPECT_EQ(expired.jwt_reason, JwtFailureReason::expired);

  const AuthFailure forged =
      failure(AuthPolicy::jwt, "", "Bearer " + token(kNow + 300, kKey + "-padding"));
  EXPECT_EQ(forged.reason, AuthFailureReason::bad_token);
  EXPECT_EQ(forged.jwt_reason, JwtFailureReason::bad_signature);
  EXPECT_EQ(forged.www_authenticate,
            "Bearer realm=\"fusebox\", error=\"invalid_token\", "
            "error_description=\"signature does not verify\"");

  const AuthFailure missing = failure(AuthPolicy::api_key, "", "");
  EXPECT_EQ(missing.message, "this route needs an API key (X-API-Key or Authorization: ApiKey)");
}

TEST_F(AuthPolicyTest, RealmIsQuotedSafely) {
  stores_.realm = "fuse\"box\\";
  const auto failure = std::get<AuthFailure>(run(AuthPolicy::api_key, "", ""));
  EXPECT_EQ(failure.www_authenticate, "ApiKey realm=\"fuse?box?\"");
}

TEST_F(AuthPolicyTest, IdentitiesCarryTheirSettings) {
  const Identity key = std::get<Identity>(run(AuthPolicy::any, kKey, ""));
  EXPECT_EQ(key.kind, IdentityKind::api_key);
  EXPECT_EQ(key.name, "web");
  EXPECT_EQ(key.priority_class, 2);
  ASSERT_TRUE(key.rate_limit.has_value());
  EXPECT_EQ(key.rate_limit->requests_per_second, 50);
  EXPECT_EQ(key.rate_limit->burst, 100u);
  // Shared with the store's entry, not copied.
  EXPECT_EQ(key.allowed_models, api_keys_->find(kKey)->allowed_models);

  const Identity jwt = std::get<Identity>(run(AuthPolicy::any, "", "Bearer " + token(kNow + 60)));
  EXPECT_EQ(jwt.kind, IdentityKind::jwt);
  EXPECT_EQ(jwt.name, "alice");
  EXPECT_EQ(jwt.priority_class, 4);
  EXPECT_FALSE(jwt.rate_limit.has_value());

  const Identity anonymous = std::get<Identity>(run(AuthPolicy::none, kKey, ""));
  EXPECT_EQ(anonymous.kind, IdentityKind::anonymous);
  EXPECT_TRUE(anonymous.name.empty());
  EXPECT_FALSE(anonymous.priority_class.has_value());
}

TEST_F(AuthPolicyTest, AllowedModels) {
  const Identity key = std::get<Identity>(run(AuthPolicy::api_key, kKey, ""));
  const Identity jwt = std::get<Identity>(run(AuthPolicy::jwt, "", "Bearer " + token(kNow + 60)));
  const Identity anonymous;
  struct Case {
    const Identity* identity;
    const char* model;
    bool allowed;
  };
  const Case cases[] = {
      {&key, "resnet", true},     {&key, "bert", false},          {&key, "Resnet", false},
      {&key, "", false},          {&jwt, "bert", true},           {&jwt, "resnet", false},
      {&anonymous, "bert", true}, {&anonymous, "anything", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(allowed(*c.identity, c.model), c.allowed)
        << to_string(c.identity->kind) << " " << c.model;
  }
}

TEST_F(AuthPolicyTest, ForbiddenAnswers) {
  const Identity key = std::get<Identity>(run(AuthPolicy::api_key, kKey, ""));
  const AuthFailure for_key = forbidden(key);
  EXPECT_EQ(for_key.status, 403);
  EXPECT_EQ(for_key.reason, AuthFailureReason::forbidden);
  EXPECT_TRUE(for_key.www_authenticate.empty());
  EXPECT_FALSE(for_key.message.empty());

  const Identity jwt = std::get<Identity>(run(AuthPolicy::jwt, "", "Bearer " + token(kNow + 60)));
  const AuthFailure for_jwt = forbidden(jwt);
  EXPECT_EQ(for_jwt.status, 403);
  EXPECT_EQ(for_jwt.www_authenticate,
            "Bearer realm=\"fusebox\", error=\"insufficient_scope\", "
            "error_description=\"the token does not allow this model\"");
}

TEST_F(AuthPolicyTest, MissingStoresRejectEveryCredential) {
  stores_ = AuthStores{};
  EXPECT_EQ(outcome(run(AuthPolicy::api_key, kKey, "")), "401 invalid_key");
  EXPECT_EQ(outcome(run(AuthPolicy::jwt, "", "Bearer " + token(kNow + 60))), "401 bad_token");
  EXPECT_EQ(outcome(run(AuthPolicy::none, "", "")), "anonymous");
}

TEST(AuthPolicyNames, ParseAndPrint) {
  for (const AuthPolicy p :
       {AuthPolicy::none, AuthPolicy::api_key, AuthPolicy::jwt, AuthPolicy::any}) {
    EXPECT_EQ(parse_auth_policy(to_string(p)), p);
  }
  for (const char* text : {"", "API_KEY", "apikey", "bearer", "None", "any "}) {
    EXPECT_EQ(parse_auth_policy(text), std::nullopt) << text;
  }
  EXPECT_STREQ(to_string(AuthFailureReason::unsupported_scheme), "unsupported_scheme");
  EXPECT_STREQ(to_string(IdentityKind::jwt), "jwt");
}

}  // namespace
}  // namespace fusebox::auth
