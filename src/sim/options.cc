#include "sim/options.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

namespace tfs_sim {

namespace {

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

bool parse_number(std::string_view text, double& out) {
  if (text.empty()) return false;
  const std::string copy(text);
  char* end = nullptr;
  out = std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size() && std::isfinite(out);
}

double to_ms(std::chrono::microseconds d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace

std::optional<std::chrono::microseconds> parse_duration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double micros;
  };
  static constexpr Unit kUnits[] = {{"us", 1.0}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}};
  double scale = 1e3;  // bare number: milliseconds
  std::string_view number = text;
  for (const auto& unit : kUnits) {
    if (text.size() > unit.suffix.size() && text.ends_with(unit.suffix)) {
      const auto head = text.substr(0, text.size() - unit.suffix.size());
      // "ms" also ends with "s": only accept the unit when what precedes is a number.
      double probe = 0;
      if (parse_number(head, probe)) {
        number = head;
        scale = unit.micros;
        break;
      }
    }
  }
  double value = 0;
  if (!parse_number(number, value) || value < 0) return std::nullopt;
  return std::chrono::microseconds(static_cast<std::int64_t>(std::llround(value * scale)));
}

std::string usage() {
  return R"(tfs-sim: a TensorFlow Serving REST and gRPC stand-in (y = 0.5x + 2 and friends) with fault injection

Usage: tfs-sim [--rest-port N] [--grpc-port N] [--address A] [--model NAME[:KIND]]... [options]

Serving:
  --rest-port N           port to listen on (default 8501; 0 picks a free one). The first line on
                          stdout is the bound port.
  --grpc-port N           also serve TF Serving's gRPC API (PredictionService, ModelService) on
                          this port (0 picks a free one). The second line on stdout is the bound
                          gRPC port. Default: no gRPC.
  --address A             address to bind (default 127.0.0.1)
  --model NAME[:KIND]     serve a model (repeatable). KIND: half_plus_two (y = 0.5x + 2, default)
                          or half_plus_three (y = 0.5x + 3). Default: one model "half_plus_two".
  --version N             version every model serves (default 1)
  --label NAME[=VERSION]  a version label (repeatable; default: "stable" and "canary", both
                          following the served version)
  --threads N             I/O threads (default 1)
  --json-style STYLE      compact (default): {"predictions": [2.5, 3.0]};
                          tfserving: TF Serving's exact multi-line layout
  --idle-timeout DUR      keep-alive idle / request read timeout (default 60s)
  --seed N                seed for the fault dice (default: random)

Faults (apply to /v1 requests and gRPC calls; change them at run time with POST /sim/faults):
  --latency DUR           delay every answer (e.g. 200ms, 1.5s; a bare number is ms)
  --latency-jitter DUR    uniform +- jitter around --latency
  --error-rate R          share of requests (0..1) answered with --error-status
  --error-status S        HTTP status of injected errors (default 503; gRPC answers the
                          matching code: 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED, ...)
  --error-message TEXT    error text (default: a TF-like message for the status)
  --hang                  read requests but never answer (gRPC: until the call's deadline or
                          cancellation)
  --reset-rate R          share of requests (0..1) answered with a TCP reset (gRPC: UNAVAILABLE)
  --model-state STATE     UNKNOWN|START|LOADING|AVAILABLE|UNLOADING|END (status reports it;
                          inference fails unless AVAILABLE)
  --not-available-status S  404 (TF's "Servable not found") or 503 (default) while not AVAILABLE
  --fault-models A,B      the models the faults apply to (default: all)
  --faults JSON           the whole fault set as JSON (instead of the flags above)

  --help                  this text

Control API on the same port: GET/POST/DELETE /sim/faults, GET /sim/stats,
POST /sim/stats/reset, GET /sim/health. See docs/tfs-sim.md.
)";
}

OptionsResult parse_options(const std::vector<std::string>& args) {
  OptionsResult result;
  SimOptions o;
  nlohmann::json fault_flags = nlohmann::json::object();
  std::optional<std::string> faults_json;
  bool labels_given = false;
  std::set<std::string> model_names;

  auto fail = [&result](std::string message) {
    result.error = std::move(message);
    return result;
  };

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    auto value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    auto need = [&](std::string& out) {
      auto v = value();
      if (!v) {
        result.error = flag + " needs a value";
        return false;
      }
      out = *v;
      return true;
    };
    std::string v;
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--rest-port") {
      if (!need(v)) return result;
      if (!parse_int(v, o.rest_port)) return fail("--rest-port: not a port number: " + v);
    } else if (flag == "--grpc-port") {
      if (!need(v)) return result;
      std::uint16_t port = 0;
      if (!parse_int(v, port)) return fail("--grpc-port: not a port number: " + v);
      o.grpc_port = port;
    } else if (flag == "--address") {
      if (!need(v)) return result;
      o.address = v;
    } else if (flag == "--model") {
      if (!need(v)) return result;
      ServedModel m;
      const auto colon = v.find(':');
      m.name = v.substr(0, colon);
      if (colon != std::string::npos) {
        const auto kind = parse_model_kind(v.substr(colon + 1));
        if (!kind) {
          return fail("--model " + v + ": unknown kind '" + v.substr(colon + 1) +
                      "' (known: half_plus_two, half_plus_three)");
        }
        m.kind = *kind;
      }
      if (m.name.empty()) return fail("--model " + v + ": empty model name");
      if (!model_names.insert(m.name).second) return fail("--model " + m.name + " given twice");
      o.models.push_back(m);
    } else if (flag == "--version") {
      if (!need(v)) return result;
      if (!parse_int(v, o.version) || o.version < 0) return fail("--version: not a version: " + v);
    } else if (flag == "--label") {
      if (!need(v)) return result;
      if (!labels_given) o.labels.clear();
      labels_given = true;
      const auto eq = v.find('=');
      const std::string name = v.substr(0, eq);
      if (name.empty()) return fail("--label " + v + ": empty label");
      std::optional<std::int64_t> version;
      if (eq != std::string::npos) {
        std::int64_t n = 0;
        if (!parse_int(std::string_view(v).substr(eq + 1), n) || n < 0) {
          return fail("--label " + v + ": not a version after '='");
        }
        version = n;
      }
      o.labels[name] = version;
    } else if (flag == "--threads") {
      if (!need(v)) return result;
      if (!parse_int(v, o.threads) || o.threads < 1 || o.threads > 256) {
        return fail("--threads: expected 1..256, got " + v);
      }
    } else if (flag == "--json-style") {
      if (!need(v)) return result;
      if (v == "compact") {
        o.json_style = JsonStyle::compact;
      } else if (v == "tfserving") {
        o.json_style = JsonStyle::tfserving;
      } else {
        return fail("--json-style: expected compact or tfserving, got " + v);
      }
    } else if (flag == "--idle-timeout") {
      if (!need(v)) return result;
      const auto d = parse_duration(v);
      if (!d || d->count() < 1000)
        return fail("--idle-timeout: expected a duration >= 1ms, got " + v);
      o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    } else if (flag == "--seed") {
      if (!need(v)) return result;
      std::uint64_t seed = 0;
      if (!parse_int(v, seed)) return fail("--seed: not an unsigned integer: " + v);
      o.seed = seed;
    } else if (flag == "--latency" || flag == "--latency-jitter") {
      if (!need(v)) return result;
      const auto d = parse_duration(v);
      if (!d) return fail(flag + ": not a duration: " + v);
      fault_flags[flag == "--latency" ? "latency_ms" : "latency_jitter_ms"] = to_ms(*d);
    } else if (flag == "--error-rate" || flag == "--reset-rate") {
      if (!need(v)) return result;
      double rate = 0;
      if (!parse_number(v, rate)) return fail(flag + ": not a number: " + v);
      fault_flags[flag == "--error-rate" ? "error_rate" : "reset_rate"] = rate;
    } else if (flag == "--error-status" || flag == "--not-available-status") {
      if (!need(v)) return result;
      int status = 0;
      if (!parse_int(v, status)) return fail(flag + ": not an HTTP status: " + v);
      fault_flags[flag == "--error-status" ? "error_status" : "not_available_status"] = status;
    } else if (flag == "--error-message") {
      if (!need(v)) return result;
      fault_flags["error_message"] = v;
    } else if (flag == "--hang") {
      if (inline_value) return fail("--hang takes no value");
      fault_flags["hang"] = true;
    } else if (flag == "--model-state") {
      if (!need(v)) return result;
      fault_flags["model_state"] = v;
    } else if (flag == "--fault-models") {
      if (!need(v)) return result;
      nlohmann::json list = nlohmann::json::array();
      std::size_t start = 0;
      while (start <= v.size()) {
        const auto comma = v.find(',', start);
        list.push_back(
            v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      fault_flags["models"] = list;
    } else if (flag == "--faults") {
      if (!need(v)) return result;
      faults_json = v;
    } else {
      return fail("unknown flag: " + args[i]);
    }
  }

  if (faults_json && !fault_flags.empty()) {
    return fail("--faults replaces the individual fault flags; give one or the other");
  }
  const std::string fault_text =
      faults_json ? *faults_json
                  : fault_flags.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto parsed = parse_fault_set(fault_text);
  if (!parsed.faults) return fail("faults: " + parsed.error);
  o.faults = std::move(*parsed.faults);

  if (o.models.empty()) o.models.push_back(ServedModel{"half_plus_two", ModelKind::half_plus_two});
  if (!labels_given) {
    o.labels["stable"] = std::nullopt;
    o.labels["canary"] = std::nullopt;
  }
  result.options = std::move(o);
  return result;
}

}  // namespace tfs_sim
