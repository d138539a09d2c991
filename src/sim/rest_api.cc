#include "sim/rest_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "sim/tensor_json.h"

namespace tfs_sim {

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Length of the leading run of [^/:] (RE2 class; any byte but '/' and ':').
std::size_t name_span(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] != '/' && s[n] != ':') ++n;
  return n;
}

std::size_t digit_span(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  return n;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// libevent end_of_path() (EVHTTP_URI_NONCONFORMANT off): unreserved, sub-delims, ':', '@', '/',
// "%XX", and '?' outside the path part.
std::size_t end_of_part(std::string_view s, std::size_t i, bool allow_question) {
  static constexpr std::string_view kSubDelims = "!$&'()*+,;=";
  while (i < s.size()) {
    const char c = s[i];
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
        c == '~' || kSubDelims.find(c) != std::string_view::npos || c == ':' || c == '@' ||
        c == '/') {
      ++i;
    } else if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      i += 3;
    } else if (c == '?' && allow_question) {
      ++i;
    } else {
      break;
    }
  }
  return i;
}

// What evhttp_uri_parse() + TF's path_and_query make of a request target; nullopt when libevent
// rejects it (TF then answers 400 before any handler runs).
std::optional<std::string> libevent_path(std::string_view target) {
  std::string_view rest = target;
  // Scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
  if (const auto colon = rest.find(':'); colon != std::string_view::npos && colon > 0 &&
                                         std::isalpha(static_cast<unsigned char>(rest[0]))) {
    const auto scheme = rest.substr(0, colon);
    const bool ok = std::all_of(scheme.begin(), scheme.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
    });
    if (ok) rest = rest.substr(colon + 1);
  }
  bool has_authority = false;
  if (rest.size() >= 2 && rest[0] == '/' && rest[1] == '/') {
    has_authority = true;
    std::size_t end = 2;
    while (end < rest.size() && rest[end] != '/' && rest[end] != '?' && rest[end] != '#') ++end;
    rest = rest.substr(end);
  }
  const std::size_t path_end = end_of_part(rest, 0, false);
  std::string result(rest.substr(0, path_end));
  std::size_t i = path_end;
  if (i < rest.size() && rest[i] == '?') {
    const std::size_t q_end = end_of_part(rest, i + 1, true);
    result.append(rest.substr(i, q_end - i));
    i = q_end;
  }
  if (i < rest.size() && rest[i] == '#') {
    const std::size_t f_end = end_of_part(rest, i + 1, true);
    result.append(rest.substr(i, f_end - i));
    i = f_end;
  }
  if (i != rest.size()) return std::nullopt;
  const std::string_view path = std::string_view(result).substr(0, path_end);
  if (!has_authority && path.size() >= 2 && path[0] == '/' && path[1] == '/') return std::nullopt;
  if (!has_authority && rest.data() == target.data()) {
    // No scheme: the first path segment may not contain ':'.
    for (char c : path) {
      if (c == ':') return std::nullopt;
      if (c == '/') break;
    }
  }
  if (path.empty()) result.insert(0, "/");  // evhttp_uri_get_path() NULL -> "/"
  return result;
}

struct Captures {
  std::string_view model;
  std::string_view version;
  std::string_view label;
  std::string_view verb;         // prediction: classify|regress|predict as written
  std::string_view subresource;  // status: "metadata" as written, or empty
};

// (?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)
bool match_prediction(std::string_view path, Captures& caps) {
  static constexpr std::string_view kPrefix = "/v1/models/";
  if (!istarts_with(path, kPrefix)) return false;
  std::string_view rest = path.substr(kPrefix.size());
  const std::size_t n = name_span(rest);
  if (n == 0) return false;
  const std::string_view model = rest.substr(0, n);
  rest = rest.substr(n);
  auto verb_tail = [](std::string_view t, std::string_view& verb) {
    if (t.empty() || t[0] != ':') return false;
    const auto v = t.substr(1);
    if (iequals(v, "classify") || iequals(v, "regress") || iequals(v, "predict")) {
      verb = v;
      return true;
    }
    return false;
  };
  Captures c;
  c.model = model;
  if (istarts_with(rest, "/versions/")) {
    const auto d = rest.substr(10);
    const std::size_t k = digit_span(d);
    if (k > 0 && verb_tail(d.substr(k), c.verb)) {
      c.version = d.substr(0, k);
      caps = c;
      return true;
    }
  }
  if (istarts_with(rest, "/labels/")) {
    const auto l = rest.substr(8);
    const std::size_t k = name_span(l);
    if (k > 0 && verb_tail(l.substr(k), c.verb)) {
      c.label = l.substr(0, k);
      caps = c;
      return true;
    }
  }
  if (verb_tail(rest, c.verb)) {
    caps = c;
    return true;
  }
  return false;
}

// (?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?
bool match_status(std::string_view path, Captures& caps) {
  static constexpr std::string_view kPrefix = "/v1/models";
  if (!istarts_with(path, kPrefix)) return false;
  const std::string_view rest = path.substr(kPrefix.size());
  auto metadata_tail = [](std::string_view t, Captures& c) {
    if (t.empty()) return true;
    if (iequals(t, "/metadata")) {
      c.subresource = t.substr(1);
      return true;
    }
    return false;
  };
  // Everything after the optional model group, in RE2's leftmost-first preference order.
  auto tail = [&](std::string_view t, Captures& c) {
    if (istarts_with(t, "/versions/")) {
      const auto d = t.substr(10);
      const std::size_t k = digit_span(d);
      Captures attempt = c;
      if (k > 0 && metadata_tail(d.substr(k), attempt)) {
        attempt.version = d.substr(0, k);
        c = attempt;
        return true;
      }
    }
    if (istarts_with(t, "/labels/")) {
      const auto l = t.substr(8);
      const std::size_t k = name_span(l);
      Captures attempt = c;
      if (k > 0 && metadata_tail(l.substr(k), attempt)) {
        attempt.label = l.substr(0, k);
        c = attempt;
        return true;
      }
    }
    return metadata_tail(t, c);
  };
  if (!rest.empty() && rest[0] == '/') {
    const std::size_t n = name_span(rest.substr(1));
    Captures c;
    c.model = rest.substr(1, n);
    if (n > 0 && tail(rest.substr(1 + n), c)) {
      caps = c;
      return true;
    }
  }
  Captures c;
  if (tail(rest, c)) {
    caps = c;
    return true;
  }
  return false;
}

std::string servable_request_string(std::string_view model, std::optional<std::int64_t> version) {
  if (version) return "Specific(" + std::string(model) + ", " + std::to_string(*version) + ")";
  return "Latest(" + std::string(model) + ")";
}

void write_tensor_info(JsonWriter& w, const char* tensor_name) {
  w.start_object();
  w.key("dtype");
  w.string("DT_FLOAT");
  w.key("tensor_shape");
  w.start_object();
  w.key("dim");
  w.start_array();
  w.start_object();
  w.key("size");
  w.string("-1");
  w.key("name");
  w.string("");
  w.end_object();
  w.end_array();
  w.key("unknown_rank");
  w.boolean(false);
  w.end_object();
  w.key("name");
  w.string(tensor_name);
  w.end_object();
}

// tensorflow.serving.SignatureDefMap of the served signature.
void write_signature_def_map(JsonWriter& w) {
  w.start_object();
  w.key("signature_def");
  w.start_object();
  w.key("serving_default");
  w.start_object();
  w.key("inputs");
  w.start_object();
  w.key(kInputName);
  write_tensor_info(w, "x:0");
  w.end_object();
  w.key("outputs");
  w.start_object();
  w.key(kOutputName);
  write_tensor_info(w, "y:0");
  w.end_object();
  w.key("method_name");
  w.string("tensorflow/serving/predict");
  w.end_object();
  w.end_object();
  w.end_object();
}

void write_model_spec(JsonWriter& w, std::string_view model, std::int64_t version) {
  w.start_object();
  w.key("name");
  w.string(model);
  w.key("signature_name");
  w.string("");
  w.key("version");
  w.string(std::to_string(version));
  w.end_object();
}

}  // namespace

std::string curl_unescape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && is_hex(in[i + 1]) && is_hex(in[i + 2])) {
      unsigned value = 0;
      std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

Route match_route(std::string_view method, std::string_view target) {
  Route r;
  auto path = libevent_path(target);
  if (!path) {
    r.kind = RouteKind::bad_uri;
    return r;
  }
  r.path = std::move(*path);
  // RestApiRequestDispatcher: RE2::FullMatch(uri_path, "(?i)/v1/.*") ('.' excludes newline).
  if (!istarts_with(r.path, "/v1/") || r.path.find('\n') != std::string::npos) {
    r.kind = RouteKind::not_v1;
    return r;
  }
  r.kind = RouteKind::error;
  r.error = TfStatus::invalid_argument("Malformed request: " + std::string(method) + " " + r.path);
  Captures caps;
  bool matched = false;
  if (method == "POST") {
    matched = match_prediction(r.path, caps);
  } else if (method == "GET") {
    matched = match_status(r.path, caps);
  }
  if (!matched) return r;
  // ParseModelInfo(): decode the name, convert the version, decode the label.
  r.model = curl_unescape(caps.model);
  if (!caps.version.empty()) {
    std::int64_t v = 0;
    const auto [ptr, ec] =
        std::from_chars(caps.version.data(), caps.version.data() + caps.version.size(), v);
    if (ec != std::errc() || ptr != caps.version.data() + caps.version.size()) {
      r.error = TfStatus::invalid_argument(
          "Failed to convert version: " + std::string(caps.version) + " to numeric.");
      return r;
    }
    r.version = v;
  }
  if (!caps.label.empty()) r.label = curl_unescape(caps.label);
  if (method == "POST") {
    if (caps.verb == "predict") {
      r.kind = RouteKind::predict;
    } else if (caps.verb == "classify") {
      r.kind = RouteKind::classify;
    } else if (caps.verb == "regress") {
      r.kind = RouteKind::regress;
    }
    // Any other spelling ("PREDICT") keeps the Malformed request error, as in TF.
  } else {
    r.kind = caps.subresource == "metadata" ? RouteKind::metadata : RouteKind::status;
  }
  return r;
}

HttpReply libevent_error_page(int status) {
  const char* reason = status == 400   ? "Bad Request"
                       : status == 404 ? "Not Found"
                       : status == 413 ? "Request Entity Too Large"
                                       : "Error";
  HttpReply reply;
  reply.status = status;
  reply.content_type = "text/html; charset=ISO-8859-1";
  reply.body = "<HTML><HEAD>\n<TITLE>" + std::to_string(status) + " " + reason +
               "</TITLE>\n</HEAD><BODY>\n<H1>" + reason + "</H1>\n</BODY></HTML>\n";
  reply.close_connection = true;
  return reply;
}

RestApi::RestApi(RestApiConfig config) : config_(std::move(config)) {}

const ServedModel* RestApi::find_model(std::string_view name) const {
  for (const auto& m : config_.models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

HttpReply RestApi::error_reply(const TfStatus& status) const {
  HttpReply reply;
  reply.status = http_status_for(status.code);
  reply.body = write_error_body(status.message, config_.style);
  return reply;
}

HttpReply RestApi::ok_reply(std::string body) const {
  HttpReply reply;
  reply.body = std::move(body);
  return reply;
}

// ServerCore::GetServableHandle(): label -> version, then the manager's lookup.
TfStatus RestApi::resolve_servable(const Route& route, const FaultSet& faults, LinearModel& model,
                                   std::int64_t& version) const {
  const ServedModel* m = find_model(route.model);
  const bool faulted = faults.applies_to(route.model);
  const std::int64_t served = faulted && faults.version ? *faults.version : config_.version;
  std::optional<std::int64_t> wanted = route.version;
  if (route.label) {
    const auto it = config_.labels.find(*route.label);
    if (m == nullptr || it == config_.labels.end()) {
      return TfStatus::invalid_argument("Unrecognized servable version label: " + *route.label);
    }
    wanted = it->second.value_or(served);
  }
  const std::string request = servable_request_string(route.model, wanted);
  if (m == nullptr || (wanted && *wanted != served)) {
    return TfStatus::not_found("Servable not found for request: " + request);
  }
  const ModelState state =
      faulted && faults.model_state ? *faults.model_state : ModelState::available;
  if (state != ModelState::available) {
    if (faults.not_available_status == 404) {
      return TfStatus::not_found("Servable not found for request: " + request);
    }
    return TfStatus::unavailable("Servable not available for request: " + request +
                                 " (model state: " + to_string(state) + ")");
  }
  model = LinearModel::of(m->kind);
  version = served;
  return {};
}

HttpReply RestApi::handle(const Route& route, std::string_view body, const FaultSet& faults) const {
  switch (route.kind) {
    case RouteKind::not_v1:
      return libevent_error_page(404);
    case RouteKind::bad_uri:
      return libevent_error_page(400);
    case RouteKind::error:
      return error_reply(route.error);
    case RouteKind::predict:
      return predict(route, body, faults);
    case RouteKind::classify:
      return classify_or_regress(route, body, faults, true);
    case RouteKind::regress:
      return classify_or_regress(route, body, faults, false);
    case RouteKind::status:
      return status(route, faults);
    case RouteKind::metadata:
      return metadata(route, faults);
  }
  return libevent_error_page(404);
}

namespace {

// ParseJson(): TF's own empty check, rapidjson's errors, then "must be an object".
TfStatus parse_request_json(std::string_view body, JsonDocument& doc) {
  if (body.empty()) return TfStatus::invalid_argument("JSON Parse error: The document is empty");
  if (const auto error = doc.parse(body)) {
    return TfStatus::invalid_argument("JSON Parse error: " + error->reason +
                                      " at offset: " + std::to_string(error->offset));
  }
  return check_request_is_object(doc.root());
}

}  // namespace

HttpReply RestApi::predict(const Route& route, std::string_view body,
                           const FaultSet& faults) const {
  JsonDocument doc;
  TfStatus status = parse_request_json(body, doc);
  std::string signature;
  if (status.ok()) status = read_signature_name(doc.root(), signature);
  LinearModel model;
  std::int64_t version = 0;
  if (status.ok()) status = resolve_servable(route, faults, model, version);
  if (status.ok() && !signature.empty() && signature != "serving_default") {
    status = TfStatus::invalid_argument("Serving signature name: \"" + signature +
                                        "\" not found in signature def");
  }
  PredictInput input;
  if (status.ok()) status = read_predict_input(doc.root(), input);
  if (!status.ok()) return error_reply(status);
  model.apply_in_place(input.x.values);
  return ok_reply(write_predict_response(input.format, input.x, config_.style));
}

HttpReply RestApi::classify_or_regress(const Route& route, std::string_view body,
                                       const FaultSet& faults, bool classify) const {
  JsonDocument doc;
  TfStatus status = parse_request_json(body, doc);
  std::string signature;
  if (status.ok()) status = read_signature_name(doc.root(), signature);
  std::vector<float> xs;
  if (status.ok()) status = read_examples(doc.root(), xs);
  LinearModel model;
  std::int64_t version = 0;
  if (status.ok()) status = resolve_servable(route, faults, model, version);
  if (status.ok() && !signature.empty() && signature != "serving_default" &&
      signature != (classify ? "classify_x_to_y" : "regress_x_to_y")) {
    status = TfStatus::invalid_argument("No signature was found with the name: " + signature);
  }
  if (!status.ok()) return error_reply(status);
  model.apply_in_place(xs);
  return ok_reply(classify ? write_classify_response(xs, config_.style)
                           : write_regress_response(xs, config_.style));
}

RestApi::StatusLookup RestApi::lookup_status(const Route& route, const FaultSet& faults) const {
  StatusLookup result;
  if (route.model.empty()) {
    result.error = TfStatus::invalid_argument("Missing model name in request.");
    return result;
  }
  const ServedModel* m = find_model(route.model);
  const bool faulted = faults.applies_to(route.model);
  const std::int64_t served = faulted && faults.version ? *faults.version : config_.version;
  std::optional<std::int64_t> wanted = route.version;
  if (route.label) {
    const auto it = config_.labels.find(*route.label);
    if (m == nullptr || it == config_.labels.end()) {
      result.error =
          TfStatus::invalid_argument("Unrecognized servable version label: " + *route.label);
      return result;
    }
    wanted = it->second.value_or(served);
  }
  if (m == nullptr) {
    result.error = TfStatus::not_found("Could not find any versions of model " + route.model);
    return result;
  }
  if (wanted && *wanted != served) {
    result.error = TfStatus::not_found("Could not find version " + std::to_string(*wanted) +
                                       " of model " + route.model);
    return result;
  }
  result.version = served;
  result.state = faulted && faults.model_state ? *faults.model_state : ModelState::available;
  return result;
}

HttpReply RestApi::status(const Route& route, const FaultSet& faults) const {
  const StatusLookup lookup = lookup_status(route, faults);
  if (!lookup.error.ok()) return error_reply(lookup.error);
  const std::int64_t served = lookup.version;
  const ModelState state = lookup.state;
  // GetModelStatusResponse printed by protobuf's JSON printer (add_whitespace in tfserving style).
  const bool pretty = config_.style == JsonStyle::tfserving;
  JsonWriter w(config_.style, 1);
  w.start_object();
  w.key("model_version_status");
  w.start_array();
  w.start_object();
  w.key("version");
  w.string(std::to_string(served));
  w.key("state");
  w.string(to_string(state));
  w.key("status");
  w.start_object();
  w.key("error_code");
  w.string("OK");
  w.key("error_message");
  w.string("");
  w.end_object();
  w.end_object();
  w.end_array();
  w.end_object();
  std::string body = w.take();
  if (pretty) body.push_back('\n');
  return ok_reply(std::move(body));
}

HttpReply RestApi::metadata(const Route& route, const FaultSet& faults) const {
  if (route.model.empty()) {
    return error_reply(TfStatus::invalid_argument("Missing model name in request."));
  }
  LinearModel model;
  std::int64_t version = 0;
  if (auto status = resolve_servable(route, faults, model, version); !status.ok()) {
    return error_reply(status);
  }
  if (config_.style == JsonStyle::tfserving) {
    // http_rest_api_util.cc ToJsonString(GetModelMetadataResponse): two protobuf JSON documents
    // glued together by hand.
    JsonWriter spec(JsonStyle::tfserving, 1);
    write_model_spec(spec, route.model, version);
    JsonWriter sigs(JsonStyle::tfserving, 1);
    write_signature_def_map(sigs);
    std::string body = "{\n\"model_spec\":" + spec.take() +
                       "\n,\n\"metadata\": {\"signature_def\": " + sigs.take() + "\n}\n}\n";
    return ok_reply(std::move(body));
  }
  JsonWriter w(JsonStyle::compact);
  w.start_object();
  w.key("model_spec");
  write_model_spec(w, route.model, version);
  w.key("metadata");
  w.start_object();
  w.key("signature_def");
  write_signature_def_map(w);
  w.end_object();
  w.end_object();
  return ok_reply(w.take());
}

}  // namespace tfs_sim
