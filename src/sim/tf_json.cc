#include "sim/tf_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

namespace tfs_sim {

// ---------------------------------------------------------------------------------------------
// JsonRef

JsonType JsonRef::type() const { return doc_->nodes_[index_].type; }

NumberKind JsonRef::number_kind() const { return doc_->nodes_[index_].kind; }

double JsonRef::as_double() const {
  const auto& n = doc_->nodes_[index_];
  switch (n.kind) {
    case NumberKind::int64:
      return static_cast<double>(n.number.i64);
    case NumberKind::uint64:
      return static_cast<double>(n.number.u64);
    case NumberKind::real:
      return n.number.real;
  }
  return 0.0;
}

std::int64_t JsonRef::as_int64() const { return doc_->nodes_[index_].number.i64; }

std::uint64_t JsonRef::as_uint64() const {
  const auto& n = doc_->nodes_[index_];
  return n.kind == NumberKind::uint64 ? n.number.u64 : static_cast<std::uint64_t>(n.number.i64);
}

std::string_view JsonRef::as_string() const {
  const auto& n = doc_->nodes_[index_];
  return std::string_view(doc_->strings_).substr(n.begin, n.size);
}

std::size_t JsonRef::size() const {
  const auto& n = doc_->nodes_[index_];
  return n.type == JsonType::object ? n.size / 2 : n.size;
}

JsonRef JsonRef::element(std::size_t i) const {
  return JsonRef(doc_, doc_->nodes_[index_].begin + static_cast<std::uint32_t>(i));
}

std::string_view JsonRef::member_name(std::size_t i) const {
  return JsonRef(doc_, doc_->nodes_[index_].begin + static_cast<std::uint32_t>(2 * i)).as_string();
}

JsonRef JsonRef::member_value(std::size_t i) const {
  return JsonRef(doc_, doc_->nodes_[index_].begin + static_cast<std::uint32_t>(2 * i + 1));
}

std::optional<JsonRef> JsonRef::find(std::string_view name) const {
  for (std::size_t i = 0, n = size(); i < n; ++i) {
    if (member_name(i) == name) return member_value(i);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Parser: recursive descent with rapidjson's (reader.h, kParseNanAndInfFlag) decisions and error
// offsets. Values are built on a stack; a finished array/object moves its children to the
// document's node vector so they end up contiguous.

namespace {

constexpr const char* kDocumentEmpty = "The document is empty.";
constexpr const char* kRootNotSingular = "The document root must not be followed by other values.";
constexpr const char* kValueInvalid = "Invalid value.";
constexpr const char* kObjectMissName = "Missing a name for object member.";
constexpr const char* kObjectMissColon = "Missing a colon after a name of object member.";
constexpr const char* kObjectMissCommaOrCurly = "Missing a comma or '}' after an object member.";
constexpr const char* kArrayMissCommaOrSquare = "Missing a comma or ']' after an array element.";
constexpr const char* kStringUnicodeEscapeInvalidHex =
    "Incorrect hex digit after \\u escape in string.";
constexpr const char* kStringUnicodeSurrogateInvalid = "The surrogate pair in string is invalid.";
constexpr const char* kStringEscapeInvalid = "Invalid escape character in string.";
constexpr const char* kStringMissQuotationMark = "Missing a closing quotation mark in string.";
constexpr const char* kStringInvalidEncoding = "Invalid encoding in string.";
constexpr const char* kNumberTooBig = "Number too big to be stored in double.";
constexpr const char* kNumberMissFraction = "Miss fraction part in number.";
constexpr const char* kNumberMissExponent = "Miss exponent in number.";
constexpr const char* kTermination = "Terminate parsing due to Handler error.";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, unsigned cp) {
  if (cp <= 0x7F) {
    out.push_back(static_cast<char>(cp));
  } else if (cp <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | ((cp >> 6) & 0xFF)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | ((cp >> 12) & 0xFF)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | ((cp >> 18) & 0xFF)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

class JsonParser {
 public:
  JsonParser(JsonDocument& doc, std::string_view in) : doc_(doc), in_(in) {}

  std::optional<JsonParseError> run() {
    doc_.nodes_.clear();
    doc_.strings_.clear();
    if (in_.size() >= std::numeric_limits<std::uint32_t>::max() / 2) {
      return JsonParseError{kTermination, 0};
    }
    skip_ws();
    if (peek() == '\0') return fail(kDocumentEmpty, pos_);
    if (!parse_value(0)) return error_;
    skip_ws();
    if (peek() != '\0') return fail(kRootNotSingular, pos_);
    doc_.root_ = static_cast<std::uint32_t>(doc_.nodes_.size());
    doc_.nodes_.push_back(stack_.back());
    return std::nullopt;
  }

 private:
  using Node = JsonDocument::Node;

  // rapidjson's MemoryStream yields '\0' at the end; an embedded NUL looks the same to it.
  char peek() const { return pos_ < in_.size() ? in_[pos_] : '\0'; }
  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (pos_ < in_.size()) {
      const char c = in_[pos_];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
      ++pos_;
    }
  }
  JsonParseError fail(const char* reason, std::size_t offset) {
    error_ = JsonParseError{reason, offset};
    return *error_;
  }
  bool failed(const char* reason, std::size_t offset) {
    fail(reason, offset);
    return false;
  }

  bool parse_value(int depth) {
    switch (peek()) {
      case 'n':
        return parse_literal("null", JsonType::null);
      case 't':
        return parse_literal("true", JsonType::true_value);
      case 'f':
        return parse_literal("false", JsonType::false_value);
      case '"':
        return parse_string_value();
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      default:
        return parse_number();
    }
  }

  bool parse_literal(std::string_view word, JsonType type) {
    ++pos_;  // first letter already checked
    for (std::size_t i = 1; i < word.size(); ++i) {
      if (!consume(word[i])) return failed(kValueInvalid, pos_);
    }
    Node n;
    n.type = type;
    stack_.push_back(n);
    return true;
  }

  // Moves the top `count` stack entries to the document; returns the index of the first.
  std::uint32_t flush_children(std::size_t count) {
    const auto first = static_cast<std::uint32_t>(doc_.nodes_.size());
    doc_.nodes_.insert(doc_.nodes_.end(), stack_.end() - static_cast<std::ptrdiff_t>(count),
                       stack_.end());
    stack_.resize(stack_.size() - count);
    return first;
  }

  bool parse_object(int depth) {
    ++pos_;  // '{'
    if (depth > JsonDocument::kMaxDepth) return failed(kTermination, pos_);
    skip_ws();
    std::size_t members = 0;
    if (!consume('}')) {
      for (;;) {
        if (peek() != '"') return failed(kObjectMissName, pos_);
        if (!parse_string_value()) return false;
        skip_ws();
        if (!consume(':')) return failed(kObjectMissColon, pos_);
        skip_ws();
        if (!parse_value(depth)) return false;
        skip_ws();
        ++members;
        const char c = peek();
        if (c == ',') {
          ++pos_;
          skip_ws();
        } else if (c == '}') {
          ++pos_;
          break;
        } else {
          return failed(kObjectMissCommaOrCurly, pos_);
        }
      }
    }
    Node n;
    n.type = JsonType::object;
    n.size = static_cast<std::uint32_t>(members * 2);
    n.begin = flush_children(members * 2);
    stack_.push_back(n);
    return true;
  }

  bool parse_array(int depth) {
    ++pos_;  // '['
    if (depth > JsonDocument::kMaxDepth) return failed(kTermination, pos_);
    skip_ws();
    std::size_t elements = 0;
    if (!consume(']')) {
      for (;;) {
        if (!parse_value(depth)) return false;
        ++elements;
        skip_ws();
        if (consume(',')) {
          skip_ws();
        } else if (consume(']')) {
          break;
        } else {
          return failed(kArrayMissCommaOrSquare, pos_);
        }
      }
    }
    Node n;
    n.type = JsonType::array;
    n.size = static_cast<std::uint32_t>(elements);
    n.begin = flush_children(elements);
    stack_.push_back(n);
    return true;
  }

  bool parse_hex4(unsigned& cp, std::size_t escape_offset) {
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = peek();
      cp <<= 4;
      if (c >= '0' && c <= '9') {
        cp += static_cast<unsigned>(c - '0');
      } else if (c >= 'A' && c <= 'F') {
        cp += static_cast<unsigned>(c - 'A' + 10);
      } else if (c >= 'a' && c <= 'f') {
        cp += static_cast<unsigned>(c - 'a' + 10);
      } else {
        return failed(kStringUnicodeEscapeInvalidHex, escape_offset);
      }
      ++pos_;
    }
    return true;
  }

  bool parse_string_value() {
    ++pos_;  // opening quote
    const auto begin = doc_.strings_.size();
    std::string& out = doc_.strings_;
    for (;;) {
      // Fast path: copy the run of ordinary characters.
      std::size_t run = pos_;
      while (run < in_.size()) {
        const auto c = static_cast<unsigned char>(in_[run]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++run;
      }
      out.append(in_.substr(pos_, run - pos_));
      pos_ = run;
      const char c = peek();
      if (c == '\\') {
        const std::size_t escape_offset = pos_;
        ++pos_;
        const char e = peek();
        char simple = 0;
        switch (e) {
          case '"':
            simple = '"';
            break;
          case '\\':
            simple = '\\';
            break;
          case '/':
            simple = '/';
            break;
          case 'b':
            simple = '\b';
            break;
          case 'f':
            simple = '\f';
            break;
          case 'n':
            simple = '\n';
            break;
          case 'r':
            simple = '\r';
            break;
          case 't':
            simple = '\t';
            break;
          default:
            break;
        }
        if (simple != 0) {
          ++pos_;
          out.push_back(simple);
        } else if (e == 'u') {
          ++pos_;
          unsigned cp = 0;
          if (!parse_hex4(cp, escape_offset)) return false;
          if (cp >= 0xD800 && cp <= 0xDFFF) {
            if (cp > 0xDBFF) return failed(kStringUnicodeSurrogateInvalid, escape_offset);
            if (!consume('\\') || !consume('u')) {
              return failed(kStringUnicodeSurrogateInvalid, escape_offset);
            }
            unsigned low = 0;
            if (!parse_hex4(low, escape_offset)) return false;
            if (low < 0xDC00 || low > 0xDFFF) {
              return failed(kStringUnicodeSurrogateInvalid, escape_offset);
            }
            cp = (((cp - 0xD800) << 10) | (low - 0xDC00)) + 0x10000;
          }
          append_utf8(out, cp);
        } else {
          return failed(kStringEscapeInvalid, escape_offset);
        }
      } else if (c == '"') {
        ++pos_;
        break;
      } else if (c == '\0') {
        return failed(kStringMissQuotationMark, pos_);
      } else {
        return failed(kStringInvalidEncoding, pos_);  // unescaped control character
      }
    }
    Node n;
    n.type = JsonType::string;
    n.begin = static_cast<std::uint32_t>(begin);
    n.size = static_cast<std::uint32_t>(out.size() - begin);
    stack_.push_back(n);
    return true;
  }

  bool parse_number() {
    const std::size_t start = pos_;
    const bool minus = consume('-');
    Node n;
    n.type = JsonType::number;
    const char first = peek();
    if (first == 'N' || first == 'I') {
      bool ok = false;
      double value = 0.0;
      if (consume('N')) {
        if (consume('a') && consume('N')) {
          value = std::numeric_limits<double>::quiet_NaN();
          ok = true;
        }
      } else if (consume('I')) {
        if (consume('n') && consume('f')) {
          value = minus ? -std::numeric_limits<double>::infinity()
                        : std::numeric_limits<double>::infinity();
          ok = true;
          if (peek() == 'i' &&
              !(consume('i') && consume('n') && consume('i') && consume('t') && consume('y'))) {
            return failed(kValueInvalid, pos_);
          }
        }
      }
      if (!ok) return failed(kValueInvalid, pos_);
      n.kind = NumberKind::real;
      n.number.real = value;
      stack_.push_back(n);
      return true;
    }
    if (!is_digit(first)) return failed(kValueInvalid, pos_);
    if (first == '0') {
      ++pos_;
    } else {
      while (is_digit(peek())) ++pos_;
    }
    const std::size_t int_end = pos_;
    bool is_real = false;
    if (consume('.')) {
      if (!is_digit(peek())) return failed(kNumberMissFraction, pos_);
      while (is_digit(peek())) ++pos_;
      is_real = true;
    }
    if (consume('e') || consume('E')) {
      if (!consume('+')) consume('-');
      if (!is_digit(peek())) return failed(kNumberMissExponent, pos_);
      while (is_digit(peek())) ++pos_;
      is_real = true;
    }
    const std::string_view text = in_.substr(start, pos_ - start);
    if (!is_real) {
      // Integers: exact when they fit 64 bits, like rapidjson's Int64/Uint64 handlers.
      const std::string_view digits =
          in_.substr(minus ? start + 1 : start, int_end - start - (minus ? 1 : 0));
      std::uint64_t magnitude = 0;
      const auto [ptr, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
      if (ec == std::errc() && ptr == digits.data() + digits.size()) {
        if (!minus) {
          if (magnitude <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            n.kind = NumberKind::int64;
            n.number.i64 = static_cast<std::int64_t>(magnitude);
          } else {
            n.kind = NumberKind::uint64;
            n.number.u64 = magnitude;
          }
          stack_.push_back(n);
          return true;
        }
        if (magnitude <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1) {
          n.kind = NumberKind::int64;
          n.number.i64 = static_cast<std::int64_t>(0 - magnitude);
          stack_.push_back(n);
          return true;
        }
      }
      // Too big for 64 bits: rapidjson continues as a double.
    }
    const std::string copy(text);
    const double value = std::strtod(copy.c_str(), nullptr);
    if (std::isinf(value)) return failed(kNumberTooBig, start);
    n.kind = NumberKind::real;
    n.number.real = value;
    stack_.push_back(n);
    return true;
  }

  JsonDocument& doc_;
  std::string_view in_;
  std::size_t pos_ = 0;
  std::vector<Node> stack_;
  std::optional<JsonParseError> error_;
};

std::optional<JsonParseError> JsonDocument::parse(std::string_view text) {
  JsonParser parser(*this, text);
  return parser.run();
}

// ---------------------------------------------------------------------------------------------
// Number formatting

namespace {

template <typename T>
std::string format_decimal(T value) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return std::signbit(value) ? "-Infinity" : "Infinity";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(value));
  T parsed{};
  if constexpr (std::is_same_v<T, float>) {
    parsed = std::strtof(buf, nullptr);
  } else {
    parsed = std::strtod(buf, nullptr);
  }
  if (parsed != value) {
    std::snprintf(buf, sizeof buf, "%.*g", std::numeric_limits<T>::max_digits10,
                  static_cast<double>(value));
  }
  std::string text(buf);
  if (text.find('.') == std::string::npos && text.find('e') == std::string::npos) {
    text += ".0";
  }
  return text;
}

// rapidjson Writer::Double(): shortest round-trip digits laid out by internal::Prettify().
std::string rapidjson_double(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return std::signbit(value) ? "-Infinity" : "Infinity";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  char sci[64];
  const auto res =
      std::to_chars(sci, sci + sizeof sci, std::fabs(value), std::chars_format::scientific);
  const std::string_view s(sci, static_cast<std::size_t>(res.ptr - sci));
  const auto e_pos = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  const auto exp_text = s.substr(e_pos + 1);
  std::from_chars(exp_text.data() + (exp_text[0] == '+' ? 1 : 0), exp_text.data() + exp_text.size(),
                  exponent);
  const int length = static_cast<int>(digits.size());
  const int kk = exponent + 1;  // 10^(kk-1) <= v < 10^kk
  const int k = kk - length;    // v = digits * 10^k
  std::string out = value < 0 ? "-" : "";
  auto write_exponent = [&out](int e) {
    if (e < 0) {
      out.push_back('-');
      e = -e;
    }
    out += std::to_string(e);
  };
  if (k >= 0 && kk <= 21) {
    out += digits;
    out.append(static_cast<std::size_t>(k), '0');
    out += ".0";
  } else if (kk > 0 && kk <= 21) {
    out += digits.substr(0, static_cast<std::size_t>(kk));
    out.push_back('.');
    out += digits.substr(static_cast<std::size_t>(kk));
  } else if (kk > -6 && kk <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-kk), '0');
    out += digits;
  } else if (length == 1) {
    out += digits;
    out.push_back('e');
    write_exponent(kk - 1);
  } else {
    out.push_back(digits[0]);
    out.push_back('.');
    out += digits.substr(1);
    out.push_back('e');
    write_exponent(kk - 1);
  }
  return out;
}

}  // namespace

std::string format_float(float value) { return format_decimal(value); }
std::string format_double(double value) { return format_decimal(value); }

// ---------------------------------------------------------------------------------------------
// Writer

void append_json_string(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  std::size_t run = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.substr(run, i - run));
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(value.substr(run));
  out.push_back('"');
}

void JsonWriter::write_indent() {
  out_.append(levels_.size() * static_cast<std::size_t>(indent_), ' ');
}

// rapidjson PrettyWriter::PrettyPrefix(), and its compact counterpart.
void JsonWriter::prefix() {
  if (levels_.empty()) return;
  Level& level = levels_.back();
  if (style_ == JsonStyle::compact) {
    if (level.value_count > 0) {
      if (level.in_array || level.value_count % 2 == 0) {
        out_ += ", ";
      } else {
        out_ += ": ";
      }
    }
  } else if (level.in_array) {
    if (level.value_count > 0) {
      out_.push_back(',');
      if (single_line_arrays_) out_.push_back(' ');
    }
    if (!single_line_arrays_) {
      out_.push_back('\n');
      write_indent();
    }
  } else {
    if (level.value_count > 0) {
      out_ += level.value_count % 2 == 0 ? ",\n" : ": ";
    } else {
      out_.push_back('\n');
    }
    if (level.value_count % 2 == 0) write_indent();
  }
  ++level.value_count;
}

void JsonWriter::start_object() {
  prefix();
  levels_.push_back(Level{false, 0});
  out_.push_back('{');
}

void JsonWriter::end_object() {
  const bool empty = levels_.back().value_count == 0;
  levels_.pop_back();
  if (style_ == JsonStyle::tfserving && !empty) {
    out_.push_back('\n');
    write_indent();
  }
  out_.push_back('}');
}

void JsonWriter::start_array() {
  prefix();
  levels_.push_back(Level{true, 0});
  out_.push_back('[');
}

void JsonWriter::end_array() {
  const bool empty = levels_.back().value_count == 0;
  levels_.pop_back();
  if (style_ == JsonStyle::tfserving && !empty && !single_line_arrays_) {
    out_.push_back('\n');
    write_indent();
  }
  out_.push_back(']');
}

void JsonWriter::key(std::string_view name) {
  prefix();
  append_json_string(out_, name);
}

void JsonWriter::string(std::string_view value) {
  prefix();
  append_json_string(out_, value);
}

void JsonWriter::null() {
  prefix();
  out_ += "null";
}

void JsonWriter::boolean(bool value) {
  prefix();
  out_ += value ? "true" : "false";
}

void JsonWriter::int64(std::int64_t value) {
  prefix();
  out_ += std::to_string(value);
}

void JsonWriter::uint64(std::uint64_t value) {
  prefix();
  out_ += std::to_string(value);
}

void JsonWriter::raw_number(std::string_view text) {
  prefix();
  out_.append(text);
}

void JsonWriter::float_value(float value) { raw_number(format_float(value)); }

void JsonWriter::double_value(double value) { raw_number(format_double(value)); }

// ---------------------------------------------------------------------------------------------
// Values inside TF error messages

const char* json_type_name(JsonType type) {
  switch (type) {
    case JsonType::null:
      return "Null";
    case JsonType::false_value:
      return "False";
    case JsonType::true_value:
      return "True";
    case JsonType::object:
      return "Object";
    case JsonType::array:
      return "Array";
    case JsonType::string:
      return "String";
    case JsonType::number:
      return "Number";
  }
  return "Null";
}

namespace {

void write_value(JsonWriter& w, JsonRef v) {
  switch (v.type()) {
    case JsonType::null:
      w.null();
      break;
    case JsonType::false_value:
      w.boolean(false);
      break;
    case JsonType::true_value:
      w.boolean(true);
      break;
    case JsonType::string:
      w.string(v.as_string());
      break;
    case JsonType::number:
      switch (v.number_kind()) {
        case NumberKind::int64:
          w.int64(v.as_int64());
          break;
        case NumberKind::uint64:
          w.uint64(v.as_uint64());
          break;
        case NumberKind::real:
          w.raw_number(rapidjson_double(v.as_double()));
          break;
      }
      break;
    case JsonType::array:
      w.start_array();
      for (std::size_t i = 0; i < v.size(); ++i) write_value(w, v.element(i));
      w.end_array();
      break;
    case JsonType::object:
      w.start_object();
      for (std::size_t i = 0; i < v.size(); ++i) {
        w.key(v.member_name(i));
        write_value(w, v.member_value(i));
      }
      w.end_object();
      break;
  }
}

}  // namespace

std::string json_value_to_string(JsonRef value) {
  JsonWriter w(JsonStyle::tfserving);
  if (value.is_number() && value.number_kind() == NumberKind::real) {
    // rapidjson IsFloat(): a double within float range is written as a float.
    const double d = value.as_double();
    if (d >= -3.4028234e38 && d <= 3.4028234e38) {
      w.float_value(static_cast<float>(d));
    } else {
      w.double_value(d);
    }
  } else {
    write_value(w, value);
  }
  return w.take();
}

}  // namespace tfs_sim
