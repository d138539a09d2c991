#include "fusebox/degrade/rules.h"

#include <cctype>

#include <cmath>
#include <cstddef>
#include <string>

namespace fusebox::degrade {

namespace {

using nlohmann::json;

// RFC 6901 syntax: "" or "/"-separated tokens where '~' is only followed by '0' or '1'.
// Returns an empty string when valid, else why not.
std::string pointer_syntax_error(std::string_view pointer) {
  if (pointer.empty()) return {};
  if (pointer.front() != '/') return "not a JSON Pointer (must start with /)";
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] != '~') continue;
    if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) {
      return "not a JSON Pointer (~ must be followed by 0 or 1)";
    }
  }
  return {};
}

// An RFC 6901 array index: "0" or digits without a leading zero ("-" never resolves).
bool array_index(std::string_view token, std::size_t size, std::size_t& index) {
  if (token.empty() || token.size() > 19) return false;
  if (token.size() > 1 && token.front() == '0') return false;
  std::size_t value = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::size_t>(c - '0');
  }
  if (value >= size) return false;
  index = value;
  return true;
}

// Resolves `pointer` inside `root` without exceptions (the request path must not throw);
// nullptr when the pointer is malformed or names nothing.
const json* resolve(const json& root, std::string_view pointer) {
  if (!pointer_syntax_error(pointer).empty()) return nullptr;
  const json* node = &root;
  std::size_t pos = 0;
  std::string token;
  while (pos < pointer.size()) {
    // pointer[pos] == '/'
    std::size_t end = pointer.find('/', pos + 1);
    if (end == std::string_view::npos) end = pointer.size();
    std::string_view raw = pointer.substr(pos + 1, end - pos - 1);
    token.clear();
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~') {
        token += raw[i + 1] == '0' ? '~' : '/';  // syntax already checked
        ++i;
      } else {
        token += raw[i];
      }
    }
    if (node->is_object()) {
      auto it = node->find(token);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      std::size_t index = 0;
      if (!array_index(token, node->size(), index)) return nullptr;
      node = &(*node)[index];
    } else {
      return nullptr;
    }
    pos = end;
  }
  return node;
}

bool holds(const Condition& condition, const json& root) {
  const json* target = resolve(root, condition.pointer);
  if (target == nullptr) return false;
  switch (condition.op) {
    case ConditionOp::exists:
      return true;
    case ConditionOp::equals:
      // nlohmann compares integers and floats by value, so 1 == 1.0.
      return *target == condition.value;
    case ConditionOp::in:
      if (!condition.value.is_array()) return false;
      for (const json& candidate : condition.value) {
        if (*target == candidate) return true;
      }
      return false;
    case ConditionOp::range: {
      if (!target->is_number()) return false;
      const double v = target->get<double>();
      if (condition.min && !(*condition.min <= v)) return false;
      if (condition.max && !(v <= *condition.max)) return false;
      return !std::isnan(v);
    }
  }
  return false;
}

bool all_hold(const std::vector<Condition>& conditions, const json& root) {
  for (const Condition& c : conditions) {
    if (!holds(c, root)) return false;
  }
  return true;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Model, signature, headers and `when`: everything that does not depend on one instance.
bool request_level_holds(const Rule& rule, const RulesRequest& request, std::string_view signature,
                         const json& body) {
  if (!rule.model.empty() && rule.model != request.model) return false;
  if (!rule.signature.empty() && rule.signature != signature) return false;
  if (!rule.headers.empty()) {
    if (request.headers == nullptr) return false;
    for (const auto& [name, value] : rule.headers) {
      // Header names are case-insensitive; request names arrive lowercase.
      auto it = request.headers->find(lowercase(name));
      if (it == request.headers->end() || it->second != value) return false;
    }
  }
  return all_hold(rule.when, body);
}

std::string compact(const json& j) {
  // Replace invalid UTF-8 instead of throwing (dump() throws type_error 316 by default).
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<RulesAnswer> evaluate_parsed(const RuleSet& rules, const RulesRequest& request,
                                           const json& body) {
  if (!body.is_object()) return std::nullopt;
  const auto instances = body.find("instances");
  const auto inputs = body.find("inputs");
  const bool row = instances != body.end();
  const bool columnar = inputs != body.end();
  // Both or neither is a client error TF Serving answers with 400: do not mask it.
  if (row == columnar) return std::nullopt;

  // The signature the request names: the caller's, else the body's, else the default.
  std::string_view signature = request.signature;
  if (signature.empty()) {
    auto it = body.find("signature_name");
    if (it != body.end() && it->is_string()) signature = it->get_ref<const std::string&>();
  }
  if (signature.empty()) signature = "serving_default";

  std::vector<char> eligible(rules.rules.size(), 0);
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    eligible[i] = request_level_holds(rules.rules[i], request, signature, body) ? 1 : 0;
  }

  if (columnar) {
    for (std::size_t i = 0; i < rules.rules.size(); ++i) {
      if (!eligible[i]) continue;
      const Rule& rule = rules.rules[i];
      json answer = json::object();
      answer["outputs"] = rule.prediction;
      return RulesAnswer{rule.name, compact(answer)};
    }
    return std::nullopt;
  }

  if (!instances->is_array() || instances->empty()) return std::nullopt;
  json predictions = json::array();
  std::string first_rule;
  for (const json& instance : *instances) {
    const Rule* answered_by = nullptr;
    for (std::size_t i = 0; i < rules.rules.size(); ++i) {
      if (eligible[i] && all_hold(rules.rules[i].instance_when, instance)) {
        answered_by = &rules.rules[i];
        break;
      }
    }
    if (answered_by == nullptr) return std::nullopt;
    if (predictions.empty()) first_rule = answered_by->name;
    predictions.push_back(answered_by->prediction);
  }
  json answer = json::object();
  answer["predictions"] = std::move(predictions);
  return RulesAnswer{std::move(first_rule), compact(answer)};
}

void validate_conditions(const std::vector<Condition>& conditions, const std::string& prefix,
                         std::vector<std::string>& problems) {
  for (std::size_t j = 0; j < conditions.size(); ++j) {
    const Condition& c = conditions[j];
    const std::string at = prefix + "[" + std::to_string(j) + "]";
    if (std::string why = pointer_syntax_error(c.pointer); !why.empty()) {
      problems.push_back(at + ".pointer: " + why + ": \"" + c.pointer + "\"");
    }
    switch (c.op) {
      case ConditionOp::equals:
        if (c.value.is_null()) problems.push_back(at + ".value: equals needs a value");
        break;
      case ConditionOp::in:
        if (c.value.is_null()) {
          problems.push_back(at + ".value: in needs a value (an array)");
        } else if (!c.value.is_array()) {
          problems.push_back(at + ".value: in needs an array of values");
        }
        break;
      case ConditionOp::exists:
        break;
      case ConditionOp::range:
        if (!c.min && !c.max) {
          problems.push_back(at + ": range needs min or max");
          break;
        }
        if (c.min && std::isnan(*c.min)) problems.push_back(at + ".min: not a number");
        if (c.max && std::isnan(*c.max)) problems.push_back(at + ".max: not a number");
        if (c.min && c.max && *c.min > *c.max) {
          problems.push_back(at + ": range min (" + json(*c.min).dump() + ") > max (" +
                             json(*c.max).dump() + ")");
        }
        break;
    }
  }
}

bool answers_everything(const Rule& rule) {
  return rule.model.empty() && rule.signature.empty() && rule.headers.empty() &&
         rule.when.empty() && rule.instance_when.empty();
}

}  // namespace

std::optional<RulesAnswer> evaluate(const RuleSet& rules, const RulesRequest& request) {
  try {
    json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return std::nullopt;
    return evaluate_parsed(rules, request, body);
  } catch (...) {
    // Nothing above throws by design (no json_pointer, no at(), non-throwing dump); this only
    // guards against allocation failure so the data path never sees an exception.
    return std::nullopt;
  }
}

std::vector<std::string> validate(const RuleSet& rules) {
  std::vector<std::string> problems;
  std::optional<std::size_t> catch_all;
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    const Rule& rule = rules.rules[i];
    const std::string at = "rules[" + std::to_string(i) + "]";
    if (catch_all) {
      problems.push_back(at + ": unreachable: rules[" + std::to_string(*catch_all) +
                         "] answers every request");
    }
    validate_conditions(rule.when, at + ".when", problems);
    validate_conditions(rule.instance_when, at + ".instance_when", problems);
    if (rule.prediction.is_null()) problems.push_back(at + ".prediction: missing");
    if (!catch_all && answers_everything(rule)) catch_all = i;
  }
  return problems;
}

RuleSet compile_rules(const std::vector<config::RuleConfig>& rules) {
  auto parse = [](const std::string& text) {
    if (text.empty()) return nlohmann::json();
    auto value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    return value.is_discarded() ? nlohmann::json() : value;
  };
  auto conditions = [&](const std::vector<config::RuleConditionConfig>& in) {
    std::vector<Condition> out;
    for (const auto& c : in) {
      Condition condition;
      condition.pointer = c.pointer;
      condition.op = c.op == "in"       ? ConditionOp::in
                     : c.op == "exists" ? ConditionOp::exists
                     : c.op == "range"  ? ConditionOp::range
                                        : ConditionOp::equals;
      condition.value = parse(c.value_json);
      condition.min = c.min;
      condition.max = c.max;
      out.push_back(std::move(condition));
    }
    return out;
  };
  RuleSet set;
  for (const auto& r : rules) {
    Rule rule;
    rule.name = r.name;
    rule.model = r.model;
    rule.signature = r.signature;
    for (const auto& [name, value] : r.headers) {
      std::string lower;
      for (char ch : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      rule.headers[lower] = value;
    }
    rule.when = conditions(r.when);
    rule.instance_when = conditions(r.instance_when);
    rule.prediction = parse(r.prediction_json);
    set.rules.push_back(std::move(rule));
  }
  return set;
}

}  // namespace fusebox::degrade
