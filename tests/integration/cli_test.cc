// The fusebox command line: --version, --help, usage errors, `validate`, start-up failures and
// an orderly SIGTERM with a request in flight.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway_fixture.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;


const std::string kUsage =
    "usage: fusebox --config FILE             run the gateway\n"
    "       fusebox validate --config FILE    check a configuration; exit 0 when valid\n"
    "       fusebox healthcheck [--url URL | --config FILE] [--timeout DURATION]\n"
    "                                         GET /readyz (default http://127.0.0.1:9901/readyz,\n"
    "                                         or the admin listener of FILE); exit 0 on 200\n"
    "       fusebox hash-key                  read an API key (or admin token) on stdin, print the\n"
    "                                         sha256:<hex> to put in the configuration\n"
    "       fusebox --version                 print the version\n"
    "       fusebox --help                    this text\n"
    "\n"
    "See docs/configuration.md for the configuration file.\n";

struct Run {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs fusebox to completion (bounded).
Run run_fusebox(const std::vector<std::string>& args, const std::string& working_directory = {}) {
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  options.working_directory = working_directory;
  auto child = ChildProcess::spawn(fusebox_path(), args, options);
  Run run;
  const auto code = child.wait_exit(Millis{10000});
  run.code = code.value_or(-1);
  if (!code) child.stop(SIGKILL);
  // Reader threads drain the pipes: a needle that never appears returns once each hits EOF.
  constexpr std::string_view kNever = "\x01never printed\x01";
  child.wait_for_stdout(kNever, Millis{2000});
  child.wait_for_stderr(kNever, Millis{2000});
  run.out = child.stdout_text();
  run.err = child.stderr_text();
  return run;
}

TEST(CliTest, VersionPrintsTheBuildVersion) {
  const auto run = run_fusebox({"--version"});
  EXPECT_EQ(run.code, 0);
  EXPECT_EQ(run.out, std::string("fusebox ") + FUSEBOX_VERSION + "\n");
  EXPECT_EQ(run.err, "");
}

TEST(CliTest, HelpPrintsUsage) {
  const auto run = run_fusebox({"--help"});
  EXPECT_EQ(run.code, 0);
  EXPECT_EQ(run.out, kUsage);
  EXPECT_EQ(run_fusebox({"-h"}).out, kUsage);
}

TEST(CliTest, UnknownFlagIsAUsageError) {
  const auto run = run_fusebox({"--bogus"});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "fusebox: unknown argument '--bogus'\n" + kUsage);
}

TEST(CliTest, MissingConfigIsAUsageError) {
  const auto run = run_fusebox({});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.err, "fusebox: --config FILE is required\n" + kUsage);
  const auto dangling = run_fusebox({"--config"});
  EXPECT_EQ(dangling.code, 2);
  EXPECT_EQ(dangling.err, "fusebox: --config needs a file\n" + kUsage);
}

TEST(CliTest, ValidateAcceptsTheShippedConfig) {
  const std::string path = source_dir() + "/config/fusebox.yaml";
  const auto run = run_fusebox({"validate", "--config", path});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, path + ": ok\n");
  EXPECT_EQ(run.err, "");
}

TEST(CliTest, ValidateReportsEachProblemWithFileLineColumnAndPath) {
  TempFile file(
      "listeners:\n"
      "  http:\n"
      "    port: 0\n"
      "    bogus: 1\n"
      "pools:\n"
      "  primary:\n"
      "    endpoints:\n"
      "      - {address: 127.0.0.1, port: 8501}\n"
      "routes:\n"
      "  - name: hp2\n"
      "    match: {model: half_plus_two}\n"
      "    pool: nowhere\n");
  const auto run = run_fusebox({"validate", "--config", file.path()});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "");
  const auto& f = file.path();
  EXPECT_EQ(
      run.err,
      f +
          ":4:5: listeners.http.bogus: unknown key \"bogus\" (expected one of: address, port, "
          "max_request_body, max_request_headers, request_header_timeout, request_body_timeout, "
          "idle_timeout, max_connections, max_requests_per_connection)\n" +
          f + ":12:11: routes[0].pool: no pool named \"nowhere\"\n" + f + ": 2 problems\n");
}

TEST(CliTest, ValidateMatchesTheDocumentedExample) {
  // The example of docs/configuration.md, "Checking a file", run as documented (relative path).
  TempFile file(
      "listeners:\n"
      "  http:\n"
      "    address: 0.0.0.0\n"
      "    port: 80800\n"
      "pools:\n"
      "  primary:\n"
      "    endpoints:\n"
      "      - address: 10.0.0.1\n"
      "        prot: 8501\n"
      "routes:\n"
      "  - name: resnet\n"
      "    match: {model: resnet}\n"
      "    pool: light\n"
      "    timeout: 30\n");
  const auto slash = file.path().rfind('/');
  const std::string dir = file.path().substr(0, slash);
  const std::string name = file.path().substr(slash + 1);
  const auto run = run_fusebox({"validate", "--config", name}, dir);
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, name + ":4:11: listeners.http.port: must be between 0 and 65535, got 80800\n" +
                         name +
                         ":9:9: pools.primary.endpoints[0].prot: unknown key \"prot\" (expected "
                         "one of: address, port, weight, grpc_port)\n" +
                         name + ":13:11: routes[0].pool: no pool named \"light\"\n" + name +
                         ":14:14: routes[0].timeout: not a duration: \"30\" (a unit is required: "
                         "ms, s, m or h, e.g. 250ms, 2s, 1m30s)\n" +
                         name + ": 4 problems\n");
}

TEST(CliTest, ValidateReportsAnUnreadableFile) {
  const std::string path = "/nonexistent/fusebox-it.yaml";
  const auto run = run_fusebox({"validate", "--config", path});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err,
            path + ":0:0: cannot read file: No such file or directory\n" + path + ": 1 problem\n");
}

TEST(CliTest, ServingWithAnInvalidConfigExits1WithTheSameErrors) {
  TempFile file(
      "pools:\n"
      "  primary:\n"
      "    endpoints:\n"
      "      - {address: 127.0.0.1, port: 8501}\n"
      "routes:\n"
      "  - name: hp2\n"
      "    match: {model: half_plus_two}\n"
      "    pool: nowhere\n");
  const auto run = run_fusebox({"--config", file.path()});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "") << "nothing listens, so no listening line";
  EXPECT_EQ(run.err, file.path() + ":8:11: routes[0].pool: no pool named \"nowhere\"\n");
}

TEST(CliTest, PortAlreadyInUseExits1WithAClearMessage) {
  HeldPort held;
  auto config = single_route_config({unused_port()});
  config.http_port = held.port();
  TempFile file(to_yaml(config));
  const auto run = run_fusebox({"--config", file.path()});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "");
  const std::string message =
      "fusebox: cannot bind http listener on 127.0.0.1:" + std::to_string(held.port()) +
      ": Address already in use\n";
  EXPECT_NE(run.err.find(message), std::string::npos) << run.err;
}

class CliShutdownTest : public GatewayTest {};

TEST_F(CliShutdownTest, SigtermWaitsForTheRequestInFlight) {
  const auto sim_port = start_sims(1, {"--latency", "1000ms"}).at(0);
  auto config = single_route_config({sim_port});
  // The sim's latency applies to health checks too, which would time out and take it out.
  config.pools[0].health_check = kHealthChecksOff;
  start_gateway(config);
  ASSERT_TRUE(wait_readyz(200));
  auto c = client();
  c.send_raw("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\nContent-Length: " +
             std::to_string(kThreeInstances.size()) + "\r\n\r\n" + std::string(kThreeInstances));
  ASSERT_TRUE(wait_until([&] { return sim_stats(sim_port).at("requests") == 1; }))
      << "the request must be at the backend before SIGTERM";
  ASSERT_TRUE(gateway().process().signal(SIGTERM));

  // While draining: not ready, and no new connections.
  EXPECT_TRUE(wait_until([&] {
    const auto r = admin_client().try_request("GET", "/readyz");
    return r.ok() && r.response->status == 503 &&
           json_of(*r.response).at("reason") == "shutting down";
  })) << "/readyz must report the shutdown";
  EXPECT_TRUE(wait_until([&] {
    HttpClient probe(gateway().http_port(), Millis{500});
    return !probe.try_request("GET", "/v1/models/half_plus_two").ok();
  })) << "the data listener must stop accepting";

  const auto outcome = c.read_raw_response(Millis{5000});
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(outcome.response->status, 200);
  EXPECT_EQ(outcome.response->body, R"({"predictions": [2.5, 3.0, 4.5]})");
  EXPECT_EQ(outcome.response->header("Connection"), "close");
  c.close();
  const auto code = gateway().process().wait_exit(Millis{5000});
  ASSERT_TRUE(code.has_value()) << "fusebox did not exit after the last request";
  EXPECT_EQ(*code, 0);
}

TEST_F(CliShutdownTest, SigtermWhenIdleExits0Promptly) {
  start_gateway(single_route_config(start_sims(1)));
  auto c = client();
  ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);  // leaves an idle keep-alive
  ASSERT_TRUE(gateway().process().signal(SIGTERM));
  const auto code = gateway().process().wait_exit(Millis{3000});
  ASSERT_TRUE(code.has_value()) << "an idle keep-alive connection must not delay the exit";
  EXPECT_EQ(*code, 0);
  EXPECT_TRUE(c.connection_closed(Millis{1000}));
}

// `fusebox healthcheck`, as a container's HEALTHCHECK runs it: exit 0 only on 200 from /readyz.
class CliHealthcheckTest : public GatewayTest {};

TEST_F(CliHealthcheckTest, ReadyGatewayPassesAndAShuttingDownOneFails) {
  const auto sim_port = start_sims(1, {"--latency", "1000ms"}).at(0);
  auto config = single_route_config({sim_port});
  config.pools[0].health_check = kHealthChecksOff;
  start_gateway(config);
  ASSERT_TRUE(wait_readyz(200));
  const auto url = "http://127.0.0.1:" + std::to_string(gateway().admin_port()) + "/readyz";
  auto run = run_fusebox({"healthcheck", "--url", url});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "ok: 200 OK from " + url + "\n");

  // A request in flight keeps the draining gateway up while /readyz answers 503.
  auto c = client();
  c.send_raw("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: fusebox\r\nContent-Length: " +
             std::to_string(kThreeInstances.size()) + "\r\n\r\n" + std::string(kThreeInstances));
  ASSERT_TRUE(wait_until([&] { return sim_stats(sim_port).at("requests") == 1; }));
  ASSERT_TRUE(gateway().process().signal(SIGTERM));
  ASSERT_TRUE(wait_readyz(503));
  run = run_fusebox({"healthcheck", "--url", url, "--timeout", "2s"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "fusebox healthcheck: 503 Service Unavailable from " + url + "\n");

  // The request in flight is answered, then the gateway exits on its own.
  const auto outcome = c.read_raw_response(Millis{5000});
  ASSERT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(outcome.response->status, 200);
  c.close();
  const auto code = gateway().process().wait_exit(Millis{5000});
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

TEST(CliHealthcheck, NothingListeningFailsWithTheReason) {
  const auto url = "http://127.0.0.1:" + std::to_string(unused_port()) + "/readyz";
  const auto run = run_fusebox({"healthcheck", "--url", url, "--timeout", "2s"});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("cannot connect " + url), std::string::npos) << run.err;
}

TEST(CliHealthcheck, BadArgumentsAreUsageErrors) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"healthcheck", "--url", "ftp://x"},
           {"healthcheck", "--url", "http://127.0.0.1:0/readyz"},
           {"healthcheck", "--timeout", "soon"},
           {"healthcheck", "--url", "http://127.0.0.1:1/", "--config", "f.yaml"},
           {"--url", "http://127.0.0.1:1/"}}) {
    const auto run = run_fusebox(args);
    EXPECT_EQ(run.code, 2) << args[args.size() - 1] << ": " << run.err;
    EXPECT_NE(run.err.find("usage:"), std::string::npos) << run.err;
  }
}

TEST(CliHealthcheck, ConfigWithAChosenAtStartPortIsRefusedClearly) {
  TempFile config("listeners:\n  admin: {port: 0}\npools:\n  p: {endpoints: "
                                "[{address: 127.0.0.1}]}\nroutes:\n  - {name: r, match: "
                                "{model: m}, pool: p}\n");
  const auto run = run_fusebox({"healthcheck", "--config", config.path()});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("listeners.admin.port is 0"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace fusebox_it

namespace fusebox_it {
namespace {

// `fusebox hash-key` prints what sha256sum prints, in the configuration's form; the key comes
// on stdin (one trailing newline is not part of it).
TEST(CliHashKey, PrintsTheSha256FormOfTheKeyOnStdin) {
  for (const std::string input : {"printf %s 's3cret-token'", "echo 's3cret-token'"}) {
    fusebox_test::SpawnOptions options;
    options.capture_stderr = true;
    auto child = ChildProcess::spawn("/bin/sh", {"-c", input + " | '" + fusebox_path() + "' hash-key"},
                                     options);
    ASSERT_EQ(child.wait_exit(Millis{10000}).value_or(-1), 0) << input;
    ASSERT_TRUE(child.wait_for_stdout("\n", Millis{2000}));
    EXPECT_EQ(child.stdout_text(),
              "sha256:a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e\n")
        << input;
  }
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto empty = ChildProcess::spawn("/bin/sh", {"-c", "printf '' | '" + fusebox_path() + "' hash-key"},
                                   options);
  EXPECT_EQ(empty.wait_exit(Millis{10000}).value_or(-1), 1);
}

}  // namespace
}  // namespace fusebox_it
