#pragma once
// The `rules` tier of the degradation chain: deterministic answers from rules written in the
// configuration, for when no model can answer. Pure: no I/O, no clock.
//
// A rule matches on the model, the signature, request headers and values inside the request
// JSON (RFC 6901 JSON Pointers; per-instance conditions are evaluated on each element of
// "instances"). Its answer is a JSON template; the shape of a normal answer is preserved: a
// row-format request with N instances gets {"predictions": [...]} with N entries, a columnar
// request gets {"outputs": ...}, so clients parse a rule's answer like a model's.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/config/config.h"

namespace fusebox::degrade {

enum class ConditionOp : std::uint8_t { equals, in, exists, range };

struct Condition {
  std::string pointer;              // RFC 6901, e.g. "/instances/0/country" or, per instance, "/country"
  ConditionOp op = ConditionOp::equals;
  nlohmann::json value;             // equals: the value; in: an array of values
  std::optional<double> min, max;   // range: inclusive bounds, either may be absent
};

struct Rule {
  std::string name;
  // Request-level conditions (all must hold). Empty strings match anything.
  std::string model;
  std::string signature;
  std::map<std::string, std::string> headers;  // lowercase name -> exact value
  std::vector<Condition> when;                 // pointers into the whole request body
  // Per-instance conditions: evaluated on each element of "instances" (row format); the rule
  // answers an instance when all hold for it. Empty = every instance.
  std::vector<Condition> instance_when;
  // The answer for one instance (row format) or for the whole request (columnar "outputs").
  nlohmann::json prediction;
};

struct RuleSet {
  std::vector<Rule> rules;  // in order; the first rule that matches answers
};

struct RulesRequest {
  std::string_view model;
  std::string_view signature;                  // "" = serving_default
  const std::map<std::string, std::string>* headers = nullptr;  // lowercase names
  std::string_view body;                       // the request JSON
};

struct RulesAnswer {
  std::string rule;                            // name of the rule that answered (the first one)
  std::string body;                            // the JSON answer
};

// The rule set of a `rules` tier as configured (JSON values parsed; header names lowercased).
// Values that are not valid JSON become null (the loader rejects them before this runs).
RuleSet compile_rules(const std::vector<config::RuleConfig>& rules);

// The answer for `request`, or nullopt when no rule matches (or the body is not JSON).
// Row format: every instance must be answered by some rule (rules are tried in order per
// instance); otherwise nullopt. Columnar ("inputs"): the first rule whose request-level
// conditions hold answers {"outputs": prediction}.
std::optional<RulesAnswer> evaluate(const RuleSet& rules, const RulesRequest& request);

// Checks a rule set at load time; returns one message per problem ("rules[2].when[0].pointer:
// not a JSON Pointer (must start with /)"), empty when valid. Also reports rules that can never
// answer because an earlier rule with no conditions answers everything.
std::vector<std::string> validate(const RuleSet& rules);

}  // namespace fusebox::degrade
