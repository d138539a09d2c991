#pragma once
// Credentials for the auth tests of the config module: fixed, so that messages and the redaction
// checks can name them. None of them protects anything.

#include <string>
#include <string_view>

namespace fusebox::config::testing {

// printf %s fusebox-test-key-one | sha256sum
inline constexpr std::string_view kKeyOneHash =
    "sha256:f52ea7ee49722d3ae861d046e142e972de5b2015a63d1593b999cea9191b83ad";
// printf %s fusebox-test-admin-token | sha256sum
inline constexpr std::string_view kAdminTokenHash =
    "sha256:c6caae40adbc418e4d3606bceed8f0f62d70d4e47a37aba146ceb416aba7e450";
// printf %s k | sha256sum
inline constexpr std::string_view kKeyTwoHash =
    "sha256:8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a";

// An HS256 secret of exactly the minimum length (32 bytes).
inline constexpr std::string_view kHs256Secret = "0123456789abcdef-fusebox-secret!";

// A 2048-bit RSA public key (SubjectPublicKeyInfo), 451 bytes.
inline constexpr std::string_view kRsaPublicKeyPem = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnkHjsGQuEYNYqBxiWQS6
z2S2xRze6Qld1Oo5srQo0JJhD4Ba2fQpJre+NUgrgb+TkJ4na8LkcSoLYQ0ooBRK
y88LNG1nsNWyaveWc+2SJ6GhkGwH6JllEh3v0mRKgXvox77+QujF+M4fZajalt4S
BZfXzIx3sTvGHpoDoszVl0xURlIRZVg+gKBZCFfTcz0LrH3QSdCYSmF8C0wZxwue
kYfoc3ISh3RukC4zat2ir8E1C6olVhls24WW9sEMBcz/zpmJecARcwmnLqIKhc1s
tmyr0QTbtTBpVeu589OEA7lKwZRkXb02l/+X5qYENRJ6Gvbx0/6Rdw1XmdwwjbSW
TwIDAQAB
-----END PUBLIC KEY-----
)";

// A JWKS with one HS256 ("oct") key; k is base64url of kHs256Secret.
inline constexpr std::string_view kJwks =
    R"({"keys": [{"kty": "oct", "kid": "rotating", "alg": "HS256",
                  "k": "MDEyMzQ1Njc4OWFiY2RlZi1mdXNlYm94LXNlY3JldCE"}]})";

// `text` with every line indented by `spaces`: to put a PEM into a YAML block scalar.
inline std::string indented(std::string_view text, int spaces) {
  std::string out;
  while (!text.empty()) {
    const auto end = text.find('\n');
    out += std::string(spaces, ' ') + std::string(text.substr(0, end)) + "\n";
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return out;
}

}  // namespace fusebox::config::testing
