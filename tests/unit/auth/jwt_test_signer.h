#pragma once
// Test-only token minting: RSA key pairs generated in-process and JWS compact serialisation, so
// the verifier is checked against tokens built independently of it (EVP_DigestSign, HMAC()).

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "auth/base64url.h"

namespace fusebox::auth::testing {

using PkeyPtr = std::shared_ptr<EVP_PKEY>;

// A fresh 2048-bit RSA key pair (about 0.1 s: tests share a few through rsa_key()).
inline PkeyPtr generate_rsa_key() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  if (key == nullptr) throw std::runtime_error("EVP_RSA_gen failed");
  return PkeyPtr(key, EVP_PKEY_free);
}

// Key pair number `index` (0..2), generated once per test binary.
inline const PkeyPtr& rsa_key(int index) {
  static const PkeyPtr keys[] = {generate_rsa_key(), generate_rsa_key(), generate_rsa_key()};
  return keys[index];
}

inline std::string public_key_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  return pem;
}

// A big-endian component of an RSA key ("n" or "e"), as JWKS carries it before base64url.
inline std::string rsa_component(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) throw std::runtime_error("no RSA component");
  std::string bytes(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return bytes;
}

inline std::string hmac_sha256(std::string_view secret, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

inline std::string rsa_sha256_sign(EVP_PKEY* key, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t size = 0;
  std::string signature;
  if (EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, key, nullptr) == 1 &&
      EVP_DigestSign(ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) == 1) {
    signature.resize(size);
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    signature.resize(size);
  }
  EVP_MD_CTX_free(ctx);
  if (signature.empty()) throw std::runtime_error("EVP_DigestSign failed");
  return signature;
}

// "<b64 header>.<b64 payload>" from JSON values (dumped as given).
inline std::string signing_input(const nlohmann::json& header, const nlohmann::json& payload) {
  return base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
}

inline std::string sign_hs256(const nlohmann::json& header, const nlohmann::json& payload,
                              std::string_view secret) {
  const std::string input = signing_input(header, payload);
  return input + "." + base64url_encode(hmac_sha256(secret, input));
}

inline std::string sign_rs256(const nlohmann::json& header, const nlohmann::json& payload,
                              EVP_PKEY* key) {
  const std::string input = signing_input(header, payload);
  return input + "." + base64url_encode(rsa_sha256_sign(key, input));
}

}  // namespace fusebox::auth::testing
