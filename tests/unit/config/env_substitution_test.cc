#include "config/env_substitution.h"

#include <gtest/gtest.h>

#include "test_env.h"

namespace fusebox::config {
namespace {

using detail::substitute_env;
using detail::SubstitutionError;
using testing::ScopedTestEnv;
using testing::test_env;

std::string substituted(std::string_view text) {
  auto result = substitute_env(text, test_env);
  if (auto* error = std::get_if<SubstitutionError>(&result)) return "ERROR: " + error->message;
  return std::get<std::string>(result);
}

TEST(ConfigEnvSubstitution, ReplacesVariablesAndDefaults) {
  ScopedTestEnv env{{"PORT", "9000"}, {"HOST", "10.0.0.1"}, {"EMPTY", ""}, {"_x1", "y"}};
  struct Case {
    std::string_view text;
    std::string_view expected;
  } cases[] = {
      {"plain", "plain"},
      {"", ""},
      {"${PORT}", "9000"},
      {"${HOST}:${PORT}", "10.0.0.1:9000"},
      {"a${_x1}b", "ayb"},
      {"${UNSET:-127.0.0.1}", "127.0.0.1"},
      {"${PORT:-1}", "9000"},
      {"${EMPTY}", ""},                    // set but empty: no error, empty value
      {"${EMPTY:-fallback}", "fallback"},  // `:-` also covers empty, as in the shell
      {"${UNSET:-}", ""},
      {"${UNSET:-a:-b}", "a:-b"},  // the default is literal up to the first `}`
      {"$$", "$"},
      {"$${PORT}", "${PORT}"},
      {"cost: 5$", "cost: 5$"},
      {"$PORT", "$PORT"},  // only the braced form substitutes
      {"$$$$", "$$"},
  };
  for (const auto& c : cases) EXPECT_EQ(substituted(c.text), c.expected) << c.text;
}

TEST(ConfigEnvSubstitution, ReportsUnsetAndMalformedReferences) {
  ScopedTestEnv env;
  EXPECT_EQ(substituted("${PORT}"),
            "ERROR: environment variable \"PORT\" is not set (write ${PORT:-default} to give a "
            "default)");
  EXPECT_EQ(substituted("x${PORT"),
            "ERROR: unterminated \"${\" (write \"$$\" for a literal \"$\")");
  EXPECT_EQ(substituted("${}"), "ERROR: invalid environment variable name \"\" in \"${}\"");
  EXPECT_EQ(substituted("${1A}"), "ERROR: invalid environment variable name \"1A\" in \"${1A}\"");
  EXPECT_EQ(substituted("${A-b}"),
            "ERROR: invalid environment variable name \"A-b\" in \"${A-b}\"");
}

}  // namespace
}  // namespace fusebox::config
