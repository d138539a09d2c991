#pragma once
// The JSON dialect TF Serving speaks on its REST port, reproduced for tfs-sim:
//  - a parser with rapidjson's behaviour under kParseNanAndInfFlag (NaN/Infinity accepted,
//    rapidjson's error texts and byte offsets, so "JSON Parse error: ... at offset: N" matches);
//  - a writer with two layouts: `compact` ({"predictions": [2.5, 3.0]}) and `tfserving`
//    (rapidjson::PrettyWriter with 4-space indent, byte for byte what TF Serving sends);
//  - TF's decimal formatting (json_tensor.cc WriteDecimal): "%g" with 6 significant digits when
//  that
//    round-trips, else max_digits10 digits; ".0" appended to integral values; NaN/Infinity.
// Pure code, no I/O; every function is safe to call from any thread on distinct objects.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tfs_sim {

enum class JsonType : std::uint8_t { null, false_value, true_value, object, array, string, number };

// How a JSON number was written: integers keep their exact value (rapidjson Int64/Uint64),
// anything with a fraction, an exponent, NaN/Infinity or out of 64-bit range is `real`.
enum class NumberKind : std::uint8_t { int64, uint64, real };

class JsonDocument;

// A cheap, copyable view of one value inside a JsonDocument (valid while the document lives).
class JsonRef {
 public:
  JsonRef(const JsonDocument* doc, std::uint32_t index) : doc_(doc), index_(index) {}

  JsonType type() const;
  bool is_null() const { return type() == JsonType::null; }
  bool is_bool() const { return type() == JsonType::true_value || type() == JsonType::false_value; }
  bool is_object() const { return type() == JsonType::object; }
  bool is_array() const { return type() == JsonType::array; }
  bool is_string() const { return type() == JsonType::string; }
  bool is_number() const { return type() == JsonType::number; }

  NumberKind number_kind() const;      // only for numbers
  double as_double() const;            // any number, converted like rapidjson GetDouble()
  std::int64_t as_int64() const;       // NumberKind::int64 only
  std::uint64_t as_uint64() const;     // NumberKind::uint64 only (or non-negative int64)
  std::string_view as_string() const;  // strings only

  // Arrays: element count; objects: member count.
  std::size_t size() const;
  JsonRef element(std::size_t i) const;               // arrays
  std::string_view member_name(std::size_t i) const;  // objects
  JsonRef member_value(std::size_t i) const;          // objects
  // First member with this name (rapidjson FindMember semantics), if any.
  std::optional<JsonRef> find(std::string_view name) const;

 private:
  const JsonDocument* doc_;
  std::uint32_t index_;
};

struct JsonParseError {
  std::string reason;  // rapidjson GetParseError_En() text, e.g. "Invalid value."
  std::size_t offset = 0;
};

// Parsed JSON text. Nodes live in one flat vector (children contiguous), strings in one pool.
class JsonDocument {
 public:
  // Nesting deeper than this stops the parse with rapidjson's kParseErrorTermination, so the
  // recursive code that walks documents has a bounded stack.
  static constexpr int kMaxDepth = 512;

  // Returns the error, or nullopt when `text` parsed; then root() is the top-level value.
  // An empty `text` reports rapidjson's "The document is empty." at offset 0.
  std::optional<JsonParseError> parse(std::string_view text);
  JsonRef root() const { return JsonRef(this, root_); }

 private:
  friend class JsonRef;
  friend class JsonParser;
  struct Node {
    JsonType type = JsonType::null;
    NumberKind kind = NumberKind::int64;
    std::uint32_t begin = 0;  // strings: offset in strings_; arrays/objects: first child in nodes_
    std::uint32_t size = 0;   // strings: length; arrays: elements; objects: 2 * members
    union {
      double real;
      std::int64_t i64;
      std::uint64_t u64;
    } number{};
  };
  std::vector<Node> nodes_;
  std::string strings_;
  std::uint32_t root_ = 0;
};

enum class JsonStyle {
  compact,    // {"predictions": [2.5, 3.0, 4.5]}: one line, ", " and ": " separators
  tfserving,  // rapidjson::PrettyWriter output, exactly as TF Serving formats its responses
};

// Streaming JSON writer reproducing rapidjson::PrettyWriter (indent configurable, default 4
// spaces) or the compact one-line layout. Misuse (unbalanced calls) is a programming error.
class JsonWriter {
 public:
  explicit JsonWriter(JsonStyle style, int indent = 4) : style_(style), indent_(indent) {}

  void start_object();
  void end_object();
  void start_array();
  void end_array();
  void key(std::string_view name);
  void string(std::string_view value);
  void null();
  void boolean(bool value);
  void int64(std::int64_t value);
  void uint64(std::uint64_t value);
  // A number written verbatim (TF writes decimals this way, see format_float()).
  void raw_number(std::string_view text);
  void float_value(float value);    // TF WriteDecimal<float>
  void double_value(double value);  // TF WriteDecimal<double>

  // rapidjson kFormatSingleLineArray: arrays written while set stay on one line ("[1, 2]").
  void set_single_line_arrays(bool on) { single_line_arrays_ = on; }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  struct Level {
    bool in_array;
    std::size_t value_count;
  };
  void prefix();
  void write_indent();
  JsonStyle style_;
  int indent_;
  bool single_line_arrays_ = false;
  std::vector<Level> levels_;
  std::string out_;
};

// TF Serving's WriteDecimal(): "%.6g" when it parses back to the same value, else
// "%.{max_digits10}g"; ".0" appended when the text has neither '.' nor 'e'; NaN, Infinity,
// -Infinity for non-finite values.
std::string format_float(float value);
std::string format_double(double value);

// JSON string literal with rapidjson's escaping (", \, control characters), quotes included.
void append_json_string(std::string& out, std::string_view value);

// tensorflow json_tensor.cc JsonValueToString(): a value as TF prints it inside error messages
// (rapidjson PrettyWriter; a top-level decimal goes through WriteDecimal).
std::string json_value_to_string(JsonRef value);

// rapidjson type names used in TF messages: "Null", "False", "True", "Object", "Array",
// "String", "Number".
const char* json_type_name(JsonType type);

}  // namespace tfs_sim
