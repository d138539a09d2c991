#include "fusebox/auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <set>
#include <string>

#include "openssl_handles.h"

namespace fusebox::auth {
namespace {

constexpr std::string_view kHashPrefix = "sha256:";
constexpr std::size_t kHexDigits = 2 * std::tuple_size_v<Sha256Digest>;

// One digest context per thread, reused: after the first call, hashing allocates nothing.
struct ThreadDigest {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EvpMdCtxPtr ctx{EVP_MD_CTX_new()};
  ~ThreadDigest() { EVP_MD_free(md); }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string FieldError::to_string() const {
  std::string out = "[" + std::to_string(index) + "]";
  if (!field.empty()) out += "." + field;
  return out + ": " + message;
}

Sha256Digest sha256(std::string_view bytes) {
  thread_local ThreadDigest digest;
  Sha256Digest out{};
  unsigned int size = 0;
  // These fail only when OpenSSL cannot allocate or has no SHA-256 provider: nothing to recover.
  if (digest.md == nullptr || digest.ctx == nullptr ||
      EVP_DigestInit_ex2(digest.ctx.get(), digest.md, nullptr) != 1 ||
      EVP_DigestUpdate(digest.ctx.get(), bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(digest.ctx.get(), out.data(), &size) != 1 || size != out.size()) {
    std::abort();
  }
  return out;
}

std::string hash_api_key(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  const Sha256Digest digest = sha256(key);
  std::string out(kHashPrefix);
  for (const unsigned char byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

Expected<Sha256Digest> parse_key_hash(std::string_view text) {
  const std::string expected_form =
      "expected \"sha256:\" followed by " + std::to_string(kHexDigits) + " hex digits";
  if (!text.starts_with(kHashPrefix)) {
    return Error{expected_form +
                 " (the key itself does not belong in the configuration: "
                 "store `printf %s KEY | sha256sum`)"};
  }
  const std::string_view hex = text.substr(kHashPrefix.size());
  for (const char c : hex) {
    if (hex_value(c) < 0) return Error{expected_form + " (found a character that is not hex)"};
  }
  if (hex.size() != kHexDigits) {
    return Error{expected_form + " (got " + std::to_string(hex.size()) + " hex digits)"};
  }
  Sha256Digest digest{};
  for (std::size_t i = 0; i < digest.size(); ++i) {
    digest[i] = static_cast<unsigned char>(hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]));
  }
  return digest;
}

ModelAllowList make_model_allow_list(std::vector<std::string> models) {
  if (models.empty()) return nullptr;
  return std::make_shared<const std::vector<std::string>>(std::move(models));
}

std::variant<ApiKeyStore, std::vector<FieldError>> ApiKeyStore::build(
    std::vector<ApiKeyEntry> entries) {
  std::vector<FieldError> errors;
  std::set<std::string_view> names;
  std::set<Sha256Digest> hashes;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const ApiKeyEntry& e = entries[i];
    if (e.name.empty()) {
      errors.push_back({i, "name", "must not be empty"});
    } else if (!names.insert(e.name).second) {
      errors.push_back({i, "name", "duplicate API key name \"" + e.name + "\""});
    }
    if (!hashes.insert(e.hash).second) {
      errors.push_back({i, "hash", "the same key hash is listed twice"});
    }
    if (e.priority_class && *e.priority_class > 9) {
      errors.push_back({i, "priority_class", "must be 0 (highest) .. 9"});
    }
    if (e.rate_limit) {
      if (!(e.rate_limit->requests_per_second > 0)) {
        errors.push_back({i, "rate_limit.requests_per_second", "must be > 0"});
      }
      if (e.rate_limit->burst < 1) errors.push_back({i, "rate_limit.burst", "must be >= 1"});
    }
  }
  if (!errors.empty()) return errors;
  return ApiKeyStore(std::move(entries));
}

const ApiKeyEntry* ApiKeyStore::find(std::string_view presented_key) const {
  const Sha256Digest digest = sha256(presented_key);
  // Branch-free selection: every entry is compared, and the match only changes which index is
  // kept. Hashes are unique (build()), so at most one entry matches.
  std::size_t match = entries_.size();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const int differs = CRYPTO_memcmp(digest.data(), entries_[i].hash.data(), digest.size());
    const std::size_t keep_i = std::size_t{0} - static_cast<std::size_t>(differs == 0);
    match = (i & keep_i) | (match & ~keep_i);
  }
  return match < entries_.size() ? &entries_[match] : nullptr;
}

PresentedCredentials presented_credentials(std::string_view api_key_header,
                                           std::string_view authorization) {
  PresentedCredentials out;
  out.api_key = trim_spaces(api_key_header);
  authorization = trim_spaces(authorization);
  if (authorization.empty()) return out;
  const std::size_t space = authorization.find_first_of(" \t");
  const std::string_view scheme = authorization.substr(0, space);
  const std::string_view credential = space == std::string_view::npos
                                          ? std::string_view{}
                                          : trim_spaces(authorization.substr(space));
  if (credential.empty()) {
    out.unsupported_authorization = true;
  } else if (equals_ignore_case(scheme, "Bearer")) {
    out.bearer_token = credential;
  } else if (equals_ignore_case(scheme, "ApiKey")) {
    if (out.api_key.empty()) out.api_key = credential;
  } else {
    out.unsupported_authorization = true;
  }
  return out;
}

}  // namespace fusebox::auth
