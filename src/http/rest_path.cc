#include "fusebox/http/rest_path.h"

#include <limits>

// A hand-written equivalent of the two RE2 patterns TF Serving matches REST paths with
// (tensorflow_serving/model_servers/http_rest_api_util.cc):
//
//   POST
//   (?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)
//   GET   (?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?
//
// behind the dispatcher pattern (?i)/v1/.* (anything else is a plain 404). RE2 details that
// matter and are reproduced here:
// - (?i) uses Unicode simple case folding, so besides ASCII case 's' also matches U+017F
//   (LONG S, bytes C5 BF) and 'k' matches U+212A (KELVIN SIGN); no other letter of the
//   keywords has a non-ASCII fold. \d is ASCII [0-9] only.
// - RE2 reads the text as UTF-8. A negated class such as [^/:] (and '.') matches one whole
//   character: an ASCII byte, or a lead byte C2-DF / E0-EF / F0-F4 followed by 1 / 2 / 3
//   continuation bytes (RE2 tolerates overlong E0/F0 forms, surrogates and values past
//   U+10FFFF). A byte that starts no character (80-BF, C0, C1, F5-FF, truncated sequence)
//   matches nothing, so a path containing one fails to match. '.' also excludes '\n'.
// - Captures follow leftmost-first (Perl) preference: the optional GET model group is tried
//   first, so "/v1/models/metadata" is the status of model "metadata" and
//   "/v1/models/versions/3" has an empty model name (then "Missing model name").
// Every other choice point is deterministic: names and digit runs stop only where the next
// literal must start ('/', ':' or the end), so greedy scanning equals the regex result.

namespace fusebox::http {
namespace {

constexpr char lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// Bytes of the multi-byte character starting at s[pos] (lead byte >= 0x80) as RE2 reads it for
// a class that contains U+0080..U+10FFFF; 0 when no character starts there.
std::size_t multibyte_length(std::string_view s, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  std::size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
  } else {
    return 0;
  }
  if (s.size() - pos < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((static_cast<unsigned char>(s[pos + i]) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// Matches the lowercase ASCII `keyword` at `pos` under RE2's (?i) folding; advances `pos`.
bool take_keyword(std::string_view s, std::size_t& pos, std::string_view keyword) {
  std::size_t p = pos;
  for (char k : keyword) {
    if (p < s.size() && lower_ascii(s[p]) == k) {
      ++p;
    } else if (k == 's' && s.substr(p, 2) == "\xC5\xBF") {  // U+017F LATIN SMALL LETTER LONG S
      p += 2;
    } else if (k == 'k' && s.substr(p, 3) == "\xE2\x84\xAA") {  // U+212A KELVIN SIGN
      p += 3;
    } else {
      return false;
    }
  }
  pos = p;
  return true;
}

// End of the longest [^/:]* run starting at `pos`.
std::size_t scan_segment(std::string_view s, std::size_t pos) {
  while (pos < s.size()) {
    const char c = s[pos];
    if (static_cast<unsigned char>(c) < 0x80) {  // the common case, kept inline
      if (c == '/' || c == ':') break;
      ++pos;
      continue;
    }
    const std::size_t length = multibyte_length(s, pos);
    if (length == 0) break;
    pos += length;
  }
  return pos;
}

// End of the longest [0-9]* run starting at `pos`.
std::size_t scan_digits(std::string_view s, std::size_t pos) {
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  return pos;
}

// (?i)/v1/.* as RE2 full-matches it.
bool under_v1(std::string_view path) {
  std::size_t pos = 0;
  if (!take_keyword(path, pos, "/v1/")) return false;
  while (pos < path.size()) {
    const char c = path[pos];
    if (static_cast<unsigned char>(c) < 0x80) {
      if (c == '\n') return false;
      ++pos;
      continue;
    }
    const std::size_t length = multibyte_length(path, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

// What the regex captured; views into the path.
struct Captures {
  std::string_view model;
  std::string_view version;
  std::string_view label;
  bool has_label = false;
  RestVerb verb = RestVerb::status;
};

// (?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))? at `pos`; advances `pos` when it matched.
void take_version_or_label(std::string_view s, std::size_t& pos, Captures& captures) {
  std::size_t p = pos;
  if (take_keyword(s, p, "/versions/")) {
    const std::size_t end = scan_digits(s, p);
    if (end > p) {
      captures.version = s.substr(p, end - p);
      pos = end;
    }
    return;  // "/labels/" cannot match where "/versions/" did
  }
  p = pos;
  if (take_keyword(s, p, "/labels/")) {
    const std::size_t end = scan_segment(s, p);
    if (end > p) {
      captures.label = s.substr(p, end - p);
      captures.has_label = true;
      pos = end;
    }
  }
}

// Everything of the GET pattern after the model group, to the end of `s`.
bool match_status_tail(std::string_view s, std::size_t pos, Captures& captures) {
  take_version_or_label(s, pos, captures);
  if (pos == s.size()) {
    captures.verb = RestVerb::status;
    return true;
  }
  if (take_keyword(s, pos, "/metadata") && pos == s.size()) {
    captures.verb = RestVerb::metadata;
    return true;
  }
  return false;
}

bool match_get(std::string_view path, Captures& captures) {
  std::size_t pos = 0;
  if (!take_keyword(path, pos, "/v1/models")) return false;
  // Preferred alternative: the optional model group is present.
  if (pos < path.size() && path[pos] == '/') {
    const std::size_t end = scan_segment(path, pos + 1);
    if (end > pos + 1) {
      Captures with_model;
      with_model.model = path.substr(pos + 1, end - pos - 1);
      if (match_status_tail(path, end, with_model)) {
        captures = with_model;
        return true;
      }
    }
  }
  captures = Captures{};
  return match_status_tail(path, pos, captures);
}

bool match_post(std::string_view path, Captures& captures) {
  std::size_t pos = 0;
  if (!take_keyword(path, pos, "/v1/models/")) return false;
  const std::size_t end = scan_segment(path, pos);
  if (end == pos) return false;
  captures.model = path.substr(pos, end - pos);
  pos = end;
  take_version_or_label(path, pos, captures);
  if (pos == path.size() || path[pos] != ':') return false;
  ++pos;
  struct Verb {
    std::string_view keyword;
    RestVerb verb;
  };
  static constexpr Verb kVerbs[] = {{"classify", RestVerb::classify},
                                    {"regress", RestVerb::regress},
                                    {"predict", RestVerb::predict}};
  for (const Verb& v : kVerbs) {
    std::size_t p = pos;
    if (take_keyword(path, p, v.keyword) && p == path.size()) {
      captures.verb = v.verb;
      return true;
    }
  }
  return false;
}

// absl::SimpleAtoi over an all-digit string: fails only on int64 overflow.
std::optional<std::int64_t> to_int64(std::string_view digits) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t value = 0;
  for (char c : digits) {
    const int digit = c - '0';
    if (value > (kMax - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

RestPathResult failure(RestPathError error, std::string message) {
  RestPathResult result;
  result.error = error;
  result.message = std::move(message);
  return result;
}

}  // namespace

RestPathResult parse_rest_path(std::string_view method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (!under_v1(path)) return failure(RestPathError::not_v1, {});

  Captures captures;
  const bool matched = (method == "POST" && match_post(path, captures)) ||
                       (method == "GET" && match_get(path, captures));
  if (!matched) {
    std::string message;
    message.reserve(20 + method.size() + path.size());
    message.append("Malformed request: ").append(method).append(" ").append(path);
    return failure(RestPathError::malformed, std::move(message));
  }

  // TF Serving's order: decode, convert the version, then (GET only) check the model name.
  std::optional<std::int64_t> version;
  if (!captures.version.empty()) {
    version = to_int64(captures.version);
    if (!version) {
      std::string message;
      message.reserve(40 + captures.version.size());
      message.append("Failed to convert version: ").append(captures.version).append(" to numeric.");
      return failure(RestPathError::bad_version, std::move(message));
    }
  }
  if (captures.model.empty()) {
    return failure(RestPathError::missing_model, "Missing model name in request.");
  }

  RestPathResult result;
  RestTarget& out = result.target.emplace();
  out.verb = captures.verb;
  out.model = curl_unescape(captures.model);
  out.version = version;
  if (captures.has_label) out.label = curl_unescape(captures.label);
  return result;
}

std::string curl_unescape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && in.size() - i >= 3) {
      const int high = hex_value(in[i + 1]);
      const int low = hex_value(in[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

const char* to_string(RestVerb verb) {
  switch (verb) {
    case RestVerb::status:
      return "status";
    case RestVerb::metadata:
      return "metadata";
    case RestVerb::predict:
      return "predict";
    case RestVerb::classify:
      return "classify";
    case RestVerb::regress:
      return "regress";
  }
  return "unknown";
}

}  // namespace fusebox::http
