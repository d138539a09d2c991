#pragma once
// `${VAR}` / `${VAR:-default}` substitution inside one configuration scalar. Private to the config
// module; pure apart from the injected lookup.

#include <string>
#include <string_view>
#include <variant>

#include "fusebox/config/loader.h"

namespace fusebox::config::detail {

struct SubstitutionError {
  std::string message;  // e.g. environment variable "PORT" is not set
};

// Rules (documented in docs/configuration.md):
//   ${NAME}          value of NAME; an error when NAME is unset (set-but-empty gives "")
//   ${NAME:-default} value of NAME, or `default` when NAME is unset or empty (shell semantics)
//   $$               a literal `$`
//   any other `$`    kept as is
// NAME is [A-Za-z_][A-Za-z0-9_]*. The default is literal text up to the first `}` (no nesting).
std::variant<std::string, SubstitutionError> substitute_env(std::string_view text, EnvLookup env);

}  // namespace fusebox::config::detail
