#include "fusebox/auth/auth_policy.h"

#include <algorithm>

namespace fusebox::auth {
namespace {

// The characters RFC 6750 3 allows inside a quoted realm or error_description; others become '?'.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const bool allowed = c >= 0x20 && c <= 0x7E && c != '"' && c != '\\';
    out += allowed ? c : '?';
  }
  return out + "\"";
}

std::string api_key_challenge(std::string_view realm) { return "ApiKey realm=" + quoted(realm); }

std::string bearer_challenge(std::string_view realm) { return "Bearer realm=" + quoted(realm); }

std::string bearer_error(std::string_view realm, std::string_view error,
                         std::string_view description) {
  return bearer_challenge(realm) + ", error=" + quoted(error) +
         ", error_description=" + quoted(description);
}

AuthFailure missing_credentials(AuthPolicy policy, const PresentedCredentials& credentials,
                                const AuthStores& stores) {
  AuthFailure failure;
  failure.reason = credentials.unsupported_authorization ? AuthFailureReason::unsupported_scheme
                                                         : AuthFailureReason::missing;
  const std::string key_hint =
      "an API key (" + std::string(stores.api_key_header) + " or Authorization: ApiKey)";
  const std::string token_hint = "a bearer token (Authorization: Bearer)";
  switch (policy) {
    case AuthPolicy::api_key:
      failure.www_authenticate = api_key_challenge(stores.realm);
      failure.message = "this route needs " + key_hint;
      break;
    case AuthPolicy::jwt:
      failure.www_authenticate = bearer_challenge(stores.realm);
      failure.message = "this route needs " + token_hint;
      break;
    default:
      failure.www_authenticate =
          bearer_challenge(stores.realm) + ", " + api_key_challenge(stores.realm);
      failure.message = "this route needs " + key_hint + " or " + token_hint;
      break;
  }
  return failure;
}

AuthResult check_api_key(std::string_view presented, const AuthStores& stores) {
  const ApiKeyEntry* entry = stores.api_keys ? stores.api_keys->find(presented) : nullptr;
  if (entry == nullptr) {
    return AuthFailure{.status = 401,
                       .reason = AuthFailureReason::invalid_key,
                       .www_authenticate = api_key_challenge(stores.realm),
                       .message = "invalid API key"};
  }
  return Identity{.kind = IdentityKind::api_key,
                  .name = entry->name,
                  .priority_class = entry->priority_class,
                  .rate_limit = entry->rate_limit,
                  .allowed_models = entry->allowed_models};
}

AuthResult check_bearer_token(std::string_view token, const AuthStores& stores,
                              const WallClock& clock) {
  static const JwtValidationOptions kDefaults;
  if (stores.jwt_keys == nullptr) {
    return AuthFailure{
        .status = 401,
        .reason = AuthFailureReason::bad_token,
        .www_authenticate = bearer_error(stores.realm, "invalid_token", "no token keys configured"),
        .message = "invalid bearer token: no token keys configured",
        .jwt_reason = JwtFailureReason::unknown_key};
  }
  JwtResult result = verify_jwt(token, *stores.jwt_keys,
                                stores.jwt_options ? *stores.jwt_options : kDefaults, clock);
  if (auto* failure = std::get_if<JwtFailure>(&result)) {
    const bool expired = failure->reason == JwtFailureReason::expired;
    return AuthFailure{
        .status = 401,
        .reason = expired ? AuthFailureReason::expired : AuthFailureReason::bad_token,
        .www_authenticate = bearer_error(stores.realm, "invalid_token", failure->message),
        .message = "invalid bearer token: " + failure->message,
        .jwt_reason = failure->reason};
  }
  auto& verified = std::get<JwtVerified>(result);
  return Identity{.kind = IdentityKind::jwt,
                  .name = std::move(verified.subject),
                  .priority_class = verified.priority_class,
                  .allowed_models = std::move(verified.allowed_models)};
}

}  // namespace

const char* to_string(AuthPolicy policy) {
  switch (policy) {
    case AuthPolicy::none:
      return "none";
    case AuthPolicy::api_key:
      return "api_key";
    case AuthPolicy::jwt:
      return "jwt";
    case AuthPolicy::any:
      return "any";
  }
  return "unknown";
}

std::optional<AuthPolicy> parse_auth_policy(std::string_view text) {
  for (const AuthPolicy p :
       {AuthPolicy::none, AuthPolicy::api_key, AuthPolicy::jwt, AuthPolicy::any}) {
    if (text == to_string(p)) return p;
  }
  return std::nullopt;
}

const char* to_string(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::anonymous:
      return "anonymous";
    case IdentityKind::api_key:
      return "api_key";
    case IdentityKind::jwt:
      return "jwt";
  }
  return "unknown";
}

const char* to_string(AuthFailureReason reason) {
  switch (reason) {
    case AuthFailureReason::missing:
      return "missing";
    case AuthFailureReason::unsupported_scheme:
      return "unsupported_scheme";
    case AuthFailureReason::invalid_key:
      return "invalid_key";
    case AuthFailureReason::bad_token:
      return "bad_token";
    case AuthFailureReason::expired:
      return "expired";
    case AuthFailureReason::forbidden:
      return "forbidden";
  }
  return "unknown";
}

AuthResult authenticate(AuthPolicy policy, const PresentedCredentials& credentials,
                        const AuthStores& stores, const WallClock& clock) {
  if (policy == AuthPolicy::none) return Identity{};
  const bool use_key = policy != AuthPolicy::jwt && !credentials.api_key.empty();
  const bool use_token = policy != AuthPolicy::api_key && !credentials.bearer_token.empty();
  if (!use_key && !use_token) return missing_credentials(policy, credentials, stores);
  // With both (policy any), the key is checked first (one hash, cheaper than a signature) and
  // wins, but the token must verify too.
  if (use_key) {
    AuthResult by_key = check_api_key(credentials.api_key, stores);
    if (!use_token || std::holds_alternative<AuthFailure>(by_key)) return by_key;
    AuthResult by_token = check_bearer_token(credentials.bearer_token, stores, clock);
    if (std::holds_alternative<AuthFailure>(by_token)) return by_token;
    return by_key;
  }
  return check_bearer_token(credentials.bearer_token, stores, clock);
}

bool allowed(const Identity& identity, std::string_view model) {
  if (!identity.allowed_models) return true;
  const auto& models = *identity.allowed_models;
  return std::find(models.begin(), models.end(), model) != models.end();
}

AuthFailure forbidden(const Identity& identity, std::string_view realm) {
  AuthFailure failure{.status = 403,
                      .reason = AuthFailureReason::forbidden,
                      .message = "this credential may not use the requested model"};
  if (identity.kind == IdentityKind::jwt) {
    failure.www_authenticate =
        bearer_error(realm, "insufficient_scope", "the token does not allow this model");
  }
  return failure;
}

}  // namespace fusebox::auth
