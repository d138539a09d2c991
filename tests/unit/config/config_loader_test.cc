#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fusebox/config/loader.h"
#include "test_env.h"

namespace fusebox::config {
namespace {

using namespace std::chrono_literals;
using testing::ScopedTestEnv;
using testing::test_env;

// Fails the test with every error when the load did not succeed.
std::shared_ptr<const Config> load_ok(std::string_view yaml) {
  LoadResult result = load_config_from_string(yaml, "test.yaml", test_env);
  for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
  EXPECT_TRUE(result.ok());
  return result.config;
}

constexpr std::string_view kMinimal = R"(pools:
  primary:
    endpoints:
      - address: 127.0.0.1
routes:
  - name: all
    match: {model: "*"}
    pool: primary
)";

TEST(ConfigLoader, MinimalFileGetsEveryDefault) {
  auto config = load_ok(kMinimal);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->source_file, "test.yaml");

  EXPECT_EQ(config->server.threads, 0);
  EXPECT_EQ(config->server.shutdown_timeout, 10s);

  const auto& http = config->listeners.http;
  EXPECT_EQ(http.address, "127.0.0.1");
  EXPECT_EQ(http.port, 8080);
  EXPECT_EQ(http.max_request_body, 64u << 20);
  EXPECT_EQ(http.max_request_headers, 16u << 10);
  EXPECT_EQ(http.request_header_timeout, 10s);
  EXPECT_EQ(http.request_body_timeout, 30s);
  EXPECT_EQ(http.idle_timeout, 60s);
  EXPECT_EQ(http.max_connections, 10'000u);
  EXPECT_EQ(http.max_requests_per_connection, 0u);
  EXPECT_EQ(config->listeners.admin.address, "127.0.0.1");
  EXPECT_EQ(config->listeners.admin.port, 9901);

  ASSERT_EQ(config->pools.size(), 1u);
  const PoolConfig& pool = config->pools[0];
  EXPECT_EQ(pool.name, "primary");
  ASSERT_EQ(pool.endpoints.size(), 1u);
  EXPECT_EQ(pool.endpoints[0].address, "127.0.0.1");
  EXPECT_EQ(pool.endpoints[0].port, 8501);
  EXPECT_EQ(pool.endpoints[0].weight, 1u);
  EXPECT_EQ(pool.connect_timeout, 1s);
  EXPECT_EQ(pool.max_connections_per_backend, 1024u);
  EXPECT_EQ(pool.idle_connection_timeout, 60s);
  EXPECT_EQ(pool.max_response_body, 64u << 20);
  EXPECT_EQ(pool.reachability_interval, 2s);

  ASSERT_EQ(config->routes.size(), 1u);
  EXPECT_EQ(config->routes[0].name, "all");
  EXPECT_EQ(config->routes[0].match.model, "*");
  EXPECT_EQ(config->routes[0].pool, "primary");
  EXPECT_EQ(config->routes[0].timeout, 30s);

  EXPECT_EQ(config->logging.level, "info");
  EXPECT_EQ(config->logging.format, LogFormat::json);
  EXPECT_TRUE(config->logging.access_log);
  EXPECT_EQ(config->logging.file, "");
  EXPECT_EQ(config->logging.access_log_file, "");
}

TEST(ConfigLoader, ReadsEveryKey) {
  auto config = load_ok(R"(
server: {threads: 4, shutdown_timeout: 1m30s}
listeners:
  http:
    address: 0.0.0.0
    port: 0
    max_request_body: 1MiB
    max_request_headers: 8192
    request_header_timeout: 250ms
    request_body_timeout: 1.5s
    idle_timeout: 2m
    max_connections: 5
    max_requests_per_connection: 100
  admin: {address: "::1", port: 9000}
pools:
  heavy:
    endpoints:
      - {address: 10.0.0.1, port: 8601, weight: 3}
      - {address: tfs-b.internal, weight: 1000}
    connect_timeout: 500ms
    max_connections_per_backend: 8
    idle_connection_timeout: 5s
    max_response_body: 2GiB
    reachability_interval: 1h
  light:
    endpoints: [{address: "fd00::2"}]
routes:
  - name: resnet
    match: {model: resnet}
    pool: heavy
    timeout: 2s
  - name: rest
    match: {model: "*"}
    pool: light
logging: {level: debug, format: text, access_log: false, file: /var/log/f.log,
          access_log_file: /var/log/access.log}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->server.threads, 4);
  EXPECT_EQ(config->server.shutdown_timeout, 90s);

  const auto& http = config->listeners.http;
  EXPECT_EQ(http.address, "0.0.0.0");
  EXPECT_EQ(http.port, 0);
  EXPECT_EQ(http.max_request_body, 1u << 20);
  EXPECT_EQ(http.max_request_headers, 8192u);
  EXPECT_EQ(http.request_header_timeout, 250ms);
  EXPECT_EQ(http.request_body_timeout, 1500ms);
  EXPECT_EQ(http.idle_timeout, 120s);
  EXPECT_EQ(http.max_connections, 5u);
  EXPECT_EQ(http.max_requests_per_connection, 100u);
  EXPECT_EQ(config->listeners.admin.address, "::1");
  EXPECT_EQ(config->listeners.admin.port, 9000);

  ASSERT_EQ(config->pools.size(), 2u);
  const PoolConfig& heavy = config->pools[0];  // file order is kept
  EXPECT_EQ(heavy.name, "heavy");
  ASSERT_EQ(heavy.endpoints.size(), 2u);
  EXPECT_EQ(heavy.endpoints[0].address, "10.0.0.1");
  EXPECT_EQ(heavy.endpoints[0].port, 8601);
  EXPECT_EQ(heavy.endpoints[0].weight, 3u);
  EXPECT_EQ(heavy.endpoints[1].address, "tfs-b.internal");  // host names are accepted
  EXPECT_EQ(heavy.endpoints[1].port, 8501);
  EXPECT_EQ(heavy.endpoints[1].weight, 1000u);
  EXPECT_EQ(heavy.connect_timeout, 500ms);
  EXPECT_EQ(heavy.max_connections_per_backend, 8u);
  EXPECT_EQ(heavy.idle_connection_timeout, 5s);
  EXPECT_EQ(heavy.max_response_body, 2ull << 30);
  EXPECT_EQ(heavy.reachability_interval, 1h);
  EXPECT_EQ(config->pools[1].name, "light");
  EXPECT_EQ(config->pools[1].endpoints.at(0).address, "fd00::2");
  EXPECT_EQ(config->find_pool("light"), &config->pools[1]);
  EXPECT_EQ(config->find_pool("nope"), nullptr);

  ASSERT_EQ(config->routes.size(), 2u);
  EXPECT_EQ(config->routes[0].name, "resnet");
  EXPECT_EQ(config->routes[0].match.model, "resnet");
  EXPECT_EQ(config->routes[0].pool, "heavy");
  EXPECT_EQ(config->routes[0].timeout, 2s);
  EXPECT_EQ(config->routes[1].match.model, "*");
  EXPECT_EQ(config->routes[1].pool, "light");

  EXPECT_EQ(config->logging.level, "debug");
  EXPECT_EQ(config->logging.format, LogFormat::text);
  EXPECT_FALSE(config->logging.access_log);
  EXPECT_EQ(config->logging.file, "/var/log/f.log");
  EXPECT_EQ(config->logging.access_log_file, "/var/log/access.log");
}

TEST(ConfigLoader, EmptySectionsMeanDefaults) {
  // A section whose keys are all commented out is an empty map, not an error.
  auto config =
      load_ok(std::string("server:\nlisteners:\n  http:\nlogging:\n") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->server.threads, 0);
  EXPECT_EQ(config->listeners.http.port, 8080);
}

TEST(ConfigLoader, SubstitutesEnvironmentInValues) {
  ScopedTestEnv env{{"FUSEBOX_PORT", "9000"}, {"BACKEND", "tfs-a"}, {"LEVEL", "warn"}};
  auto config = load_ok(R"(listeners:
  http:
    port: ${FUSEBOX_PORT}
    address: "${LISTEN_HOST:-0.0.0.0}"
    idle_timeout: ${IDLE:-90s}
pools:
  primary:
    endpoints:
      - address: ${BACKEND}.internal
routes:
  - name: all
    match: {model: "*"}
    pool: primary
logging:
  level: ${LEVEL}
  file: /var/log/$$HOME/${UNSET:-fusebox}.log
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.http.port, 9000);
  EXPECT_EQ(config->listeners.http.address, "0.0.0.0");
  EXPECT_EQ(config->listeners.http.idle_timeout, 90s);
  EXPECT_EQ(config->pools.at(0).endpoints.at(0).address, "tfs-a.internal");
  EXPECT_EQ(config->logging.level, "warn");
  EXPECT_EQ(config->logging.file, "/var/log/$HOME/fusebox.log");
}

TEST(ConfigLoader, AcceptsQuotedNumbersAndBooleanSpellings) {
  auto config = load_ok(std::string(R"(listeners: {http: {port: "8081"}}
logging: {access_log: False}
)") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners.http.port, 8081);
  EXPECT_FALSE(config->logging.access_log);
}

TEST(ConfigLoader, HttpAndAdminMayShareAPortOnDistinctAddresses) {
  auto config = load_ok(std::string(R"(listeners:
  http: {address: 127.0.0.1, port: 8080}
  admin: {address: 127.0.0.2, port: 8080}
)") + std::string(kMinimal));
  ASSERT_NE(config, nullptr);
  // Port 0 never conflicts: each listener gets its own ephemeral port.
  config = load_ok(std::string("listeners: {http: {port: 0}, admin: {port: 0}}\n") +
                   std::string(kMinimal));
  ASSERT_NE(config, nullptr);
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fusebox_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view content) {
    const auto path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFileTest, LoadsAFile) {
  const std::string path = write("fusebox.yaml", kMinimal);
  LoadResult result = load_config_file(path, test_env);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->source_file, path);
  EXPECT_EQ(result.config->routes.at(0).name, "all");
}

TEST_F(ConfigFileTest, ErrorsNameTheFile) {
  const std::string path = write("bad.yaml", "pools: {}\nroutes: []\n");
  LoadResult result = load_config_file(path, test_env);
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[0].to_string(), path + ":1:8: pools: at least one pool is required");
}

TEST_F(ConfigFileTest, MissingFileIsOneErrorWithoutPosition) {
  const std::string path = (dir_ / "absent.yaml").string();
  LoadResult result = load_config_file(path, test_env);
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].file, path);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].column, 0);
  EXPECT_EQ(result.errors[0].path, "");
  EXPECT_EQ(result.errors[0].message, "cannot read file: No such file or directory");
  EXPECT_EQ(result.errors[0].to_string(),
            path + ":0:0: cannot read file: No such file or directory");
}

TEST_F(ConfigFileTest, DirectoryIsUnreadable) {
  LoadResult result = load_config_file(dir_.string(), test_env);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].message, "cannot read file: Is a directory");
}

TEST(ConfigLoader, ProcessEnvLookupReadsTheEnvironment) {
  ::setenv("FUSEBOX_CONFIG_TEST_VAR", "v1", 1);
  std::string value;
  EXPECT_TRUE(process_env_lookup("FUSEBOX_CONFIG_TEST_VAR", value));
  EXPECT_EQ(value, "v1");
  ::unsetenv("FUSEBOX_CONFIG_TEST_VAR");
  EXPECT_FALSE(process_env_lookup("FUSEBOX_CONFIG_TEST_VAR", value));
}

}  // namespace
}  // namespace fusebox::config
