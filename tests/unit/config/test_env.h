#pragma once
// A fake environment for config tests: EnvLookup is a plain function pointer, so the variables
// live in a static map that each test fills through ScopedTestEnv.

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace fusebox::config::testing {

inline std::map<std::string, std::string, std::less<>>& test_env_variables() {
  static std::map<std::string, std::string, std::less<>> variables;
  return variables;
}

inline bool test_env(std::string_view name, std::string& value) {
  const auto& variables = test_env_variables();
  auto it = variables.find(name);
  if (it == variables.end()) return false;
  value = it->second;
  return true;
}

class ScopedTestEnv {
 public:
  ScopedTestEnv() { test_env_variables().clear(); }
  ScopedTestEnv(std::initializer_list<std::pair<const std::string, std::string>> variables) {
    test_env_variables() = variables;
  }
  ~ScopedTestEnv() { test_env_variables().clear(); }
  ScopedTestEnv(const ScopedTestEnv&) = delete;
  ScopedTestEnv& operator=(const ScopedTestEnv&) = delete;
};

}  // namespace fusebox::config::testing
