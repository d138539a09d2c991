// tfs-sim as a process: the TF Serving REST surface, the fault injection and the control API,
// seen from a socket. Each test starts its own tfs-sim on a free port.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fusebox_test/http_client.h"
#include "fusebox_test/process.h"

namespace {

using fusebox_test::ChildProcess;
using fusebox_test::HttpClient;
using fusebox_test::HttpErrorKind;
using fusebox_test::HttpResponse;
using fusebox_test::json_of;
using fusebox_test::Millis;
using fusebox_test::start_tfs_sim;
using fusebox_test::TfsSim;
using Clock = std::chrono::steady_clock;

constexpr const char* kPredict = "/v1/models/half_plus_two:predict";
constexpr const char* kRowRequest = R"({"instances": [1.0, 2.0, 5.0]})";
constexpr const char* kRowResponse = R"({"predictions": [2.5, 3.0, 4.5]})";

class TfsSimTest : public testing::Test {
 protected:
  void start(const std::vector<std::string>& args = {}) { sim_.emplace(start_tfs_sim(args)); }

  std::uint16_t port() const { return sim_->port; }

  HttpClient client(Millis timeout = fusebox_test::kDefaultTimeout) {
    return HttpClient(port(), timeout);
  }

  void set_faults(const std::string& json) {
    const auto r = client().post("/sim/faults", json);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  nlohmann::json stats() { return json_of(client().get("/sim/stats")); }

  std::optional<TfsSim> sim_;
};

TEST_F(TfsSimTest, PredictRowFormatExactText) {
  start();
  const auto r = client().post(kPredict, kRowRequest);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.body, kRowResponse);
}

TEST_F(TfsSimTest, PredictColumnarFormat) {
  start();
  auto c = client();
  EXPECT_EQ(c.post(kPredict, R"({"inputs": [1.0, 2.0, 5.0]})").body,
            R"({"outputs": [2.5, 3.0, 4.5]})");
  EXPECT_EQ(c.post(kPredict, R"({"inputs": {"x": [[1.0], [2.0]]}})").body,
            R"({"outputs": [[2.5], [3.0]]})");
  EXPECT_EQ(c.post(kPredict, R"({"instances": [{"x": [1.0, 2.0]}, {"x": [3.0, 4.0]}]})").body,
            R"({"predictions": [[2.5, 3.0], [3.5, 4.0]]})");
}

TEST_F(TfsSimTest, LightModelServesHalfPlusThree) {
  start({"--model", "main", "--model", "light:half_plus_three"});
  auto c = client();
  EXPECT_EQ(c.post("/v1/models/light:predict", kRowRequest).body,
            R"({"predictions": [3.5, 4.0, 5.5]})");
  EXPECT_EQ(c.post("/v1/models/main:predict", kRowRequest).body, kRowResponse);
  // Only the configured models exist.
  EXPECT_EQ(c.post(kPredict, kRowRequest).status, 404);
}

TEST_F(TfsSimTest, ClassifyAndRegress) {
  start();
  auto c = client();
  const std::string examples = R"({"examples": [{"x": 1.0}, {"x": 2.0}]})";
  EXPECT_EQ(c.post("/v1/models/half_plus_two:classify", examples).body,
            R"({"results": [[["", 2.5]], [["", 3.0]]]})");
  EXPECT_EQ(c.post("/v1/models/half_plus_two:regress", examples).body,
            R"({"results": [2.5, 3.0]})");
}

TEST_F(TfsSimTest, ModelStatusAndMetadata) {
  start({"--version", "7"});
  auto c = client();
  auto r = c.get("/v1/models/half_plus_two");
  ASSERT_EQ(r.status, 200);
  auto j = json_of(r);
  ASSERT_EQ(j["model_version_status"].size(), 1u);
  EXPECT_EQ(j["model_version_status"][0]["version"], "7");
  EXPECT_EQ(j["model_version_status"][0]["state"], "AVAILABLE");
  EXPECT_EQ(j["model_version_status"][0]["status"]["error_code"], "OK");
  EXPECT_EQ(j["model_version_status"][0]["status"]["error_message"], "");

  r = c.get("/v1/models/half_plus_two/versions/7/metadata");
  ASSERT_EQ(r.status, 200);
  j = json_of(r);
  EXPECT_EQ(j["model_spec"]["name"], "half_plus_two");
  EXPECT_EQ(j["model_spec"]["version"], "7");
  const auto& sig = j["metadata"]["signature_def"]["signature_def"]["serving_default"];
  EXPECT_EQ(sig["inputs"]["x"]["dtype"], "DT_FLOAT");
  EXPECT_EQ(sig["outputs"]["y"]["dtype"], "DT_FLOAT");
  EXPECT_EQ(sig["method_name"], "tensorflow/serving/predict");

  EXPECT_EQ(c.get("/v1/models/half_plus_two/versions/8").status, 404);
  EXPECT_EQ(c.post("/v1/models/half_plus_two/versions/8:predict", kRowRequest).status, 404);
  EXPECT_EQ(c.post("/v1/models/half_plus_two/versions/7:predict", kRowRequest).body, kRowResponse);
  EXPECT_EQ(c.post("/v1/models/half_plus_two/labels/stable:predict", kRowRequest).body,
            kRowResponse);
}

TEST_F(TfsSimTest, UnknownModelIs404Json) {
  start();
  auto c = client();
  auto r = c.post("/v1/models/nope:predict", kRowRequest);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.body, R"json({ "error": "Servable not found for request: Latest(nope)" })json");
  r = c.get("/v1/models/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json_of(r)["error"], "Could not find any versions of model nope");
}

TEST_F(TfsSimTest, BadJsonIs400BeforeModelLookup) {
  start();
  auto c = client();
  auto r = c.post(kPredict, "{bad");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"],
            "JSON Parse error: Missing a name for object member. at offset: 1");
  r = c.post("/v1/models/nope:predict", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "JSON Parse error: The document is empty");
}

TEST_F(TfsSimTest, BothOrNeitherInstancesAndInputsIs400) {
  start();
  auto c = client();
  auto r = c.post(kPredict, R"({"instances": [1], "inputs": [1]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(
      json_of(r)["error"].get<std::string>().find(
          "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"),
      std::string::npos);
  r = c.post(kPredict, R"({"signature_name": "serving_default"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "Missing 'inputs' or 'instances' key");
}

TEST_F(TfsSimTest, NotUnderV1IsPlain404AndClosesTheConnection) {
  start();
  auto c = client();
  const auto r = c.get("/healthz");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("Content-Type"), "text/html; charset=ISO-8859-1");
  EXPECT_EQ(r.body.rfind("<HTML>", 0), 0u);
  EXPECT_FALSE(c.connected());  // libevent sends Connection: close with its error pages
}

TEST_F(TfsSimTest, MalformedUnderV1Is400) {
  start();
  auto c = client();
  auto r = c.get("/v1/foo");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "Malformed request: GET /v1/foo");
  r = c.request("PUT", "/v1/models/half_plus_two");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "Malformed request: PUT /v1/models/half_plus_two");
  r = c.get("/v1/models");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "Missing model name in request.");
}

TEST_F(TfsSimTest, UnparseableHttpIs400AndClose) {
  start();
  auto c = client();
  c.send_raw("THIS IS NOT HTTP\r\n\r\n");
  const auto r = c.read_raw_response();
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.response->status, 400);
  EXPECT_TRUE(c.connection_closed(Millis{2000}));
}

TEST_F(TfsSimTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  auto c = client();
  const std::string body = kRowRequest;
  c.send_raw("POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body +
             "GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto first = c.read_raw_response();
  ASSERT_TRUE(first.ok()) << first.message;
  EXPECT_EQ(first.response->body, kRowResponse);
  const auto second = c.read_raw_response();
  ASSERT_TRUE(second.ok()) << second.message;
  EXPECT_EQ(json_of(*second.response)["model_version_status"][0]["state"], "AVAILABLE");
}

TEST_F(TfsSimTest, ExpectContinueGetsAnInterimResponse) {
  start();
  auto c = client();
  const std::string body = kRowRequest;
  c.send_raw(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  // The interim response arrives before any body byte is sent.
  std::string interim;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (interim.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
    interim += c.read_raw(Millis{100});
  }
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  c.send_raw(body);
  const auto r = c.read_raw_response();
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.response->body, kRowResponse);
}

TEST_F(TfsSimTest, BodyOverTheLimitIs413) {
  start();
  auto c = client();
  // 100 MB announced, a few bytes sent: the limit (64 MiB) is checked against Content-Length.
  c.send_raw(
      "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
      "100000000\r\n\r\n{\"instances\": [");
  const auto r = c.read_raw_response();
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.response->status, 413);
  EXPECT_TRUE(c.connection_closed(Millis{2000}));
}

TEST_F(TfsSimTest, ConnectionCloseIsHonoured) {
  start();
  auto c = client();
  const auto r = c.post(kPredict, kRowRequest, {{"Connection", "close"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_FALSE(c.connected());
}

TEST_F(TfsSimTest, IdleKeepAliveConnectionsTimeOut) {
  start({"--idle-timeout", "200ms"});
  auto c = client();
  EXPECT_EQ(c.post(kPredict, kRowRequest).status, 200);
  EXPECT_TRUE(c.connection_closed(Millis{3000}));
}

TEST_F(TfsSimTest, ErrorRateFaultAnswers503) {
  start();
  set_faults(R"({"error_rate": 1, "error_status": 503})");
  auto c = client();
  auto r = c.post(kPredict, kRowRequest);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_FALSE(json_of(r)["error"].get<std::string>().empty());
  EXPECT_EQ(c.get("/v1/models/half_plus_two").status, 503);  // faults cover all of /v1
  // The control API is not subject to faults, and clearing restores service.
  EXPECT_EQ(c.request("DELETE", "/sim/faults").status, 200);
  EXPECT_EQ(c.post(kPredict, kRowRequest).body, kRowResponse);
  EXPECT_EQ(stats()["faults"]["errors"], 2);
}

TEST_F(TfsSimTest, ErrorFaultFromTheCommandLine) {
  start({"--error-rate", "1", "--error-status", "429"});
  const auto r = client().post(kPredict, kRowRequest);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(json_of(r)["error"],
            "The batch scheduling queue to which this task was submitted is full");
}

TEST_F(TfsSimTest, FaultsApplyOnlyToListedModels) {
  start({"--model", "main", "--model", "light:half_plus_three"});
  set_faults(R"({"error_rate": 1, "models": ["light"]})");
  auto c = client();
  EXPECT_EQ(c.post("/v1/models/light:predict", kRowRequest).status, 503);
  EXPECT_EQ(c.post("/v1/models/main:predict", kRowRequest).status, 200);
}

TEST_F(TfsSimTest, InvalidFaultJsonIs400AndChangesNothing) {
  start();
  set_faults(R"({"latency_ms": 5})");
  auto c = client();
  auto r = c.post("/sim/faults", R"({"error_rate": 7})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(json_of(r)["error"].get<std::string>().find("error_rate"), std::string::npos);
  r = c.post("/sim/faults", "{nope");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(c.get("/sim/faults"))["latency_ms"], 5);
}

TEST_F(TfsSimTest, LatencyFaultDelaysTheAnswer) {
  start();
  set_faults(R"({"latency_ms": 200})");
  auto c = client();
  const auto begin = Clock::now();
  const auto r = c.post(kPredict, kRowRequest);
  const auto elapsed = Clock::now() - begin;
  EXPECT_EQ(r.body, kRowResponse);
  EXPECT_GE(elapsed, std::chrono::milliseconds(200));  // never an upper bound: CI machines stall
}

TEST_F(TfsSimTest, HangFaultNeverAnswers) {
  start();
  set_faults(R"({"hang": true})");
  auto hung = client(Millis{300});
  const auto r = hung.try_request("POST", kPredict, kRowRequest);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error, HttpErrorKind::timeout) << r.message;
  // The control API still answers; after clearing, /v1 works again on a new connection.
  auto c = client();
  EXPECT_EQ(c.request("DELETE", "/sim/faults").status, 200);
  EXPECT_EQ(c.post(kPredict, kRowRequest).body, kRowResponse);
  EXPECT_EQ(stats()["faults"]["hangs"], 1);
}

TEST_F(TfsSimTest, ResetFaultResetsTheConnection) {
  start();
  set_faults(R"({"reset_rate": 1})");
  auto c = client();
  const auto r = c.try_request("POST", kPredict, kRowRequest);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error == HttpErrorKind::reset || r.error == HttpErrorKind::closed)
      << fusebox_test::to_string(r.error) << ": " << r.message;
  EXPECT_EQ(stats()["faults"]["resets"], 1);
}

TEST_F(TfsSimTest, ModelStateLoadingIsReflectedInStatus) {
  start();
  set_faults(R"({"model_state": "LOADING"})");
  auto c = client();
  auto r = c.get("/v1/models/half_plus_two");
  EXPECT_EQ(r.status, 200);  // TF answers 200 while loading; the state says it all
  EXPECT_EQ(json_of(r)["model_version_status"][0]["state"], "LOADING");
  r = c.post(kPredict, kRowRequest);
  EXPECT_EQ(r.status, 503);
  set_faults(R"({"model_state": "LOADING", "not_available_status": 404})");
  r = c.post(kPredict, kRowRequest);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json_of(r)["error"], "Servable not found for request: Latest(half_plus_two)");
}

TEST_F(TfsSimTest, StatsCountRequestsAndConnections) {
  start();
  auto c = client();
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(c.post(kPredict, kRowRequest).status, 200) << "request " << i;
  }
  // Read the stats on the same keep-alive connection so it is the only one.
  auto j = json_of(c.get("/sim/stats"));
  EXPECT_EQ(c.connections_opened(), 1);
  EXPECT_EQ(j["requests"], 50);
  EXPECT_EQ(j["requests_by_model"]["half_plus_two"], 50);
  EXPECT_EQ(j["responses_by_status"]["200"], 50);
  EXPECT_EQ(j["connections_accepted"], 1);
  EXPECT_EQ(j["connections_open"], 1);

  j = json_of(c.post("/sim/stats/reset", ""));
  EXPECT_EQ(j["requests"], 0);
  EXPECT_EQ(j["connections_accepted"], 0);
  EXPECT_EQ(c.post("/v1/models/other:predict", kRowRequest).status, 404);
  j = json_of(c.get("/sim/stats"));
  EXPECT_EQ(j["requests"], 1);
  EXPECT_EQ(j["requests_other_models"], 1);
  EXPECT_EQ(j["responses_by_status"]["404"], 1);
}

TEST_F(TfsSimTest, ConnectionsOpenDropsWhenClientsLeave) {
  start();
  {
    auto a = client();
    auto b = client();
    EXPECT_EQ(a.post(kPredict, kRowRequest).status, 200);
    EXPECT_EQ(b.post(kPredict, kRowRequest).status, 200);
  }
  // Wait (bounded) for the server to notice both closes; only the probing connection remains.
  auto probe = client();
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::int64_t open = -1;
  while (Clock::now() < deadline) {
    open = json_of(probe.get("/sim/stats"))["connections_open"].get<std::int64_t>();
    if (open == 1) break;
  }
  EXPECT_EQ(open, 1);
}

TEST_F(TfsSimTest, ManyThreadsServeConcurrentClients) {
  start({"--threads", "4"});
  constexpr int kClients = 8;
  constexpr int kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([this, &ok] {
      HttpClient c(port());
      for (int i = 0; i < kRequests; ++i) {
        const auto r = c.try_request("POST", kPredict, kRowRequest);
        if (r.ok() && r.response->body == kRowResponse) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  const auto j = stats();
  EXPECT_EQ(j["requests"], kClients * kRequests);
  EXPECT_EQ(j["connections_accepted"], kClients + 1);  // + the stats connection
}

TEST_F(TfsSimTest, TfServingJsonStyleIsByteExact) {
  start({"--json-style", "tfserving"});
  auto c = client();
  EXPECT_EQ(c.post(kPredict, kRowRequest).body, "{\n    \"predictions\": [2.5, 3.0, 4.5\n    ]\n}");
  EXPECT_EQ(c.post("/v1/models/nope:predict", kRowRequest).body,
            "{\n    \"error\": \"Servable not found for request: Latest(nope)\"\n}");
}

TEST_F(TfsSimTest, SigtermExitsZero) {
  start();
  EXPECT_EQ(sim_->process.stop(SIGTERM), 0);
}

TEST_F(TfsSimTest, SigintExitsZero) {
  start();
  EXPECT_EQ(sim_->process.stop(SIGINT), 0);
}

TEST(TfsSimCommandLine, BadFlagExitsTwoWithAMessage) {
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto p =
      ChildProcess::spawn(fusebox_test::tfs_sim_path(), {"--rest-port", "0", "--bogus"}, options);
  EXPECT_EQ(p.wait_exit(), 2);
  EXPECT_TRUE(p.wait_for_stderr("unknown flag: --bogus")) << p.stderr_text();
}

TEST(TfsSimCommandLine, HelpExitsZero) {
  auto p = ChildProcess::spawn(fusebox_test::tfs_sim_path(), {"--help"});
  EXPECT_EQ(p.wait_exit(), 0);
  EXPECT_TRUE(p.wait_for_stdout("--rest-port")) << p.stdout_text();
}

TEST(TfsSimCommandLine, BusyPortExitsOne) {
  auto first = start_tfs_sim();
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto p = ChildProcess::spawn(fusebox_test::tfs_sim_path(),
                               {"--rest-port", std::to_string(first.port)}, options);
  EXPECT_EQ(p.wait_exit(), 1);
  EXPECT_TRUE(p.wait_for_stderr("cannot listen")) << p.stderr_text();
}

}  // namespace
