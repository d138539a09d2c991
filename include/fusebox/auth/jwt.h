#pragma once
// JWT bearer tokens (RFC 7519) in JWS compact form (RFC 7515): HS256 and RS256 only.
//
// verify_jwt() checks, in this order, and stops at the first failure:
//   1. size (<= max_token_bytes) and shape: three base64url parts (no padding), a JSON object
//      header with a string "alg", no "crit";
//   2. alg: "none" and anything but HS256/RS256 are unsupported_alg;
//   3. key: "kid" selects the key (unknown_key when no key has it); without "kid" the one key of
//      the token's alg (unsupported_alg when there is none, unknown_key when there are several).
//      The key's fixed alg must equal the token's (unsupported_alg otherwise): an RS256 key is
//      never used as an HMAC secret, which defeats the classic confusion attack (an HS256 token
//      "signed" with the public key's PEM as the secret);
//   4. signature over "<header>.<payload>" exactly as sent (HMAC compared in constant time;
//      RSA PKCS#1 v1.5 with SHA-256 through EVP_DigestVerify);
//   5. claims, from the payload (a JSON object): exp (required unless require_exp is false),
//      nbf, iat must be numbers when present; now >= exp + skew is expired, now + skew < nbf is
//      not_yet_valid; iss must equal `issuer` and aud (a string or an array of strings) must
//      contain `audience` when those are configured; sub must be a string when present.
// Failure messages are short and fixed: they never contain the token or any part of it.
//
// Keys live in an immutable JwtKeySet held by std::shared_ptr<const JwtKeySet>. A JWKS reload
// builds a new set and publishes it with one atomic store (std::atomic<std::shared_ptr<const
// JwtKeySet>> or std::atomic_store); a request that loaded the old set keeps it alive until it
// is done, so verification never takes a lock and never sees half a key set.

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fusebox/auth/api_keys.h"
#include "fusebox/auth/expected.h"
#include "fusebox/auth/wall_clock.h"

namespace fusebox::auth {

enum class JwtAlg : std::uint8_t { hs256, rs256 };
const char* to_string(JwtAlg alg);  // "HS256", "RS256"

// HMAC secrets shorter than this are refused at load (RFC 7518 3.2: at least the hash size).
inline constexpr std::size_t kMinHs256SecretBytes = 32;
// RSA moduli shorter than this are refused at load.
inline constexpr int kMinRsaBits = 2048;

// One verification key with its fixed algorithm. Immutable and cheap to copy (the RSA key is
// shared); safe to use from many threads at once.
class JwtKey {
 public:
  // `secret` is the raw HMAC key (bytes as given, not base64): at least 32 bytes.
  static Expected<JwtKey> hs256(std::string kid, std::string secret);
  // A "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo) PEM of an RSA key of >= 2048 bits.
  static Expected<JwtKey> rs256_from_pem(std::string kid, std::string_view pem);
  // The same, read from a file (configuration time only: blocking file I/O).
  static Expected<JwtKey> rs256_from_pem_file(std::string kid, const std::string& path);
  // An RSA public key from its big-endian modulus and exponent (JWKS "n" and "e", decoded).
  static Expected<JwtKey> rs256_from_components(std::string kid, std::string_view modulus,
                                                std::string_view exponent);

  const std::string& kid() const { return kid_; }  // "" when the key has none
  JwtAlg alg() const { return alg_; }
  // For verify_jwt(): the HMAC secret (hs256) or the public key (rs256).
  const std::string& secret() const { return secret_; }
  EVP_PKEY* public_key() const { return public_key_.get(); }

 private:
  JwtKey(std::string kid, JwtAlg alg) : kid_(std::move(kid)), alg_(alg) {}
  std::string kid_;
  JwtAlg alg_;
  std::string secret_;
  std::shared_ptr<EVP_PKEY> public_key_;
};

// A key as the configuration lists it (jwt.keys[i]); the config layer fills it (secrets after
// ${ENV} substitution). Exactly one of secret, public_key_pem, public_key_file is set, matching
// alg.
struct JwtKeyConfig {
  std::string kid;  // optional
  JwtAlg alg = JwtAlg::hs256;
  std::string secret;           // HS256
  std::string public_key_pem;   // RS256, inline
  std::string public_key_file;  // RS256, a path to a PEM file
};
// Builds the key of one entry (reads the PEM file, if named).
Expected<JwtKey> load_jwt_key(const JwtKeyConfig& config);

// An immutable set of keys; kids are unique among the keys that have one.
class JwtKeySet {
 public:
  static Expected<std::shared_ptr<const JwtKeySet>> build(std::vector<JwtKey> keys);

  // With a kid: the key with that kid, whatever its alg (the caller compares algs), or null.
  // Without: the only key of `alg`, or null when there is none or several. Pure.
  const JwtKey* select(std::string_view kid, JwtAlg alg) const;
  const std::vector<JwtKey>& keys() const { return keys_; }

 private:
  explicit JwtKeySet(std::vector<JwtKey> keys) : keys_(std::move(keys)) {}
  std::vector<JwtKey> keys_;
};

// A JSON Web Key Set (RFC 7517) read into keys. Supported entries: kty "RSA" (n, e; alg RS256 if
// given) and kty "oct" (k; alg HS256 if given), with an optional kid; "use", if given, must be
// "sig". Other entries are skipped, each with a reason in `skipped` ("keys[2]: kty \"EC\" is
// not supported"), so one unusable key does not stop a rotation; log them.
struct JwksKeys {
  std::vector<JwtKey> keys;
  std::vector<std::string> skipped;
};
// Errors: not JSON, no "keys" array, or no usable key in it (a reload then keeps the old set).
Expected<JwksKeys> parse_jwks(std::string_view json_text);
// parse_jwks() of a file (blocking file I/O: call it off the I/O threads).
Expected<JwksKeys> load_jwks_file(const std::string& path);

// What verify_jwt() accepts. Defaults are those of the configuration.
struct JwtValidationOptions {
  std::string issuer;                    // "" = any iss
  std::string audience;                  // "" = any aud
  bool require_exp = true;               // false: a token without exp never expires
  std::int64_t clock_skew_seconds = 30;  // leeway for exp and nbf
  // A claim carrying the priority class (an integer 0..9), e.g. "fusebox_priority"; "" = none.
  std::string priority_claim;
  // A claim listing the models the token may call: an array of strings, or a string of
  // space-separated names (as OAuth "scope"); "" = none (every model).
  std::string models_claim;
  std::size_t max_token_bytes = 8 * 1024;  // larger tokens are malformed before any work
};

enum class JwtFailureReason : std::uint8_t {
  malformed,
  bad_signature,
  unsupported_alg,
  unknown_key,
  expired,
  not_yet_valid,
  wrong_issuer,
  wrong_audience,
  missing_claim,
};
const char* to_string(JwtFailureReason reason);  // the enumerator's name

struct JwtFailure {
  JwtFailureReason reason;
  std::string message;  // e.g. "token expired"; never contains the token
};

struct JwtVerified {
  std::string subject;    // "sub"; "" when absent
  nlohmann::json claims;  // the payload object
  std::string key_id;     // the kid of the key that verified it ("" when the key has none)
  std::optional<std::uint8_t> priority_class;  // from priority_claim
  // From models_claim; null (claim absent or not configured) = every model. A present but empty
  // claim allows nothing.
  ModelAllowList allowed_models;
};

using JwtResult = std::variant<JwtVerified, JwtFailure>;

// Verifies `token` (the part after "Bearer "). Pure apart from reading `clock`; thread-safe.
JwtResult verify_jwt(std::string_view token, const JwtKeySet& keys,
                     const JwtValidationOptions& options, const WallClock& clock);

}  // namespace fusebox::auth
