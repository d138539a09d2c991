#include "fusebox/auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "jwt_test_signer.h"

namespace fusebox::auth {

void PrintTo(JwtFailureReason reason, std::ostream* os) { *os << to_string(reason); }

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::rsa_key;
using testing::sign_hs256;
using testing::sign_rs256;

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef";  // exactly 32 bytes
const std::string kOtherSecret = "fedcba9876543210fedcba9876543210";
const std::string kIssuer = "https://issuer.example";

std::shared_ptr<const JwtKeySet> key_set(std::vector<Expected<JwtKey>> keys) {
  std::vector<JwtKey> loaded;
  for (auto& key : keys) {
    if (!key) throw std::runtime_error(key.error());
    loaded.push_back(std::move(key).value());
  }
  auto set = JwtKeySet::build(std::move(loaded));
  if (!set) throw std::runtime_error(set.error());
  return *set;
}

std::string pem_of(int index) { return testing::public_key_pem(rsa_key(index).get()); }

// A date claim at now + offset, checked with the given skew.
struct DateCase {
  std::int64_t offset;
  std::int64_t skew;
  bool accepted;
};

class JwtTest : public ::testing::Test {
 protected:
  JwtTest() {
    options_.issuer = kIssuer;
    options_.audience = "fusebox";
    options_.priority_claim = "fusebox_priority";
    options_.models_claim = "models";
  }

  static json hs_header(const char* kid = "hs1") {
    json h = {{"alg", "HS256"}, {"typ", "JWT"}};
    if (kid != nullptr) h["kid"] = kid;
    return h;
  }
  static json rs_header(const char* kid = "rs1") {
    json h = {{"alg", "RS256"}, {"typ", "JWT"}};
    if (kid != nullptr) h["kid"] = kid;
    return h;
  }
  static json claims() {
    return {
        {"sub", "alice"}, {"iss", kIssuer}, {"aud", "fusebox"}, {"iat", kNow}, {"exp", kNow + 300}};
  }

  JwtResult verify(std::string_view token) const {
    return verify_jwt(token, *keys_, options_, clock_);
  }

  // Expects a failure for `reason` whose message contains no part of the token.
  void expect_failure(std::string_view token, JwtFailureReason reason) const {
    const JwtResult result = verify(token);
    const auto* failure = std::get_if<JwtFailure>(&result);
    ASSERT_NE(failure, nullptr) << "accepted: " << token;
    EXPECT_EQ(failure->reason, reason) << failure->message;
    EXPECT_FALSE(failure->message.empty());
    std::size_t start = 0;
    while (start <= token.size()) {
      const std::size_t end = std::min(token.find('.', start), token.size());
      const std::string_view part = token.substr(start, end - start);
      if (part.size() >= 4) {
        EXPECT_EQ(failure->message.find(part), std::string::npos) << part;
      }
      start = end + 1;
    }
  }

  // Tokens whose `claim` is now + offset, verified with the case's skew.
  void check_date_claim(const char* claim, JwtFailureReason reason,
                        const std::vector<DateCase>& cases);

  // The verified token (a copy: the result is usually a temporary), or an empty one.
  static JwtVerified expect_verified(const JwtResult& result) {
    if (const auto* failure = std::get_if<JwtFailure>(&result)) {
      ADD_FAILURE() << "rejected: " << to_string(failure->reason) << ": " << failure->message;
      return {};
    }
    return std::get<JwtVerified>(result);
  }

  ManualWallClock clock_{kNow};
  JwtValidationOptions options_;
  std::shared_ptr<const JwtKeySet> keys_ =
      key_set({JwtKey::hs256("hs1", kSecret), JwtKey::rs256_from_pem("rs1", pem_of(0))});
};

// ---- Valid tokens -------------------------------------------------------------------------

TEST_F(JwtTest, ValidHs256) {
  const JwtVerified v = expect_verified(verify(sign_hs256(hs_header(), claims(), kSecret)));
  EXPECT_EQ(v.subject, "alice");
  EXPECT_EQ(v.key_id, "hs1");
  EXPECT_EQ(v.claims.value("iss", ""), kIssuer);
  EXPECT_FALSE(v.priority_class.has_value());
  EXPECT_EQ(v.allowed_models, nullptr);
}

TEST_F(JwtTest, ValidRs256) {
  const JwtVerified v =
      expect_verified(verify(sign_rs256(rs_header(), claims(), rsa_key(0).get())));
  EXPECT_EQ(v.subject, "alice");
  EXPECT_EQ(v.key_id, "rs1");
}

TEST_F(JwtTest, WithoutKidTheOnlyKeyOfTheAlgIsUsed) {
  expect_verified(verify(sign_hs256(hs_header(nullptr), claims(), kSecret)));
  expect_verified(verify(sign_rs256(rs_header(nullptr), claims(), rsa_key(0).get())));
}

TEST_F(JwtTest, WithoutKidSeveralKeysOfTheAlgAreAmbiguous) {
  keys_ = key_set({JwtKey::hs256("a", kSecret), JwtKey::hs256("b", kOtherSecret)});
  expect_failure(sign_hs256(hs_header(nullptr), claims(), kSecret), JwtFailureReason::unknown_key);
  expect_verified(verify(sign_hs256(hs_header("b"), claims(), kOtherSecret)));
}

TEST_F(JwtTest, PriorityAndModelClaims) {
  json c = claims();
  c["fusebox_priority"] = 3;
  c["models"] = json::array({"resnet", "bert"});
  const JwtVerified v = expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
  EXPECT_EQ(v.priority_class, 3);
  ASSERT_NE(v.allowed_models, nullptr);
  EXPECT_EQ(*v.allowed_models, (std::vector<std::string>{"resnet", "bert"}));

  c["models"] = "resnet  bert";  // OAuth scope style
  const JwtVerified spaced = expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
  ASSERT_NE(spaced.allowed_models, nullptr);
  EXPECT_EQ(*spaced.allowed_models, (std::vector<std::string>{"resnet", "bert"}));

  c["models"] = json::array();  // present but empty: nothing allowed (not "all")
  const JwtVerified none = expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
  ASSERT_NE(none.allowed_models, nullptr);
  EXPECT_TRUE(none.allowed_models->empty());
}

TEST_F(JwtTest, MistypedPriorityOrModelClaimsAreMalformed) {
  for (const json& priority : {json(10), json(-1), json("3"), json(2.5)}) {
    json c = claims();
    c["fusebox_priority"] = priority;
    expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::malformed);
  }
  for (const json& models : {json(5), json::array({"a", 1}), json::object()}) {
    json c = claims();
    c["models"] = models;
    expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::malformed);
  }
}

// ---- Signatures ---------------------------------------------------------------------------

TEST_F(JwtTest, BadSignature) {
  expect_failure(sign_hs256(hs_header(), claims(), kOtherSecret), JwtFailureReason::bad_signature);
  expect_failure(sign_rs256(rs_header(), claims(), rsa_key(1).get()),
                 JwtFailureReason::bad_signature);
}

TEST_F(JwtTest, TamperedPayloadOrSignature) {
  json admin = claims();
  admin["sub"] = "admin";
  const std::string forged_payload = base64url_encode(admin.dump());
  for (const std::string& token : {sign_hs256(hs_header(), claims(), kSecret),
                                   sign_rs256(rs_header(), claims(), rsa_key(0).get())}) {
    const std::size_t dot1 = token.find('.');
    const std::size_t dot2 = token.rfind('.');
    const std::string swapped = token.substr(0, dot1 + 1) + forged_payload + token.substr(dot2);
    expect_failure(swapped, JwtFailureReason::bad_signature);

    std::string flipped = token;
    char& c = flipped[dot2 + 5];  // inside the signature, away from the last character's pad bits
    c = c == 'A' ? 'B' : 'A';
    expect_failure(flipped, JwtFailureReason::bad_signature);

    expect_failure(token.substr(0, dot2 + 1), JwtFailureReason::bad_signature);  // no signature
  }
}

TEST_F(JwtTest, ShortRsaSignature) {
  const std::string token = sign_rs256(rs_header(), claims(), rsa_key(0).get());
  const std::size_t dot2 = token.rfind('.');
  const std::string signature = *base64url_decode(token.substr(dot2 + 1));
  ASSERT_EQ(signature.size(), 256u);
  expect_failure(token.substr(0, dot2 + 1) + base64url_encode(signature.substr(0, 255)),
                 JwtFailureReason::bad_signature);
  expect_failure(token.substr(0, dot2 + 1) + base64url_encode(signature + '\0'),
                 JwtFailureReason::bad_signature);
}

// ---- Algorithms ---------------------------------------------------------------------------

TEST_F(JwtTest, UnsupportedAlgorithms) {
  const std::string payload = base64url_encode(claims().dump());
  for (const char* alg :
       {"none", "None", "NONE", "HS512", "RS512", "ES256", "PS256", "hs256", ""}) {
    const std::string header = base64url_encode(json{{"alg", alg}, {"kid", "hs1"}}.dump());
    // Unsigned (the classic alg-none token) and with a plausible signature.
    expect_failure(header + "." + payload + ".", JwtFailureReason::unsupported_alg);
    const std::string input = header + "." + payload;
    expect_failure(input + "." + base64url_encode(testing::hmac_sha256(kSecret, input)),
                   JwtFailureReason::unsupported_alg);
  }
}

TEST_F(JwtTest, AlgConfusionWithThePublicKeyAsHmacSecretIsRejected) {
  keys_ = key_set({JwtKey::rs256_from_pem("rs1", pem_of(0))});
  const std::string pem = pem_of(0);
  // With the RSA key's kid, and without a kid.
  expect_failure(sign_hs256(hs_header("rs1"), claims(), pem), JwtFailureReason::unsupported_alg);
  expect_failure(sign_hs256(hs_header(nullptr), claims(), pem), JwtFailureReason::unsupported_alg);
  // The DER bytes of the key, base64 or raw, fare no better: the key is never an HMAC secret.
  expect_failure(sign_hs256(hs_header("rs1"), claims(), pem.substr(27, 64)),
                 JwtFailureReason::unsupported_alg);
}

TEST_F(JwtTest, RsaTokenAgainstAnHmacKeyIsRejected) {
  expect_failure(sign_rs256(rs_header("hs1"), claims(), rsa_key(0).get()),
                 JwtFailureReason::unsupported_alg);
  keys_ = key_set({JwtKey::hs256("hs1", kSecret)});
  expect_failure(sign_rs256(rs_header(nullptr), claims(), rsa_key(0).get()),
                 JwtFailureReason::unsupported_alg);
}

TEST_F(JwtTest, UnknownKid) {
  expect_failure(sign_hs256(hs_header("rotated-away"), claims(), kSecret),
                 JwtFailureReason::unknown_key);
  expect_failure(sign_rs256(rs_header("rs2"), claims(), rsa_key(0).get()),
                 JwtFailureReason::unknown_key);
}

// ---- Time ---------------------------------------------------------------------------------

void JwtTest::check_date_claim(const char* claim, JwtFailureReason reason,
                               const std::vector<DateCase>& cases) {
  for (const DateCase& c : cases) {
    options_.clock_skew_seconds = c.skew;
    json claim_set = claims();
    claim_set[claim] = kNow + c.offset;
    const std::string token = sign_hs256(hs_header(), claim_set, kSecret);
    SCOPED_TRACE(std::string(claim) + " = now + " + std::to_string(c.offset) + ", skew " +
                 std::to_string(c.skew));
    if (c.accepted) {
      expect_verified(verify(token));
    } else {
      expect_failure(token, reason);
    }
  }
}

TEST_F(JwtTest, ExpiryWithSkew) {
  check_date_claim("exp", JwtFailureReason::expired,
                   {
                       {300, 30, true},
                       {1, 30, true},
                       {0, 30, true},
                       {-29, 30, true},
                       {-30, 30, false},  // now == exp + skew: now must be before exp
                       {-31, 30, false},
                       {-3600, 30, false},
                       {1, 0, true},
                       {0, 0, false},
                       {-5, 60, true},
                   });
}

TEST_F(JwtTest, ExpiresAsTheClockMoves) {
  const std::string token = sign_rs256(rs_header(), claims(), rsa_key(0).get());  // exp now+300
  expect_verified(verify(token));
  clock_.advance(329s);
  expect_verified(verify(token));
  clock_.advance(1s);
  expect_failure(token, JwtFailureReason::expired);
}

TEST_F(JwtTest, NotBeforeWithSkew) {
  check_date_claim("nbf", JwtFailureReason::not_yet_valid,
                   {
                       {-10, 30, true},
                       {0, 30, true},
                       {29, 30, true},
                       {30, 30, true},  // now + skew == nbf: valid from nbf on
                       {31, 30, false},
                       {600, 30, false},
                       {0, 0, true},
                       {1, 0, false},
                   });
}

TEST_F(JwtTest, FractionalDatesAreNumbers) {
  json c = claims();
  c["exp"] = kNow - 29.5;
  c["nbf"] = kNow + 0.25;
  expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
}

TEST_F(JwtTest, MissingExp) {
  json c = claims();
  c.erase("exp");
  const std::string token = sign_hs256(hs_header(), c, kSecret);
  expect_failure(token, JwtFailureReason::missing_claim);
  options_.require_exp = false;
  expect_verified(verify(token));
}

TEST_F(JwtTest, NonNumericDatesAreMalformed) {
  for (const char* claim : {"exp", "nbf", "iat"}) {
    json c = claims();
    c[claim] = "2030-01-01";
    SCOPED_TRACE(claim);
    expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::malformed);
  }
}

// ---- Issuer and audience ------------------------------------------------------------------

TEST_F(JwtTest, Audience) {
  struct Case {
    json aud;  // null: no aud claim
    JwtFailureReason reason;
    bool accepted;
  };
  const std::vector<Case> cases = {
      {"fusebox", {}, true},
      {json::array({"other", "fusebox"}), {}, true},
      {json::array({"fusebox"}), {}, true},
      {"other", JwtFailureReason::wrong_audience, false},
      {"Fusebox", JwtFailureReason::wrong_audience, false},
      {json::array({"other", "fusebox-admin"}), JwtFailureReason::wrong_audience, false},
      {json::array(), JwtFailureReason::wrong_audience, false},
      {nullptr, JwtFailureReason::missing_claim, false},
      {42, JwtFailureReason::malformed, false},
  };
  for (const Case& c : cases) {
    json claim_set = claims();
    if (c.aud.is_null()) {
      claim_set.erase("aud");
    } else {
      claim_set["aud"] = c.aud;
    }
    SCOPED_TRACE(c.aud.dump());
    const std::string token = sign_hs256(hs_header(), claim_set, kSecret);
    if (c.accepted) {
      expect_verified(verify(token));
    } else {
      expect_failure(token, c.reason);
    }
  }
}

TEST_F(JwtTest, AnyAudienceWhenNoneConfigured) {
  options_.audience.clear();
  json c = claims();
  c["aud"] = "someone-else";
  expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
  c.erase("aud");
  expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
}

TEST_F(JwtTest, Issuer) {
  json c = claims();
  c["iss"] = "https://evil.example";
  expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::wrong_issuer);
  c["iss"] = 7;
  expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::wrong_issuer);
  c.erase("iss");
  expect_failure(sign_hs256(hs_header(), c, kSecret), JwtFailureReason::missing_claim);
  options_.issuer.clear();
  expect_verified(verify(sign_hs256(hs_header(), c, kSecret)));
}

// ---- Malformed input ----------------------------------------------------------------------

TEST_F(JwtTest, MalformedTokens) {
  const std::string good = sign_hs256(hs_header(), claims(), kSecret);
  const std::string p = base64url_encode(claims().dump());
  const auto h = [](const json& header) { return base64url_encode(header.dump()); };
  const auto signed_with = [](const std::string& header_b64, const std::string& payload_b64) {
    const std::string input = header_b64 + "." + payload_b64;
    return input + "." + base64url_encode(testing::hmac_sha256(kSecret, input));
  };
  const std::vector<std::string> cases = {
      "",
      "abcdef",
      good.substr(0, good.rfind('.')) + "",                                // two parts
      good + ".extra",                                                     // four parts
      good.substr(good.find('.')),                                         // empty header
      good.substr(0, good.find('.') + 1) + good.substr(good.rfind('.')),   // empty payload
      "!!!!" + good.substr(good.find('.')),                                // not base64url
      good.substr(0, good.find('.')) + "=" + good.substr(good.find('.')),  // padding
      h(hs_header()) + "." + p + "." + "a",  // a lone base64 character is no byte
      base64url_encode("not json") + "." + p + ".c2ln",
      base64url_encode("[\"HS256\"]") + "." + p + ".c2ln",
      h({{"typ", "JWT"}}) + "." + p + ".c2ln",                    // no alg
      h({{"alg", 256}}) + "." + p + ".c2ln",                      // alg not a string
      signed_with(h({{"alg", "HS256"}, {"kid", 1}}), p),          // kid not a string
      signed_with(h({{"alg", "HS256"}, {"crit", {"exp"}}}), p),   // critical extension
      signed_with(h(hs_header()), base64url_encode("not json")),  // signed, but not JSON
      signed_with(h(hs_header()), base64url_encode("[1,2]")),     // signed, not an object
      signed_with(h(hs_header()), base64url_encode("{\"sub\":1,\"exp\":1800000000,"
                                                   "\"iss\":\"https://issuer.example\","
                                                   "\"aud\":\"fusebox\"}")),  // sub not a string
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    expect_failure(cases[i], JwtFailureReason::malformed);
  }
}

TEST_F(JwtTest, OversizedTokenIsRejectedBeforeAnyWork) {
  json c = claims();
  c["padding"] = std::string(8 * 1024, 'x');
  const std::string token = sign_hs256(hs_header(), c, kSecret);  // validly signed
  ASSERT_GT(token.size(), 8192u);
  expect_failure(token, JwtFailureReason::malformed);
  const JwtResult result = verify(token);
  const auto* failure = std::get_if<JwtFailure>(&result);
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->message, "token larger than 8192 bytes");

  options_.max_token_bytes = 16 * 1024;
  expect_verified(verify(token));
  options_.max_token_bytes = 8 * 1024;
  expect_failure(std::string(8193, 'a'), JwtFailureReason::malformed);
}

// ---- Keys ---------------------------------------------------------------------------------

TEST(JwtKey, Hs256SecretMustHave32Bytes) {
  const auto short_key = JwtKey::hs256("k", std::string(31, 's'));
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.error(), "HS256 secret must be at least 32 bytes (got 31)");
  EXPECT_EQ(short_key.error().find("sss"), std::string::npos);
  EXPECT_TRUE(JwtKey::hs256("k", std::string(32, 's')).ok());
}

TEST(JwtKey, Rs256PemMustBeAnRsaPublicKeyOfAtLeast2048Bits) {
  EXPECT_TRUE(JwtKey::rs256_from_pem("k", pem_of(0)).ok());
  EXPECT_FALSE(JwtKey::rs256_from_pem("k", "not a pem").ok());
  EXPECT_FALSE(JwtKey::rs256_from_pem("k", "").ok());

  // A private key PEM is not accepted where a public key belongs.
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, rsa_key(0).get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  const std::string private_pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  EXPECT_FALSE(JwtKey::rs256_from_pem("k", private_pem).ok());

  const testing::PkeyPtr small(EVP_RSA_gen(1024), EVP_PKEY_free);
  const auto weak = JwtKey::rs256_from_pem("k", testing::public_key_pem(small.get()));
  ASSERT_FALSE(weak.ok());
  EXPECT_EQ(weak.error(), "RSA key has 1024 bits; at least 2048 are required");

  const testing::PkeyPtr ec(EVP_EC_gen("P-256"), EVP_PKEY_free);
  const auto not_rsa = JwtKey::rs256_from_pem("k", testing::public_key_pem(ec.get()));
  ASSERT_FALSE(not_rsa.ok());
  EXPECT_EQ(not_rsa.error(), "RS256 needs an RSA key");
}

std::string write_temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "fusebox_auth_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(JwtKey, LoadsConfiguredKeys) {
  const std::string pem_path = write_temp_file("key.pem", pem_of(0));
  EXPECT_TRUE(load_jwt_key({.kid = "a", .alg = JwtAlg::hs256, .secret = kSecret}).ok());
  EXPECT_TRUE(load_jwt_key({.kid = "b", .alg = JwtAlg::rs256, .public_key_pem = pem_of(0)}).ok());
  const auto from_file =
      load_jwt_key({.kid = "c", .alg = JwtAlg::rs256, .public_key_file = pem_path});
  ASSERT_TRUE(from_file.ok()) << from_file.error();
  EXPECT_EQ(from_file->alg(), JwtAlg::rs256);
  EXPECT_EQ(from_file->kid(), "c");
  std::remove(pem_path.c_str());

  struct Case {
    JwtKeyConfig config;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {{.alg = JwtAlg::hs256}, "set exactly one of"},
      {{.alg = JwtAlg::hs256, .secret = kSecret, .public_key_pem = pem_of(0)},
       "set exactly one of"},
      {{.alg = JwtAlg::hs256, .public_key_pem = pem_of(0)}, "needs a secret"},
      {{.alg = JwtAlg::rs256, .secret = kSecret}, "needs a public key"},
      {{.alg = JwtAlg::hs256, .secret = "short"}, "at least 32 bytes"},
      {{.alg = JwtAlg::rs256, .public_key_file = pem_path}, "cannot open public key file"},
  };
  for (const Case& c : cases) {
    const auto key = load_jwt_key(c.config);
    ASSERT_FALSE(key.ok()) << c.error_part;
    EXPECT_NE(key.error().find(c.error_part), std::string::npos) << key.error();
  }
}

TEST(JwtKeySet, KidsAreUniqueAndTheSetIsNotEmpty) {
  std::vector<JwtKey> keys;
  keys.push_back(*JwtKey::hs256("same", kSecret));
  keys.push_back(*JwtKey::hs256("same", kOtherSecret));
  const auto duplicate = JwtKeySet::build(std::move(keys));
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error(), "kid \"same\" is used by two keys");
  EXPECT_FALSE(JwtKeySet::build({}).ok());
  // Keys without a kid may share the (empty) kid.
  std::vector<JwtKey> unnamed;
  unnamed.push_back(*JwtKey::hs256("", kSecret));
  unnamed.push_back(*JwtKey::rs256_from_pem("", pem_of(0)));
  EXPECT_TRUE(JwtKeySet::build(std::move(unnamed)).ok());
}

// ---- JWKS ---------------------------------------------------------------------------------

json rsa_jwk(int key_index, const char* kid) {
  EVP_PKEY* key = rsa_key(key_index).get();
  return {{"kty", "RSA"},
          {"use", "sig"},
          {"alg", "RS256"},
          {"kid", kid},
          {"n", base64url_encode(testing::rsa_component(key, "n"))},
          {"e", base64url_encode(testing::rsa_component(key, "e"))}};
}

TEST(Jwks, ParsesRsaAndOctKeysAndReportsTheOthers) {
  json no_n = rsa_jwk(2, "no-n");
  no_n.erase("n");
  json wrong_alg = rsa_jwk(2, "wrong-alg");
  wrong_alg["alg"] = "HS256";
  json encryption = rsa_jwk(2, "enc");
  encryption["use"] = "enc";
  json bad_base64 = rsa_jwk(2, "bad-b64");
  bad_base64["e"] = "AQAB==";
  const json jwks = {
      {"keys",
       {rsa_jwk(1, "j1"),
        {{"kty", "oct"}, {"kid", "o1"}, {"k", base64url_encode(kSecret)}},
        {{"kty", "EC"}, {"kid", "ec1"}, {"crv", "P-256"}, {"x", "AA"}, {"y", "AA"}},
        no_n,
        {{"kty", "oct"}, {"kid", "short"}, {"k", base64url_encode("too short")}},
        wrong_alg,
        encryption,
        bad_base64,
        "not an object",
        {{"kty", "RSA"}, {"kid", "no-alg"}, {"n", rsa_jwk(2, "x")["n"]}, {"e", "AQAB"}}}}};
  const auto parsed = parse_jwks(jwks.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  ASSERT_EQ(parsed->keys.size(), 3u);
  EXPECT_EQ(parsed->keys[0].kid(), "j1");
  EXPECT_EQ(parsed->keys[0].alg(), JwtAlg::rs256);
  EXPECT_EQ(parsed->keys[1].kid(), "o1");
  EXPECT_EQ(parsed->keys[1].alg(), JwtAlg::hs256);
  EXPECT_EQ(parsed->keys[2].kid(), "no-alg");  // alg is optional: kty decides
  const std::vector<std::string> skipped = {
      "keys[2]: kty \"EC\" is not supported (RSA and oct are)",
      "keys[3]: no \"n\" string",
      "keys[4]: HS256 secret must be at least 32 bytes (got 9)",
      "keys[5]: alg for an RSA key must be RS256",
      "keys[6]: use is not \"sig\"",
      "keys[7]: \"e\" is not base64url",
      "keys[8]: not an object",
  };
  EXPECT_EQ(parsed->skipped, skipped);

  // The keys verify tokens: build the set the way a reload would and check one of each.
  auto set = JwtKeySet::build(parsed->keys);
  ASSERT_TRUE(set.ok()) << set.error();
  ManualWallClock clock(kNow);
  const json claims = {{"sub", "svc"}, {"exp", kNow + 60}};
  const JwtValidationOptions options;
  const JwtResult rs =
      verify_jwt(sign_rs256({{"alg", "RS256"}, {"kid", "j1"}}, claims, rsa_key(1).get()), **set,
                 options, clock);
  ASSERT_TRUE(std::holds_alternative<JwtVerified>(rs)) << std::get<JwtFailure>(rs).message;
  EXPECT_EQ(std::get<JwtVerified>(rs).key_id, "j1");
  const JwtResult hs = verify_jwt(sign_hs256({{"alg", "HS256"}, {"kid", "o1"}}, claims, kSecret),
                                  **set, options, clock);
  ASSERT_TRUE(std::holds_alternative<JwtVerified>(hs)) << std::get<JwtFailure>(hs).message;
  // A token signed by another key under a JWKS kid fails.
  const JwtResult forged =
      verify_jwt(sign_rs256({{"alg", "RS256"}, {"kid", "j1"}}, claims, rsa_key(0).get()), **set,
                 options, clock);
  ASSERT_TRUE(std::holds_alternative<JwtFailure>(forged));
  EXPECT_EQ(std::get<JwtFailure>(forged).reason, JwtFailureReason::bad_signature);
}

TEST(Jwks, WholeFileErrors) {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"{\"keys\": [", "not valid JSON"},
      {"[]", "expected an object with a \"keys\" array"},
      {"{\"keys\": {}}", "expected an object with a \"keys\" array"},
      {"{\"keys\": []}", "no usable key"},
      {"{\"keys\": [{\"kty\": \"EC\"}]}",
       "no usable key (keys[0]: kty \"EC\" is not supported (RSA and oct are))"},
  };
  for (const Case& c : cases) {
    const auto parsed = parse_jwks(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.error(), c.error) << c.text;
  }
}

TEST(Jwks, LoadsAFile) {
  const std::string path = write_temp_file("jwks.json", json{{"keys", {rsa_jwk(1, "j1")}}}.dump(2));
  const auto loaded = load_jwks_file(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->keys.size(), 1u);
  std::remove(path.c_str());
  const auto missing = load_jwks_file(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "cannot open JWKS file \"" + path + "\"");
}

TEST(Jwks, RsaComponentsMustMakeAStrongKey) {
  const auto tiny =
      JwtKey::rs256_from_components("k", std::string(64, '\xff'), std::string("\x01\x00\x01", 3));
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.error(), "RSA key has 512 bits; at least 2048 are required");
}

}  // namespace
}  // namespace fusebox::auth
