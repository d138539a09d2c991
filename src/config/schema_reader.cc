#include "schema_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <tuple>
#include <utility>
#include <variant>

#include "env_substitution.h"

namespace fusebox::config::detail {
namespace {

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "50", "12.5": whole numbers without a fraction, as an operator would write them.
std::string format_number(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    return std::to_string(static_cast<std::int64_t>(value));
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc{} ? std::string(buffer, end) : std::to_string(value);
}

// The scalar held by `value` (a map value or a list item) at `path`. An empty value is
// reported at `empty_mark`, where the reader looks for it.
std::optional<Scalar> read_scalar(LoadContext& ctx, const YAML::Node& value,
                                  const YAML::Mark& empty_mark, std::string path,
                                  std::string_view expected) {
  if (value.IsNull()) {
    // yaml-cpp places an empty value at the next token; the key is where the reader looks.
    ctx.remember(path, empty_mark);
    ctx.diagnostics().error(empty_mark, path,
                            "missing value (expected " + std::string(expected) + ")");
    return std::nullopt;
  }
  const YAML::Mark mark = value.Mark();
  ctx.remember(path, mark);
  if (!value.IsScalar()) {
    ctx.diagnostics().error(
        mark, path,
        "expected " + std::string(expected) + ", got " + std::string(describe_node_type(value)));
    return std::nullopt;
  }
  const std::string& raw = value.Scalar();
  auto substituted = substitute_env(raw, ctx.env());
  if (auto* failure = std::get_if<SubstitutionError>(&substituted)) {
    ctx.diagnostics().error(mark, path, std::move(failure->message));
    return std::nullopt;
  }
  return Scalar{std::move(std::get<std::string>(substituted)), raw, std::move(path), mark};
}

}  // namespace

std::optional<Scalar> list_scalar(LoadContext& ctx, const ListItem& item,
                                  std::string_view expected) {
  return read_scalar(ctx, item.node, item.node.Mark(), item.path, expected);
}

void value_error(LoadContext& ctx, const Scalar& scalar, std::string message) {
  // Show what the file said when ${VAR} substitution produced the bad value.
  if (scalar.raw != scalar.text) message += " (from " + quoted(scalar.raw) + ")";
  ctx.diagnostics().error(scalar.mark, scalar.path, std::move(message));
}

std::optional<std::int64_t> interpret_integer(LoadContext& ctx, const Scalar& scalar,
                                              IntegerRange range) {
  const std::string& t = scalar.text;
  std::int64_t number = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), number);
  const std::string range_text =
      "must be between " + std::to_string(range.min) + " and " + std::to_string(range.max);
  if (ec == std::errc::result_out_of_range && end == t.data() + t.size()) {
    value_error(ctx, scalar, range_text + ", got " + t);
    return std::nullopt;
  }
  if (ec != std::errc{} || end != t.data() + t.size() || t.empty()) {
    value_error(ctx, scalar, "not an integer: " + quoted(t));
    return std::nullopt;
  }
  if (number < range.min || number > range.max) {
    value_error(ctx, scalar, range_text + ", got " + t);
    return std::nullopt;
  }
  return number;
}

std::string_view describe_node_type(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// ---- Diagnostics ----------------------------------------------------------------------------

void Diagnostics::error(const YAML::Mark& mark, std::string path, std::string message) {
  ConfigError e;
  e.file = file_;
  e.line = mark.is_null() ? 0 : mark.line + 1;
  e.column = mark.is_null() ? 0 : mark.column + 1;
  e.path = std::move(path);
  e.message = std::move(message);
  errors_.push_back(std::move(e));
}

void Diagnostics::error_without_position(std::string message) {
  error(YAML::Mark::null_mark(), "", std::move(message));
}

std::vector<ConfigError> Diagnostics::take_sorted() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return std::exchange(errors_, {});
}

// ---- LoadContext ----------------------------------------------------------------------------

YAML::Mark LoadContext::locate(std::string_view path) const {
  while (true) {
    if (auto it = marks_.find(path); it != marks_.end()) return it->second;
    if (path.empty()) return YAML::Mark();  // line 1, column 1
    const auto cut = path.find_last_of(".[");
    path = path.substr(0, cut == std::string_view::npos ? 0 : cut);
  }
}

// ---- MapReader ------------------------------------------------------------------------------

MapReader::MapReader(LoadContext& ctx, const YAML::Node& node, std::string path,
                     const YAML::Mark& mark)
    : ctx_(ctx), path_(std::move(path)), mark_(mark) {
  if (node.IsNull()) {
    present_ = true;
    return;
  }
  if (!node.IsMap()) {
    ctx_.diagnostics().error(node.Mark(), path_,
                             "expected a map, got " + std::string(describe_node_type(node)));
    return;
  }
  present_ = true;
  for (const auto& pair : node) {
    const YAML::Node key = pair.first;
    if (!key.IsScalar()) {
      ctx_.diagnostics().error(
          key.Mark(), path_,
          "map keys must be strings, got " + std::string(describe_node_type(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    auto first = std::find_if(entries_.begin(), entries_.end(),
                              [&](const Entry& e) { return e.key == name; });
    if (first != entries_.end()) {
      ctx_.diagnostics().error(key.Mark(), child_path(name),
                               "duplicate key " + quoted(name) + " (first defined at line " +
                                   std::to_string(first->key_node.Mark().line + 1) + ")");
      continue;
    }
    entries_.push_back(Entry{name, key, pair.second});
  }
}

MapReader::MapReader(LoadContext& ctx, Absent, std::string path, const YAML::Mark& mark)
    : ctx_(ctx), path_(std::move(path)), mark_(mark) {}

MapReader::MapReader(MapReader&& other) noexcept
    : ctx_(other.ctx_),
      path_(std::move(other.path_)),
      mark_(other.mark_),
      present_(other.present_),
      active_(std::exchange(other.active_, false)),
      entries_(std::move(other.entries_)),
      declared_keys_(std::move(other.declared_keys_)) {}

MapReader::~MapReader() {
  if (!active_ || !present_) return;
  try {
    for (const auto& entry : entries_) {
      if (entry.declared) continue;
      std::string message = "unknown key " + quoted(entry.key);
      if (!declared_keys_.empty()) message += " (expected one of: " + join(declared_keys_) + ")";
      ctx_.diagnostics().error(entry.key_node.Mark(), child_path(entry.key), std::move(message));
    }
  } catch (...) {
    // Out of memory while reporting: nothing sensible left to do in a destructor.
  }
}

std::string MapReader::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const MapReader::Entry* MapReader::declare(std::string_view key, Presence presence) {
  if (std::find(declared_keys_.begin(), declared_keys_.end(), key) == declared_keys_.end())
    declared_keys_.emplace_back(key);
  for (auto& entry : entries_) {
    if (entry.key != key) continue;
    entry.declared = true;
    return &entry;
  }
  if (presence == Presence::required && present_)
    ctx_.diagnostics().error(mark_, path_, "missing required key " + quoted(key));
  return nullptr;
}

std::optional<Scalar> MapReader::scalar(std::string_view key, std::string_view expected,
                                        Presence presence) {
  const Entry* entry = declare(key, presence);
  if (entry == nullptr) return std::nullopt;
  return read_scalar(ctx_, entry->value, entry->key_node.Mark(), child_path(key), expected);
}

bool MapReader::string(std::string_view key, std::string& out, Presence presence) {
  auto value = scalar(key, "a string", presence);
  if (!value) return false;
  out = std::move(value->text);
  return true;
}

bool MapReader::boolean(std::string_view key, bool& out, Presence presence) {
  auto value = scalar(key, "a boolean", presence);
  if (!value) return false;
  const std::string& t = value->text;
  if (t == "true" || t == "True" || t == "TRUE") {
    out = true;
    return true;
  }
  if (t == "false" || t == "False" || t == "FALSE") {
    out = false;
    return true;
  }
  value_error(ctx_, *value, "not a boolean: " + quoted(t) + " (expected true or false)");
  return false;
}

std::optional<std::int64_t> MapReader::read_integer(std::string_view key, IntegerRange range,
                                                    Presence presence) {
  auto value = scalar(key, "an integer", presence);
  if (!value) return std::nullopt;
  return interpret_integer(ctx_, *value, range);
}

bool MapReader::number(std::string_view key, double& out, NumberRange range, Presence presence) {
  auto value = scalar(key, "a number", presence);
  if (!value) return false;
  const std::string& t = value->text;
  double number = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), number);
  // from_chars accepts "inf" and "nan", which no setting means.
  if (ec != std::errc{} || end != t.data() + t.size() || t.empty() || !std::isfinite(number)) {
    std::string message = "not a number: " + quoted(t);
    if (!t.empty() && t.back() == '%') message += " (write the percentage without \"%\")";
    value_error(ctx_, *value, std::move(message));
    return false;
  }
  if (number < range.min || number > range.max) {
    value_error(ctx_, *value,
                "must be between " + format_number(range.min) + " and " + format_number(range.max) +
                    ", got " + t);
    return false;
  }
  out = number;
  return true;
}

bool MapReader::duration(std::string_view key, Duration& out, ZeroDuration zero,
                         Presence presence) {
  auto value = scalar(key, "a duration", presence);
  if (!value) return false;
  auto parsed = parse_duration(value->text);
  if (!parsed) {
    value_error(
        ctx_, *value,
        "not a duration: " + quoted(value->text) +
            (all_digits(value->text) ? " (a unit is required: ms, s, m or h, e.g. 250ms, 2s, 1m30s)"
                                     : " (expected e.g. 250ms, 2s, 1m30s, 1h)"));
    return false;
  }
  if (zero == ZeroDuration::rejected && parsed->count() == 0) {
    value_error(ctx_, *value, "must be greater than 0");
    return false;
  }
  out = *parsed;
  return true;
}

bool MapReader::size(std::string_view key, std::uint64_t& out, std::uint64_t min,
                     Presence presence) {
  auto value = scalar(key, "a size", presence);
  if (!value) return false;
  auto parsed = parse_size(value->text);
  if (!parsed) {
    value_error(ctx_, *value,
                "not a size: " + quoted(value->text) +
                    " (expected bytes, or a number with B, KiB, MiB, GiB, KB, MB or GB, "
                    "e.g. 64MiB)");
    return false;
  }
  if (*parsed < min) {
    value_error(
        ctx_, *value,
        min == 1 ? std::string("must be greater than 0") : "must be at least " + format_size(min));
    return false;
  }
  out = *parsed;
  return true;
}

std::optional<std::size_t> MapReader::one_of(std::string_view key,
                                             std::span<const std::string_view> allowed,
                                             Presence presence) {
  auto value = scalar(key, "a string", presence);
  if (!value) return std::nullopt;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < allowed.size(); ++i) {
    const std::string_view name = allowed[i];
    if (name == value->text) return i;
    names.emplace_back(name);
  }
  value_error(ctx_, *value,
              "invalid value " + quoted(value->text) + " (expected one of: " + join(names) + ")");
  return std::nullopt;
}

MapReader MapReader::map(std::string_view key, Presence presence) {
  const Entry* entry = declare(key, presence);
  std::string path = child_path(key);
  if (entry == nullptr) return MapReader(ctx_, Absent{}, std::move(path), mark_);
  const YAML::Mark mark = entry->value.IsNull() ? entry->key_node.Mark() : entry->value.Mark();
  ctx_.remember(path, mark);
  return MapReader(ctx_, entry->value, std::move(path), mark);
}

List MapReader::list(std::string_view key, Presence presence) {
  List out;
  out.path = child_path(key);
  const Entry* entry = declare(key, presence);
  if (entry == nullptr) return out;
  if (entry->value.IsNull()) {
    ctx_.remember(out.path, entry->key_node.Mark());
    out.present = true;
    return out;
  }
  ctx_.remember(out.path, entry->value.Mark());
  if (!entry->value.IsSequence()) {
    ctx_.diagnostics().error(
        entry->value.Mark(), out.path,
        "expected a list, got " + std::string(describe_node_type(entry->value)));
    return out;
  }
  out.present = true;
  for (const YAML::Node& child : entry->value) {
    ListItem item{child, out.path + "[" + std::to_string(out.items.size()) + "]"};
    ctx_.remember(item.path, item.node.Mark());
    out.items.push_back(std::move(item));
  }
  return out;
}

std::vector<NamedEntry> MapReader::entries() {
  std::vector<NamedEntry> out;
  for (auto& entry : entries_) {
    entry.declared = true;
    NamedEntry named{entry.key, entry.key_node.Mark(), entry.value, child_path(entry.key)};
    ctx_.remember(named.path, entry.value.IsNull() ? named.key_mark : entry.value.Mark());
    out.push_back(std::move(named));
  }
  return out;
}

std::optional<ListItem> MapReader::value(std::string_view key, Presence presence) {
  const Entry* entry = declare(key, presence);
  if (entry == nullptr) return std::nullopt;
  ListItem out{entry->value, child_path(key)};
  ctx_.remember(out.path, entry->value.IsNull() ? entry->key_node.Mark() : entry->value.Mark());
  return out;
}

void MapReader::accept_remaining_keys() {
  for (auto& entry : entries_) entry.declared = true;
}

void MapReader::error(std::string_view key, std::string message) {
  ctx_.error_at(child_path(key), std::move(message));
}

}  // namespace fusebox::config::detail
