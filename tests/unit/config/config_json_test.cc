#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fusebox/config/loader.h"
#include "test_env.h"

namespace fusebox::config {
namespace {

using nlohmann::json;
using testing::test_env;

std::shared_ptr<const Config> load_ok(std::string_view yaml) {
  LoadResult result = load_config_from_string(yaml, "test.yaml", test_env);
  for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
  return result.config;
}

TEST(ConfigJson, RendersTheEffectiveConfigWithDefaultsInConfigUnits) {
  auto config = load_ok(R"(pools:
  heavy:
    endpoints:
      - {address: 10.0.0.1, weight: 3}
      - {address: tfs-b, port: 8601}
    connect_timeout: 250ms
    max_response_body: 1000
routes:
  - {name: all, match: {model: "*"}, pool: heavy, timeout: 90s}
)");
  ASSERT_NE(config, nullptr);
  const json expected = json::parse(R"({
    "server": {"threads": 0, "shutdown_timeout": "10s"},
    "listeners": {
      "http": {"address": "127.0.0.1", "port": 8080, "max_request_body": "64MiB",
               "max_request_headers": "16KiB", "request_header_timeout": "10s",
               "request_body_timeout": "30s", "idle_timeout": "1m",
               "max_connections": 10000, "max_requests_per_connection": 0},
      "admin": {"address": "127.0.0.1", "port": 9901}
    },
    "pools": {
      "heavy": {
        "endpoints": [{"address": "10.0.0.1", "port": 8501, "weight": 3},
                      {"address": "tfs-b", "port": 8601, "weight": 1}],
        "connect_timeout": "250ms", "max_connections_per_backend": 1024,
        "idle_connection_timeout": "1m", "max_response_body": "1000B",
        "reachability_interval": "2s"
      }
    },
    "routes": [{"name": "all", "match": {"model": "*"}, "pool": "heavy", "timeout": "1m30s"}],
    "logging": {"level": "info", "format": "json", "access_log": true, "file": "",
                "access_log_file": ""}
  })");
  EXPECT_EQ(config_to_json(*config), expected) << config_to_json(*config).dump(2);
}

TEST(ConfigJson, OutputLoadsBackToTheSameConfig) {
  // JSON is YAML: what /admin/config shows can be pasted back as a configuration file.
  auto config = load_ok(R"(server: {threads: 3, shutdown_timeout: 1500ms}
listeners:
  http: {address: 0.0.0.0, port: 0, max_request_body: 3MB, idle_timeout: 1h}
  admin: {address: "::1", port: 9999}
pools:
  b: {endpoints: [{address: "fd00::1", weight: 7}], reachability_interval: 61s}
  a: {endpoints: [{address: tfs.example.com}], max_connections_per_backend: 2}
routes:
  - {name: one, match: {model: m1}, pool: b}
  - {name: two, match: {model: m2}, pool: a, timeout: 45s}
logging: {level: off, format: text, access_log: false, file: /tmp/x.log}
)");
  ASSERT_NE(config, nullptr);
  const json first = config_to_json(*config);
  auto reloaded = load_ok(first.dump());
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(config_to_json(*reloaded), first);
  EXPECT_EQ(first["pools"]["b"]["reachability_interval"], "1m1s");
  EXPECT_EQ(first["listeners"]["http"]["max_request_body"], "3000000B");
  EXPECT_EQ(first["logging"]["level"], "off");
  EXPECT_EQ(first["routes"][1]["timeout"], "45s");
  // Pool order in the file survives in Config::pools even though JSON objects are unordered.
  EXPECT_EQ(reloaded->pools.size(), 2u);
}

}  // namespace
}  // namespace fusebox::config
