#include "sim/faults.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace tfs_sim {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr double kMaxLatencyMs = 3600.0 * 1000.0;  // one hour; anything longer is a typo

std::chrono::microseconds from_ms(double ms) {
  return std::chrono::microseconds(static_cast<std::int64_t>(std::llround(ms * 1000.0)));
}

// Reads an optional non-negative millisecond field; returns false (and sets error) when invalid.
bool read_ms(const json& obj, const char* field, const std::string& path, double& out,
             std::string& error, bool& present) {
  present = false;
  const auto it = obj.find(field);
  if (it == obj.end()) return true;
  present = true;
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0 ||
      it->get<double>() > kMaxLatencyMs) {
    error = "'" + path + field + "' must be a number of milliseconds between 0 and 3600000";
    return false;
  }
  out = it->get<double>();
  return true;
}

bool read_rate(const json& obj, const char* field, double& out, std::string& error) {
  const auto it = obj.find(field);
  if (it == obj.end()) return true;
  if (!it->is_number() || !(it->get<double>() >= 0.0 && it->get<double>() <= 1.0)) {
    error = std::string("'") + field + "' must be a number between 0 and 1";
    return false;
  }
  out = it->get<double>();
  return true;
}

bool check_fields(const json& obj, std::initializer_list<const char*> allowed,
                  const std::string& path, std::string& error) {
  for (const auto& [key, value] : obj.items()) {
    const bool known = std::any_of(allowed.begin(), allowed.end(),
                                   [&key = key](const char* a) { return key == a; });
    if (!known) {
      error = "unknown field '" + path + key + "'";
      return false;
    }
  }
  return true;
}

bool parse_distribution(const json& d, LatencySpec& spec, std::string& error) {
  const std::string path = "latency_distribution.";
  if (!d.is_object()) {
    error = "'latency_distribution' must be an object with a 'kind'";
    return false;
  }
  const auto kind = d.find("kind");
  if (kind == d.end() || !kind->is_string()) {
    error = "'latency_distribution.kind' must be one of \"fixed\", \"uniform\", \"exponential\"";
    return false;
  }
  const std::string k = kind->get<std::string>();
  spec.simple_form = false;
  bool present = false;
  if (k == "fixed") {
    if (!check_fields(d, {"kind", "ms"}, path, error)) return false;
    if (!read_ms(d, "ms", path, spec.min_ms, error, present)) return false;
    if (!present) {
      error = "'latency_distribution.ms' is required for kind \"fixed\"";
      return false;
    }
    spec.kind = LatencySpec::Kind::fixed;
    spec.max_ms = spec.min_ms;
    return true;
  }
  if (k == "uniform") {
    if (!check_fields(d, {"kind", "min_ms", "max_ms"}, path, error)) return false;
    bool has_min = false;
    bool has_max = false;
    if (!read_ms(d, "min_ms", path, spec.min_ms, error, has_min)) return false;
    if (!read_ms(d, "max_ms", path, spec.max_ms, error, has_max)) return false;
    if (!has_min || !has_max) {
      error = "'latency_distribution.min_ms' and 'max_ms' are required for kind \"uniform\"";
      return false;
    }
    if (spec.max_ms < spec.min_ms) {
      error = "'latency_distribution.max_ms' must be >= 'min_ms'";
      return false;
    }
    spec.kind = LatencySpec::Kind::uniform;
    return true;
  }
  if (k == "exponential") {
    if (!check_fields(d, {"kind", "mean_ms", "min_ms", "max_ms"}, path, error)) return false;
    if (!read_ms(d, "mean_ms", path, spec.mean_ms, error, present)) return false;
    if (!present) {
      error = "'latency_distribution.mean_ms' is required for kind \"exponential\"";
      return false;
    }
    if (!read_ms(d, "min_ms", path, spec.min_ms, error, present)) return false;
    bool has_max = false;
    if (!read_ms(d, "max_ms", path, spec.max_ms, error, has_max)) return false;
    if (has_max && spec.max_ms < spec.min_ms) {
      error = "'latency_distribution.max_ms' must be >= 'min_ms'";
      return false;
    }
    spec.kind = LatencySpec::Kind::exponential;
    return true;
  }
  error = "'latency_distribution.kind' must be one of \"fixed\", \"uniform\", \"exponential\"";
  return false;
}

}  // namespace

std::chrono::microseconds LatencySpec::sample(std::mt19937_64& rng) const {
  switch (kind) {
    case Kind::none:
      return std::chrono::microseconds(0);
    case Kind::fixed:
      return from_ms(min_ms);
    case Kind::uniform: {
      if (max_ms <= min_ms) return from_ms(min_ms);
      std::uniform_real_distribution<double> dist(min_ms, max_ms);
      return from_ms(dist(rng));
    }
    case Kind::exponential: {
      double ms = min_ms;
      if (mean_ms > 0) {
        std::exponential_distribution<double> dist(1.0 / mean_ms);
        ms += dist(rng);
      }
      if (max_ms > 0) ms = std::min(ms, max_ms);
      return from_ms(std::min(ms, kMaxLatencyMs));
    }
  }
  return std::chrono::microseconds(0);
}

bool FaultSet::applies_to(std::string_view model) const {
  return models.empty() || std::find(models.begin(), models.end(), model) != models.end();
}

bool FaultSet::any() const {
  return latency.kind != LatencySpec::Kind::none || error_rate > 0 || hang || reset_rate > 0 ||
         model_state.has_value() || version.has_value();
}

FaultParseResult parse_fault_set(std::string_view text) {
  FaultParseResult result;
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    result.error = "faults must be a JSON object; the body is not valid JSON";
    return result;
  }
  if (!doc.is_object()) {
    result.error = "faults must be a JSON object";
    return result;
  }
  std::string& error = result.error;
  if (!check_fields(doc,
                    {"latency_ms", "latency_jitter_ms", "latency_distribution", "error_rate",
                     "error_status", "error_message", "hang", "reset_rate", "model_state",
                     "not_available_status", "version", "models"},
                    "", error)) {
    return result;
  }
  FaultSet f;

  const bool has_simple = doc.contains("latency_ms") || doc.contains("latency_jitter_ms");
  if (has_simple && doc.contains("latency_distribution")) {
    error = "give either 'latency_ms'/'latency_jitter_ms' or 'latency_distribution', not both";
    return result;
  }
  if (has_simple) {
    bool present = false;
    if (!read_ms(doc, "latency_ms", "", f.latency.latency_ms, error, present)) return result;
    if (!read_ms(doc, "latency_jitter_ms", "", f.latency.jitter_ms, error, present)) return result;
    f.latency.simple_form = true;
    f.latency.min_ms = std::max(0.0, f.latency.latency_ms - f.latency.jitter_ms);
    f.latency.max_ms = f.latency.latency_ms + f.latency.jitter_ms;
    if (f.latency.max_ms > 0) {
      f.latency.kind =
          f.latency.jitter_ms > 0 ? LatencySpec::Kind::uniform : LatencySpec::Kind::fixed;
    }
  } else if (const auto d = doc.find("latency_distribution"); d != doc.end()) {
    if (!parse_distribution(*d, f.latency, error)) return result;
  }

  if (!read_rate(doc, "error_rate", f.error_rate, error)) return result;
  if (const auto it = doc.find("error_status"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 100 ||
        it->get<std::int64_t>() > 599) {
      error = "'error_status' must be an integer HTTP status between 100 and 599";
      return result;
    }
    f.error_status = it->get<int>();
  }
  if (const auto it = doc.find("error_message"); it != doc.end()) {
    if (!it->is_string()) {
      error = "'error_message' must be a string";
      return result;
    }
    f.error_message = it->get<std::string>();
  }
  if (const auto it = doc.find("hang"); it != doc.end()) {
    if (!it->is_boolean()) {
      error = "'hang' must be true or false";
      return result;
    }
    f.hang = it->get<bool>();
  }
  if (!read_rate(doc, "reset_rate", f.reset_rate, error)) return result;
  if (const auto it = doc.find("model_state"); it != doc.end()) {
    const auto state = it->is_string() ? parse_model_state(it->get<std::string>()) : std::nullopt;
    if (!state) {
      error = "'model_state' must be one of UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END";
      return result;
    }
    f.model_state = *state;
  }
  if (const auto it = doc.find("not_available_status"); it != doc.end()) {
    if (!it->is_number_integer() ||
        (it->get<std::int64_t>() != 404 && it->get<std::int64_t>() != 503)) {
      error = "'not_available_status' must be 404 or 503";
      return result;
    }
    f.not_available_status = it->get<int>();
  }
  if (const auto it = doc.find("version"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
      error = "'version' must be a non-negative integer";
      return result;
    }
    f.version = it->get<std::int64_t>();
  }
  if (const auto it = doc.find("models"); it != doc.end()) {
    if (!it->is_array()) {
      error = "'models' must be a list of model names";
      return result;
    }
    for (const auto& m : *it) {
      if (!m.is_string() || m.get<std::string>().empty()) {
        error = "'models' must be a list of non-empty model names";
        return result;
      }
      f.models.push_back(m.get<std::string>());
    }
  }
  result.faults = std::move(f);
  return result;
}

std::string fault_set_to_json(const FaultSet& f) {
  ordered_json j = ordered_json::object();
  const auto& l = f.latency;
  if (l.kind != LatencySpec::Kind::none) {
    if (l.simple_form) {
      j["latency_ms"] = l.latency_ms;
      if (l.jitter_ms > 0) j["latency_jitter_ms"] = l.jitter_ms;
    } else {
      ordered_json d;
      switch (l.kind) {
        case LatencySpec::Kind::fixed:
          d["kind"] = "fixed";
          d["ms"] = l.min_ms;
          break;
        case LatencySpec::Kind::uniform:
          d["kind"] = "uniform";
          d["min_ms"] = l.min_ms;
          d["max_ms"] = l.max_ms;
          break;
        case LatencySpec::Kind::exponential:
          d["kind"] = "exponential";
          d["mean_ms"] = l.mean_ms;
          if (l.min_ms > 0) d["min_ms"] = l.min_ms;
          if (l.max_ms > 0) d["max_ms"] = l.max_ms;
          break;
        case LatencySpec::Kind::none:
          break;
      }
      j["latency_distribution"] = d;
    }
  }
  if (f.error_rate > 0) j["error_rate"] = f.error_rate;
  j["error_status"] = f.error_status;
  if (!f.error_message.empty()) j["error_message"] = f.error_message;
  if (f.hang) j["hang"] = true;
  if (f.reset_rate > 0) j["reset_rate"] = f.reset_rate;
  if (f.model_state) j["model_state"] = to_string(*f.model_state);
  if (f.not_available_status != 503) j["not_available_status"] = f.not_available_status;
  if (f.version) j["version"] = *f.version;
  if (!f.models.empty()) j["models"] = f.models;
  // Names and messages come from users: never throw on invalid UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string default_error_message(int http_status) {
  switch (http_status) {
    case 429:
      return "The batch scheduling queue to which this task was submitted is full";
    case 503:
      return "Servable not available (tfs-sim injected fault)";
    case 504:
      return "Timed out waiting for notification";
    default:
      return std::string(tf_code_name(tf_code_for_http_status(http_status))) +
             " (tfs-sim injected fault)";
  }
}

std::mt19937_64& thread_rng(const std::optional<std::uint64_t>& seed) {
  static std::atomic<std::uint64_t> next_stream{0};
  thread_local std::mt19937_64 rng = [&seed] {
    const std::uint64_t stream = next_stream.fetch_add(1);
    if (seed) return std::mt19937_64(*seed + stream * 0x9E3779B97F4A7C15ULL);
    std::random_device rd;
    return std::mt19937_64((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  }();
  return rng;
}

bool roll(double rate, std::mt19937_64& rng) {
  if (rate <= 0.0) return false;
  if (rate >= 1.0) return true;
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  return dist(rng) < rate;
}

}  // namespace tfs_sim
