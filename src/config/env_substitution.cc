#include "env_substitution.h"

namespace fusebox::config::detail {
namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }

bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

bool is_valid_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  for (char c : name)
    if (!is_name_char(c)) return false;
  return true;
}

}  // namespace

std::variant<std::string, SubstitutionError> substitute_env(std::string_view text, EnvLookup env) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out += c;
      ++i;
      continue;
    }
    const char next = text[i + 1];
    if (next == '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next != '{') {
      out += c;
      ++i;
      continue;
    }

    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return SubstitutionError{"unterminated \"${\" (write \"$$\" for a literal \"$\")"};
    }
    const std::string_view inner = text.substr(i + 2, close - (i + 2));
    const std::size_t sep = inner.find(":-");
    const std::string_view name = inner.substr(0, sep);
    if (!is_valid_name(name)) {
      return SubstitutionError{"invalid environment variable name \"" + std::string(name) +
                               "\" in \"${" + std::string(inner) + "}\""};
    }

    std::string value;
    const bool set = env(name, value);
    if (sep != std::string_view::npos) {
      if (!set || value.empty()) value = std::string(inner.substr(sep + 2));
    } else if (!set) {
      return SubstitutionError{"environment variable \"" + std::string(name) +
                               "\" is not set (write ${" + std::string(name) +
                               ":-default} to give a default)"};
    }
    out += value;
    i = close + 1;
  }
  return out;
}

}  // namespace fusebox::config::detail
