#pragma once
// Loading and validating fusebox's YAML configuration.
//
// Errors are reported all at once (not only the first), each as
//   FILE:LINE:COLUMN: dotted.path: message
// with 1-based line and column pointing at the offending key or value, e.g.
//   fusebox.yaml:12:11: routes[0].pool: no pool named "light"

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fusebox/config/config.h"

namespace fusebox::config {

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when unknown (e.g. file unreadable)
  int column = 0;   // 1-based
  std::string path; // dotted path: "listeners.http.port", "routes[2].pool"; empty for the file
  std::string message;

  std::string to_string() const;  // "FILE:LINE:COLUMN: path: message"
};

// Looks up an environment variable; injectable for tests. Returns false when unset.
using EnvLookup = bool (*)(std::string_view name, std::string& value);
bool process_env_lookup(std::string_view name, std::string& value);

struct LoadResult {
  std::shared_ptr<const Config> config;  // set iff errors is empty
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses YAML text. `file` is only used in error messages and Config::source_file.
// `${VAR}` and `${VAR:-default}` inside scalar values are substituted through `env` before
// the value is interpreted; `$$` is a literal `$`. An unset variable without a default is an error.
LoadResult load_config_from_string(std::string_view yaml_text, std::string file,
                                   EnvLookup env = process_env_lookup);
LoadResult load_config_file(const std::string& path, EnvLookup env = process_env_lookup);

}  // namespace fusebox::config

#include <nlohmann/json_fwd.hpp>

namespace fusebox::config {
// The effective configuration (defaults filled in) as JSON for GET /admin/config, with
// durations and sizes rendered in config syntax ("250ms", "64MiB") and secrets redacted.
nlohmann::json config_to_json(const Config& config);
}  // namespace fusebox::config
