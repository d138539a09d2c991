#pragma once
// API keys: stored hashed in the configuration, looked up in constant time.
//
// The configuration never holds a key, only its SHA-256 in the form
//   sha256:<64 lowercase or uppercase hex digits>
// produced with `fusebox hash-key KEY` (hash_api_key() below) or, equivalently,
//   printf %s 'KEY' | sha256sum        (printf, not echo: no trailing newline)
// A stolen config therefore does not let anyone call the gateway. Keys are expected to be long
// random strings (e.g. `openssl rand -base64 32`), so one unsalted SHA-256 is enough: there is no
// dictionary to attack, and a slow hash would cost every request.
//
// Clients present a key in a header (X-API-Key by default, configurable) or as
// `Authorization: ApiKey <key>`; presented_credentials() picks it (and a JWT bearer token) out of
// the header values the server hands it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fusebox/auth/expected.h"

namespace fusebox::auth {

using Sha256Digest = std::array<unsigned char, 32>;

// SHA-256 of `bytes`. Thread-safe; no allocation after a thread's first call.
Sha256Digest sha256(std::string_view bytes);

// "sha256:<64 lowercase hex>" of `key`: the value to put into the configuration. Not used on the
// request path (the CLI's `fusebox hash-key`).
std::string hash_api_key(std::string_view key);

// Parses "sha256:<64 hex>" (hex in either case; the "sha256:" prefix is required, in lower case).
// Errors say what is wrong without echoing the value, e.g.
//   expected "sha256:" followed by 64 hex digits (got 63 hex digits)
Expected<Sha256Digest> parse_key_hash(std::string_view text);

// A token bucket's settings (the rate limiter of #8 applies them).
struct RateLimitSettings {
  double requests_per_second = 0;  // > 0: refill rate
  std::uint32_t burst = 0;         // >= 1: bucket size
};

// Models an identity may call; null means every model. Shared (not copied) by every identity
// built from the same API key, so authenticating allocates nothing for it.
using ModelAllowList = std::shared_ptr<const std::vector<std::string>>;
// Null for an empty list ("empty = all" in the configuration).
ModelAllowList make_model_allow_list(std::vector<std::string> models);

struct ApiKeyEntry {
  std::string name;  // shown in logs and metric labels instead of the key; unique, non-empty
  Sha256Digest hash{};
  std::optional<std::uint8_t> priority_class;   // 0 (highest) .. 9; none: the route decides
  std::optional<RateLimitSettings> rate_limit;  // none: no per-key limit
  ModelAllowList allowed_models;                // null: every model
};

// An immutable set of keys. Build it once per configuration and share it (shared_ptr<const>)
// between worker threads: find() is const and thread-safe.
class ApiKeyStore {
 public:
  // Checks every entry (all problems, not only the first): a name is non-empty and unique, a hash
  // is unique (two names for one key would make the match ambiguous), priority_class is 0..9,
  // a rate limit has requests_per_second > 0 and burst >= 1.
  static std::variant<ApiKeyStore, std::vector<FieldError>> build(std::vector<ApiKeyEntry> entries);

  // The entry whose hash is SHA-256(presented_key), or null. Hashes the key once and compares the
  // digest with every entry (CRYPTO_memcmp, no early exit), so the time taken does not depend on
  // which entry matched, or whether one did. The pointer lives as long as the store.
  const ApiKeyEntry* find(std::string_view presented_key) const;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  explicit ApiKeyStore(std::vector<ApiKeyEntry> entries) : entries_(std::move(entries)) {}
  std::vector<ApiKeyEntry> entries_;
};

// The credentials a request presents, as views into its header values (valid while they are).
struct PresentedCredentials {
  std::string_view api_key;       // from the API key header or `Authorization: ApiKey <key>`
  std::string_view bearer_token;  // from `Authorization: Bearer <token>`
  // An Authorization header was sent but is neither "ApiKey <key>" nor "Bearer <token>" (e.g.
  // "Basic ...", or a scheme without a credential).
  bool unsupported_authorization = false;

  bool any() const { return !api_key.empty() || !bearer_token.empty(); }
};

// Picks the credentials out of the header values (empty view = header absent).
// - `api_key_header`: the value of the configured API key header (default X-API-Key; for gRPC
//   the `x-api-key` metadata). Surrounding spaces and tabs are ignored.
// - `authorization`: the value of Authorization (gRPC: `authorization` metadata). The scheme is
//   matched without regard to case (RFC 9110 11.1): "ApiKey <key>" or "Bearer <token>".
// When both give an API key, the API key header wins. Pure; no allocation.
PresentedCredentials presented_credentials(std::string_view api_key_header,
                                           std::string_view authorization);

}  // namespace fusebox::auth
