// Every class of configuration error, each with its exact position, path and message.
// Positions are 1-based; the YAML texts start on line 1 with no leading newline.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fusebox/config/loader.h"
#include "test_env.h"
#include "test_files.h"
#include "test_keys.h"

namespace fusebox::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kHs256Secret;
using testing::kKeyOneHash;
using testing::ScopedTestEnv;
using testing::test_env;

// A valid tail for files whose problem is elsewhere; appended after the interesting lines so
// that their line numbers stay as written.
constexpr std::string_view kPoolsAndRoutes = R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
routes:
  - {name: r, match: {model: m}, pool: p}
)";

std::vector<std::string> errors_of(std::string_view yaml) {
  LoadResult result = load_config_from_string(yaml, "f.yaml", test_env);
  EXPECT_EQ(result.config, nullptr);
  EXPECT_FALSE(result.ok());
  std::vector<std::string> lines;
  for (const auto& error : result.errors) lines.push_back(error.to_string());
  return lines;
}

std::vector<std::string> errors_with_tail(std::string_view head) {
  return errors_of(std::string(head) + std::string(kPoolsAndRoutes));
}

// ---- the error record -----------------------------------------------------------------------

TEST(ConfigErrors, CarryFileLineColumnPathAndMessage) {
  LoadResult result = load_config_from_string(
      std::string("listeners:\n  http:\n    port: 70000\n") + std::string(kPoolsAndRoutes),
      "conf/fusebox.yaml", test_env);
  ASSERT_EQ(result.errors.size(), 1u);
  const ConfigError& e = result.errors[0];
  EXPECT_EQ(e.file, "conf/fusebox.yaml");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 11);
  EXPECT_EQ(e.path, "listeners.http.port");
  EXPECT_EQ(e.message, "must be between 0 and 65535, got 70000");
  EXPECT_EQ(e.to_string(),
            "conf/fusebox.yaml:3:11: listeners.http.port: must be between 0 and 65535, got 70000");
}

TEST(ConfigErrors, ToStringOmitsAnEmptyPath) {
  ConfigError e{"a.yaml", 2, 5, "", "YAML syntax error: x"};
  EXPECT_EQ(e.to_string(), "a.yaml:2:5: YAML syntax error: x");
}

// ---- YAML syntax and document shape ---------------------------------------------------------

TEST(ConfigErrors, YamlSyntaxErrorReportsTheParserPosition) {
  EXPECT_THAT(errors_of("server:\n  threads: [1, 2\nlisteners: {}\n"),
              ElementsAre("f.yaml:3:10: YAML syntax error: end of sequence flow not found"));
  EXPECT_THAT(
      errors_of("server:\n  threads: 1\n\tlisteners: {}\n"),
      ElementsAre("f.yaml:3:1: YAML syntax error: illegal tab when looking for indentation"));
  EXPECT_THAT(errors_of("routes: *undefined\n"),
              ElementsAre("f.yaml:1:9: YAML syntax error: the referenced anchor is not defined"));
}

TEST(ConfigErrors, ParserLimitsBecomeErrorsNotExceptions) {
  // yaml-cpp refuses very deep nesting by throwing; the loader turns it into one error.
  const std::string deep = "routes: " + std::string(3000, '[') + std::string(3000, ']') + "\n";
  LoadResult result = load_config_from_string(deep, "f.yaml", test_env);
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 1);
  EXPECT_THAT(result.errors[0].message, ::testing::StartsWith("YAML syntax error: "));
}

TEST(ConfigErrors, EmptyFile) {
  const char* expected =
      "f.yaml:1:1: the configuration is empty (at least \"pools\" and \"routes\" are required)";
  EXPECT_THAT(errors_of(""), ElementsAre(expected));
  EXPECT_THAT(errors_of("# only a comment\n\n"), ElementsAre(expected));
  EXPECT_THAT(errors_of("~\n"), ElementsAre(expected));
}

TEST(ConfigErrors, TopLevelMustBeAMap) {
  EXPECT_THAT(errors_of("- pools\n- routes\n"),
              ElementsAre("f.yaml:1:1: the top level must be a map, got a list"));
  EXPECT_THAT(errors_of("\n  fusebox\n"),
              ElementsAre("f.yaml:2:3: the top level must be a map, got a scalar"));
}

TEST(ConfigErrors, OnlyOneDocument) {
  EXPECT_THAT(errors_of(std::string(kPoolsAndRoutes) + "---\nserver: {}\n"),
              ElementsAre("f.yaml:6:1: only one YAML document is allowed (found a second one "
                          "after \"---\")"));
}

// ---- unknown and duplicate keys -------------------------------------------------------------

TEST(ConfigErrors, UnknownKeyListsTheExpectedOnes) {
  EXPECT_THAT(
      errors_with_tail("listeners:\n  admin:\n    address: 127.0.0.1\n    prot: 9901\n"),
      ElementsAre("f.yaml:4:5: listeners.admin.prot: unknown key \"prot\" (expected one of: "
                  "address, port, token_hash)"));
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {prot: 1}\n"),
              ElementsAre("f.yaml:2:10: listeners.http.prot: unknown key \"prot\" (expected one "
                          "of: address, port, max_request_body, max_request_headers, "
                          "request_header_timeout, request_body_timeout, idle_timeout, "
                          "max_connections, max_requests_per_connection)"));
  EXPECT_THAT(
      errors_with_tail("serve: {threads: 1}\n"),
      ElementsAre("f.yaml:1:1: serve: unknown key \"serve\" (expected one of: server, drain, "
                  "reload, listeners, auth, admission, pools, routes, cache, idempotency, "
                  "logging)"));
}

TEST(ConfigErrors, UnknownKeysInPoolsEndpointsAndRoutes) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1, wieght: 2}
    timeout: 1s
routes:
  - {name: r, match: {model: m, version: 1}, pool: p}
)"),
              ElementsAre("f.yaml:4:29: pools.p.endpoints[0].wieght: unknown key \"wieght\" "
                          "(expected one of: address, port, weight, grpc_port)",
                          "f.yaml:5:5: pools.p.timeout: unknown key \"timeout\" (expected one "
                          "of: endpoints, connect_timeout, max_connections_per_backend, "
                          "idle_connection_timeout, max_response_body, max_ejection_percent, "
                          "load_balancing, circuit_breaker, health_check, retry_budget, grpc)",
                          "f.yaml:7:33: routes[0].match.version: unknown key \"version\" "
                          "(expected one of: model)"));
}

TEST(ConfigErrors, DuplicateMapKey) {
  EXPECT_THAT(errors_with_tail("server:\n  threads: 2\n  threads: 3\n"),
              ElementsAre("f.yaml:3:3: server.threads: duplicate key \"threads\" (first defined "
                          "at line 2)"));
  // Duplicate pool names are duplicate keys of `pools`.
  EXPECT_THAT(errors_of(R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
  p: {endpoints: [{address: 10.0.0.2}]}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:3:3: pools.p: duplicate key \"p\" (first defined at line 2)"));
}

// ---- wrong types ----------------------------------------------------------------------------

TEST(ConfigErrors, MapExpected) {
  EXPECT_THAT(errors_with_tail("server: 4\n"),
              ElementsAre("f.yaml:1:9: server: expected a map, got a scalar"));
  EXPECT_THAT(errors_with_tail("listeners:\n  http: [8080]\n"),
              ElementsAre("f.yaml:2:9: listeners.http: expected a map, got a list"));
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - 10.0.0.1:8501
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:4:9: pools.p.endpoints[0]: expected a map, got a scalar"));
}

TEST(ConfigErrors, ListExpected) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: {address: 10.0.0.1}
routes:
  name: r
)"),
              ElementsAre("f.yaml:3:16: pools.p.endpoints: expected a list, got a map",
                          "f.yaml:5:3: routes: expected a list, got a map"));
}

TEST(ConfigErrors, ScalarExpected) {
  EXPECT_THAT(errors_with_tail("logging:\n  file: [a, b]\n  level: {name: info}\n"),
              ElementsAre("f.yaml:2:9: logging.file: expected a string, got a list",
                          "f.yaml:3:10: logging.level: expected a string, got a map"));
  EXPECT_THAT(errors_with_tail("listeners:\n  http:\n    idle_timeout:\n      seconds: 5\n"),
              ElementsAre("f.yaml:4:7: listeners.http.idle_timeout: expected a duration, got "
                          "a map"));
}

TEST(ConfigErrors, MissingValuePointsAtTheKey) {
  EXPECT_THAT(errors_with_tail("listeners:\n  http:\n    port:\n    address: 127.0.0.1\n"),
              ElementsAre("f.yaml:3:5: listeners.http.port: missing value (expected an "
                          "integer)"));
  EXPECT_THAT(errors_with_tail("logging: {file: ~}\n"),
              ElementsAre("f.yaml:1:11: logging.file: missing value (expected a string)"));
}

TEST(ConfigErrors, NotAnInteger) {
  EXPECT_THAT(errors_with_tail("server: {threads: four}\nlisteners: {http: {port: 80.5}}\n"),
              ElementsAre("f.yaml:1:19: server.threads: not an integer: \"four\"",
                          "f.yaml:2:26: listeners.http.port: not an integer: \"80.5\""));
}

TEST(ConfigErrors, NotABoolean) {
  EXPECT_THAT(errors_with_tail("logging:\n  access_log: yes\n"),
              ElementsAre("f.yaml:2:15: logging.access_log: not a boolean: \"yes\" (expected "
                          "true or false)"));
}

TEST(ConfigErrors, NotADuration) {
  EXPECT_THAT(errors_with_tail(
                  "drain:\n  timeout: 30\nlisteners:\n  http: {idle_timeout: 1min}\n"),
              ElementsAre("f.yaml:2:12: drain.timeout: not a duration: \"30\" (a unit is "
                          "required: ms, s, m or h, e.g. 250ms, 2s, 1m30s)",
                          "f.yaml:4:24: listeners.http.idle_timeout: not a duration: \"1min\" "
                          "(expected e.g. 250ms, 2s, 1m30s, 1h)"));
}

TEST(ConfigErrors, NotASize) {
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {max_request_body: 64M, "
                               "max_request_headers: -1}\n"),
              ElementsAre("f.yaml:2:28: listeners.http.max_request_body: not a size: \"64M\" "
                          "(expected bytes, or a number with B, KiB, MiB, GiB, KB, MB or GB, "
                          "e.g. 64MiB)",
                          "f.yaml:2:54: listeners.http.max_request_headers: not a size: \"-1\" "
                          "(expected bytes, or a number with B, KiB, MiB, GiB, KB, MB or GB, "
                          "e.g. 64MiB)"));
}

// ---- out of range ---------------------------------------------------------------------------

TEST(ConfigErrors, ListenerPortRange) {
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {port: 65536}\n  admin: {port: -1}\n"),
              ElementsAre("f.yaml:2:16: listeners.http.port: must be between 0 and 65535, got "
                          "65536",
                          "f.yaml:3:17: listeners.admin.port: must be between 0 and 65535, got "
                          "-1"));
}

TEST(ConfigErrors, EndpointPortAndWeightRange) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1, port: -1, weight: 0}
      - {address: 10.0.0.2, port: 99999999999999999999, weight: 1001}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:4:35: pools.p.endpoints[0].port: must be between 0 and 65535, "
                          "got -1",
                          "f.yaml:4:47: pools.p.endpoints[0].weight: must be between 1 and 1000, "
                          "got 0",
                          "f.yaml:5:35: pools.p.endpoints[1].port: must be between 0 and 65535, "
                          "got 99999999999999999999",
                          "f.yaml:5:65: pools.p.endpoints[1].weight: must be between 1 and 1000, "
                          "got 1001"));
}

TEST(ConfigErrors, ThreadsRange) {
  EXPECT_THAT(errors_with_tail("server: {threads: 1025}\n"),
              ElementsAre("f.yaml:1:19: server.threads: must be between 0 and 1024, got 1025"));
  EXPECT_THAT(errors_with_tail("server: {threads: -1}\n"),
              ElementsAre("f.yaml:1:19: server.threads: must be between 0 and 1024, got -1"));
}

TEST(ConfigErrors, ZeroIsRejectedWhereItMakesNoSense) {
  EXPECT_THAT(errors_of(R"(listeners:
  http: {request_header_timeout: 0, max_request_body: 0, max_connections: 0}
pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    connect_timeout: 0ms
    max_connections_per_backend: 0
routes:
  - {name: r, match: {model: m}, pool: p, timeout: 0s}
)"),
              ElementsAre("f.yaml:2:34: listeners.http.request_header_timeout: must be greater "
                          "than 0",
                          "f.yaml:2:55: listeners.http.max_request_body: must be greater than 0",
                          "f.yaml:2:75: listeners.http.max_connections: must be between 1 and "
                          "4294967295, got 0",
                          "f.yaml:6:22: pools.p.connect_timeout: must be greater than 0",
                          "f.yaml:7:34: pools.p.max_connections_per_backend: must be between 1 "
                          "and 4294967295, got 0",
                          "f.yaml:9:52: routes[0].timeout: must be greater than 0"));
}

TEST(ConfigErrors, ZeroIsAllowedWhereItMeansSomething) {
  LoadResult result = load_config_from_string(
      std::string("server: {threads: 0}\ndrain: {delay: 0, timeout: 0}\n"
                  "listeners: {http: {port: 0, max_requests_per_connection: 0}}\n") +
          std::string(kPoolsAndRoutes),
      "f.yaml", test_env);
  EXPECT_TRUE(result.ok());
  ASSERT_NE(result.config, nullptr);
  EXPECT_EQ(result.config->drain.timeout.count(), 0);
  EXPECT_EQ(result.config->drain.delay.count(), 0);
}

TEST(ConfigErrors, LoggingLevelAndFormat) {
  EXPECT_THAT(errors_with_tail("logging:\n  level: verbose\n  format: xml\n"),
              ElementsAre("f.yaml:2:10: logging.level: invalid value \"verbose\" (expected one "
                          "of: trace, debug, info, warn, error, critical, off)",
                          "f.yaml:3:11: logging.format: invalid value \"xml\" (expected one of: "
                          "text, json)"));
}

// ---- required keys --------------------------------------------------------------------------

TEST(ConfigErrors, PoolsAndRoutesAreRequired) {
  EXPECT_THAT(errors_of("server: {threads: 1}\n"),
              ElementsAre("f.yaml:1:1: missing required key \"pools\"",
                          "f.yaml:1:1: missing required key \"routes\""));
  EXPECT_THAT(errors_of("pools: {}\nroutes: []\n"),
              ElementsAre("f.yaml:1:8: pools: at least one pool is required",
                          "f.yaml:2:9: routes: at least one route is required"));
  EXPECT_THAT(errors_of("pools:\nroutes:\n"),
              ElementsAre("f.yaml:1:1: pools: at least one pool is required",
                          "f.yaml:2:1: routes: at least one route is required"));
}

TEST(ConfigErrors, EndpointsAreRequiredAndNonEmpty) {
  EXPECT_THAT(errors_of(R"(pools:
  a:
    connect_timeout: 1s
  b:
    endpoints: []
  c:
  d:
    endpoints:
      - {port: 8501}
routes:
  - {name: r, match: {model: m}, pool: a}
)"),
              ElementsAre("f.yaml:3:5: pools.a: missing required key \"endpoints\"",
                          "f.yaml:5:16: pools.b.endpoints: at least one endpoint is required",
                          "f.yaml:6:3: pools.c: missing required key \"endpoints\"",
                          "f.yaml:9:9: pools.d.endpoints[0]: missing required key \"address\""));
}

TEST(ConfigErrors, RouteNameMatchModelAndPoolAreRequired) {
  EXPECT_THAT(errors_of(R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
routes:
  - pool: p
    match: {model: a}
  - name: b
    pool: p
  - name: c
    match: {}
  - name: d
    match:
    pool: p
)"),
              ElementsAre("f.yaml:4:5: routes[0]: missing required key \"name\"",
                          "f.yaml:6:5: routes[1]: missing required key \"match\"",
                          "f.yaml:8:5: routes[2]: missing required key \"pool\"",
                          "f.yaml:9:12: routes[2].match: missing required key \"model\"",
                          "f.yaml:11:5: routes[3].match: missing required key \"model\""));
}

// ---- cross references and duplicates ---------------------------------------------------------

TEST(ConfigErrors, RouteNamesAPoolThatDoesNotExist) {
  EXPECT_THAT(errors_of(R"(pools:
  heavy: {endpoints: [{address: 10.0.0.1}]}
routes:
  - name: a
    match: {model: a}
    pool: heavy
  - name: b
    match: {model: b}
    pool: light
)"),
              ElementsAre("f.yaml:9:11: routes[1].pool: no pool named \"light\""));
}

TEST(ConfigErrors, DuplicateRouteNamesAndModels) {
  EXPECT_THAT(errors_of(R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
routes:
  - {name: a, match: {model: m}, pool: p}
  - {name: a, match: {model: n}, pool: p}
  - {name: c, match: {model: m}, pool: p}
  - {name: d, match: {model: "*"}, pool: p}
  - {name: e, match: {model: "*"}, pool: p}
)"),
              ElementsAre("f.yaml:5:12: routes[1].name: duplicate route name \"a\" (first "
                          "defined at routes[0])",
                          "f.yaml:6:30: routes[2].match.model: model \"m\" is already matched "
                          "by route \"a\" (routes[0])",
                          "f.yaml:8:30: routes[4].match.model: model \"*\" is already matched "
                          "by route \"d\" (routes[3])"));
}

TEST(ConfigErrors, DuplicateEndpointInAPool) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1}
      - {address: 10.0.0.1, port: 8502}
      - {address: 10.0.0.1, port: 8501}
      - {address: "::1"}
      - {address: "0:0::1"}
      - {address: 10.0.0.5, port: 0, grpc_port: 8500}
      - {address: 10.0.0.5, port: 0, grpc_port: 8501}
      - {address: 10.0.0.5, port: 0, grpc_port: 8500}
    health_check: {enabled: false}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:6:9: pools.p.endpoints[2]: duplicate endpoint 10.0.0.1:8501 "
                          "(same as endpoints[0])",
                          "f.yaml:8:9: pools.p.endpoints[4]: duplicate endpoint [0:0::1]:8501 "
                          "(same as endpoints[3])",
                          "f.yaml:11:9: pools.p.endpoints[7]: duplicate endpoint 10.0.0.5:8500 "
                          "(gRPC) (same as endpoints[5])"));
}

TEST(ConfigErrors, RestPortZeroNeedsAGrpcPort) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1, port: 0}
      - {address: 10.0.0.2, port: 0, grpc_port: 0}
    health_check: {protocol: grpc}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:4:35: pools.p.endpoints[0].port: 0 (no REST port) needs a "
                          "grpc_port: the backend must be reachable over REST or gRPC",
                          "f.yaml:5:35: pools.p.endpoints[1].port: 0 (no REST port) needs a "
                          "grpc_port: the backend must be reachable over REST or gRPC"));
}

TEST(ConfigErrors, ProbeProtocolNeedsItsPortOnEveryEndpoint) {
  // grpc probes: every endpoint needs a grpc_port.
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1, grpc_port: 8500}
      - {address: 10.0.0.2, port: 8601}
    health_check: {protocol: grpc}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:5:9: pools.p.endpoints[1]: endpoint 10.0.0.2:8601 has no "
                          "grpc_port (health_check.protocol: grpc probes every endpoint on its "
                          "grpc_port)"));
  // rest probes (the default): a gRPC-only endpoint cannot be probed.
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: 10.0.0.1}
      - {address: "::1", port: 0, grpc_port: 8500}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:5:9: pools.p.endpoints[1]: endpoint [::1]:8500 (gRPC) has no "
                          "REST port to probe: set health_check.protocol: grpc, or "
                          "health_check.enabled: false"));
}

TEST(ConfigErrors, UnknownProbeProtocol) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1, grpc_port: 8500}]
    health_check: {protocol: http2}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre(HasSubstr("f.yaml:4:30: pools.p.health_check.protocol: ")));
}

TEST(ConfigErrors, NamesAndModelPatterns) {
  EXPECT_THAT(errors_of(R"(pools:
  "my pool": {endpoints: [{address: 10.0.0.1}]}
routes:
  - {name: "a/b", match: {model: "res*"}, pool: "my pool"}
  - {name: "", match: {model: ""}, pool: ""}
)"),
              ElementsAre("f.yaml:2:3: pools.my pool: invalid pool name \"my pool\" (use "
                          "letters, digits, \"_\", \"-\" and \".\")",
                          "f.yaml:4:12: routes[0].name: invalid route name \"a/b\" (use letters, "
                          "digits, \"_\", \"-\" and \".\")",
                          "f.yaml:4:34: routes[0].match.model: wildcards are not supported "
                          "inside a name: \"res*\" (use \"*\" alone to match any model)",
                          "f.yaml:5:12: routes[1].name: must not be empty",
                          "f.yaml:5:31: routes[1].match.model: must not be empty (use \"*\" to "
                          "match any model)",
                          "f.yaml:5:42: routes[1].pool: must not be empty"));
}

// ---- listeners ------------------------------------------------------------------------------

TEST(ConfigErrors, ListenerPortConflicts) {
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {port: 9000}\n  admin: {port: 9000}\n"),
              ElementsAre("f.yaml:3:17: listeners.admin.port: port 9000 on 127.0.0.1 is already "
                          "used by listeners.http (127.0.0.1:9000)"));
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {address: 0.0.0.0, port: 9000}\n"
                               "  admin: {address: 10.1.2.3, port: 9000}\n"),
              ElementsAre("f.yaml:3:36: listeners.admin.port: port 9000 on 10.1.2.3 is already "
                          "used by listeners.http (0.0.0.0:9000)"));
  EXPECT_THAT(errors_with_tail("listeners:\n  admin: {address: \"::\", port: 8080}\n"),
              ElementsAre("f.yaml:2:32: listeners.admin.port: port 8080 on :: is already used "
                          "by listeners.http (127.0.0.1:8080)"));
  // Only the http port was written: the error points there.
  EXPECT_THAT(errors_with_tail("listeners:\n  http:\n    port: 9901\n"),
              ElementsAre("f.yaml:3:11: listeners.http.port: port 9901 on 127.0.0.1 is already "
                          "used by listeners.admin (127.0.0.1:9901)"));
}

TEST(ConfigErrors, ListenerAddressMustBeAnIpLiteral) {
  EXPECT_THAT(errors_with_tail("listeners:\n  http: {address: localhost}\n"
                               "  admin: {address: 127.0.0.256}\n"),
              ElementsAre("f.yaml:2:19: listeners.http.address: not an IP address: "
                          "\"localhost\" (listeners bind to an IP literal such as 127.0.0.1, "
                          "0.0.0.0 or ::)",
                          "f.yaml:3:20: listeners.admin.address: not an IP address: "
                          "\"127.0.0.256\" (listeners bind to an IP literal such as 127.0.0.1, "
                          "0.0.0.0 or ::)"));
}

TEST(ConfigErrors, EndpointAddressMustBeAnIpOrHostName) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints:
      - {address: tfs_a.local}
      - {address: 10.0.0.300}
      - {address: "[::1]"}
      - {address: "-tfs"}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:4:19: pools.p.endpoints[0].address: not an IP address or host "
                          "name: \"tfs_a.local\"",
                          "f.yaml:5:19: pools.p.endpoints[1].address: not an IP address or host "
                          "name: \"10.0.0.300\"",
                          "f.yaml:6:19: pools.p.endpoints[2].address: not an IP address or host "
                          "name: \"[::1]\"",
                          "f.yaml:7:19: pools.p.endpoints[3].address: not an IP address or host "
                          "name: \"-tfs\""));
}

// ---- resilience settings --------------------------------------------------------------------

TEST(ConfigErrors, ResilienceUnknownKeysAndInvalidWords) {
  // reachability_interval is gone: active health checks replaced it.
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    reachability_interval: 2s
    load_balancing: {policy: round_robin}
    circuit_breaker:
      mode: on
      window: {type: sliding, length: 10}
    health_check: {path: /healthz}
routes:
  - {name: r, match: {model: m}, pool: p, retries: 3}
)"),
              ElementsAre("f.yaml:4:5: pools.p.reachability_interval: unknown key "
                          "\"reachability_interval\" (expected one of: endpoints, "
                          "connect_timeout, max_connections_per_backend, "
                          "idle_connection_timeout, max_response_body, max_ejection_percent, "
                          "load_balancing, circuit_breaker, health_check, retry_budget, grpc)",
                          "f.yaml:5:30: pools.p.load_balancing.policy: invalid value "
                          "\"round_robin\" (expected one of: weighted_round_robin, "
                          "least_request)",
                          "f.yaml:7:13: pools.p.circuit_breaker.mode: invalid value \"on\" "
                          "(expected one of: auto, disabled, metrics_only)",
                          "f.yaml:8:22: pools.p.circuit_breaker.window.type: invalid value "
                          "\"sliding\" (expected one of: count, time)",
                          "f.yaml:8:31: pools.p.circuit_breaker.window.length: unknown key "
                          "\"length\" (expected one of: type, size, duration)",
                          "f.yaml:9:20: pools.p.health_check.path: unknown key \"path\" "
                          "(expected one of: enabled, protocol, interval, unhealthy_interval, "
                          "jitter_percent, timeout, healthy_threshold, unhealthy_threshold, "
                          "models, expected_version)",
                          "f.yaml:11:43: routes[0].retries: unknown key \"retries\" (expected "
                          "one of: name, match, pool, timeout, max_timeout, retry, hedge, cache, "
                          "fallbacks, fallback_reserve, degrade_on_load, split, idempotency, "
                          "priority, auth, concurrency, rate_limit, client_rate_limit)"));
}

TEST(ConfigErrors, ResilienceSectionsMustBeMapsAndLists) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker:
      window: [count, 20]
      failure_statuses: 503
    retry_budget: 20
routes:
  - name: r
    match: {model: m}
    pool: p
    retry: {retry_on: reset, backoff: 25ms}
    hedge: 50ms
)"),
              ElementsAre("f.yaml:5:15: pools.p.circuit_breaker.window: expected a map, got a "
                          "list",
                          "f.yaml:6:25: pools.p.circuit_breaker.failure_statuses: expected a "
                          "list, got a scalar",
                          "f.yaml:7:19: pools.p.retry_budget: expected a map, got a scalar",
                          "f.yaml:12:23: routes[0].retry.retry_on: expected a list, got a scalar",
                          "f.yaml:12:39: routes[0].retry.backoff: expected a map, got a scalar",
                          "f.yaml:13:12: routes[0].hedge: expected a map, got a scalar"));
}

TEST(ConfigErrors, PercentagesAreNumbersWithinTheirRange) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    max_ejection_percent: 101
    load_balancing: {slow_start_min_weight_percent: 0}
    circuit_breaker:
      failure_rate_percent: 50%
      slow_call_rate_percent: -1
      open_jitter_percent: 50.5
    health_check: {jitter_percent: inf}
    retry_budget: {budget_percent: lots}
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:4:27: pools.p.max_ejection_percent: must be between 0 and 100, "
                          "got 101",
                          "f.yaml:5:53: pools.p.load_balancing.slow_start_min_weight_percent: "
                          "must be between 1 and 100, got 0",
                          "f.yaml:7:29: pools.p.circuit_breaker.failure_rate_percent: not a "
                          "number: \"50%\" (write the percentage without \"%\")",
                          "f.yaml:8:31: pools.p.circuit_breaker.slow_call_rate_percent: must be "
                          "between 0 and 100, got -1",
                          "f.yaml:9:28: pools.p.circuit_breaker.open_jitter_percent: must be "
                          "between 0 and 50, got 50.5",
                          "f.yaml:10:36: pools.p.health_check.jitter_percent: not a number: "
                          "\"inf\"",
                          "f.yaml:11:36: pools.p.retry_budget.budget_percent: not a number: "
                          "\"lots\""));
}

TEST(ConfigErrors, ResilienceCountsOutOfRange) {
  EXPECT_THAT(
      errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker:
      consecutive_failures: -1
      window: {size: 0, duration: 0s}
      minimum_calls: 0
      half_open_max_calls: 0
    health_check: {healthy_threshold: 0, unhealthy_threshold: 0, expected_version: -3}
    retry_budget: {min_concurrency: -1}
routes:
  - name: r
    match: {model: m}
    pool: p
    retry: {max_attempts: 11}
  - name: s
    match: {model: n}
    pool: p
    retry: {max_attempts: 0}
)"),
      ElementsAre(
          "f.yaml:5:29: pools.p.circuit_breaker.consecutive_failures: must be between 0 and "
          "4294967295, got -1",
          "f.yaml:6:22: pools.p.circuit_breaker.window.size: must be between 1 and 4294967295, "
          "got 0",
          "f.yaml:6:35: pools.p.circuit_breaker.window.duration: must be greater than 0",
          "f.yaml:7:22: pools.p.circuit_breaker.minimum_calls: must be between 1 and 4294967295, "
          "got 0",
          "f.yaml:8:28: pools.p.circuit_breaker.half_open_max_calls: must be between 1 and "
          "4294967295, got 0",
          "f.yaml:9:39: pools.p.health_check.healthy_threshold: must be between 1 and "
          "4294967295, got 0",
          "f.yaml:9:63: pools.p.health_check.unhealthy_threshold: must be between 1 and "
          "4294967295, got 0",
          "f.yaml:9:84: pools.p.health_check.expected_version: must be between 0 and "
          "9223372036854775807, got -3",
          "f.yaml:10:37: pools.p.retry_budget.min_concurrency: must be between 0 and 4294967295, "
          "got -1",
          "f.yaml:15:27: routes[0].retry.max_attempts: must be between 1 and 10, got 11",
          "f.yaml:19:27: routes[1].retry.max_attempts: must be between 1 and 10, got 0"));
}

TEST(ConfigErrors, ZeroResilienceDurationsAreRejectedWithoutKnockOnErrors) {
  // The invalid open_duration, interval/timeout and route timeout keep their defaults, but the
  // rules that compare them are skipped: one mistake, one error.
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {slow_call_duration: 0, open_duration: 0s, max_open_duration: 1s}
    health_check: {interval: 0s, unhealthy_interval: 0ms, timeout: 0}
routes:
  - name: r
    match: {model: m}
    pool: p
    timeout: 0s
    retry: {per_try_timeout: 5s, backoff: {base: 0ms}}
    hedge: {delay: 40s}
)"),
              ElementsAre("f.yaml:4:43: pools.p.circuit_breaker.slow_call_duration: must be "
                          "greater than 0",
                          "f.yaml:4:61: pools.p.circuit_breaker.open_duration: must be greater "
                          "than 0",
                          "f.yaml:5:30: pools.p.health_check.interval: must be greater than 0",
                          "f.yaml:5:54: pools.p.health_check.unhealthy_interval: must be greater "
                          "than 0",
                          "f.yaml:5:68: pools.p.health_check.timeout: must be greater than 0",
                          "f.yaml:10:14: routes[0].timeout: must be greater than 0",
                          "f.yaml:11:50: routes[0].retry.backoff.base: must be greater than 0"));
}

TEST(ConfigErrors, FailureStatusesAreBackendFailuresOnly) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker:
      failure_statuses: [500, 404, 429, 408, 600, 399, 5xx, 500, {code: 503}, ~]
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:5:31: pools.p.circuit_breaker.failure_statuses[1]: status 404 "
                          "is a client error: client errors never count as backend failures (of "
                          "the 4xx statuses only 408 and 429 may be listed)",
                          "f.yaml:5:46: pools.p.circuit_breaker.failure_statuses[4]: must be "
                          "between 400 and 599, got 600",
                          "f.yaml:5:51: pools.p.circuit_breaker.failure_statuses[5]: must be "
                          "between 400 and 599, got 399",
                          "f.yaml:5:56: pools.p.circuit_breaker.failure_statuses[6]: not an "
                          "integer: \"5xx\"",
                          "f.yaml:5:61: pools.p.circuit_breaker.failure_statuses[7]: duplicate "
                          "status 500",
                          "f.yaml:5:66: pools.p.circuit_breaker.failure_statuses[8]: expected an "
                          "HTTP status, got a map",
                          "f.yaml:5:79: pools.p.circuit_breaker.failure_statuses[9]: missing "
                          "value (expected an HTTP status)"));
}

TEST(ConfigErrors, RetryOnIsFailureWordsAndServerStatuses) {
  EXPECT_THAT(
      errors_of(R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
routes:
  - name: r
    match: {model: m}
    pool: p
    retry:
      retry_on: [reset, connect-failure, 404, 408, 200, 600, reset, gateway-error, 503, 503]
)"),
      ElementsAre("f.yaml:8:25: routes[0].retry.retry_on[1]: invalid value \"connect-failure\" "
                  "(expected one of: connect_failure, reset, timeout, or an HTTP status 500..599 "
                  "or 429)",
                  "f.yaml:8:42: routes[0].retry.retry_on[2]: status 404 is a client error: it "
                  "would fail again, so it is never retried (of the 4xx statuses only 429 may be "
                  "listed)",
                  "f.yaml:8:47: routes[0].retry.retry_on[3]: status 408 is a client error: it "
                  "would fail again, so it is never retried (of the 4xx statuses only 429 may be "
                  "listed)",
                  "f.yaml:8:52: routes[0].retry.retry_on[4]: invalid value \"200\" (expected one "
                  "of: connect_failure, reset, timeout, or an HTTP status 500..599 or 429)",
                  "f.yaml:8:57: routes[0].retry.retry_on[5]: invalid value \"600\" (expected one "
                  "of: connect_failure, reset, timeout, or an HTTP status 500..599 or 429)",
                  "f.yaml:8:62: routes[0].retry.retry_on[6]: duplicate retry condition "
                  "\"reset\"",
                  "f.yaml:8:69: routes[0].retry.retry_on[7]: invalid value \"gateway-error\" "
                  "(expected one of: connect_failure, reset, timeout, or an HTTP status 500..599 "
                  "or 429)",
                  "f.yaml:8:89: routes[0].retry.retry_on[9]: duplicate retry condition "
                  "\"503\""));
}

TEST(ConfigErrors, HealthCheckModelsAreExactNames) {
  EXPECT_THAT(errors_of(R"(pools:
  p:
    endpoints: [{address: 10.0.0.1}]
    health_check:
      models: [resnet, "", "res*", resnet, [a]]
routes:
  - {name: r, match: {model: m}, pool: p}
)"),
              ElementsAre("f.yaml:5:24: pools.p.health_check.models[1]: must not be empty",
                          "f.yaml:5:28: pools.p.health_check.models[2]: a probe needs an exact "
                          "model name, got \"res*\"",
                          "f.yaml:5:36: pools.p.health_check.models[3]: duplicate model "
                          "\"resnet\"",
                          "f.yaml:5:44: pools.p.health_check.models[4]: expected a model name, "
                          "got a list"));
}

TEST(ConfigErrors, PoolCrossFieldRulesBlameTheKeyThatWasWritten) {
  // Pool a writes both keys of each rule: the dependent one is blamed. Pool b writes only one
  // key of each (the other keeps its default): that one is blamed.
  EXPECT_THAT(errors_of(R"(pools:
  a:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {open_duration: 10s, max_open_duration: 5s}
    health_check: {interval: 2s, timeout: 2s}
  b:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker:
      open_duration: 2m
      window: {size: 5}
    health_check:
      interval: 500ms
  c:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {minimum_calls: 21}
routes:
  - {name: r, match: {model: m}, pool: a}
)"),
              ElementsAre("f.yaml:4:62: pools.a.circuit_breaker.max_open_duration: must be at "
                          "least open_duration (10s)",
                          "f.yaml:5:43: pools.a.health_check.timeout: must be less than interval "
                          "(2s)",
                          "f.yaml:9:22: pools.b.circuit_breaker.open_duration: must not exceed "
                          "max_open_duration (1m)",
                          "f.yaml:10:22: pools.b.circuit_breaker.window.size: must be at least "
                          "minimum_calls (10) with a count window, or the rate triggers never "
                          "fire",
                          "f.yaml:12:17: pools.b.health_check.interval: must be greater than "
                          "timeout (1s)",
                          "f.yaml:15:38: pools.c.circuit_breaker.minimum_calls: must not exceed "
                          "window.size (20) with a count window, or the rate triggers never "
                          "fire"));
}

TEST(ConfigErrors, RouteCrossFieldRules) {
  EXPECT_THAT(errors_of(R"(pools:
  p: {endpoints: [{address: 10.0.0.1}]}
routes:
  - name: a
    match: {model: a}
    pool: p
    timeout: 5s
    max_timeout: 4s
    retry:
      per_try_timeout: 6s
      backoff: {base: 100ms, max: 50ms}
    hedge: {delay: 5s}
  - name: b
    match: {model: b}
    pool: p
    retry:
      backoff: {base: 1s}
    hedge: {delay: 31s}
)"),
              ElementsAre("f.yaml:8:18: routes[0].max_timeout: must be 0 or at least timeout "
                          "(5s)",
                          "f.yaml:10:24: routes[0].retry.per_try_timeout: must not exceed the "
                          "route's timeout (5s)",
                          "f.yaml:11:35: routes[0].retry.backoff.max: must be at least base "
                          "(100ms)",
                          "f.yaml:12:20: routes[0].hedge.delay: must be 0 (off) or less than the "
                          "route's timeout (5s)",
                          "f.yaml:17:23: routes[1].retry.backoff.base: must not exceed max "
                          "(250ms)",
                          "f.yaml:18:20: routes[1].hedge.delay: must be 0 (off) or less than the "
                          "route's timeout (30s)"));
}

TEST(ConfigErrors, RequireHealthCheckNeedsProbesThatRun) {
  EXPECT_THAT(errors_of(R"(pools:
  unchecked:
    endpoints: [{address: 10.0.0.1}]
    circuit_breaker: {require_health_check: true}
    health_check: {enabled: false}
  wildcard:
    endpoints: [{address: 10.0.0.2}]
    circuit_breaker: {require_health_check: true}
  listed:
    endpoints: [{address: 10.0.0.3}]
    circuit_breaker: {require_health_check: true}
    health_check: {models: [resnet]}
routes:
  - {name: any, match: {model: "*"}, pool: wildcard}
  - {name: m, match: {model: m}, pool: unchecked}
)"),
              ElementsAre("f.yaml:4:45: pools.unchecked.circuit_breaker.require_health_check: "
                          "needs health_check.enabled: true (without probes an open breaker "
                          "would never close)",
                          "f.yaml:8:45: pools.wildcard.circuit_breaker.require_health_check: "
                          "needs a model to probe: list it in health_check.models (no route "
                          "using this pool names an exact model, and \"*\" gives none)"));
}

// ---- environment substitution ---------------------------------------------------------------

// ---- degradation chain ----------------------------------------------------------------------

// Two pools and the head of a route on lines 1..6, so that the chain starts on line 7.
constexpr std::string_view kChainHead = R"(pools:
  primary: {endpoints: [{address: 10.0.0.1}]}
  light: {endpoints: [{address: 10.0.0.2}]}
routes:
  - {name: r, match: {model: other}, pool: primary}
  - name: chain
)";

std::vector<std::string> chain_errors(std::string_view route_tail) {
  return errors_of(std::string(kChainHead) + "    match: {model: resnet}\n" + "    pool: light\n" +
                   std::string(route_tail));
}

TEST(ConfigErrors, FallbackTierKindAndItsKeys) {
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: model, pool: primary, model: mobilenet, status: 200}
      - {tier: script, when: x}
      - {pool: light, model: m}
      - {tier: cache, ttl: 1s}
      - {tier: default, timeout: 1s}
)"),
              ElementsAre("f.yaml:10:56: routes[1].fallbacks[0].status: unknown key \"status\" "
                          "(expected one of: tier, pool, model, timeout, version, label, "
                          "signature)",
                          // An unknown kind reports the kind only, not every key of it.
                          "f.yaml:11:16: routes[1].fallbacks[1].tier: invalid value \"script\" "
                          "(expected one of: model, cache, default, rules)",
                          "f.yaml:12:9: routes[1].fallbacks[2]: missing required key \"tier\"",
                          "f.yaml:13:16: routes[1].fallbacks[3].tier: a cache tier needs the "
                          "route's cache.mode to be fallback or first (it is off, so nothing is "
                          "ever stored)",
                          "f.yaml:13:23: routes[1].fallbacks[3].ttl: unknown key \"ttl\" "
                          "(expected one of: tier)",
                          "f.yaml:14:25: routes[1].fallbacks[4].timeout: unknown key "
                          "\"timeout\" (expected one of: tier, status, body, retry_after, grpc_response)"));
  EXPECT_THAT(chain_errors("    fallbacks: {tier: cache}\n"),
              ElementsAre("f.yaml:9:16: routes[1].fallbacks: expected a list, got a map"));
  EXPECT_THAT(chain_errors("    fallbacks: [cache]\n"),
              ElementsAre("f.yaml:9:17: routes[1].fallbacks[0]: expected a map, got a scalar"));
}

TEST(ConfigErrors, ModelTierValues) {
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: model}
      - {tier: model, pool: "", model: ""}
      - {tier: model, pool: primary, model: "mob*", timeout: 0}
      - {tier: model, pool: primary, model: m, version: 0, label: "a-b"}
      - {tier: model, pool: primary, model: m, version: 2, label: canary}
)"),
              ElementsAre("f.yaml:10:9: routes[1].fallbacks[0]: missing required key \"pool\"",
                          "f.yaml:10:9: routes[1].fallbacks[0]: missing required key \"model\"",
                          "f.yaml:11:29: routes[1].fallbacks[1].pool: must not be empty",
                          "f.yaml:11:40: routes[1].fallbacks[1].model: must not be empty",
                          "f.yaml:12:45: routes[1].fallbacks[2].model: a fallback needs an "
                          "exact model name, got \"mob*\"",
                          "f.yaml:12:62: routes[1].fallbacks[2].timeout: must be greater than 0",
                          "f.yaml:13:57: routes[1].fallbacks[3].version: must be between 1 and "
                          "9223372036854775807, got 0",
                          "f.yaml:13:67: routes[1].fallbacks[3].label: invalid label \"a-b\" "
                          "(use letters, digits and \"_\")",
                          "f.yaml:14:67: routes[1].fallbacks[4].label: set either version or "
                          "label, not both (version is 2)"));
}

TEST(ConfigErrors, ModelTierNamesAPoolThatDoesNotExist) {
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - tier: model
        pool: heavy
        model: mobilenet
)"),
              ElementsAre("f.yaml:11:15: routes[1].fallbacks[0].pool: no pool named \"heavy\""));
}

TEST(ConfigErrors, ModelTierMayNotFallBackToItself) {
  // The route's primary is pool "light", model "resnet"; another version of it on the same
  // pool fails with it all the same.
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: model, pool: primary, model: resnet}
      - {tier: model, pool: light, model: resnet, version: 3}
)"),
              ElementsAre("f.yaml:11:9: routes[1].fallbacks[1]: falls back to itself: pool "
                          "\"light\" and model \"resnet\" are the route's primary"));
}

TEST(ConfigErrors, ChainShape) {
  // A cache tier needs a cache; one cache and one default tier at most; the default comes last.
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: cache}
      - {tier: default}
      - {tier: model, pool: primary, model: m}
      - {tier: cache}
)"),
              ElementsAre("f.yaml:10:16: routes[1].fallbacks[0].tier: a cache tier needs the "
                          "route's cache.mode to be fallback or first (it is off, so nothing is "
                          "ever stored)",
                          "f.yaml:12:9: routes[1].fallbacks[2]: unreachable: the default tier at "
                          "fallbacks[1] always answers, so it must be the last tier"));
  EXPECT_THAT(chain_errors(R"(    cache: {mode: fallback}
    fallbacks:
      - {tier: cache}
      - {tier: model, pool: primary, model: m}
      - {tier: cache}
      - {tier: default}
      - {tier: default}
)"),
              ElementsAre("f.yaml:13:16: routes[1].fallbacks[2].tier: at most one cache tier per "
                          "route (first at fallbacks[0])",
                          "f.yaml:15:16: routes[1].fallbacks[4].tier: at most one default tier "
                          "per route (first at fallbacks[3])"));
  // An invalid cache.mode is reported once, not again at the cache tier.
  EXPECT_THAT(chain_errors(R"(    cache: {mode: on}
    fallbacks: [{tier: cache}]
)"),
              ElementsAre("f.yaml:9:19: routes[1].cache.mode: invalid value \"on\" (expected "
                          "one of: off, fallback, first)"));
}

TEST(ConfigErrors, DefaultTierValues) {
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - tier: default
        status: 99
        body: '{"predictions": }'
        retry_after: -1s
)"),
              ElementsAre("f.yaml:11:17: routes[1].fallbacks[0].status: must be between 100 and "
                          "599, got 99",
                          "f.yaml:12:15: routes[1].fallbacks[0].body: not valid JSON: parse error "
                          "at line 1, column 17: syntax error while parsing value - unexpected "
                          "'}'; expected '[', '{', or a literal (write a map, a list, or a "
                          "string holding JSON text)",
                          "f.yaml:13:22: routes[1].fallbacks[0].retry_after: not a duration: "
                          "\"-1s\" (expected e.g. 250ms, 2s, 1m30s, 1h)"));
  // A bare word is neither JSON text nor a YAML number or boolean.
  EXPECT_THAT(chain_errors("    fallbacks: [{tier: default, body: unavailable}]\n"),
              ElementsAre("f.yaml:9:39: routes[1].fallbacks[0].body: not valid JSON: parse error "
                          "at line 1, column 1: syntax error while parsing value - invalid "
                          "literal; last read: 'u' (write a map, a list, or a string holding "
                          "JSON text)"));
  EXPECT_THAT(
      chain_errors(R"(    fallbacks:
      - tier: default
        body:
          predictions: [1, 2]
          predictions: []
          outputs: {[1]: x, y: "${UNSET_IN_TEST}"}
      - tier: default
        body:
)"),
      ElementsAre("f.yaml:13:11: routes[1].fallbacks[0].body.predictions: duplicate key "
                  "\"predictions\"",
                  "f.yaml:14:21: routes[1].fallbacks[0].body.outputs: JSON object keys "
                  "must be strings, got a list",
                  "f.yaml:14:32: routes[1].fallbacks[0].body.outputs.y: environment "
                  "variable \"UNSET_IN_TEST\" is not set (write ${UNSET_IN_TEST:-default} "
                  "to give a default)",
                  "f.yaml:15:15: routes[1].fallbacks[1].tier: at most one default tier per "
                  "route (first at fallbacks[0])",
                  "f.yaml:16:9: routes[1].fallbacks[1].body: missing value (expected a map, "
                  "a list, or a string holding JSON text)"));
}

TEST(ConfigErrors, RulesTierShape) {
  EXPECT_THAT(chain_errors("    fallbacks: [{tier: rules}]\n"),
              ElementsAre("f.yaml:9:17: routes[1].fallbacks[0]: missing required key \"rules\""));
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: rules, rules: [], timeout: 1s}
)"),
              ElementsAre("f.yaml:10:30: routes[1].fallbacks[0].rules: at least one rule is "
                          "required",
                          "f.yaml:10:34: routes[1].fallbacks[0].timeout: unknown key \"timeout\" "
                          "(expected one of: tier, grpc_output, rules)"));
  // One rules tier per route, and nothing after the default tier.
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: rules, rules: [{name: a, model: m, prediction: 1}]}
      - {tier: rules, rules: [{name: b, model: m, prediction: 2}]}
      - {tier: default}
      - {tier: rules, rules: [{name: c, prediction: 3}]}
)"),
              ElementsAre("f.yaml:11:16: routes[1].fallbacks[1].tier: at most one rules tier per "
                          "route (first at fallbacks[0])",
                          "f.yaml:13:9: routes[1].fallbacks[3]: unreachable: the default tier at "
                          "fallbacks[2] always answers, so it must be the last tier"));
}

TEST(ConfigErrors, RuleKeys) {
  EXPECT_THAT(
      chain_errors(R"(    fallbacks:
      - tier: rules
        rules:
          - {model: "res*", headers: {"X Region": eu, X-A: 1, x-a: 2, X-B: }, colour: red}
          - {name: "a b", prediction: }
          - {name: ok, model: m, prediction: 1}
          - {name: ok, model: m, prediction: 2}
          - name: cond
            when: {pointer: /a}
            prediction: 1
)"),
      ElementsAre(
          "f.yaml:12:13: routes[1].fallbacks[0].rules[0]: missing required key \"name\"",
          "f.yaml:12:13: routes[1].fallbacks[0].rules[0]: missing required key \"prediction\"",
          "f.yaml:12:21: routes[1].fallbacks[0].rules[0].model: a rule matches an exact model "
          "name (leave model out to match any), got \"res*\"",
          "f.yaml:12:39: routes[1].fallbacks[0].rules[0].headers.X Region: invalid header name "
          "\"X Region\" (use letters, digits and !#$%&'*+-.^_`|~)",
          "f.yaml:12:63: routes[1].fallbacks[0].rules[0].headers.x-a: duplicate header \"x-a\" "
          "(header names are case-insensitive)",
          "f.yaml:12:71: routes[1].fallbacks[0].rules[0].headers.X-B: missing value (expected a "
          "string)",
          "f.yaml:12:79: routes[1].fallbacks[0].rules[0].colour: unknown key \"colour\" "
          "(expected one of: name, model, signature, headers, when, instance_when, prediction)",
          "f.yaml:13:20: routes[1].fallbacks[0].rules[1].name: invalid rule name \"a b\" (use "
          "letters, digits, \"_\", \"-\" and \".\")",
          "f.yaml:13:27: routes[1].fallbacks[0].rules[1].prediction: missing value (expected a "
          "map, a list or a scalar)",
          "f.yaml:15:20: routes[1].fallbacks[0].rules[3].name: duplicate rule name \"ok\" (first "
          "at rules[2])",
          "f.yaml:17:19: routes[1].fallbacks[0].rules[4].when: expected a list, got a map"));
}

TEST(ConfigErrors, RuleConditions) {
  EXPECT_THAT(
      chain_errors(R"(    fallbacks:
      - tier: rules
        rules:
          - name: c
            model: m
            when:
              - {op: equals, value: 1}
              - {pointer: a, value: 1}
              - {pointer: /a~2, value: 1}
              - {pointer: /a, op: like, value: 1}
              - {pointer: /a}
              - {pointer: /a, op: in, value: DE}
              - {pointer: /a, value: }
              - {pointer: /a, op: exists, value: 1, min: 0}
            instance_when:
              - {pointer: /p, op: range}
              - {pointer: /p, op: range, min: 5, max: 1.5}
              - {pointer: /p, op: range, min: low, size: 1}
            prediction: 1
)"),
      ElementsAre(
          "f.yaml:15:17: routes[1].fallbacks[0].rules[0].when[0]: missing required key "
          "\"pointer\"",
          "f.yaml:16:27: routes[1].fallbacks[0].rules[0].when[1].pointer: not a JSON Pointer "
          "(must start with \"/\", or be \"\" for the whole value): \"a\"",
          "f.yaml:17:27: routes[1].fallbacks[0].rules[0].when[2].pointer: not a JSON Pointer "
          "(\"~\" must be followed by 0 or 1: ~0 is \"~\", ~1 is \"/\"): \"/a~2\"",
          "f.yaml:18:35: routes[1].fallbacks[0].rules[0].when[3].op: invalid value \"like\" "
          "(expected one of: equals, in, exists, range)",
          "f.yaml:19:17: routes[1].fallbacks[0].rules[0].when[4]: missing required key \"value\" "
          "(op equals compares with it)",
          "f.yaml:20:46: routes[1].fallbacks[0].rules[0].when[5].value: op in needs a list of "
          "values, got a scalar",
          "f.yaml:21:31: routes[1].fallbacks[0].rules[0].when[6].value: missing value (expected "
          "a map, a list or a scalar)",
          "f.yaml:22:50: routes[1].fallbacks[0].rules[0].when[7].value: only used by op equals "
          "and in (op is exists)",
          "f.yaml:22:58: routes[1].fallbacks[0].rules[0].when[7].min: only used by op range (op "
          "is exists)",
          "f.yaml:24:17: routes[1].fallbacks[0].rules[0].instance_when[0]: op range needs min, "
          "max or both",
          "f.yaml:25:55: routes[1].fallbacks[0].rules[0].instance_when[1].max: must not be less "
          "than min (5)",
          "f.yaml:26:47: routes[1].fallbacks[0].rules[0].instance_when[2].min: not a number: "
          "\"low\"",
          "f.yaml:26:52: routes[1].fallbacks[0].rules[0].instance_when[2].size: unknown key "
          "\"size\" (expected one of: pointer, op, value, min, max)"));
}

TEST(ConfigErrors, RulesEngineChecksAreReportedAtTheRulesList) {
  // degrade::validate() runs on rules that read cleanly; its findings point at `rules`.
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - tier: rules
        rules:
          - {name: everything, prediction: 1}
          - {name: eu, headers: {X-Region: eu}, prediction: 2}
          - {name: last, prediction: 3}
)"),
              ElementsAre("f.yaml:12:11: routes[1].fallbacks[0].rules[1]: unreachable: rules[0] "
                          "answers every request",
                          "f.yaml:12:11: routes[1].fallbacks[0].rules[2]: unreachable: rules[0] "
                          "answers every request"));
}

TEST(ConfigErrors, CacheSettings) {
  EXPECT_THAT(errors_with_tail("cache: {max_bytes: 0, shards: 257, size: 1}\n"),
              ElementsAre("f.yaml:1:20: cache.max_bytes: must be greater than 0",
                          "f.yaml:1:31: cache.shards: must be between 1 and 256, got 257",
                          "f.yaml:1:36: cache.size: unknown key \"size\" (expected one of: "
                          "max_bytes, shards)"));
  EXPECT_THAT(errors_with_tail("cache: {shards: 0}\n"),
              ElementsAre("f.yaml:1:17: cache.shards: must be between 1 and 256, got 0"));
  EXPECT_THAT(
      chain_errors(
          R"(    cache: {mode: first, ttl: 0, stale_if_error: 1d, fill_from_model_tiers: yes,
            key: body}
)"),
      ElementsAre("f.yaml:9:31: routes[1].cache.ttl: must be greater than 0",
                  "f.yaml:9:50: routes[1].cache.stale_if_error: not a duration: \"1d\" "
                  "(expected e.g. 250ms, 2s, 1m30s, 1h)",
                  "f.yaml:9:77: routes[1].cache.fill_from_model_tiers: not a boolean: "
                  "\"yes\" (expected true or false)",
                  "f.yaml:10:13: routes[1].cache.key: unknown key \"key\" (expected one "
                  "of: mode, ttl, stale_if_error, fill_from_model_tiers)"));
}

TEST(ConfigErrors, FallbackReserveLeavesThePrimaryTime) {
  EXPECT_THAT(chain_errors("    timeout: 1s\n    fallback_reserve: 1001ms\n"),
              ElementsAre("f.yaml:10:23: routes[1].fallback_reserve: must not exceed the "
                          "route's timeout (1s)"));
  EXPECT_THAT(chain_errors(R"(    timeout: 1s
    fallback_reserve: 1s
    fallbacks: [{tier: default}]
)"),
              ElementsAre("f.yaml:10:23: routes[1].fallback_reserve: must be less than the "
                          "route's timeout (1s) when fallbacks are set, or the primary gets no "
                          "time"));
  // An invalid timeout is reported once; the reserve is not compared with it.
  EXPECT_THAT(chain_errors(R"(    timeout: 0
    fallback_reserve: 1s
    fallbacks: [{tier: default}]
)"),
              ElementsAre("f.yaml:9:14: routes[1].timeout: must be greater than 0"));
}

TEST(ConfigErrors, UnsetVariableIsReportedAtItsScalar) {
  ScopedTestEnv env{{"BACKEND", "10.0.0.9"}};
  EXPECT_THAT(errors_with_tail("listeners:\n  http:\n    address: ${BACKEND}\n"
                               "    port: ${FUSEBOX_PORT}\n"),
              ElementsAre("f.yaml:4:11: listeners.http.port: environment variable "
                          "\"FUSEBOX_PORT\" is not set (write ${FUSEBOX_PORT:-default} to give a "
                          "default)"));
  EXPECT_THAT(errors_with_tail("logging:\n  file: \"/var/log/${NAME\"\n"),
              ElementsAre("f.yaml:2:9: logging.file: unterminated \"${\" (write \"$$\" for a "
                          "literal \"$\")"));
}

TEST(ConfigErrors, BadSubstitutedValueShowsWhatTheFileSaid) {
  ScopedTestEnv env{{"FUSEBOX_PORT", "http"}, {"IDLE", "5"}};
  EXPECT_THAT(errors_with_tail("listeners:\n  http:\n    port: ${FUSEBOX_PORT}\n"
                               "    idle_timeout: \"${IDLE}\"\n"),
              ElementsAre("f.yaml:3:11: listeners.http.port: not an integer: \"http\" (from "
                          "\"${FUSEBOX_PORT}\")",
                          "f.yaml:4:19: listeners.http.idle_timeout: not a duration: \"5\" (a "
                          "unit is required: ms, s, m or h, e.g. 250ms, 2s, 1m30s) (from "
                          "\"${IDLE}\")"));
}

// ---- all at once ----------------------------------------------------------------------------

TEST(ConfigErrors, EveryProblemIsReportedInFileOrder) {
  std::vector<std::string> errors = errors_of(R"(server: {threads: many}
listeners:
  http: {port: 8080, colour: blue}
  admin: {port: 8080}
pools:
  p:
    endpoints: [{address: 10.0.0.1, weight: 0}]
routes:
  - {name: r, match: {model: m}, pool: q, timeout: 0}
logging: {level: loud}
)");
  EXPECT_THAT(errors,
              ElementsAre(HasSubstr("f.yaml:1:19: server.threads: not an integer"),
                          HasSubstr("f.yaml:3:22: listeners.http.colour: unknown key"),
                          HasSubstr("f.yaml:4:17: listeners.admin.port: port 8080 on"),
                          HasSubstr("f.yaml:7:45: pools.p.endpoints[0].weight: must be between"),
                          HasSubstr("f.yaml:9:40: routes[0].pool: no pool named \"q\""),
                          HasSubstr("f.yaml:9:52: routes[0].timeout: must be greater than 0"),
                          HasSubstr("f.yaml:10:18: logging.level: invalid value \"loud\"")));
}

TEST(ConfigErrors, DefaultTierGrpcResponseIsAPredictResponse) {
  EXPECT_THAT(chain_errors(R"(    fallbacks:
      - {tier: default, grpc_response: {outputs: {y: {dtype: DT_NOPE}}}}
)"),
              ElementsAre(::testing::StartsWith(
                  "f.yaml:10:40: routes[1].fallbacks[0].grpc_response: not a PredictResponse: "
                  "(outputs[0].value.dtype): invalid value \"DT_NOPE\"")));
  EXPECT_THAT(chain_errors("    fallbacks: [{tier: default, grpc_response: [1]}]\n"),
              ElementsAre("f.yaml:9:48: routes[1].fallbacks[0].grpc_response: expected a map: a "
                          "PredictResponse in protobuf's JSON form"));
}

TEST(ConfigErrors, LoadDegradationNeedsASignalAndAModelTier) {
  EXPECT_THAT(chain_errors(R"(    fallbacks: [{tier: model, pool: primary, model: mobilenet}]
    degrade_on_load: {interval: 0, step_percent: 0, recover_ratio: 2}
)"),
              ElementsAre("f.yaml:10:22: routes[1].degrade_on_load.max_inflight: set max_inflight "
                          "and/or max_latency (both are 0, so nothing would ever degrade)",
                          "f.yaml:10:33: routes[1].degrade_on_load.interval: must be greater "
                          "than 0",
                          "f.yaml:10:50: routes[1].degrade_on_load.step_percent: must be between "
                          "1 and 100, got 0",
                          "f.yaml:10:68: routes[1].degrade_on_load.recover_ratio: must be between "
                          "0.01 and 1, got 2"));
  EXPECT_THAT(chain_errors(R"(    fallbacks: [{tier: default}]
    degrade_on_load: {max_latency: 500ms}
)"),
              ElementsAre("f.yaml:10:22: routes[1].degrade_on_load: needs a model tier as the "
                          "first fallback (diverted requests go there)"));
}

TEST(ConfigErrors, SplitCanaries) {
  EXPECT_THAT(chain_errors(R"(    split:
      canaries:
        - {name: v2, pool: nowhere, weight_percent: 60}
        - {name: v2, version: 3, label: b, weight_percent: 50}
        - {name: always, label: x, weight_percent: 0}
        - {name: same, weight_percent: 1}
        - {name: w}
      sticky_header: "bad header"
)"),
              ElementsAre("f.yaml:11:9: routes[1].split.canaries: canary weights add up to 111%, "
                          "more than 100%",
                          "f.yaml:11:28: routes[1].split.canaries[0].pool: no pool named "
                          "\"nowhere\"",
                          "f.yaml:12:18: routes[1].split.canaries[1].name: duplicate canary name "
                          "\"v2\" (first at canaries[0])",
                          "f.yaml:12:41: routes[1].split.canaries[1].label: set either version or "
                          "label, not both (version is 3)",
                          "f.yaml:13:18: routes[1].split.canaries[2].name: \"always\" is reserved "
                          "(an override header value)",
                          "f.yaml:14:11: routes[1].split.canaries[3]: the canary is the stable "
                          "target itself: set a pool, model, version or label",
                          "f.yaml:15:11: routes[1].split.canaries[4]: missing required key "
                          "\"weight_percent\"",
                          "f.yaml:15:11: routes[1].split.canaries[4]: the canary is the stable "
                          "target itself: set a pool, model, version or label",
                          "f.yaml:16:22: routes[1].split.sticky_header: invalid header name "
                          "\"bad header\""));
  EXPECT_THAT(chain_errors("    split: {canaries: []}\n"),
              ElementsAre("f.yaml:9:23: routes[1].split.canaries: at least one canary is required "
                          "(or remove split)"));
}

TEST(ConfigErrors, IdempotencySettings) {
  EXPECT_THAT(chain_errors("    idempotency: {header: \"\", ttl: forever, coalesce: true}\n"),
              ElementsAre("f.yaml:9:27: routes[1].idempotency.header: must not be empty",
                          "f.yaml:9:36: routes[1].idempotency.ttl: not a duration: \"forever\" "
                          "(expected e.g. 250ms, 2s, 1m30s, 1h)",
                          "f.yaml:9:45: routes[1].idempotency.coalesce: unknown key \"coalesce\" "
                          "(expected one of: enabled, header, ttl, coalesce_identical)"));
  EXPECT_THAT(errors_with_tail("idempotency: {max_bytes: 0, shards: 1000}\n"),
              ElementsAre("f.yaml:1:26: idempotency.max_bytes: must be greater than 0",
                          "f.yaml:1:37: idempotency.shards: must be between 1 and 256, got 1000"));
}

}  // namespace
}  // namespace fusebox::config

namespace fusebox::config {
namespace {

// ---- listeners.grpc.metadata ------------------------------------------------------------------

// ---- admission control and authentication ---------------------------------------------------

// Every message about a key hash or a JWT secret must leave the value out.
void expect_no_secret(const std::vector<std::string>& errors, std::string_view secret) {
  for (const std::string& error : errors)
    EXPECT_EQ(error.find(secret), std::string::npos) << "secret echoed in: " << error;
}

TEST(ConfigErrors, AdminTokenHash) {
  const auto errors = errors_with_tail("listeners:\n  admin: {token_hash: my-admin-token}\n");
  EXPECT_THAT(errors, ElementsAre("f.yaml:2:23: listeners.admin.token_hash: expected \"sha256:\" "
                                  "followed by 64 hex digits (the key itself does not belong in "
                                  "the configuration: store `printf %s KEY | sha256sum`)"));
  expect_no_secret(errors, "my-admin-token");
  EXPECT_THAT(errors_with_tail("listeners:\n  admin: {token_hash: \"sha256:abc\"}\n"),
              ElementsAre("f.yaml:2:23: listeners.admin.token_hash: expected \"sha256:\" "
                          "followed by 64 hex digits (got 3 hex digits)"));
}

TEST(ConfigErrors, ApiKeyEntries) {
  ScopedTestEnv env{{"ONE", std::string(kKeyOneHash)},
                    {"ONE_UPPER", "sha256:" + std::string(64, 'F')},
                    {"ONE_LOWER", "sha256:" + std::string(64, 'f')}};
  const auto errors = errors_with_tail(R"(auth:
  api_keys:
    - {hash: "${ONE}"}
    - {name: "", hash: sk-live-123456}
    - {name: "team a", hash: "sha256:xyz", priority: 10}
    - name: b
      hash: ${ONE}
      models: ["*", m, m, ""]
    - {name: b, hash: "${ONE_UPPER}"}
    - {name: c, hash: "${ONE_LOWER}"}
    - name: d
)");
  EXPECT_THAT(
      errors,
      ElementsAre(
          "f.yaml:3:7: auth.api_keys[0]: missing required key \"name\"",
          "f.yaml:4:14: auth.api_keys[1].name: must not be empty",
          "f.yaml:4:24: auth.api_keys[1].hash: expected \"sha256:\" followed by 64 hex digits "
          "(the key itself does not belong in the configuration: store `printf %s KEY | "
          "sha256sum`)",
          "f.yaml:5:14: auth.api_keys[2].name: invalid API key name \"team a\" (use letters, "
          "digits, \"_\", \"-\" and \".\")",
          "f.yaml:5:30: auth.api_keys[2].hash: expected \"sha256:\" followed by 64 hex digits "
          "(found a character that is not hex)",
          "f.yaml:5:54: auth.api_keys[2].priority: must be between 0 and 9, got 10",
          "f.yaml:7:13: auth.api_keys[3].hash: the same key as api_keys[0]: one key cannot have "
          "two names",
          "f.yaml:8:16: auth.api_keys[3].models[0]: an exact model name is needed (leave models "
          "out to allow every model), got \"*\"",
          "f.yaml:8:24: auth.api_keys[3].models[2]: duplicate model \"m\"",
          "f.yaml:8:27: auth.api_keys[3].models[3]: must not be empty",
          "f.yaml:9:14: auth.api_keys[4].name: duplicate API key name \"b\" (first at "
          "api_keys[3])",
          "f.yaml:10:23: auth.api_keys[5].hash: the same key as api_keys[4] (\"b\"): one key "
          "cannot have two names",
          "f.yaml:11:7: auth.api_keys[6]: missing required key \"hash\""));
  expect_no_secret(errors, "sk-live-123456");
}

TEST(ConfigErrors, ApiKeyHeaderAndRealm) {
  EXPECT_THAT(errors_with_tail("auth:\n  realm: 'a \"b\"'\n  api_key_header: X API Key\n"),
              ElementsAre("f.yaml:2:10: auth.realm: must not contain '\"', '\\' or control "
                          "characters (it is sent in WWW-Authenticate)",
                          "f.yaml:3:19: auth.api_key_header: invalid header name \"X API Key\" "
                          "(use letters, digits and !#$%&'*+-.^_`|~)"));
  EXPECT_THAT(errors_with_tail("auth:\n  realm: ''\n  api_key_header: authorization\n"),
              ElementsAre("f.yaml:2:10: auth.realm: must not be empty",
                          "f.yaml:3:19: auth.api_key_header: cannot be Authorization (keys are "
                          "accepted there anyway, as \"Authorization: ApiKey <key>\")"));
  EXPECT_THAT(errors_with_tail("auth: {api_key_header: \"\", api: []}\n"),
              ElementsAre("f.yaml:1:24: auth.api_key_header: must not be empty",
                          "f.yaml:1:28: auth.api: unknown key \"api\" (expected one of: realm, "
                          "api_key_header, api_keys, jwt)"));
}

TEST(ConfigErrors, RateLimits) {
  ScopedTestEnv env{{"ONE", std::string(kKeyOneHash)}};
  EXPECT_THAT(errors_of(R"(auth:
  api_keys:
    - {name: a, hash: "${ONE}", rate_limit: {burst: 2}}
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    rate_limit: {requests_per_second: 0, burst: 0}
    client_rate_limit: {requests_per_second: -1, per: 1s}
)"),
              ElementsAre("f.yaml:3:45: auth.api_keys[0].rate_limit: missing required key "
                          "\"requests_per_second\"",
                          "f.yaml:9:39: routes[0].rate_limit.requests_per_second: must be greater "
                          "than 0",
                          "f.yaml:9:49: routes[0].rate_limit.burst: must be between 1 and "
                          "4294967295, got 0",
                          "f.yaml:10:46: routes[0].client_rate_limit.requests_per_second: must be "
                          "between 0 and 1000000, got -1",
                          "f.yaml:10:50: routes[0].client_rate_limit.per: unknown key \"per\" "
                          "(expected one of: requests_per_second, burst)"));
}

TEST(ConfigErrors, JwtNeedsKeys) {
  EXPECT_THAT(errors_with_tail("auth:\n  jwt: {issuer: x}\n"),
              ElementsAre("f.yaml:2:8: auth.jwt: needs at least one key in keys, or a "
                          "jwks_file"));
  EXPECT_THAT(errors_with_tail("auth:\n  jwt:\n"),
              ElementsAre("f.yaml:2:3: auth.jwt: needs at least one key in keys, or a "
                          "jwks_file"));
  // One mistake, one error: a `keys` that is not a list is not also "no keys".
  EXPECT_THAT(errors_with_tail("auth:\n  jwt: {keys: {kid: a}}\n"),
              ElementsAre("f.yaml:2:15: auth.jwt.keys: expected a list, got a map"));
}

TEST(ConfigErrors, JwtKeySources) {
  const std::string secret(kHs256Secret);
  ScopedTestEnv env{{"SECRET", secret}};
  const auto errors = errors_with_tail(R"(auth:
  jwt:
    keys:
      - {kid: a}
      - {kid: b, secret: "${SECRET}", public_key_file: /k.pem}
      - {kid: c, public_key_pem: x}
      - {kid: d, alg: RS256, secret: "${SECRET}"}
      - {kid: e, secret: short-secret-123}
      - {kid: f, alg: hs256, secret: ""}
      - {kid: a, alg: RS256, public_key_pem: not-a-pem}
      - {kid: g, alg: RS256, public_key_file: /nonexistent/fusebox-test.pem}
)");
  EXPECT_THAT(
      errors,
      ElementsAre(
          "f.yaml:4:9: auth.jwt.keys[0]: set one of secret (HS256), public_key_pem or "
          "public_key_file (RS256)",
          "f.yaml:5:56: auth.jwt.keys[1].public_key_file: set only one of secret, "
          "public_key_pem and public_key_file (secret is set too)",
          "f.yaml:6:34: auth.jwt.keys[2].public_key_pem: is for RS256 keys, but alg is HS256, "
          "the default (set alg: RS256)",
          "f.yaml:7:38: auth.jwt.keys[3].secret: is for HS256 keys, but alg is RS256",
          "f.yaml:8:26: auth.jwt.keys[4].secret: must be at least 32 bytes (got 16)",
          "f.yaml:9:23: auth.jwt.keys[5].alg: invalid value \"hs256\" (expected one of: HS256, "
          "RS256)",
          "f.yaml:9:38: auth.jwt.keys[5].secret: must not be empty",
          "f.yaml:10:15: auth.jwt.keys[6].kid: duplicate kid \"a\" (first at keys[0])",
          "f.yaml:10:46: auth.jwt.keys[6].public_key_pem: expected a \"-----BEGIN PUBLIC "
          "KEY-----\" PEM (SubjectPublicKeyInfo)",
          "f.yaml:11:47: auth.jwt.keys[7].public_key_file: cannot read "
          "\"/nonexistent/fusebox-test.pem\": No such file or directory"));
  expect_no_secret(errors, secret);
  expect_no_secret(errors, "short-secret-123");
}

TEST(ConfigErrors, JwtKeysWithoutKidAreOnePerAlg) {
  ScopedTestEnv env{{"SECRET", std::string(kHs256Secret)}};
  EXPECT_THAT(errors_with_tail(R"(auth:
  jwt:
    keys:
      - {secret: "${SECRET}"}
      - {kid: x, secret: "${SECRET}"}
      - {secret: "${SECRET}"}
)"),
              ElementsAre("f.yaml:6:9: auth.jwt.keys[2]: a second HS256 key without a kid (the "
                          "first is keys[0]): tokens without a kid could use neither; give the "
                          "keys kids"));
}

class ConfigErrorsWithFiles : public testing::TempDirTest {};

TEST_F(ConfigErrorsWithFiles, KeyFilesAreReadAndParsedAtLoad) {
  const std::string pem = write("bad.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::string jwks = write("bad.json", R"({"keys": [{"kty": "EC", "kid": "e"}]})");
  ScopedTestEnv env{{"PEM", pem}, {"JWKS", jwks}, {"DIR", dir_.string()}};
  EXPECT_THAT(errors_with_tail(R"(auth:
  jwt:
    keys: [{alg: RS256, public_key_file: "${PEM}"}]
    jwks_file: ${JWKS}
)"),
              ElementsAre("f.yaml:3:42: auth.jwt.keys[0].public_key_file: \"" + pem +
                              "\": expected a \"-----BEGIN PUBLIC KEY-----\" PEM "
                              "(SubjectPublicKeyInfo)",
                          "f.yaml:4:16: auth.jwt.jwks_file: \"" + jwks +
                              "\": no usable key (keys[0]: kty \"EC\" is not supported (RSA and "
                              "oct are))"));
  EXPECT_THAT(errors_with_tail("auth:\n  jwt: {jwks_file: \"${DIR}/absent.json\"}\n"),
              ElementsAre("f.yaml:2:20: auth.jwt.jwks_file: cannot read \"" + dir_.string() +
                          "/absent.json\": No such file or directory"));
}

TEST(ConfigErrors, Admission) {
  EXPECT_THAT(
      errors_with_tail(R"(admission:
  max_inflight: -1
  max_memory: 1G
  shed_step_percent: 0
  sample_interval: 0s
  max_clients: 0
  client_idle_eviction: 0
  shed: true
)"),
      ElementsAre("f.yaml:2:17: admission.max_inflight: must be between 0 and "
                  "9223372036854775807, got -1",
                  "f.yaml:3:15: admission.max_memory: not a size: \"1G\" (expected bytes, "
                  "or a number with B, KiB, MiB, GiB, KB, MB or GB, e.g. 64MiB)",
                  "f.yaml:4:22: admission.shed_step_percent: must be between 1 and 100, got 0",
                  "f.yaml:5:20: admission.sample_interval: must be greater than 0",
                  "f.yaml:6:16: admission.max_clients: must be between 1 and 4294967295, "
                  "got 0",
                  "f.yaml:7:25: admission.client_idle_eviction: must be greater than 0",
                  "f.yaml:8:3: admission.shed: unknown key \"shed\" (expected one of: "
                  "max_inflight, max_memory, shed_step_percent, sample_interval, "
                  "max_clients, client_idle_eviction)"));
  EXPECT_THAT(errors_with_tail("admission: {shed_step_percent: 2.5}\n"),
              ElementsAre("f.yaml:1:32: admission.shed_step_percent: not an integer: \"2.5\""));
}

TEST(ConfigErrors, RoutePriorityAndAuthPolicy) {
  EXPECT_THAT(errors_of(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - {name: a, match: {model: a}, pool: p, priority: 10, auth: apikey}
  - {name: b, match: {model: b}, pool: p, auth: api_key}
  - {name: c, match: {model: c}, pool: p, auth: jwt}
  - {name: d, match: {model: d}, pool: p, auth: any, admission: {}}
)"),
              ElementsAre("f.yaml:3:53: routes[0].priority: must be between 0 and 9, got 10",
                          "f.yaml:3:63: routes[0].auth: invalid value \"apikey\" (expected one "
                          "of: none, api_key, jwt, any)",
                          "f.yaml:4:49: routes[1].auth: api_key needs at least one key in "
                          "auth.api_keys",
                          "f.yaml:5:49: routes[2].auth: jwt needs an auth.jwt section",
                          "f.yaml:6:49: routes[3].auth: any needs auth.api_keys or auth.jwt "
                          "(neither is configured)",
                          "f.yaml:6:54: routes[3].admission: unknown key \"admission\" (expected "
                          "one of: name, match, pool, timeout, max_timeout, retry, hedge, cache, "
                          "fallbacks, fallback_reserve, degrade_on_load, split, idempotency, "
                          "priority, auth, concurrency, rate_limit, client_rate_limit)"));
  // api_keys written but empty satisfy nothing.
  EXPECT_THAT(errors_of(R"(auth: {api_keys: []}
pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes: [{name: a, match: {model: a}, pool: p, auth: api_key}]
)"),
              ElementsAre("f.yaml:3:54: routes[0].auth: api_key needs at least one key in "
                          "auth.api_keys"));
}

TEST(ConfigErrors, ConcurrencyAndQueue) {
  EXPECT_THAT(errors_of(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: r
    match: {model: m}
    pool: p
    concurrency:
      limit: 0
      max_queued: 10
      max_queued_per_priority: {10: 1, x: 1, 3: 11, 4: 2, 04: 3, 5:, 6: -1}
      queue_timeout: 0s
      aging_step: -1s
      wait: 1s
)"),
              ElementsAre("f.yaml:7:14: routes[0].concurrency.limit: must be between 1 and "
                          "4294967295, got 0",
                          "f.yaml:9:33: routes[0].concurrency.max_queued_per_priority.10: invalid "
                          "priority \"10\" (priorities are 0..9)",
                          "f.yaml:9:40: routes[0].concurrency.max_queued_per_priority.x: invalid "
                          "priority \"x\" (priorities are 0..9)",
                          "f.yaml:9:49: routes[0].concurrency.max_queued_per_priority.3: must not "
                          "exceed max_queued (10)",
                          "f.yaml:9:59: routes[0].concurrency.max_queued_per_priority.04: "
                          "duplicate priority 4",
                          "f.yaml:9:66: routes[0].concurrency.max_queued_per_priority.5: missing "
                          "value (expected an integer)",
                          "f.yaml:9:73: routes[0].concurrency.max_queued_per_priority.6: must be "
                          "between 0 and 4294967295, got -1",
                          "f.yaml:10:22: routes[0].concurrency.queue_timeout: must be greater "
                          "than 0",
                          "f.yaml:11:19: routes[0].concurrency.aging_step: not a duration: "
                          "\"-1s\" (expected e.g. 250ms, 2s, 1m30s, 1h)",
                          "f.yaml:12:7: routes[0].concurrency.wait: unknown key \"wait\" "
                          "(expected one of: limit, max_queued, max_queued_per_priority, "
                          "queue_timeout, aging_step, adaptive)"));
}

TEST(ConfigErrors, AdaptiveConcurrencyBounds) {
  EXPECT_THAT(errors_of(R"(pools: {p: {endpoints: [{address: 10.0.0.1}]}}
routes:
  - name: a
    match: {model: a}
    pool: p
    concurrency:
      adaptive: {min_limit: 10, max_limit: 5, tolerance: 0.5, interval: 0s}
  - name: b
    match: {model: b}
    pool: p
    concurrency:
      adaptive: {min_limit: 100}
  - name: c
    match: {model: c}
    pool: p
    concurrency:
      limit: 600
      adaptive: {min_rtt_interval: 0s, enabled: true}
)"),
              ElementsAre("f.yaml:7:44: routes[0].concurrency.adaptive.max_limit: must be at "
                          "least min_limit (10)",
                          "f.yaml:7:58: routes[0].concurrency.adaptive.tolerance: must be between "
                          "1 and 100, got 0.5",
                          "f.yaml:7:73: routes[0].concurrency.adaptive.interval: must be greater "
                          "than 0",
                          "f.yaml:12:7: routes[1].concurrency.limit: must be within "
                          "adaptive.min_limit..adaptive.max_limit (100..500): it is the adaptive "
                          "limit's starting value, got 64",
                          "f.yaml:17:14: routes[2].concurrency.limit: must be within "
                          "adaptive.min_limit..adaptive.max_limit (2..500): it is the adaptive "
                          "limit's starting value, got 600",
                          "f.yaml:18:36: routes[2].concurrency.adaptive.min_rtt_interval: must be "
                          "greater than 0",
                          "f.yaml:18:40: routes[2].concurrency.adaptive.enabled: unknown key "
                          "\"enabled\" (expected one of: dry_run, min_limit, max_limit, interval, "
                          "tolerance, min_rtt_interval)"));
}

TEST(ConfigErrors, GrpcMetadataPatternsAreLowercaseKeysOrPrefixes) {
  EXPECT_THAT(errors_with_tail("listeners:\n"
                               "  grpc:\n"
                               "    metadata: {allow: [X-Tenant, 'a*b', '*', ok-*], deny: [d, d]}\n"),
              ElementsAre("f.yaml:3:24: listeners.grpc.metadata.allow[0]: not a lowercase "
                          "metadata key (a-z 0-9 - _ .), optionally ending in '*': \"X-Tenant\"",
                          "f.yaml:3:34: listeners.grpc.metadata.allow[1]: not a lowercase "
                          "metadata key (a-z 0-9 - _ .), optionally ending in '*': \"a*b\"",
                          "f.yaml:3:41: listeners.grpc.metadata.allow[2]: not a lowercase "
                          "metadata key (a-z 0-9 - _ .), optionally ending in '*': \"*\"",
                          "f.yaml:3:63: listeners.grpc.metadata.deny[1]: duplicate metadata key "
                          "\"d\""));
}

TEST(ConfigErrors, GrpcListenerReadsReflectionAndMetadataLists) {
  LoadResult result = load_config_from_string(
      std::string("listeners:\n  grpc:\n    reflection: false\n"
                  "    metadata: {allow: [x-tenant, x-team-*], deny: [x-team-secret]}\n") +
          std::string(kPoolsAndRoutes),
      "f.yaml", test_env);
  ASSERT_TRUE(result.ok());
  const auto& grpc = result.config->listeners.grpc;
  EXPECT_TRUE(grpc.enabled);
  EXPECT_FALSE(grpc.reflection);
  EXPECT_EQ(grpc.metadata_allow, (std::vector<std::string>{"x-tenant", "x-team-*"}));
  EXPECT_EQ(grpc.metadata_deny, (std::vector<std::string>{"x-team-secret"}));
  EXPECT_THAT(errors_with_tail("listeners:\n  grpc: {metadata: {forward: all}}\n"),
              ElementsAre(HasSubstr("(expected one of: allow, deny)")));
}

}  // namespace
}  // namespace fusebox::config
