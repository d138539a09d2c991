// Interop with a gRPC client the project does not implement: Python's grpcio (Debian's
// python3-grpcio) running tests/interop/tfs_client.py, a TF Serving client written with TF
// Serving's own module names, over stubs generated from proto/ by protoc + grpc_python_plugin
// (tests/interop/CMakeLists.txt).
//
// The cases are functions of the gRPC target ("host:port"), so the same checks run against any
// server speaking TF Serving's API: here tfs-sim directly, and fusebox's gRPC listener in front
// of it. When /usr/bin/python3 lacks grpc or protobuf, every test fails and says to run
// scripts/install-deps.sh: nothing is skipped.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fusebox_test/process.h"
#include "gateway_fixture.h"

namespace {

using fusebox_it::ChildProcess;
using fusebox_it::Millis;
using nlohmann::json;

// Bound for one client run: Python's start-up, the call (its own deadline, --timeout, is 10 s by
// default) and the printing.
constexpr Millis kClientBound{30000};

// The interpreter: $FUSEBOX_PYTHON if set, else Debian's (the python3 first on PATH may be
// another installation, without Debian's grpc packages).
std::string python_path() {
  if (const char* env = std::getenv("FUSEBOX_PYTHON"); env != nullptr && *env != '\0') return env;
  return "/usr/bin/python3";
}

// Everything the child wrote to stderr, once it has closed it (bounded).
std::string all_stderr(ChildProcess& child) {
  child.wait_for_stderr(std::string_view("\0", 1), Millis{2000});  // returns at EOF
  return child.stderr_text();
}

// Runs `python3 tests/interop/tfs_client.py --target <target> <args...>` with the generated stubs
// on PYTHONPATH and returns the JSON object it printed: the call's result, or
// {"error": {"code": "UNAVAILABLE", "details": ..., "initial_metadata": ...,
// "trailing_metadata": ...}} when the call failed. Throws std::runtime_error (which fails the
// test, quoting the client's stderr) when the client cannot run, does not finish within
// kClientBound, or prints no JSON object.
json run_client(const std::string& target, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {fusebox_it::source_dir() + "/tests/interop/tfs_client.py",
                                   "--target", target};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string command = python_path();
  for (const auto& a : argv) command += " " + a;

  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  // Only the stubs and the system's packages: no user site-packages standing in for Debian's.
  options.env = {{"PYTHONPATH", FUSEBOX_PY_STUBS}, {"PYTHONNOUSERSITE", "1"}};
  const auto fail = [&](const std::string& what, const std::string& stderr_text) {
    return std::runtime_error("interop client: " + what + "\n  command: " + command +
                              "\n  PYTHONPATH=" FUSEBOX_PY_STUBS "\n  stderr: " + stderr_text);
  };
  std::optional<ChildProcess> client;
  try {
    client.emplace(ChildProcess::spawn(python_path(), argv, options));
  } catch (const std::exception& e) {
    throw fail(std::string("cannot start ") + python_path() + " (" + e.what() +
                   "); install python3, python3-grpcio and python3-protobuf with "
                   "scripts/install-deps.sh",
               "");
  }
  const auto line = client->read_line(kClientBound);  // one line, at the end of the run
  // grpcio's teardown (channel and its threads) can take seconds on a loaded machine.
  const auto code = client->wait_exit(Millis{20000});
  if (!code) throw fail("no result within " + std::to_string(kClientBound.count()) + " ms", "");
  if (*code == 4) {
    throw fail(
        "python lacks grpc, protobuf or the generated stubs: run scripts/install-deps.sh "
        "(python3-grpcio, python3-protobuf) and build the fusebox_python_stubs target",
        all_stderr(*client));
  }
  if (*code != 0 && *code != 3) {
    throw fail("exited with " + std::to_string(*code), all_stderr(*client));
  }
  auto result = json::parse(line.value_or(""), nullptr, /*allow_exceptions=*/false);
  if (!result.is_object()) {
    throw fail("printed no JSON object: '" + line.value_or("") + "'", all_stderr(*client));
  }
  if (result.contains("error") != (*code == 3)) {
    throw fail("exit code " + std::to_string(*code) + " does not match " + result.dump(), "");
  }
  return result;
}

// "" when `result` is a successful call's, else what went wrong (for assertion messages).
std::string error_of(const json& result) {
  return result.contains("error") ? result["error"].dump() : "";
}

std::vector<double> half_plus_two(const std::vector<double>& xs) {
  std::vector<double> out;
  for (const double x : xs) out.push_back(0.5 * x + 2.0);
  return out;
}

// ---- The cases, against any TF Serving-compatible gRPC server serving half_plus_two ----------

// Predict with x in float_val: y = 0.5 x + 2, in float_val as TF Serving answers.
void expect_predict_float_val(const std::string& target) {
  const auto r = run_client(target, {"predict", "--model", "half_plus_two", "--values", "1,2,5"});
  ASSERT_EQ(error_of(r), "");
  const auto& y = r["outputs"]["y"];
  EXPECT_EQ(y["values"].get<std::vector<double>>(), half_plus_two({1, 2, 5})) << r.dump();
  EXPECT_EQ(y["shape"], json::array({3}));
  EXPECT_EQ(y["dtype"], "DT_FLOAT");
  EXPECT_EQ(y["encoding"], "float_val");
  EXPECT_EQ(r["model_spec"]["name"], "half_plus_two");
  EXPECT_EQ(r["model_spec"]["signature_name"], "serving_default");
}

// Predict with x as tensor_content bytes of shape [2, 3]: the values and the batch shape.
void expect_predict_tensor_content(const std::string& target) {
  const auto r = run_client(target, {"predict", "--model", "half_plus_two", "--tensor-content",
                                     "--values", "1,-2,0.25,7,1e6,-0.5", "--shape", "2,3"});
  ASSERT_EQ(error_of(r), "");
  const auto& y = r["outputs"]["y"];
  EXPECT_EQ(y["values"].get<std::vector<double>>(), half_plus_two({1, -2, 0.25, 7, 1e6, -0.5}))
      << r.dump();
  EXPECT_EQ(y["shape"], json::array({2, 3}));
  EXPECT_EQ(y["dtype"], "DT_FLOAT");
}

void expect_model_available(const std::string& target) {
  const auto r = run_client(target, {"status", "--model", "half_plus_two"});
  ASSERT_EQ(error_of(r), "");
  ASSERT_EQ(r["model_version_status"].size(), 1u) << r.dump();
  const auto& v = r["model_version_status"][0];
  EXPECT_EQ(v["state"], "AVAILABLE");
  EXPECT_EQ(v["error_code"], "OK");
  EXPECT_EQ(v["version"], 1);
}

// GetModelMetadata: the SignatureDefMap in metadata["signature_def"] (a google.protobuf.Any).
void expect_serving_default_signature(const std::string& target) {
  const auto r = run_client(target, {"metadata", "--model", "half_plus_two"});
  ASSERT_EQ(error_of(r), "");
  EXPECT_EQ(r["type_url"], "type.googleapis.com/tensorflow.serving.SignatureDefMap");
  ASSERT_TRUE(r["signature_def"].contains("serving_default")) << r.dump();
  const auto& def = r["signature_def"]["serving_default"];
  EXPECT_EQ(def["method_name"], "tensorflow/serving/predict");
  ASSERT_EQ(def["inputs"].size(), 1u) << def.dump();
  ASSERT_EQ(def["outputs"].size(), 1u) << def.dump();
  EXPECT_EQ(def["inputs"]["x"]["name"], "x:0");
  EXPECT_EQ(def["inputs"]["x"]["dtype"], "DT_FLOAT");
  EXPECT_EQ(def["outputs"]["y"]["name"], "y:0");
  EXPECT_EQ(def["outputs"]["y"]["dtype"], "DT_FLOAT");
}

// A request well above gRPC's 4 MB default receive limit, and its answer, pass.
void expect_large_request_passes(const std::string& target, int mib) {
  const auto r = run_client(target, {"predict-large", "--mib", std::to_string(mib)});
  ASSERT_EQ(error_of(r), "");
  EXPECT_EQ(r["output_length"], mib * (1 << 20) / 4);
  EXPECT_GT(r["request_bytes"].get<std::int64_t>(), std::int64_t{mib} << 20);
  EXPECT_EQ(r["mismatches"], 0);
}

void expect_unknown_model_not_found(const std::string& target) {
  const auto r = run_client(target, {"predict", "--model", "nope", "--values", "1"});
  EXPECT_EQ(r["error"]["code"], "NOT_FOUND") << r.dump();
  EXPECT_EQ(r["error"]["details"], "Servable not found for request: Latest(nope)");
}

void expect_predict_unavailable(const std::string& target) {
  const auto r = run_client(target, {"predict", "--model", "half_plus_two", "--values", "1"});
  EXPECT_EQ(r["error"]["code"], "UNAVAILABLE") << r.dump();
}

// ---- Against tfs-sim directly ------------------------------------------------------------

class GrpcInteropTest : public fusebox_it::GatewayTest {
 protected:
  // Starts a tfs-sim with REST (its control API) and gRPC on free ports.
  fusebox_it::TfsSim& start_grpc_sim() {
    auto& s = start_sim({"--grpc-port", "0"});
    if (s.grpc_port == 0) throw std::runtime_error("tfs-sim reported no gRPC port");
    return s;
  }
  static std::string target_of(const fusebox_it::TfsSim& s) {
    return "127.0.0.1:" + std::to_string(s.grpc_port);
  }
};

TEST_F(GrpcInteropTest, PredictFloatValOnTfsSim) {
  const auto& s = start_grpc_sim();
  expect_predict_float_val(target_of(s));
  // The Python client reached the simulator's PredictionService, not something else.
  const auto grpc = sim_stats(s.port)["grpc"];
  EXPECT_EQ(grpc["requests_by_method"]["Predict"], 1) << grpc.dump();
}

TEST_F(GrpcInteropTest, PredictTensorContentOnTfsSim) {
  expect_predict_tensor_content(target_of(start_grpc_sim()));
}

TEST_F(GrpcInteropTest, RequestMetadataReachesTfsSim) {
  const auto& s = start_grpc_sim();
  const auto r = run_client(target_of(s), {"predict", "--model", "half_plus_two", "--values", "1",
                                           "--metadata", "x-request-id=py-interop-1"});
  ASSERT_EQ(error_of(r), "");
  EXPECT_TRUE(r["initial_metadata"].is_object()) << r.dump();
  EXPECT_TRUE(r["trailing_metadata"].is_object()) << r.dump();
  const auto grpc = sim_stats(s.port)["grpc"];
  EXPECT_EQ(grpc["last_request_id"], "py-interop-1") << grpc.dump();
  EXPECT_TRUE(grpc["last_deadline_ms"].is_number()) << grpc.dump();  // --timeout 10 is sent
}

TEST_F(GrpcInteropTest, ModelStatusOnTfsSim) { expect_model_available(target_of(start_grpc_sim())); }

TEST_F(GrpcInteropTest, MetadataOnTfsSim) {
  expect_serving_default_signature(target_of(start_grpc_sim()));
}

TEST_F(GrpcInteropTest, TenMebibyteRequestOnTfsSim) {
  expect_large_request_passes(target_of(start_grpc_sim()), 10);
}

TEST_F(GrpcInteropTest, UnknownModelIsNotFoundOnTfsSim) {
  expect_unknown_model_not_found(target_of(start_grpc_sim()));
}

TEST_F(GrpcInteropTest, InjectedUnavailableFaultOnTfsSim) {
  const auto& s = start_grpc_sim();
  set_sim_faults(s.port, {{"error_rate", 1}, {"error_status", 503}});
  expect_predict_unavailable(target_of(s));
  EXPECT_EQ(sim_stats(s.port)["grpc"]["faults"]["errors"], 1);
}

// tfs-sim, like TF Serving, has no grpc.health.v1 service: the client's Health/Check reaches the
// server and gets gRPC's answer for an unknown method (fusebox answers it; see docs/grpc.md).
TEST_F(GrpcInteropTest, HealthIsUnimplementedOnTfsSim) {
  const auto r = run_client(target_of(start_grpc_sim()), {"health"});
  EXPECT_EQ(r["error"]["code"], "UNIMPLEMENTED") << r.dump();
}

// The same checks through fusebox: a TF Serving user's Python code, only the address changed.
class GrpcInteropThroughFuseboxTest : public GrpcInteropTest {
 protected:
  std::string start_fusebox_in_front(std::vector<std::string> grpc_lines = {}) {
    sim_ = &start_grpc_sim();
    fusebox_it::GatewayConfig config;
    config.grpc_lines = std::move(grpc_lines);
    fusebox_it::PoolSpec pool{"primary", {sim_->port}};
    pool.grpc_ports = {sim_->grpc_port};
    config.pools.push_back(pool);
    config.routes.push_back({});
    config.grpc = true;
    start_gateway(config);
    if (!wait_all_backends_health("healthy")) throw std::runtime_error("backend never healthy");
    return "127.0.0.1:" + std::to_string(gateway().grpc_port());
  }
  fusebox_it::TfsSim* sim_ = nullptr;
};

TEST_F(GrpcInteropThroughFuseboxTest, PredictStatusMetadataAndLargeMessages) {
  const auto target = start_fusebox_in_front();
  expect_predict_float_val(target);
  expect_predict_tensor_content(target);
  expect_model_available(target);
  expect_serving_default_signature(target);
  expect_large_request_passes(target, 10);
  expect_unknown_model_not_found(target);
  // Every call went through fusebox to the simulator.
  const auto grpc = sim_stats(sim_->port)["grpc"];
  EXPECT_EQ(grpc["requests_by_method"]["Predict"], 3) << grpc.dump();
}

TEST_F(GrpcInteropThroughFuseboxTest, TrailingMetadataNamesTheTierAndHealthAnswers) {
  const auto target = start_fusebox_in_front();
  const auto r = run_client(target, {"predict", "--model", "half_plus_two", "--values", "1",
                                     "--metadata", "x-request-id=py-through-1"});
  ASSERT_EQ(error_of(r), "");
  EXPECT_EQ(r["trailing_metadata"]["x-fusebox-tier"], "primary") << r.dump();
  EXPECT_EQ(r["trailing_metadata"]["x-request-id"], "py-through-1") << r.dump();
  EXPECT_EQ(sim_stats(sim_->port)["grpc"]["last_request_id"], "py-through-1");
  const auto health = run_client(target, {"health"});
  EXPECT_EQ(health["status"], "SERVING") << health.dump();
}

TEST_F(GrpcInteropThroughFuseboxTest, BackendFailureIsUnavailableAfterRetries) {
  const auto target = start_fusebox_in_front();
  set_sim_faults(sim_->port, {{"error_rate", 1}, {"error_status", 503}});
  expect_predict_unavailable(target);
}

// Server reflection (grpc.reflection.v1alpha), as grpcurl or a reflection-based client uses it:
// the services are listed and their declaring files come with TF Serving's method names.
TEST_F(GrpcInteropThroughFuseboxTest, ReflectionDescribesTfServingsServices) {
  const auto target = start_fusebox_in_front();
  const auto r = run_client(target, {"reflect", "--symbol", "tensorflow.serving.PredictionService",
                                     "tensorflow.serving.ModelService",
                                     "tensorflow.serving.NoSuchService"});
  ASSERT_EQ(error_of(r), "");
  const auto services = r["services"].get<std::vector<std::string>>();
  for (const char* name : {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
                           "grpc.reflection.v1alpha.ServerReflection"}) {
    EXPECT_NE(std::find(services.begin(), services.end(), name), services.end())
        << name << " in " << r["services"].dump();
  }
  const auto& prediction = r["files"]["tensorflow.serving.PredictionService"];
  EXPECT_EQ(prediction["file"], "tensorflow_serving/apis/prediction_service.proto") << r.dump();
  EXPECT_EQ(prediction["services"]["tensorflow.serving.PredictionService"],
            json::array({"Classify", "Regress", "Predict", "MultiInference", "GetModelMetadata"}));
  EXPECT_GT(prediction["files_sent"].get<int>(), 1) << "with the files it imports";
  EXPECT_EQ(r["files"]["tensorflow.serving.ModelService"]["services"]
                ["tensorflow.serving.ModelService"],
            json::array({"GetModelStatus"}));
  EXPECT_EQ(r["files"]["tensorflow.serving.NoSuchService"]["error"]["code"], 5)  // NOT_FOUND
      << r.dump();
  // The data path is unchanged by it.
  expect_predict_float_val(target);
}

TEST_F(GrpcInteropThroughFuseboxTest, ReflectionCanBeTurnedOff) {
  const auto target = start_fusebox_in_front({"reflection: false"});
  const auto r = run_client(target, {"reflect"});
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["error"]["code"], "UNIMPLEMENTED") << r.dump();
  expect_predict_float_val(target);
}

// Nothing listening: the client reports UNAVAILABLE (exit code 3) instead of hanging.
TEST(GrpcInterop, NoServerIsUnavailable) {
  const auto r = run_client("127.0.0.1:" + std::to_string(fusebox_it::unused_port()),
                            {"status", "--model", "half_plus_two", "--timeout", "5"});
  EXPECT_EQ(r["error"]["code"], "UNAVAILABLE") << r.dump();
}

}  // namespace
