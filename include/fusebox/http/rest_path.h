#pragma once
// Classification of a request against TF Serving's REST surface, the way TF Serving itself
// matches it (case-insensitive regexes over the path, URL-decoded model name and label,
// all-digit int64 version). Pure; no allocation beyond the decoded strings.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusebox::http {

enum class RestVerb { status, metadata, predict, classify, regress };

struct RestTarget {
  RestVerb verb = RestVerb::status;
  std::string model;                   // URL-decoded
  std::optional<std::int64_t> version; // /versions/{v}
  std::optional<std::string> label;    // /labels/{l}, URL-decoded
};

enum class RestPathError {
  not_v1,            // path is not under /v1/ : TF Serving answers a plain 404 (no JSON body)
  malformed,         // under /v1/ but matches no API: 400 "Malformed request: <METHOD> <path>"
  missing_model,     // GET /v1/models : 400 "Missing model name in request."
  bad_version,       // digits that overflow int64: 400 "Failed to convert version: <v> to numeric."
  bad_encoding,      // undecodable %-escape in model or label: 400. Never produced by
                     // parse_rest_path: TF Serving decodes with curl_easy_unescape, which copies a
                     // bad escape ("%G1", "%4") literally instead of failing (see curl_unescape).
};

struct RestPathResult {
  std::optional<RestTarget> target;    // set on success
  RestPathError error = RestPathError::malformed;
  std::string message;                 // TF Serving's error text for `error` (empty for not_v1)
};

// `method` is the HTTP method as sent ("GET", "POST", ...; compared case-sensitively, as TF
// Serving does); `target` is the request target; anything from '?' on is ignored for matching
// (a deliberate difference: TF Serving matches the query too, so it answers 400 to
// "POST /v1/models/m:predict?x=1"). Model name and label are decoded with curl_unescape.
// Thread-safe (pure).
RestPathResult parse_rest_path(std::string_view method, std::string_view target);

// Percent-decoding exactly as curl_easy_unescape (and so TF Serving) does it: "%XX" with two hex
// digits becomes one byte (%00 included), '+' stays '+', and a '%' not followed by two hex digits
// is copied literally ("a%G1" -> "a%G1", "%4" -> "%4"). Never fails.
std::string curl_unescape(std::string_view in);

const char* to_string(RestVerb verb);

}  // namespace fusebox::http
