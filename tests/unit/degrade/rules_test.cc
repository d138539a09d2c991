#include "fusebox/degrade/rules.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace fusebox::degrade {
namespace {

using nlohmann::json;

Condition equals(std::string pointer, json value) {
  Condition c;
  c.pointer = std::move(pointer);
  c.op = ConditionOp::equals;
  c.value = std::move(value);
  return c;
}

Condition in(std::string pointer, json values) {
  Condition c = equals(std::move(pointer), std::move(values));
  c.op = ConditionOp::in;
  return c;
}

Condition exists(std::string pointer) {
  Condition c;
  c.pointer = std::move(pointer);
  c.op = ConditionOp::exists;
  return c;
}

Condition range(std::string pointer, std::optional<double> min, std::optional<double> max) {
  Condition c;
  c.pointer = std::move(pointer);
  c.op = ConditionOp::range;
  c.min = min;
  c.max = max;
  return c;
}

Rule rule(std::string name, json prediction) {
  Rule r;
  r.name = std::move(name);
  r.prediction = std::move(prediction);
  return r;
}

RulesRequest request(std::string_view body, std::string_view model = "resnet",
                     const std::map<std::string, std::string>* headers = nullptr,
                     std::string_view signature = "") {
  RulesRequest r;
  r.model = model;
  r.signature = signature;
  r.headers = headers;
  r.body = body;
  return r;
}

// Every answer must parse like a TF Serving answer; returns it parsed.
json parsed(const std::optional<RulesAnswer>& answer) {
  EXPECT_TRUE(answer.has_value());
  if (!answer) return json();
  json j = json::parse(answer->body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << answer->body;
  EXPECT_TRUE(j.is_object()) << answer->body;
  EXPECT_EQ(j.size(), 1u) << answer->body;
  return j;
}

// One condition evaluated as a request-level `when` on a columnar body {"inputs": ..., ...}.
struct OperatorCase {
  const char* what;
  Condition condition;
  const char* body;
  bool matches;
};

void run_operator_table(const std::vector<OperatorCase>& cases) {
  for (const OperatorCase& c : cases) {
    RuleSet set;
    Rule r = rule("r", json{{"y", 1}});
    r.when.push_back(c.condition);
    set.rules.push_back(r);
    auto answer = evaluate(set, request(c.body));
    EXPECT_EQ(answer.has_value(), c.matches) << c.what << ": " << c.body;
    if (answer && c.matches) {
      EXPECT_EQ(answer->body, R"({"outputs":{"y":1}})") << c.what;
      EXPECT_EQ(answer->rule, "r");
    }
  }
}

TEST(RulesEquals, ComparesJsonValuesWithNumbersByValue) {
  run_operator_table({
      {"string equal", equals("/c", "fr"), R"({"inputs":1,"c":"fr"})", true},
      {"string differs", equals("/c", "fr"), R"({"inputs":1,"c":"de"})", false},
      {"int vs float", equals("/n", 1), R"({"inputs":1,"n":1.0})", true},
      {"float vs int", equals("/n", 1.0), R"({"inputs":1,"n":1})", true},
      {"exponent form", equals("/n", 10), R"({"inputs":1,"n":1e1})", true},
      {"negative int vs float", equals("/n", -3), R"({"inputs":1,"n":-3.0})", true},
      {"number differs", equals("/n", 1), R"({"inputs":1,"n":1.5})", false},
      {"number vs string", equals("/n", 1), R"({"inputs":1,"n":"1"})", false},
      {"bool", equals("/b", true), R"({"inputs":1,"b":true})", true},
      {"bool vs 1", equals("/b", true), R"({"inputs":1,"b":1})", false},
      {"object equal, other key order", equals("/o", json{{"a", 1}, {"b", 2.0}}),
       R"({"inputs":1,"o":{"b":2,"a":1}})", true},
      {"array equal", equals("/a", json::array({1, 2})), R"({"inputs":1,"a":[1.0,2]})", true},
      {"array order matters", equals("/a", json::array({1, 2})), R"({"inputs":1,"a":[2,1]})",
       false},
      {"missing pointer", equals("/c", "fr"), R"({"inputs":1})", false},
      {"escaped key ~1", equals("/a~1b", 7), R"({"inputs":1,"a/b":7})", true},
      {"escaped key ~0", equals("/a~0b", 7), R"({"inputs":1,"a~b":7})", true},
      {"array index", equals("/inputs/x/1", 5), R"({"inputs":{"x":[4,5]}})", true},
      {"index out of range", equals("/inputs/x/2", 5), R"({"inputs":{"x":[4,5]}})", false},
      {"leading zero index", equals("/inputs/x/01", 5), R"({"inputs":{"x":[4,5]}})", false},
      {"dash index", equals("/inputs/x/-", 5), R"({"inputs":{"x":[4,5]}})", false},
      {"through a scalar", equals("/c/d", 1), R"({"inputs":1,"c":3})", false},
      {"malformed pointer", equals("c", "fr"), R"({"inputs":1,"c":"fr"})", false},
  });
}

TEST(RulesIn, TrueWhenTheTargetEqualsAnyElement) {
  run_operator_table({
      {"member", in("/c", json::array({"fr", "de"})), R"({"inputs":1,"c":"de"})", true},
      {"not a member", in("/c", json::array({"fr", "de"})), R"({"inputs":1,"c":"it"})", false},
      {"numeric member by value", in("/n", json::array({1, 2})), R"({"inputs":1,"n":2.0})", true},
      {"mixed types", in("/n", json::array({"2", 3})), R"({"inputs":1,"n":2})", false},
      {"empty list", in("/c", json::array()), R"({"inputs":1,"c":"fr"})", false},
      {"missing pointer", in("/c", json::array({"fr"})), R"({"inputs":1})", false},
      {"value not an array", in("/c", "fr"), R"({"inputs":1,"c":"fr"})", false},
  });
}

TEST(RulesExists, TrueWhenThePointerResolves) {
  run_operator_table({
      {"present", exists("/c"), R"({"inputs":1,"c":"fr"})", true},
      {"present but null", exists("/c"), R"({"inputs":1,"c":null})", true},
      {"absent", exists("/c"), R"({"inputs":1})", false},
      {"nested present", exists("/inputs/x"), R"({"inputs":{"x":[1]}})", true},
      {"whole document", exists(""), R"({"inputs":1})", true},
      {"empty key", exists("/"), R"({"inputs":1,"":0})", true},
      {"empty key absent", exists("/"), R"({"inputs":1})", false},
  });
}

TEST(RulesRange, InclusiveBoundsOnNumbersOnly) {
  run_operator_table({
      {"inside", range("/n", 1, 10), R"({"inputs":1,"n":5})", true},
      {"at min", range("/n", 1, 10), R"({"inputs":1,"n":1})", true},
      {"at max", range("/n", 1, 10), R"({"inputs":1,"n":10.0})", true},
      {"below", range("/n", 1, 10), R"({"inputs":1,"n":0.999})", false},
      {"above", range("/n", 1, 10), R"({"inputs":1,"n":10.001})", false},
      {"min only", range("/n", 1, std::nullopt), R"({"inputs":1,"n":1e9})", true},
      {"min only below", range("/n", 1, std::nullopt), R"({"inputs":1,"n":-1})", false},
      {"max only", range("/n", std::nullopt, 0), R"({"inputs":1,"n":-7})", true},
      {"max only above", range("/n", std::nullopt, 0), R"({"inputs":1,"n":1})", false},
      {"string number", range("/n", 1, 10), R"({"inputs":1,"n":"5"})", false},
      {"bool", range("/n", 0, 10), R"({"inputs":1,"n":true})", false},
      {"missing", range("/n", 1, 10), R"({"inputs":1})", false},
      {"unsigned big", range("/n", 0, std::nullopt), R"({"inputs":1,"n":18446744073709551615})",
       true},
  });
}

TEST(RulesRow, AnswersEveryInstanceWithOnePrediction) {
  RuleSet set;
  set.rules.push_back(rule("all", json::array({0.5})));
  for (int n : {1, 2, 3, 17}) {
    json body = {{"instances", json::array()}};
    for (int i = 0; i < n; ++i) body["instances"].push_back(i);
    std::string text = body.dump();
    auto answer = evaluate(set, request(text));
    json j = parsed(answer);
    ASSERT_TRUE(j.contains("predictions")) << n;
    ASSERT_EQ(j["predictions"].size(), static_cast<std::size_t>(n));
    for (const json& p : j["predictions"]) EXPECT_EQ(p, json::array({0.5}));
    EXPECT_EQ(answer->rule, "all");
  }
}

TEST(RulesRow, EachInstanceTakesTheFirstRuleThatMatchesIt) {
  RuleSet set;
  Rule fr = rule("fr", json{{"items", {"croissant"}}});
  fr.instance_when.push_back(equals("/country", "fr"));
  Rule adult = rule("adult", json{{"items", {"wine"}}});
  adult.instance_when.push_back(range("/age", 18, std::nullopt));
  Rule rest = rule("rest", json{{"items", {"bestseller"}}});
  set.rules = {fr, adult, rest};

  auto answer = evaluate(set, request(R"({"instances":[
      {"country":"de","age":30},
      {"country":"fr","age":30},
      {"country":"it","age":12},
      {"age":18.0}]})"));
  json j = parsed(answer);
  EXPECT_EQ(j, json::parse(R"({"predictions":[
      {"items":["wine"]},{"items":["croissant"]},{"items":["bestseller"]},{"items":["wine"]}]})"));
  EXPECT_EQ(answer->rule, "adult");  // the rule that answered the first instance
}

TEST(RulesRow, OneUnansweredInstanceMeansNoAnswer) {
  RuleSet set;
  Rule fr = rule("fr", "croissant");
  fr.instance_when.push_back(equals("/country", "fr"));
  Rule de = rule("de", "bretzel");
  de.instance_when.push_back(in("/country", json::array({"de", "at"})));
  set.rules = {fr, de};

  EXPECT_TRUE(evaluate(set, request(R"({"instances":[{"country":"fr"},{"country":"at"}]})")));
  EXPECT_FALSE(evaluate(set, request(R"({"instances":[{"country":"fr"},{"country":"it"}]})")));
  EXPECT_FALSE(evaluate(set, request(R"({"instances":[{"country":"it"},{"country":"fr"}]})")));
  EXPECT_FALSE(evaluate(set, request(R"({"instances":[{"other":"fr"}]})")));
}

TEST(RulesRow, ScalarInstancesUseTheEmptyPointer) {
  // half_plus_two style: instances are plain numbers.
  RuleSet set;
  Rule small = rule("small", 2.0);
  small.instance_when.push_back(range("", std::nullopt, 1));
  Rule big = rule("big", 4.5);
  big.instance_when.push_back(range("", 1, std::nullopt));
  set.rules = {small, big};
  auto answer = evaluate(set, request(R"({"instances":[0.5, 1.0, 5.0]})"));
  EXPECT_EQ(answer->body, R"({"predictions":[2.0,2.0,4.5]})");
  EXPECT_EQ(answer->rule, "small");
}

TEST(RulesRow, RequestLevelConditionsGateEveryInstance) {
  RuleSet set;
  Rule vip = rule("vip", "gold");
  vip.when.push_back(equals("/context/tier", "vip"));
  Rule rest = rule("rest", "basic");
  rest.instance_when.push_back(exists("/x"));
  set.rules = {vip, rest};

  auto vip_answer = evaluate(set, request(R"({"context":{"tier":"vip"},"instances":[{},{}]})"));
  EXPECT_EQ(vip_answer->body, R"({"predictions":["gold","gold"]})");
  auto rest_answer = evaluate(set, request(R"({"context":{"tier":"std"},"instances":[{"x":1}]})"));
  EXPECT_EQ(rest_answer->body, R"({"predictions":["basic"]})");
  EXPECT_FALSE(evaluate(set, request(R"({"context":{"tier":"std"},"instances":[{}]})")));
}

TEST(RulesColumnar, FirstRuleWhoseRequestLevelConditionsHoldAnswersOutputs) {
  RuleSet set;
  Rule fr = rule("fr", json{{"y", {1, 2}}});
  fr.when.push_back(equals("/inputs/country", "fr"));
  Rule rest = rule("rest", json{{"y", {0}}});
  set.rules = {fr, rest};

  auto a = evaluate(set, request(R"({"inputs":{"country":"fr"}})"));
  EXPECT_EQ(a->body, R"({"outputs":{"y":[1,2]}})");
  EXPECT_EQ(a->rule, "fr");
  auto b = evaluate(set, request(R"({"inputs":{"country":"de"}})"));
  EXPECT_EQ(b->body, R"({"outputs":{"y":[0]}})");
  EXPECT_EQ(b->rule, "rest");
}

TEST(RulesColumnar, NoMatchingRuleMeansNoAnswer) {
  RuleSet set;
  Rule fr = rule("fr", 1);
  fr.when.push_back(equals("/inputs/country", "fr"));
  set.rules = {fr};
  EXPECT_FALSE(evaluate(set, request(R"({"inputs":{"country":"de"}})")));
}

TEST(RulesHeaders, EveryListedHeaderMustBePresentWithThatValue) {
  RuleSet set;
  Rule tenant = rule("tenant", "a");
  tenant.headers = {{"x-tenant", "acme"}, {"x-plan", "gold"}};
  set.rules = {tenant};

  const std::map<std::string, std::string> both = {{"x-tenant", "acme"}, {"x-plan", "gold"}};
  const std::map<std::string, std::string> extra = {
      {"x-tenant", "acme"}, {"x-plan", "gold"}, {"accept", "*/*"}};
  const std::map<std::string, std::string> one = {{"x-tenant", "acme"}};
  const std::map<std::string, std::string> other = {{"x-tenant", "acme"}, {"x-plan", "Gold"}};
  const std::string body = R"({"inputs":[1]})";
  EXPECT_TRUE(evaluate(set, request(body, "resnet", &both)));
  EXPECT_TRUE(evaluate(set, request(body, "resnet", &extra)));
  EXPECT_FALSE(evaluate(set, request(body, "resnet", &one)));
  EXPECT_FALSE(evaluate(set, request(body, "resnet", &other)));
  EXPECT_FALSE(evaluate(set, request(body, "resnet", nullptr)));

  // Names are case-insensitive: a rule written with capitals still finds lowercase names.
  RuleSet capitals;
  Rule r = rule("caps", "b");
  r.headers = {{"X-Tenant", "acme"}};
  capitals.rules = {r};
  EXPECT_TRUE(evaluate(capitals, request(body, "resnet", &one)));
}

TEST(RulesFilters, ModelAndSignature) {
  RuleSet set;
  Rule resnet_scores = rule("resnet-scores", "s");
  resnet_scores.model = "resnet";
  resnet_scores.signature = "scores";
  Rule resnet_default = rule("resnet-default", "d");
  resnet_default.model = "resnet";
  resnet_default.signature = "serving_default";
  Rule mobilenet = rule("mobilenet", "m");
  mobilenet.model = "mobilenet";
  set.rules = {resnet_scores, resnet_default, mobilenet};

  struct Case {
    std::string_view model;
    std::string_view signature;
    std::string body;
    std::optional<std::string> rule;
  } cases[] = {
      {"resnet", "scores", R"({"inputs":1})", "resnet-scores"},
      {"resnet", "", R"({"inputs":1})", "resnet-default"},
      {"resnet", "serving_default", R"({"inputs":1})", "resnet-default"},
      // The caller left the signature empty: the body's signature_name counts.
      {"resnet", "", R"({"signature_name":"scores","inputs":1})", "resnet-scores"},
      {"resnet", "other", R"({"inputs":1})", std::nullopt},
      {"mobilenet", "anything", R"({"inputs":1})", "mobilenet"},
      {"inception", "", R"({"inputs":1})", std::nullopt},
  };
  for (const Case& c : cases) {
    auto answer = evaluate(set, request(c.body, c.model, nullptr, c.signature));
    ASSERT_EQ(answer.has_value(), c.rule.has_value()) << c.model << " " << c.signature;
    if (answer) {
      EXPECT_EQ(answer->rule, *c.rule) << c.model << " " << c.signature;
    }
  }
}

TEST(RulesBody, AnythingButAPredictRequestHasNoAnswer) {
  RuleSet set;
  set.rules.push_back(rule("all", 1));
  for (const char* body : {
           "",
           "not json",
           R"({"instances":[1,2)",
           "[1,2,3]",
           "42",
           "null",
           "{}",
           R"({"signature_name":"x"})",
           R"({"instances":[]})",
           R"({"instances":{"a":1}})",
           R"({"instances":5})",
           R"({"instances":[1],"inputs":[1]})",
           R"({"examples":[{"x":1}]})",
       }) {
    EXPECT_FALSE(evaluate(set, request(body))) << body;
  }
  EXPECT_FALSE(evaluate(RuleSet{}, request(R"({"instances":[1]})")));
  EXPECT_FALSE(evaluate(RuleSet{}, request(R"({"inputs":[1]})")));
}

TEST(RulesShape, EveryAnswerParsesWithTheRightKeyAndLength) {
  RuleSet set;
  Rule labelled = rule("labelled", json::array({json::array({"cat", 0.9})}));
  labelled.instance_when.push_back(exists("/image"));
  Rule nested = rule("nested", json{{"scores", {0.1, 0.9}}, {"label", nullptr}});
  // A prediction with invalid UTF-8 must not throw while being written.
  Rule odd = rule("odd", std::string("\xff\xfe"));
  odd.when.push_back(equals("/odd", true));
  set.rules = {odd, labelled, nested};

  struct Case {
    std::string body;
    const char* key;
    std::size_t length;  // predictions: N; outputs: 0 (not an array count)
  } cases[] = {
      {R"({"instances":[{"image":1}]})", "predictions", 1},
      {R"({"instances":[{"image":1},{"b64":"x"},{"image":2}]})", "predictions", 3},
      {R"({"instances":[1,2,3,4,5,6,7,8]})", "predictions", 8},
      {R"({"inputs":{"image":[[1]]}})", "outputs", 0},
      {R"({"inputs":[1,2,3]})", "outputs", 0},
      {R"({"odd":true,"instances":[1,2]})", "predictions", 2},
      {R"({"odd":true,"inputs":[1]})", "outputs", 0},
  };
  for (const Case& c : cases) {
    auto answer = evaluate(set, request(c.body));
    json j = parsed(answer);
    ASSERT_TRUE(j.contains(c.key)) << c.body << " -> " << (answer ? answer->body : "");
    if (c.length > 0) {
      ASSERT_TRUE(j[c.key].is_array());
      EXPECT_EQ(j[c.key].size(), c.length) << c.body;
    }
    EXPECT_EQ(answer->body, j.dump(-1, ' ', false, json::error_handler_t::replace)) << "compact";
  }
}

TEST(RulesValidate, AValidSetHasNoMessages) {
  RuleSet set;
  Rule a = rule("a", 1);
  a.when = {equals("/inputs/x", 1), in("/c", json::array({"fr"})), exists(""), range("/n", 1, 1),
            range("/m", std::nullopt, 0)};
  a.instance_when = {equals("/a~0b~1c", true), exists("/")};
  Rule b = rule("b", json::array());
  b.model = "resnet";
  Rule c = rule("c", json::object());
  set.rules = {a, b, c};  // a catch-all as the last rule is fine
  EXPECT_EQ(validate(set), std::vector<std::string>{});
}

TEST(RulesValidate, ReportsEachProblemWithItsPath) {
  struct Case {
    const char* what;
    Condition condition;
    std::vector<std::string> expected;
  } cases[] = {
      {"no leading slash",
       equals("country", "fr"),
       {R"(rules[0].when[0].pointer: not a JSON Pointer (must start with /): "country")"}},
      {"bad escape",
       exists("/a~2b"),
       {R"(rules[0].when[0].pointer: not a JSON Pointer (~ must be followed by 0 or 1): "/a~2b")"}},
      {"dangling tilde",
       exists("/a~"),
       {R"(rules[0].when[0].pointer: not a JSON Pointer (~ must be followed by 0 or 1): "/a~")"}},
      {"in needs an array",
       in("/c", "fr"),
       {"rules[0].when[0].value: in needs an array of values"}},
      {"in needs a value",
       in("/c", nullptr),
       {"rules[0].when[0].value: in needs a value (an array)"}},
      {"equals needs a value",
       equals("/c", nullptr),
       {"rules[0].when[0].value: equals needs a value"}},
      {"range without bounds",
       range("/n", std::nullopt, std::nullopt),
       {"rules[0].when[0]: range needs min or max"}},
      {"range min > max", range("/n", 5, 1), {"rules[0].when[0]: range min (5.0) > max (1.0)"}},
  };
  for (const Case& c : cases) {
    RuleSet set;
    Rule r = rule("r", 1);
    r.when.push_back(c.condition);
    set.rules = {r};
    EXPECT_EQ(validate(set), c.expected) << c.what;
  }
}

TEST(RulesValidate, InstanceConditionsAndPredictionsAreChecked) {
  RuleSet set;
  Rule a = rule("a", 1);
  a.model = "resnet";
  Rule b = rule("b", nullptr);
  b.when.push_back(exists("/ok"));
  b.instance_when.push_back(exists("/ok"));
  b.instance_when.push_back(equals("bad", 1));
  set.rules = {a, b};
  EXPECT_EQ(
      validate(set),
      (std::vector<std::string>{
          R"(rules[1].instance_when[1].pointer: not a JSON Pointer (must start with /): "bad")",
          "rules[1].prediction: missing"}));
}

TEST(RulesValidate, RulesAfterACatchAllAreUnreachable) {
  RuleSet set;
  Rule first = rule("first", 1);
  first.headers = {{"x-a", "1"}};
  Rule all = rule("all", 2);
  Rule later = rule("later", 3);
  later.model = "resnet";
  Rule also_all = rule("also-all", 4);
  set.rules = {first, all, later, also_all};
  EXPECT_EQ(validate(set), (std::vector<std::string>{
                               "rules[2]: unreachable: rules[1] answers every request",
                               "rules[3]: unreachable: rules[1] answers every request",
                           }));
}

TEST(RulesValidate, EachConditionKindKeepsARuleReachable) {
  // Any single condition of any kind means the rule does not answer everything.
  Rule m = rule("m", 1);
  m.model = "x";
  Rule s = rule("s", 1);
  s.signature = "x";
  Rule h = rule("h", 1);
  h.headers = {{"x", "y"}};
  Rule w = rule("w", 1);
  w.when = {exists("/x")};
  Rule i = rule("i", 1);
  i.instance_when = {exists("/x")};
  for (const Rule& g : {m, s, h, w, i}) {
    RuleSet set;
    set.rules = {g, rule("next", 2)};
    EXPECT_EQ(validate(set), std::vector<std::string>{}) << g.name;
  }
}

}  // namespace
}  // namespace fusebox::degrade
