// The data path end to end: real fusebox in front of real tfs-sim processes (or a scripted
// backend when the test must see exactly what fusebox forwards).

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gateway_fixture.h"
#include "scripted_backend.h"

namespace fusebox_it {
namespace {

using fusebox_test::json_of;
using nlohmann::json;


class ProxyTest : public GatewayTest {};

TEST_F(ProxyTest, PredictRowFormatRoundTrip) {
  start_gateway(single_route_config(start_sims(1)));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"predictions": [2.5, 3.0, 4.5]})");
  EXPECT_EQ(r.header("Content-Type"), "application/json");
}

TEST_F(ProxyTest, PredictColumnarRoundTrip) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  const auto r = c.post(kPredict, R"({"inputs": [1.0, 2.0, 5.0]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"outputs": [2.5, 3.0, 4.5]})");

  // Named columnar input: whatever tfs-sim answers directly, fusebox answers the same bytes.
  const std::string named = R"({"inputs": {"x": [1.0, 2.0, 5.0]}})";
  HttpClient direct(port);
  const auto expected = direct.post(kPredict, named);
  const auto got = c.post(kPredict, named);
  EXPECT_EQ(got.status, expected.status);
  EXPECT_EQ(got.body, expected.body);
}

TEST_F(ProxyTest, ClassifyAndRegressRoundTrip) {
  start_gateway(single_route_config(start_sims(1)));
  auto c = client();
  const std::string examples = R"({"examples": [{"x": 1.0}, {"x": 2.0}]})";
  const auto classify = c.post("/v1/models/half_plus_two:classify", examples);
  EXPECT_EQ(classify.status, 200);
  EXPECT_EQ(classify.body, R"({"results": [[["", 2.5]], [["", 3.0]]]})");
  const auto regress = c.post("/v1/models/half_plus_two:regress", examples);
  EXPECT_EQ(regress.status, 200);
  EXPECT_EQ(regress.body, R"({"results": [2.5, 3.0]})");
}

// Status, metadata and upstream errors are relayed byte for byte, in both JSON layouts.
void expect_identical_to_direct(HttpClient& gateway, HttpClient& direct,
                                const std::vector<std::string>& paths) {
  for (const auto& path : paths) {
    SCOPED_TRACE(path);
    const auto want = direct.get(path);
    const auto got = gateway.get(path);
    EXPECT_EQ(got.status, want.status);
    EXPECT_EQ(got.body, want.body);
    EXPECT_EQ(got.header("Content-Type"), want.header("Content-Type"));
  }
}

const std::vector<std::string> kStatusPaths = {
    "/v1/models/half_plus_two",
    "/v1/models/half_plus_two/metadata",
    "/v1/models/half_plus_two/versions/1",
    "/v1/models/half_plus_two/versions/1/metadata",
    "/v1/models/half_plus_two/labels/stable",
    "/v1/models/half_plus_two/versions/2",  // 404 from the backend
};

TEST_F(ProxyTest, ModelStatusAndMetadataAreByteIdenticalToTfsSim) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  const auto status = c.get("/v1/models/half_plus_two");
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.body, R"({"model_version_status": [{"version": "1", "state": "AVAILABLE", )"
                         R"("status": {"error_code": "OK", "error_message": ""}}]})");
  HttpClient direct(port);
  expect_identical_to_direct(c, direct, kStatusPaths);
}

TEST_F(ProxyTest, TfServingJsonLayoutIsRelayedByteForByte) {
  const auto port = start_sims(1, {"--json-style", "tfserving"}).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  HttpClient direct(port);
  const auto status = direct.get("/v1/models/half_plus_two");
  ASSERT_NE(status.body.find('\n'), std::string::npos) << "tfserving layout is multi-line";
  expect_identical_to_direct(c, direct, kStatusPaths);
  const auto want = direct.post(kPredict, kThreeInstances);
  const auto got = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, want.body);
}

TEST_F(ProxyTest, UnknownModelIsAnswered404JsonWithoutTouchingBackends) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  const auto predict = c.post("/v1/models/x:predict", kThreeInstances);
  EXPECT_EQ(predict.status, 404);
  EXPECT_EQ(predict.header("Content-Type"), "application/json");
  EXPECT_EQ(predict.body, R"js({"error": "Servable not found for request: Latest(x)"})js");

  const auto versioned = c.post("/v1/models/x/versions/3:predict", kThreeInstances);
  EXPECT_EQ(versioned.status, 404);
  EXPECT_EQ(versioned.body, R"js({"error": "Servable not found for request: Specific(x, 3)"})js");

  const auto status = c.get("/v1/models/x");
  EXPECT_EQ(status.status, 404);
  EXPECT_EQ(status.header("Content-Type"), "application/json");
  EXPECT_EQ(status.body, R"({"error": "Could not find any versions of model x"})");

  // The same messages as TF Serving (tfs-sim) gives for a model it does not serve.
  HttpClient direct(port);
  EXPECT_EQ(json_of(direct.post("/v1/models/x:predict", kThreeInstances)), json_of(predict));
  EXPECT_EQ(json_of(direct.get("/v1/models/x")), json_of(status));
  EXPECT_EQ(sim_stats(port).at("requests"), 2) << "only the two direct requests reached the sim";
}

TEST_F(ProxyTest, PathOutsideV1Is404Json) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  const auto r = c.get("/foo");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.body, R"({"error": "Not found: /foo"})");
  // Admin endpoints do not exist on the data listener.
  const auto healthz = c.get("/healthz");
  EXPECT_EQ(healthz.status, 404);
  EXPECT_EQ(json_of(healthz).at("error"), "Not found: /healthz");
  EXPECT_EQ(sim_stats(port).at("requests"), 0);
}

TEST_F(ProxyTest, MalformedV1PathIs400JsonLikeTfServing) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  HttpClient direct(port);
  struct Case {
    std::string method, path, message;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/foo", "Malformed request: GET /v1/foo"},
      {"GET", "/v1/models", "Missing model name in request."},
      {"POST", "/v1/models/half_plus_two:explain",
       "Malformed request: POST /v1/models/half_plus_two:explain"},
      {"PUT", "/v1/models/half_plus_two:predict",
       "Malformed request: PUT /v1/models/half_plus_two:predict"},
      {"GET", "/v1/models/half_plus_two:predict",
       "Malformed request: GET /v1/models/half_plus_two:predict"},
  };
  std::vector<HttpResponse> answers;
  for (const auto& k : cases) {
    SCOPED_TRACE(k.method + " " + k.path);
    const std::string body = k.method == "GET" ? "" : std::string(kThreeInstances);
    const auto r = c.request(k.method, k.path, body);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    EXPECT_EQ(json_of(r), json({{"error", k.message}}));
    answers.push_back(r);
  }
  EXPECT_EQ(sim_stats(port).at("requests"), 0) << "malformed requests must not reach the backend";
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& k = cases[i];
    SCOPED_TRACE(k.method + " " + k.path);
    const auto want =
        direct.request(k.method, k.path, k.method == "GET" ? "" : std::string(kThreeInstances));
    EXPECT_EQ(want.status, 400);
    EXPECT_EQ(json_of(answers[i]), json_of(want)) << "same error as tfs-sim";
  }
}

TEST_F(ProxyTest, LabelsAndVersionsArePassedThrough) {
  const auto port = start_sims(1).at(0);
  start_gateway(single_route_config({port}));
  auto c = client();
  const std::string one = R"({"instances": [1.0]})";
  for (const std::string path : {"/v1/models/half_plus_two/labels/canary:predict",
                                 "/v1/models/half_plus_two/labels/stable:predict",
                                 "/v1/models/half_plus_two/versions/1:predict"}) {
    SCOPED_TRACE(path);
    const auto r = c.post(path, one);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"predictions": [2.5]})");
  }
  // A version the backend does not serve: the backend's 404 is relayed as it is.
  HttpClient direct(port);
  const auto want = direct.post("/v1/models/half_plus_two/versions/7:predict", one);
  const auto got = c.post("/v1/models/half_plus_two/versions/7:predict", one);
  EXPECT_EQ(got.status, 404);
  EXPECT_EQ(got.body, want.body);
  EXPECT_EQ(json_of(got).at("error"), "Servable not found for request: Specific(half_plus_two, 7)");
  EXPECT_EQ(sim_stats(port).at("requests"), 5);
}

TEST_F(ProxyTest, RequestTargetIsForwardedVerbatim) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const std::vector<std::string> targets = {
      "/v1/models/half_plus_two/labels/canary:predict",
      "/v1/models/half_plus_two/versions/42:regress",
      "/v1/models/half%5Fplus%5Ftwo:predict",  // routed by the decoded name, sent as written
      "/v1/models/half_plus_two:predict?trace=1",
      "/V1/MODELS/half_plus_two:PREDICT",  // TF Serving matches case-insensitively
  };
  for (const auto& t : targets) EXPECT_EQ(c.post(t, "{}").status, 200) << t;
  EXPECT_EQ(c.get("/v1/models/half_plus_two/versions/3/metadata").status, 200);
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), targets.size() + 1);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(seen[i].method, "POST");
    EXPECT_EQ(seen[i].target, targets[i]);
  }
  EXPECT_EQ(seen.back().method, "GET");
  EXPECT_EQ(seen.back().target, "/v1/models/half_plus_two/versions/3/metadata");
}

TEST_F(ProxyTest, RoundRobinAcrossTwoBackends) {
  const auto ports = start_sims(2);
  start_gateway(single_route_config(ports));
  ASSERT_TRUE(wait_all_backends_health("healthy")) << "both backends must be probed healthy first";
  auto c = client();
  for (int i = 0; i < 10; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body, R"({"predictions": [2.5, 3.0, 4.5]})");
  }
  EXPECT_EQ(sim_stats(ports[0]).at("requests"), 5);
  EXPECT_EQ(sim_stats(ports[1]).at("requests"), 5);
}

TEST_F(ProxyTest, ForwardsEndToEndHeadersAndStripsHopByHopOnes) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const std::string body = R"({"instances": [1.0, 2.0]})";
  const Headers sent = {
      {"Host", "gateway.example:8080"},
      {"Connection", "keep-alive, X-Hop-Custom"},
      {"X-Hop-Custom", "secret"},
      {"Keep-Alive", "timeout=5"},
      {"TE", "trailers"},
      {"Trailer", "X-Checksum"},
      {"Upgrade", "h2c"},
      {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
      {"Proxy-Connection", "keep-alive"},
      {"X-Forwarded-For", "10.0.0.1"},
      {"X-Forwarded-For", "10.0.0.2"},
      {"Authorization", "Bearer abc"},
      {"User-Agent", "fusebox-it/1"},
      {"Content-Type", "application/json"},
      {"X-End-To-End", "kept"},
  };
  const auto r = c.post(kPredict, body, sent);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"ok": true})");
  ASSERT_EQ(backend.request_count(), 1u);
  const auto got = backend.requests().at(0);
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.target, kPredict);
  EXPECT_EQ(got.version, "HTTP/1.1");
  EXPECT_EQ(got.body, body);
  EXPECT_EQ(got.header("Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(got.header("Host"), "gateway.example:8080");
  EXPECT_EQ(got.header("Authorization"), "Bearer abc");
  EXPECT_EQ(got.header("User-Agent"), "fusebox-it/1");
  EXPECT_EQ(got.header("Content-Type"), "application/json");
  EXPECT_EQ(got.header("X-End-To-End"), "kept");
  EXPECT_EQ(got.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(got.header("X-Forwarded-For"), "10.0.0.1, 10.0.0.2, 127.0.0.1");
  for (const char* hop : {"Connection", "X-Hop-Custom", "Keep-Alive", "TE", "Trailer", "Upgrade",
                          "Proxy-Authorization", "Proxy-Connection", "Transfer-Encoding"}) {
    EXPECT_EQ(got.count(hop), 0u) << hop << " must not be forwarded";
  }
  ASSERT_TRUE(got.header("X-Request-Id").has_value());
  EXPECT_TRUE(is_hex32(*got.header("X-Request-Id"))) << *got.header("X-Request-Id");
  EXPECT_EQ(r.header("X-Request-Id"), got.header("X-Request-Id"));
  ASSERT_TRUE(got.header("traceparent").has_value());
  EXPECT_TRUE(is_version00_traceparent(*got.header("traceparent"))) << *got.header("traceparent");
}

TEST_F(ProxyTest, XForwardedForIsCreatedWhenAbsent) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  // The health check asks the same path; it is answered apart and never recorded.
  ASSERT_TRUE(wait_until([&] { return backend.probe_count() > 0; }));
  ASSERT_TRUE(wait_backend_health("primary", 0, "healthy"));
  auto c = client();
  ASSERT_EQ(c.get("/v1/models/half_plus_two").status, 200);
  ASSERT_EQ(backend.request_count(), 1u);
  const auto got = backend.requests().at(0);
  EXPECT_EQ(got.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(got.header("X-Forwarded-For"), "127.0.0.1");
}

TEST_F(ProxyTest, HopByHopResponseHeadersAreNotRelayed) {
  ScriptedReply reply = ScriptedReply::json(200, R"({"predictions": [2.5]})");
  reply.headers.emplace_back("Connection", "X-Resp-Hop");
  reply.headers.emplace_back("X-Resp-Hop", "1");
  reply.headers.emplace_back("Keep-Alive", "timeout=5, max=100");
  reply.headers.emplace_back("Proxy-Authenticate", "Basic");
  reply.headers.emplace_back("X-Backend", "scripted");
  ScriptedBackend backend(reply);
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto r = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"predictions": [2.5]})");
  EXPECT_EQ(r.header("X-Backend"), "scripted");
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_FALSE(r.has_header("X-Resp-Hop"));
  EXPECT_FALSE(r.has_header("Keep-Alive"));
  EXPECT_FALSE(r.has_header("Proxy-Authenticate"));
  // The client connection stays open: the backend's Connection header is not relayed.
  EXPECT_TRUE(c.connected());
}

TEST_F(ProxyTest, ChunkedUpstreamResponseIsRelayedWithItsBodyIntact) {
  ScriptedBackend backend(ScriptedReply::raw_bytes(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10\r\n{\"predictions\": \r\n6\r\n[2.5]}\r\n0\r\n\r\n",
      /*close_after=*/false));
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  for (int i = 0; i < 2; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"predictions": [2.5]})");
  }
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].connection, seen[1].connection)
      << "a chunked answer keeps the connection reusable";
}

TEST_F(ProxyTest, BackendClosingAfterEachResponseIsNotAnError) {
  ScriptedReply reply = ScriptedReply::json(200, R"({"predictions": [2.5]})");
  reply.headers.emplace_back("Connection", "close");
  reply.close_after = true;
  ScriptedBackend backend(reply);
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  for (int i = 0; i < 3; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    EXPECT_EQ(r.status, 200) << "request " << i << ": " << r.body;
    EXPECT_EQ(r.body, R"({"predictions": [2.5]})");
  }
  EXPECT_EQ(c.connections_opened(), 1) << "the backend's close does not close the client";
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 3u) << "no request was sent twice";
  EXPECT_NE(seen[0].connection, seen[1].connection);
  EXPECT_NE(seen[1].connection, seen[2].connection);
}

TEST_F(ProxyTest, RequestIdIsGeneratedWhenAbsent) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto first = c.post(kPredict, kThreeInstances);
  const auto second = c.post(kPredict, kThreeInstances);
  ASSERT_TRUE(first.header("X-Request-Id").has_value());
  ASSERT_TRUE(second.header("X-Request-Id").has_value());
  EXPECT_TRUE(is_hex32(*first.header("X-Request-Id"))) << *first.header("X-Request-Id");
  EXPECT_TRUE(is_hex32(*second.header("X-Request-Id"))) << *second.header("X-Request-Id");
  EXPECT_NE(first.header("X-Request-Id"), second.header("X-Request-Id"));
  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].header("X-Request-Id"), first.header("X-Request-Id"));
  EXPECT_EQ(seen[1].header("X-Request-Id"), second.header("X-Request-Id"));
  EXPECT_EQ(seen[0].count("X-Request-Id"), 1u);

  // Local answers carry an id as well.
  const auto unknown = c.post("/v1/models/nope:predict", kThreeInstances);
  EXPECT_EQ(unknown.status, 404);
  ASSERT_TRUE(unknown.header("X-Request-Id").has_value());
  EXPECT_TRUE(is_hex32(*unknown.header("X-Request-Id")));
}

TEST_F(ProxyTest, SaneClientRequestIdIsKeptAndInsaneOneReplaced) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const auto kept = c.post(kPredict, kThreeInstances, {{"X-Request-Id", "client-id-42"}});
  EXPECT_EQ(kept.header("X-Request-Id"), "client-id-42");

  const std::string too_long(129, 'a');
  const auto replaced = c.post(kPredict, kThreeInstances, {{"X-Request-Id", too_long}});
  ASSERT_TRUE(replaced.header("X-Request-Id").has_value());
  EXPECT_TRUE(is_hex32(*replaced.header("X-Request-Id"))) << *replaced.header("X-Request-Id");

  const auto with_space = c.post(kPredict, kThreeInstances, {{"X-Request-Id", "two words"}});
  ASSERT_TRUE(with_space.header("X-Request-Id").has_value());
  EXPECT_TRUE(is_hex32(*with_space.header("X-Request-Id")));

  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].header("X-Request-Id"), "client-id-42");
  EXPECT_EQ(seen[1].count("X-Request-Id"), 1u);
  EXPECT_EQ(seen[1].header("X-Request-Id"), replaced.header("X-Request-Id"));
  EXPECT_EQ(seen[2].count("X-Request-Id"), 1u);
  EXPECT_EQ(seen[2].header("X-Request-Id"), with_space.header("X-Request-Id"));
}

TEST_F(ProxyTest, TraceparentIsPassedThroughOrGenerated) {
  ScriptedBackend backend;
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  ASSERT_EQ(c.post(kPredict, kThreeInstances, {{"traceparent", valid}}).status, 200);
  ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  const std::string uppercase = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
  ASSERT_EQ(c.post(kPredict, kThreeInstances, {{"traceparent", uppercase}}).status, 200);
  const std::string zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
  ASSERT_EQ(c.post(kPredict, kThreeInstances, {{"traceparent", zero_trace}}).status, 200);

  const auto seen = backend.requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].header("traceparent"), valid);
  std::set<std::string> generated;
  for (std::size_t i = 1; i < 4; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(seen[i].count("traceparent"), 1u);
    const auto tp = *seen[i].header("traceparent");
    EXPECT_TRUE(is_version00_traceparent(tp)) << tp;
    EXPECT_TRUE(tp.ends_with("-01")) << "generated traces are sampled: " << tp;
    generated.insert(tp.substr(3, 32));
  }
  EXPECT_EQ(generated.size(), 3u) << "each generated traceparent has its own trace id";
}

TEST_F(ProxyTest, UpstreamConnectionIsReusedAcrossRequests) {
  const auto port = start_sims(1).at(0);
  auto config = single_route_config({port});
  config.threads = 1;
  // Health checks have their own connection (which a slow probe may replace): off, so that
  // every connection the sim accepts is accounted for.
  config.pools[0].health_check = kHealthChecksOff;
  start_gateway(config);
  HttpClient stats(port);  // one persistent connection for the stats queries
  auto c = client();
  constexpr int kRequests = 1000;
  for (int i = 0; i < kRequests; ++i) {
    const auto r = c.post(kPredict, kThreeInstances);
    ASSERT_EQ(r.status, 200) << "request " << i;
    ASSERT_EQ(r.body, R"({"predictions": [2.5, 3.0, 4.5]})") << "request " << i;
  }
  EXPECT_EQ(c.connections_opened(), 1);
  const auto s = fusebox_test::json_of(stats.get("/sim/stats"));
  EXPECT_EQ(s.at("requests"), kRequests);
  EXPECT_EQ(s.at("probe_requests"), 0);
  // Accepted by the sim: our stats connection and fusebox's data connections. With one worker
  // thread and sequential requests that is exactly one.
  EXPECT_EQ(s.at("connections_accepted").get<int>() - 1, 1);
  const auto backends = admin_json("/admin/backends");
  EXPECT_EQ(backends.at("pools").at("primary").at("backends").at(0).at("open_connections"), 1);
}

// An idle upstream connection is closed when its idle time is up, with no request to notice
// it: a burst's connections go while the pool is quiet, not in the first request after it.
TEST_F(ProxyTest, IdleUpstreamConnectionIsClosedWhenItsIdleTimeIsUp) {
  const auto port = start_sims(1).at(0);
  auto config = single_route_config({port});
  config.threads = 1;
  config.pools[0].health_check = kHealthChecksOff;
  config.pools[0].extra.push_back("idle_connection_timeout: 200ms");
  start_gateway(config);
  auto open_connections = [&] {
    return admin_json("/admin/backends")
        .at("pools")
        .at("primary")
        .at("backends")
        .at(0)
        .at("open_connections")
        .get<int>();
  };
  auto c = client();
  ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  EXPECT_EQ(open_connections(), 1);
  EXPECT_TRUE(wait_until([&] { return open_connections() == 0; }))
      << "the idle connection outlived its idle time with no request to close it";
  // The pool works on: the next request opens a new connection.
  ASSERT_EQ(c.post(kPredict, kThreeInstances).status, 200);
  EXPECT_EQ(open_connections(), 1);
}

TEST_F(ProxyTest, LargeBodiesPassIntactBothWays) {
  std::string big_response(1u << 20, '\0');
  for (std::size_t i = 0; i < big_response.size(); ++i)
    big_response[i] = static_cast<char>('a' + i % 26);
  ScriptedBackend backend(ScriptedReply::json(200, big_response));
  start_gateway(single_route_config({backend.port()}));
  auto c = client();
  std::string big_request(1u << 20, '\0');
  for (std::size_t i = 0; i < big_request.size(); ++i)
    big_request[i] = static_cast<char>('0' + i % 10);
  const auto r = c.post(kPredict, big_request);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), big_response.size());
  EXPECT_TRUE(r.body == big_response) << "response body differs";
  ASSERT_EQ(backend.request_count(), 1u);
  const auto got = backend.requests().at(0);
  EXPECT_EQ(got.body.size(), big_request.size());
  EXPECT_TRUE(got.body == big_request) << "request body differs";
  EXPECT_EQ(got.header("Content-Length"), std::to_string(big_request.size()));
}

TEST_F(ProxyTest, LargePredictThroughTfsSim) {
  start_gateway(single_route_config(start_sims(1)));
  // About 1 MiB of JSON: 200000 instances of 1.0.
  constexpr int kInstances = 200000;
  std::string body = R"({"instances": [)";
  std::string expected = R"({"predictions": [)";
  for (int i = 0; i < kInstances; ++i) {
    body += i == 0 ? "1.0" : ", 1.0";
    expected += i == 0 ? "2.5" : ", 2.5";
  }
  body += "]}";
  expected += "]}";
  ASSERT_GT(body.size(), 1000000u);
  auto c = client();
  const auto r = c.post(kPredict, body);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), expected.size());
  EXPECT_TRUE(r.body == expected);
}

}  // namespace
}  // namespace fusebox_it
