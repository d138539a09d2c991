#include "fusebox/auth/jwt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "base64url.h"
#include "openssl_handles.h"

namespace fusebox::auth {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 1024 * 1024;

// OpenSSL leaves failures on the thread's error queue; the TLS code on the same I/O thread reads
// that queue, so every path that may fail clears it on the way out.
struct ClearOpensslErrors {
  ~ClearOpensslErrors() { ERR_clear_error(); }
};

Expected<std::string> read_small_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{std::string("cannot open ") + what + " file \"" + path + "\""};
  std::string text;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxKeyFileBytes) {
      return Error{std::string(what) + " file \"" + path + "\" is larger than 1 MiB"};
    }
  }
  if (in.bad()) return Error{std::string("cannot read ") + what + " file \"" + path + "\""};
  return text;
}

Expected<std::shared_ptr<EVP_PKEY>> checked_rsa_key(EvpPkeyPtr key) {
  if (!key) return Error{"not an RSA public key"};
  if (EVP_PKEY_is_a(key.get(), "RSA") != 1) return Error{"RS256 needs an RSA key"};
  const int bits = EVP_PKEY_get_bits(key.get());
  if (bits < kMinRsaBits) {
    return Error{"RSA key has " + std::to_string(bits) + " bits; at least " +
                 std::to_string(kMinRsaBits) + " are required"};
  }
  return std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
}

JwtFailure fail(JwtFailureReason reason, std::string message) {
  return JwtFailure{reason, std::move(message)};
}

bool verify_hs256(const JwtKey& key, std::string_view signed_part, std::string_view signature) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  ClearOpensslErrors clear;
  if (HMAC(EVP_sha256(), key.secret().data(), static_cast<int>(key.secret().size()),
           reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
           &mac_size) == nullptr) {
    return false;
  }
  return signature.size() == mac_size && CRYPTO_memcmp(mac, signature.data(), mac_size) == 0;
}

bool verify_rs256(const JwtKey& key, std::string_view signed_part, std::string_view signature) {
  ClearOpensslErrors clear;
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key.public_key(),
                              nullptr) != 1) {
    return false;
  }
  return EVP_DigestVerify(
             ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
             reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
}

// A NumericDate claim (RFC 7519 2): absent, present as a number, or present but not a number.
enum class DateClaim : std::uint8_t { absent, present, not_a_number };
DateClaim date_claim(const nlohmann::json& claims, const char* name, double& value) {
  const auto it = claims.find(name);
  if (it == claims.end()) return DateClaim::absent;
  if (!it->is_number()) return DateClaim::not_a_number;
  value = it->get<double>();
  return DateClaim::present;
}

bool audience_contains(const nlohmann::json& aud, const std::string& wanted) {
  if (aud.is_string()) return aud.get_ref<const std::string&>() == wanted;
  for (const auto& item : aud) {
    if (item.is_string() && item.get_ref<const std::string&>() == wanted) return true;
  }
  return false;
}

// Space-separated names ("scope" style) or an array of strings; nullopt when neither.
std::optional<std::vector<std::string>> model_list(const nlohmann::json& value) {
  std::vector<std::string> models;
  if (value.is_string()) {
    std::istringstream words(value.get<std::string>());
    for (std::string word; words >> word;) models.push_back(std::move(word));
    return models;
  }
  if (!value.is_array()) return std::nullopt;
  for (const auto& item : value) {
    if (!item.is_string()) return std::nullopt;
    models.push_back(item.get<std::string>());
  }
  return models;
}

// The checks of step 5 (see jwt.h) on a verified payload.
std::optional<JwtFailure> check_claims(const nlohmann::json& claims,
                                       const JwtValidationOptions& options, std::int64_t now_s) {
  const double now = static_cast<double>(now_s);
  const double skew = static_cast<double>(options.clock_skew_seconds);
  double exp = 0;
  switch (date_claim(claims, "exp", exp)) {
    case DateClaim::absent:
      if (options.require_exp) return fail(JwtFailureReason::missing_claim, "token has no exp");
      break;
    case DateClaim::not_a_number:
      return fail(JwtFailureReason::malformed, "exp is not a number");
    case DateClaim::present:
      if (now >= exp + skew) return fail(JwtFailureReason::expired, "token expired");
      break;
  }
  double nbf = 0;
  switch (date_claim(claims, "nbf", nbf)) {
    case DateClaim::absent:
      break;
    case DateClaim::not_a_number:
      return fail(JwtFailureReason::malformed, "nbf is not a number");
    case DateClaim::present:
      if (now + skew < nbf) return fail(JwtFailureReason::not_yet_valid, "token not yet valid");
      break;
  }
  double iat = 0;
  if (date_claim(claims, "iat", iat) == DateClaim::not_a_number) {
    return fail(JwtFailureReason::malformed, "iat is not a number");
  }
  if (!options.issuer.empty()) {
    const auto iss = claims.find("iss");
    if (iss == claims.end()) return fail(JwtFailureReason::missing_claim, "token has no iss");
    if (!iss->is_string() || iss->get_ref<const std::string&>() != options.issuer) {
      return fail(JwtFailureReason::wrong_issuer, "issuer not accepted");
    }
  }
  if (!options.audience.empty()) {
    const auto aud = claims.find("aud");
    if (aud == claims.end()) return fail(JwtFailureReason::missing_claim, "token has no aud");
    if (!aud->is_string() && !aud->is_array()) {
      return fail(JwtFailureReason::malformed, "aud is neither a string nor an array");
    }
    if (!audience_contains(*aud, options.audience)) {
      return fail(JwtFailureReason::wrong_audience, "audience not accepted");
    }
  }
  const auto sub = claims.find("sub");
  if (sub != claims.end() && !sub->is_string()) {
    return fail(JwtFailureReason::malformed, "sub is not a string");
  }
  return std::nullopt;
}

}  // namespace

const char* to_string(JwtAlg alg) { return alg == JwtAlg::hs256 ? "HS256" : "RS256"; }

const char* to_string(JwtFailureReason reason) {
  switch (reason) {
    case JwtFailureReason::malformed:
      return "malformed";
    case JwtFailureReason::bad_signature:
      return "bad_signature";
    case JwtFailureReason::unsupported_alg:
      return "unsupported_alg";
    case JwtFailureReason::unknown_key:
      return "unknown_key";
    case JwtFailureReason::expired:
      return "expired";
    case JwtFailureReason::not_yet_valid:
      return "not_yet_valid";
    case JwtFailureReason::wrong_issuer:
      return "wrong_issuer";
    case JwtFailureReason::wrong_audience:
      return "wrong_audience";
    case JwtFailureReason::missing_claim:
      return "missing_claim";
  }
  return "unknown";
}

// ---- Keys ---------------------------------------------------------------------------------

Expected<JwtKey> JwtKey::hs256(std::string kid, std::string secret) {
  if (secret.size() < kMinHs256SecretBytes) {
    return Error{"HS256 secret must be at least " + std::to_string(kMinHs256SecretBytes) +
                 " bytes (got " + std::to_string(secret.size()) + ")"};
  }
  JwtKey key(std::move(kid), JwtAlg::hs256);
  key.secret_ = std::move(secret);
  return key;
}

Expected<JwtKey> JwtKey::rs256_from_pem(std::string kid, std::string_view pem) {
  ClearOpensslErrors clear;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{"out of memory reading the PEM"};
  EvpPkeyPtr parsed(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!parsed) return Error{"expected a \"-----BEGIN PUBLIC KEY-----\" PEM (SubjectPublicKeyInfo)"};
  auto checked = checked_rsa_key(std::move(parsed));
  if (!checked) return Error{checked.error()};
  JwtKey key(std::move(kid), JwtAlg::rs256);
  key.public_key_ = std::move(checked).value();
  return key;
}

Expected<JwtKey> JwtKey::rs256_from_pem_file(std::string kid, const std::string& path) {
  const auto pem = read_small_file(path, "public key");
  if (!pem) return Error{pem.error()};
  auto key = rs256_from_pem(std::move(kid), *pem);
  if (!key) return Error{"\"" + path + "\": " + key.error()};
  return key;
}

Expected<JwtKey> JwtKey::rs256_from_components(std::string kid, std::string_view modulus,
                                               std::string_view exponent) {
  ClearOpensslErrors clear;
  const auto to_bn = [](std::string_view bytes) {
    return BignumPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()), nullptr));
  };
  const BignumPtr n = to_bn(modulus);
  const BignumPtr e = to_bn(exponent);
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (!n || !e || !builder ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return Error{"out of memory building the RSA key"};
  }
  const ParamsPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  const EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return Error{"n and e do not form an RSA public key"};
  }
  auto checked = checked_rsa_key(EvpPkeyPtr(raw));
  if (!checked) return Error{checked.error()};
  JwtKey key(std::move(kid), JwtAlg::rs256);
  key.public_key_ = std::move(checked).value();
  return key;
}

Expected<JwtKey> load_jwt_key(const JwtKeyConfig& config) {
  const int sources =
      !config.secret.empty() + !config.public_key_pem.empty() + !config.public_key_file.empty();
  if (sources != 1) {
    return Error{"set exactly one of secret (HS256), public_key_pem or public_key_file (RS256)"};
  }
  if (config.alg == JwtAlg::hs256) {
    if (config.secret.empty()) return Error{"an HS256 key needs a secret, not a public key"};
    return JwtKey::hs256(config.kid, config.secret);
  }
  if (!config.secret.empty()) return Error{"an RS256 key needs a public key, not a secret"};
  if (!config.public_key_file.empty()) {
    return JwtKey::rs256_from_pem_file(config.kid, config.public_key_file);
  }
  return JwtKey::rs256_from_pem(config.kid, config.public_key_pem);
}

Expected<std::shared_ptr<const JwtKeySet>> JwtKeySet::build(std::vector<JwtKey> keys) {
  if (keys.empty()) return Error{"no JWT keys"};
  std::set<std::string_view> kids;
  for (const JwtKey& key : keys) {
    if (!key.kid().empty() && !kids.insert(key.kid()).second) {
      return Error{"kid \"" + key.kid() + "\" is used by two keys"};
    }
  }
  return std::shared_ptr<const JwtKeySet>(new JwtKeySet(std::move(keys)));
}

const JwtKey* JwtKeySet::select(std::string_view kid, JwtAlg alg) const {
  const JwtKey* found = nullptr;
  for (const JwtKey& key : keys_) {
    if (!kid.empty()) {
      if (key.kid() == kid) return &key;
    } else if (key.alg() == alg) {
      if (found != nullptr) return nullptr;  // ambiguous without a kid
      found = &key;
    }
  }
  return found;
}

// ---- JWKS ---------------------------------------------------------------------------------

namespace {

// One JWK entry; an Error says why it is skipped.
Expected<JwtKey> jwk_to_key(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return Error{"not an object"};
  const auto text = [&](const char* name) -> std::optional<std::string> {
    const auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  const auto decoded = [&](const char* name) -> Expected<std::string> {
    const auto value = text(name);
    if (!value) return Error{std::string("no \"") + name + "\" string"};
    auto bytes = base64url_decode(*value);
    if (!bytes || bytes->empty()) return Error{std::string("\"") + name + "\" is not base64url"};
    return std::move(*bytes);
  };
  const std::string kid = text("kid").value_or("");
  if (jwk.contains("kid") && !jwk["kid"].is_string()) return Error{"kid is not a string"};
  if (const auto use = text("use"); jwk.contains("use") && use != "sig") {
    return Error{"use is not \"sig\""};
  }
  const std::optional<std::string> kty = text("kty");
  const std::optional<std::string> alg = text("alg");
  if (!kty) return Error{"no \"kty\" string"};
  if (*kty == "RSA") {
    if (jwk.contains("alg") && alg != "RS256") return Error{"alg for an RSA key must be RS256"};
    const auto n = decoded("n");
    if (!n) return Error{n.error()};
    const auto e = decoded("e");
    if (!e) return Error{e.error()};
    return JwtKey::rs256_from_components(kid, *n, *e);
  }
  if (*kty == "oct") {
    if (jwk.contains("alg") && alg != "HS256") return Error{"alg for an oct key must be HS256"};
    auto k = decoded("k");
    if (!k) return Error{k.error()};
    return JwtKey::hs256(kid, std::move(k).value());
  }
  return Error{"kty \"" + *kty + "\" is not supported (RSA and oct are)"};
}

}  // namespace

Expected<JwksKeys> parse_jwks(std::string_view json_text) {
  const nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error{"not valid JSON"};
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return Error{"expected an object with a \"keys\" array"};
  }
  JwksKeys out;
  const nlohmann::json& keys = doc["keys"];
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto key = jwk_to_key(keys[i]);
    if (key) {
      out.keys.push_back(std::move(key).value());
    } else {
      out.skipped.push_back("keys[" + std::to_string(i) + "]: " + key.error());
    }
  }
  if (out.keys.empty()) {
    std::string message = "no usable key";
    if (!out.skipped.empty()) message += " (" + out.skipped.front() + ")";
    return Error{message};
  }
  return out;
}

Expected<JwksKeys> load_jwks_file(const std::string& path) {
  const auto text = read_small_file(path, "JWKS");
  if (!text) return Error{text.error()};
  auto keys = parse_jwks(*text);
  if (!keys) return Error{"\"" + path + "\": " + keys.error()};
  return keys;
}

// ---- Verification -------------------------------------------------------------------------

JwtResult verify_jwt(std::string_view token, const JwtKeySet& keys,
                     const JwtValidationOptions& options, const WallClock& clock) {
  using R = JwtFailureReason;
  if (token.size() > options.max_token_bytes) {
    return fail(R::malformed,
                "token larger than " + std::to_string(options.max_token_bytes) + " bytes");
  }
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos ||
      dot1 == 0 || dot2 == dot1 + 1) {
    return fail(R::malformed, "expected three parts separated by dots");
  }
  // An empty signature is left to the alg check ("none" is reported as such) and then fails
  // verification.
  const std::string_view signed_part = token.substr(0, dot2);
  const auto header_bytes = base64url_decode(token.substr(0, dot1));
  const auto payload_bytes = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_bytes || !payload_bytes || !signature) {
    return fail(R::malformed, "a part is not base64url");
  }

  const nlohmann::json header = nlohmann::json::parse(*header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return fail(R::malformed, "header is not a JSON object");
  }
  const auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) {
    return fail(R::malformed, "header has no alg");
  }
  if (header.contains("crit"))
    return fail(R::malformed, "critical header extensions are not supported");
  const std::string& alg_name = alg_it->get_ref<const std::string&>();
  JwtAlg alg;
  if (alg_name == "HS256") {
    alg = JwtAlg::hs256;
  } else if (alg_name == "RS256") {
    alg = JwtAlg::rs256;
  } else {
    return fail(R::unsupported_alg, alg_name == "none"
                                        ? "unsigned tokens (alg none) are not accepted"
                                        : "alg not supported (HS256 and RS256 are)");
  }
  std::string_view kid;
  if (const auto kid_it = header.find("kid"); kid_it != header.end()) {
    if (!kid_it->is_string()) return fail(R::malformed, "kid is not a string");
    kid = kid_it->get_ref<const std::string&>();
  }

  const JwtKey* key = keys.select(kid, alg);
  if (key == nullptr) {
    if (!kid.empty()) return fail(R::unknown_key, "no key with the token's kid");
    const bool no_key_for_alg = std::none_of(keys.keys().begin(), keys.keys().end(),
                                             [&](const JwtKey& k) { return k.alg() == alg; });
    if (no_key_for_alg) {
      return fail(R::unsupported_alg, std::string("no key for alg ") + to_string(alg));
    }
    return fail(R::unknown_key, "token has no kid and no single key matches its alg");
  }
  if (key->alg() != alg) {
    return fail(R::unsupported_alg,
                std::string("the key is for ") + to_string(key->alg()) + ", not " + to_string(alg));
  }
  const bool signature_ok = alg == JwtAlg::hs256 ? verify_hs256(*key, signed_part, *signature)
                                                 : verify_rs256(*key, signed_part, *signature);
  if (!signature_ok) return fail(R::bad_signature, "signature does not verify");

  nlohmann::json claims = nlohmann::json::parse(*payload_bytes, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) {
    return fail(R::malformed, "payload is not a JSON object");
  }
  if (auto failure = check_claims(claims, options, clock.now_seconds())) return *std::move(failure);

  JwtVerified verified;
  if (const auto sub = claims.find("sub"); sub != claims.end())
    verified.subject = sub->get<std::string>();
  verified.key_id = key->kid();
  if (!options.priority_claim.empty()) {
    if (const auto p = claims.find(options.priority_claim); p != claims.end()) {
      if (!p->is_number_integer() || p->get<std::int64_t>() < 0 || p->get<std::int64_t>() > 9) {
        return fail(R::malformed, "claim " + options.priority_claim + " must be an integer 0..9");
      }
      verified.priority_class = static_cast<std::uint8_t>(p->get<std::int64_t>());
    }
  }
  if (!options.models_claim.empty()) {
    if (const auto m = claims.find(options.models_claim); m != claims.end()) {
      auto models = model_list(*m);
      if (!models) {
        return fail(R::malformed,
                    "claim " + options.models_claim + " must be a string or an array of strings");
      }
      // An empty list here allows nothing (unlike the configuration's "empty = all").
      verified.allowed_models =
          std::make_shared<const std::vector<std::string>>(std::move(*models));
    }
  }
  verified.claims = std::move(claims);
  return verified;
}

}  // namespace fusebox::auth
