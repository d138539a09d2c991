#pragma once
// A small schema reader over yaml-cpp nodes, private to the config module.
//
// One MapReader walks one YAML map: each typed call (string, integer, duration, ...) declares a
// key, reads it if present and records where it was written; when the reader is destroyed, every
// key that no call declared is reported as unknown, listing the declared ones. So adding a key to
// the schema is one line, and the "expected one of" list is always complete -- provided every
// field reader of a map is called unconditionally.
//
// Nothing here throws for bad input: problems go to Diagnostics, and a failed read leaves the
// output untouched (so it keeps its default) and returns false.

#include <yaml-cpp/yaml.h>

#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/common/units.h"
#include "fusebox/config/loader.h"

namespace fusebox::config::detail {

// Collects problems. yaml-cpp marks are 0-based; this is the one place they become 1-based.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& mark, std::string path, std::string message);
  void error_without_position(std::string message);  // line and column 0

  bool empty() const { return errors_.empty(); }
  // Errors so far: a reader compares counts to know whether a section read cleanly.
  std::size_t count() const { return errors_.size(); }
  // Errors in file order (stable for errors at the same position).
  std::vector<ConfigError> take_sorted();

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

// State shared by every reader of one load: where problems go, how ${VAR} resolves, and where
// each dotted path was written (so cross-field checks can point at the right line).
class LoadContext {
 public:
  LoadContext(Diagnostics& diagnostics, EnvLookup env) : diagnostics_(diagnostics), env_(env) {}

  Diagnostics& diagnostics() { return diagnostics_; }
  EnvLookup env() const { return env_; }

  void remember(const std::string& path, const YAML::Mark& mark) { marks_[path] = mark; }
  bool was_written(const std::string& path) const { return marks_.contains(path); }
  // Mark of `path`, else of its closest written ancestor ("a.b[2].c" -> "a.b[2]" -> "a.b" ->
  // "a"), else the start of the file.
  YAML::Mark locate(std::string_view path) const;
  void error_at(std::string_view path, std::string message) {
    diagnostics_.error(locate(path), std::string(path), std::move(message));
  }

 private:
  Diagnostics& diagnostics_;
  EnvLookup env_;
  std::map<std::string, YAML::Mark, std::less<>> marks_;
};

enum class Presence { optional, required };
enum class ZeroDuration { rejected, allowed };

struct IntegerRange {
  std::int64_t min;
  std::int64_t max;
};

// Inclusive bounds of a number that may have a fraction (percentages).
struct NumberRange {
  double min;
  double max;
};

// One scalar after ${VAR} substitution.
struct Scalar {
  std::string text;  // substituted
  std::string raw;   // as written in the file
  std::string path;
  YAML::Mark mark;
};

struct ListItem {
  YAML::Node node;
  std::string path;  // "routes[2]"
};

struct List {
  bool present = false;  // the key exists and holds a list (or nothing)
  std::string path;
  std::vector<ListItem> items;
};

class MapReader;

// Scalar entries of a list (`failure_statuses: [500, 502]`), read like the values of a map:
// ${VAR} is substituted and where each item was written is remembered.
std::optional<Scalar> list_scalar(LoadContext& ctx, const ListItem& item,
                                  std::string_view expected);
// Interprets a scalar as an integer within `range`; reports and returns nullopt otherwise.
std::optional<std::int64_t> interpret_integer(LoadContext& ctx, const Scalar& scalar,
                                              IntegerRange range);
// Reports a problem with a scalar's value, adding what the file said when ${VAR} substitution
// produced it.
void value_error(LoadContext& ctx, const Scalar& scalar, std::string message);

// An entry of a map whose keys are data (pool names), not schema.
struct NamedEntry {
  std::string name;
  YAML::Mark key_mark;
  YAML::Node value;
  std::string path;  // "pools.primary"
};

class MapReader {
 public:
  // `node` may be undefined (key absent: an empty map that reports nothing) or null (`server:`
  // with nothing under it: an empty map). Anything but a map is reported once. `mark` is where
  // "missing required key" errors point (the map itself).
  MapReader(LoadContext& ctx, const YAML::Node& node, std::string path, const YAML::Mark& mark);
  MapReader(MapReader&& other) noexcept;
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;
  MapReader& operator=(MapReader&&) = delete;
  ~MapReader();  // reports undeclared keys

  // True when the map exists in the file (possibly empty).
  bool present() const { return present_; }
  const std::string& path() const { return path_; }
  std::string child_path(std::string_view key) const;
  LoadContext& context() { return ctx_; }

  bool string(std::string_view key, std::string& out, Presence presence = Presence::optional);
  bool boolean(std::string_view key, bool& out, Presence presence = Presence::optional);
  bool duration(std::string_view key, Duration& out, ZeroDuration zero,
                Presence presence = Presence::optional);
  bool size(std::string_view key, std::uint64_t& out, std::uint64_t min,
            Presence presence = Presence::optional);

  // A decimal number, with or without a fraction ("50", "12.5"), within `range`.
  bool number(std::string_view key, double& out, NumberRange range,
              Presence presence = Presence::optional);

  template <std::integral T>
  bool integer(std::string_view key, T& out, IntegerRange range,
               Presence presence = Presence::optional) {
    auto value = read_integer(key, range, presence);
    if (!value) return false;
    out = static_cast<T>(*value);
    return true;
  }

  // A string restricted to `allowed`; returns the index of the match.
  std::optional<std::size_t> one_of(std::string_view key, std::span<const std::string_view> allowed,
                                    Presence presence = Presence::optional);

  MapReader map(std::string_view key, Presence presence = Presence::optional);
  List list(std::string_view key, Presence presence = Presence::optional);
  // Every entry, for maps keyed by user-chosen names; all count as declared.
  std::vector<NamedEntry> entries();

  // Reports a problem with the value of `key` found after reading it (e.g. a cross-field rule).
  void error(std::string_view key, std::string message);

  // Raw access for reads the typed helpers do not cover; declares the key.
  std::optional<Scalar> scalar(std::string_view key, std::string_view expected,
                               Presence presence = Presence::optional);
  // The value node of `key`, whatever its type (free-form values such as a JSON body); declares
  // the key and remembers where it was written. Null when the value is empty.
  std::optional<ListItem> value(std::string_view key, Presence presence = Presence::optional);

  // Stops reporting undeclared keys: for a map whose schema depends on a value that was itself
  // invalid (a fallback tier with an unknown `tier:`), where they would only add noise.
  void accept_remaining_keys();

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
    bool declared = false;
  };

  struct Absent {};
  // A map whose key is not in the file: reads nothing, reports nothing.
  MapReader(LoadContext& ctx, Absent, std::string path, const YAML::Mark& mark);

  // Declares `key` and returns its first occurrence, or nullptr (reporting it when required).
  const Entry* declare(std::string_view key, Presence presence);
  std::optional<std::int64_t> read_integer(std::string_view key, IntegerRange range,
                                           Presence presence);

  LoadContext& ctx_;
  std::string path_;
  YAML::Mark mark_;
  bool present_ = false;
  bool active_ = true;  // false once moved from
  std::vector<Entry> entries_;
  std::vector<std::string> declared_keys_;
};

// "a map", "a list", "a scalar", "nothing": for "expected X, got Y" messages.
std::string_view describe_node_type(const YAML::Node& node);

}  // namespace fusebox::config::detail
