#pragma once
// Per-route client authentication: which credentials a route accepts, and the decision for one
// request. authenticate() is pure (it reads only its arguments and the wall clock) and
// thread-safe; the data path turns an AuthFailure into the HTTP answer (status, WWW-Authenticate,
// JSON body with `message`) or the gRPC status (401 -> UNAUTHENTICATED, 403 -> PERMISSION_DENIED)
// and counts fusebox_auth_failures_total{reason}.
//
// Which credential decides, per policy (credentials from presented_credentials()):
//   none     no check; the identity is anonymous, whatever was sent.
//   api_key  the API key; a bearer token is ignored.
//   jwt      the bearer token; an API key is ignored.
//   any      whatever was sent; when both an API key and a bearer token are sent, both must be
//            valid (a bad credential is never hidden by a good one) and the identity is the key's
//            (its priority and rate limit are set by the operator, not claimed by the client).
// Nothing sent (or only an Authorization scheme the route does not accept): 401 `missing` (or
// `unsupported_scheme`) with the challenges the route accepts. A valid identity that may not use
// the requested model: 403 `forbidden` (allowed() and forbidden()).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "fusebox/auth/api_keys.h"
#include "fusebox/auth/jwt.h"
#include "fusebox/auth/wall_clock.h"

namespace fusebox::auth {

enum class AuthPolicy : std::uint8_t { none, api_key, jwt, any };
const char* to_string(AuthPolicy policy);  // "none", "api_key", "jwt", "any"
std::optional<AuthPolicy> parse_auth_policy(std::string_view text);

enum class IdentityKind : std::uint8_t { anonymous, api_key, jwt };
const char* to_string(IdentityKind kind);

struct Identity {
  IdentityKind kind = IdentityKind::anonymous;
  std::string name;  // the API key's name or the token's subject; "" when anonymous
  std::optional<std::uint8_t> priority_class;   // key's class or the priority claim
  std::optional<RateLimitSettings> rate_limit;  // API keys only
  ModelAllowList allowed_models;                // null: every model
};

// Bounded: these are the values of the `reason` label of fusebox_auth_failures_total.
enum class AuthFailureReason : std::uint8_t {
  missing,             // no credential the route accepts
  unsupported_scheme,  // an Authorization header with another scheme (Basic, ...) and nothing else
  invalid_key,         // an API key that matches no entry
  bad_token,           // a JWT that fails for any reason but expiry
  expired,             // a JWT past exp (+ skew)
  forbidden,           // authenticated, but not for this model (403)
};
const char* to_string(AuthFailureReason reason);

struct AuthFailure {
  int status = 401;  // 401 or 403
  AuthFailureReason reason = AuthFailureReason::missing;
  // The WWW-Authenticate value (RFC 9110 11.6.1, RFC 6750 3), e.g.
  //   Bearer realm="fusebox", error="invalid_token", error_description="token expired"
  //   ApiKey realm="fusebox"
  // Several challenges are comma-separated. Empty for 403 answers to API keys.
  std::string www_authenticate;
  std::string message;  // for the JSON body and the log; never a secret or a token
  std::optional<JwtFailureReason> jwt_reason;  // the finer reason for the log line
};

using AuthResult = std::variant<Identity, AuthFailure>;

// What authenticate() checks against. Null stores have no entries (every key/token is invalid);
// the config layer should refuse a route whose policy needs a store that is not configured.
struct AuthStores {
  const ApiKeyStore* api_keys = nullptr;
  const JwtKeySet* jwt_keys = nullptr;
  const JwtValidationOptions* jwt_options = nullptr;  // null: the defaults
  std::string_view realm = "fusebox";                 // in WWW-Authenticate challenges
  std::string_view api_key_header = "X-API-Key";      // named in the 401 message only
};

AuthResult authenticate(AuthPolicy policy, const PresentedCredentials& credentials,
                        const AuthStores& stores, const WallClock& clock);

// Whether `identity` may call `model` (exact, case-sensitive name match; null list = all).
bool allowed(const Identity& identity, std::string_view model);

// The 403 answer for an identity that may not call `model` (the model name is not echoed: it is
// the client's input). Bearer identities get `error="insufficient_scope"` (RFC 6750 3.1).
AuthFailure forbidden(const Identity& identity, std::string_view realm = "fusebox");

}  // namespace fusebox::auth
