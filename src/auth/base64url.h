#pragma once
// base64url without padding (RFC 4648 section 5), as JWS and JWK use it.

#include <optional>
#include <string>
#include <string_view>

namespace fusebox::auth {

std::string base64url_encode(std::string_view bytes);

// Strict: only the URL-safe alphabet, no padding, no whitespace, and the unused low bits of the
// last character must be zero, so every byte string has exactly one accepted encoding.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace fusebox::auth
