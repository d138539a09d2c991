// Canonical JSON for cache keys: a single-pass recursive-descent parser that writes the
// canonical text while it validates. Hand-written rather than nlohmann because the key needs
// the original digits of integer literals, NaN/Infinity (which TF Serving accepts), and no
// DOM allocation per number on a 64 KB predict body.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "fusebox/cache/response_cache.h"
#include "fusebox/common/utf8.h"

namespace fusebox::cache {
namespace {

constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Writes decoded UTF-8 text as a JSON string: only '"', '\' and control characters escaped.
void append_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run_start, i - run_start);
    run_start = i + 1;
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
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(text.data() + run_start, text.size() - run_start);
  out.push_back('"');
}

// True when a decimal literal `-?(0|[1-9][0-9]*)\.[0-9]+` is already the shortest round-trip
// text of its double in the format std::to_chars picks, so the conversion can be skipped:
// - at most 15 significant digits: distinct such decimals are distinct doubles (DBL_DIG), so
//   no shorter text reads back to the same double, and these digits are the shortest;
// - no trailing zero in the fraction (not shortest otherwise; also not integer-valued);
// - fixed notation is what to_chars picks: always when the integer part is not 0 (shorter than
//   "d.ddde+NN"), and for 0.xxx when the first fraction digit is not 0 (0.0001 -> "1e-04").
bool is_short_canonical_decimal(std::string_view text) {
  if (text.back() == '0') return false;
  const std::size_t first = text.front() == '-' ? 1 : 0;
  const std::size_t dot = text.find('.');
  std::size_t significant = 0;
  if (text[first] == '0') {
    if (text[dot + 1] == '0') return false;
    significant = text.size() - dot - 1;
  } else {
    significant = text.size() - first - 1;
  }
  return significant <= 15;
}

class Canonicalizer {
 public:
  explicit Canonicalizer(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool run(std::string& out) {
    skip_whitespace();
    if (!value(out, 0)) return false;
    skip_whitespace();
    return p_ == end_;
  }

 private:
  struct Member {
    std::string key;    // decoded, compared by UTF-8 bytes
    std::size_t begin;  // span of `"key":value` in the output
    std::size_t end;
  };

  void skip_whitespace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool consume(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  bool literal(std::string& out, std::string_view word) {
    if (!consume(word)) return false;
    out += word;
    return true;
  }

  bool value(std::string& out, int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"': {
        std::string text;
        if (!string(text)) return false;
        append_escaped(out, text);
        return true;
      }
      case 't':
        return literal(out, "true");
      case 'f':
        return literal(out, "false");
      case 'n':
        return literal(out, "null");
      default:
        return number(out);
    }
  }

  bool object(std::string& out, int depth) {
    if (depth > kCanonicalJsonMaxDepth) return false;
    ++p_;  // '{'
    const std::size_t body_begin = out.size() + 1;
    out.push_back('{');
    std::vector<Member> members;
    bool sorted = true;
    skip_whitespace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      out.push_back('}');
      return true;
    }
    while (true) {
      if (p_ == end_ || *p_ != '"') return false;
      Member member;
      if (!string(member.key)) return false;
      skip_whitespace();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_whitespace();
      member.begin = out.size();
      append_escaped(out, member.key);
      out.push_back(':');
      if (!value(out, depth)) return false;
      member.end = out.size();
      if (!members.empty() && member.key < members.back().key) sorted = false;
      members.push_back(std::move(member));
      skip_whitespace();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        break;
      }
      if (*p_ != ',') return false;
      ++p_;
      out.push_back(',');
      skip_whitespace();
    }
    if (!sorted) {
      // Stable: duplicate keys keep their input order, since last-wins parsers read
      // {"a":1,"a":2} and {"a":2,"a":1} differently.
      const std::string unsorted = out.substr(body_begin);
      std::stable_sort(members.begin(), members.end(),
                       [](const Member& a, const Member& b) { return a.key < b.key; });
      out.resize(body_begin);
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out.push_back(',');
        out.append(unsorted, members[i].begin - body_begin, members[i].end - members[i].begin);
      }
    }
    out.push_back('}');
    return true;
  }

  bool array(std::string& out, int depth) {
    if (depth > kCanonicalJsonMaxDepth) return false;
    ++p_;  // '['
    out.push_back('[');
    skip_whitespace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      out.push_back(']');
      return true;
    }
    while (true) {
      if (!value(out, depth)) return false;
      skip_whitespace();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        ++p_;
        break;
      }
      if (*p_ != ',') return false;
      ++p_;
      out.push_back(',');
      skip_whitespace();
    }
    out.push_back(']');
    return true;
  }

  bool hex4(std::uint32_t& code) {
    if (end_ - p_ < 4) return false;
    code = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(p_[i]);
      if (h < 0) return false;
      code = (code << 4) | static_cast<std::uint32_t>(h);
    }
    p_ += 4;
    return true;
  }

  // Decodes a JSON string (p_ at the opening quote) into UTF-8 bytes.
  bool string(std::string& text) {
    ++p_;  // '"'
    while (true) {
      const char* run = p_;
      while (p_ != end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++p_;
      }
      text.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // raw control characters must be escaped
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_),
                                                   reinterpret_cast<const unsigned char*>(end_));
        if (n == 0) return false;
        text.append(p_, n);
        p_ += n;
        continue;
      }
      // Backslash.
      ++p_;
      if (p_ == end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"':
          text.push_back('"');
          break;
        case '\\':
          text.push_back('\\');
          break;
        case '/':
          text.push_back('/');
          break;
        case 'b':
          text.push_back('\b');
          break;
        case 'f':
          text.push_back('\f');
          break;
        case 'n':
          text.push_back('\n');
          break;
        case 'r':
          text.push_back('\r');
          break;
        case 't':
          text.push_back('\t');
          break;
        case 'u': {
          std::uint32_t code = 0;
          if (!hex4(code)) return false;
          if (code >= 0xDC00 && code <= 0xDFFF) return false;  // lone low surrogate
          if (code >= 0xD800 && code <= 0xDBFF) {
            std::uint32_t low = 0;
            if (!consume("\\u") || !hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(text, code);
          break;
        }
        default:
          return false;
      }
    }
  }

  bool number(std::string& out) {
    const char* begin = p_;
    const bool negative = p_ != end_ && *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_) return false;
    // Non-standard forms TF Serving's parser (rapidjson kParseNanAndInfFlag) accepts.
    if (*p_ == 'N') {
      if (!consume("NaN")) return false;
      out += "NaN";
      return true;
    }
    if (*p_ == 'I') {
      if (!consume("Infinity") && !consume("Inf")) return false;
      out += negative ? "-Infinity" : "Infinity";
      return true;
    }
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && is_digit(*p_)) ++p_;
    } else {
      return false;
    }
    bool integer_literal = true;
    bool has_exponent = false;
    if (p_ != end_ && *p_ == '.') {
      integer_literal = false;
      ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ != end_ && is_digit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer_literal = false;
      has_exponent = true;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ != end_ && is_digit(*p_)) ++p_;
    }
    const std::string_view text(begin, static_cast<std::size_t>(p_ - begin));
    if (integer_literal) {
      // Exact digits, whatever the size: int64 ids beyond 2^53 must not collide.
      out += text == "-0" ? std::string_view("0") : text;
      return true;
    }
    if (!has_exponent && is_short_canonical_decimal(text)) {
      out += text;  // what the conversions below would write, at a fraction of the cost
      return true;
    }
    double d = 0;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), d);
    if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size()) {
      out += text;  // outside the range of double: kept as written
      return true;
    }
    char buffer[64];
    std::to_chars_result written{};
    if (std::fabs(d) <= kMaxExactInteger && d == std::trunc(d)) {
      written = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(d));
    } else if (std::fabs(d) > kMaxExactInteger) {
      // Always with an exponent, so it can never equal the digits of an integer literal.
      written = std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::scientific);
    } else {
      written = std::to_chars(buffer, buffer + sizeof buffer, d);
    }
    out.append(buffer, written.ptr);
    return true;
  }

  const char* p_;
  const char* end_;
};

}  // namespace

std::optional<std::string> canonical_json(std::string_view body) {
  try {
    std::string out;
    out.reserve(body.size());
    Canonicalizer canonicalizer(body);
    if (!canonicalizer.run(out)) return std::nullopt;
    return out;
  } catch (const std::bad_alloc&) {
    return std::nullopt;
  } catch (const std::length_error&) {
    return std::nullopt;
  }
}

}  // namespace fusebox::cache
