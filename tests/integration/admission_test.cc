// Admission control against a real fusebox and real tfs-sim backends: priorities under a
// concurrency limit, rate limits per API key, authentication over REST and gRPC, load shedding
// and the admin token.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "gateway_fixture.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace fusebox_it {
namespace {

using namespace std::chrono_literals;
namespace tf = tensorflow;
namespace tfs = tensorflow::serving;

// Keys and their sha256: forms (printf %s KEY | sha256sum).
constexpr const char* kGoldKey = "gold-key-0123456789";
constexpr const char* kSilverKey = "silver-key-0123456789";

std::string hex_sha256(std::string_view text) {
  unsigned char digest[32];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  std::string out = "sha256:";
  char buf[3];
  for (unsigned i = 0; i < size; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    out += buf;
  }
  return out;
}

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
             (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    auto n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
             (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8);
    for (int s : {18, 12, 6}) out += kAlphabet[(n >> s) & 63];
  }
  return out;
}

// An HS256 JWT with `claims`, as an identity provider would issue it.
std::string hs256_token(const nlohmann::json& claims, std::string_view secret) {
  auto signing_input = base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claims.dump());
  unsigned char mac[32];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &size);
  return signing_input + "." + base64url(std::string_view(reinterpret_cast<char*>(mac), size));
}

constexpr std::string_view kJwtSecret = "a-shared-secret-of-at-least-32-bytes!!";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The auth section with the two keys (gold: priority 0, may call half_plus_two only; silver:
// 5 r/s, burst 5) and an HS256 JWT issuer.
std::string auth_section() {
  return "auth:\n"
         "  api_keys:\n"
         "    - {name: gold, hash: \"" + hex_sha256(kGoldKey) + "\", priority: 0, models: [half_plus_two]}\n"
         "    - {name: silver, hash: \"" + hex_sha256(kSilverKey) + "\", rate_limit: {requests_per_second: 5, burst: 5}}\n"
         "  jwt:\n"
         "    issuer: https://issuer.example\n"
         "    audience: fusebox\n"
         "    keys: [{kid: k1, alg: HS256, secret: \"" + std::string(kJwtSecret) + "\"}]";
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto index = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(index, v.size() - 1)];
}

class AdmissionTest : public GatewayTest {};

// The issue's scenario: a slow backend, concurrency limit 4, 200 requests of mixed priority.
TEST_F(AdmissionTest, HighPriorityWaitsLessUnderAConcurrencyLimit) {
  auto config = single_route_config(start_sims(1, {"--latency", "50ms"}));
  config.pools[0].health_check = kHealthChecksOff;
  config.threads = 2;
  config.routes[0].extra = {
      "priority: 0",
      "concurrency: {limit: 4, max_queued: 300, queue_timeout: 2s, aging_step: 1s}"};
  start_gateway(config);

  // 40 of priority 0, 80 of 5, 80 of 9, arriving together in a shuffled order.
  std::vector<int> priorities;
  priorities.insert(priorities.end(), 40, 0);
  priorities.insert(priorities.end(), 80, 5);
  priorities.insert(priorities.end(), 80, 9);
  std::shuffle(priorities.begin(), priorities.end(), std::mt19937(7));
  struct Outcome {
    int priority;
    int status;
    double ms;
    bool retry_after;
  };
  std::vector<Outcome> outcomes(priorities.size());
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (std::size_t i = 0; i < priorities.size(); ++i) {
    threads.emplace_back([&, i] {
      HttpClient c(gateway().http_port(), Millis{10000});
      c.connect();
      ++ready;
      while (!go) std::this_thread::yield();
      auto start = std::chrono::steady_clock::now();
      auto r = c.try_request("POST", kPredict, kThreeInstances,
                             {{"X-Fusebox-Priority", std::to_string(priorities[i])}});
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      outcomes[i] = {priorities[i], r.ok() ? r.response->status : -1, ms,
                     r.ok() && r.response->has_header("Retry-After")};
    });
  }
  ASSERT_TRUE(wait_until([&] { return ready == static_cast<int>(priorities.size()); }, Millis{10000}));
  go = true;
  for (auto& t : threads) t.join();

  std::map<int, std::vector<double>> served_ms;
  std::map<int, int> served, refused;
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.status == 200 || o.status == 503) << "status " << o.status;
    if (o.status == 200) {
      served_ms[o.priority].push_back(o.ms);
      ++served[o.priority];
    } else {
      EXPECT_TRUE(o.retry_after) << "a 503 for the queue carries Retry-After";
      ++refused[o.priority];
    }
    // No request waits past the queue timeout (2s) plus one backend call and some slack.
    EXPECT_LT(o.ms, 2000 + 1000) << "priority " << o.priority;
  }
  for (int p : {0, 5, 9}) {
    std::printf("priority %d: %d served (p50 %.0f ms, p99 %.0f ms), %d refused with 503\n", p,
                served[p], percentile(served_ms[p], 0.5), percentile(served_ms[p], 0.99),
                refused[p]);
  }
  EXPECT_EQ(served[0], 40) << "every priority-0 request is served";
  ASSERT_FALSE(served_ms[0].empty());
  EXPECT_GT(refused[9] + refused[5], 0) << "the limit was reached";
  // Priority 0 goes first: its slowest is faster than the typical served priority-9 request.
  if (!served_ms[9].empty()) {
    EXPECT_LT(percentile(served_ms[0], 0.99), percentile(served_ms[9], 0.5));
  }
  const auto metrics = metrics_text();
  EXPECT_GT(metric_value(metrics, R"(fusebox_admission_rejected_total{route="half_plus_two",reason="queue_timeout"})")
                .value_or(0),
            0);
  EXPECT_EQ(metric_value(metrics, R"(fusebox_concurrency_limit{route="half_plus_two"})"), 4);
}

TEST_F(AdmissionTest, RateLimitPerKeyLeavesOtherKeysAlone) {
  auto config = single_route_config(start_sims(1));
  config.routes[0].extra = {"auth: api_key"};
  config.top_level = {auth_section()};
  start_gateway(config);
  auto c = client();
  int allowed = 0, limited = 0;
  std::string retry_after;
  for (int i = 0; i < 20; ++i) {
    auto r = c.post(kPredict, kThreeInstances, {{"X-API-Key", kSilverKey}});
    if (r.status == 200) ++allowed;
    if (r.status == 429) {
      ++limited;
      retry_after = r.header("Retry-After").value_or("");
      EXPECT_EQ(json_of(r).at("error").get<std::string>().find("rate limit"), 0u) << r.body;
    }
  }
  // 20 requests in well under a second: the burst of 5 (plus what refilled meanwhile).
  EXPECT_GE(allowed, 5);
  EXPECT_LE(allowed, 7);
  EXPECT_EQ(allowed + limited, 20);
  EXPECT_EQ(retry_after, "1");
  // Another key is unaffected.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(c.post(kPredict, kThreeInstances, {{"X-API-Key", kGoldKey}}).status, 200);
  }
  // Accuracy over time: 5 r/s for 2 s of continuous asking.
  ASSERT_TRUE(wait_until([&] {
    return c.post(kPredict, kThreeInstances, {{"X-API-Key", kSilverKey}}).status == 200;
  }, Millis{3000}));
  const auto start = std::chrono::steady_clock::now();
  int in_window = 0, asked = 0;
  while (std::chrono::steady_clock::now() - start < 2s) {
    ++asked;
    if (c.post(kPredict, kThreeInstances, {{"X-API-Key", kSilverKey}}).status == 200) ++in_window;
  }
  std::printf("rate limit 5/s burst 5: %d of %d allowed in 2 s (expected about 10 after an empty bucket)\n",
              in_window, asked);
  EXPECT_GE(in_window, 8);
  EXPECT_LE(in_window, 12);
  const auto metrics = metrics_text();
  EXPECT_GE(metric_value(metrics, R"(fusebox_rate_limited_total{route="half_plus_two",client="silver"})")
                .value_or(0),
            limited);
}

TEST_F(AdmissionTest, RestAuthenticationAnswers401And403) {
  start_sim({"--model", "half_plus_two", "--model", "other"});
  auto config = single_route_config({sim(0).port});
  config.routes[0].extra = {"auth: any"};
  config.routes.push_back({.name = "other", .model = "other", .pool = "primary"});
  config.routes[1].extra = {"auth: api_key"};
  config.top_level = {auth_section()};
  start_gateway(config);
  auto c = client();

  auto missing = c.post(kPredict, kThreeInstances);
  EXPECT_EQ(missing.status, 401);
  EXPECT_NE(missing.header("WWW-Authenticate").value_or("").find("realm=\"fusebox\""), std::string::npos);
  auto wrong = c.post(kPredict, kThreeInstances, {{"X-API-Key", "not-a-key"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body.find("not-a-key"), std::string::npos) << "the key is never echoed";
  EXPECT_EQ(c.post(kPredict, kThreeInstances, {{"X-API-Key", kGoldKey}}).status, 200);
  EXPECT_EQ(c.post(kPredict, kThreeInstances, {{"Authorization", std::string("ApiKey ") + kGoldKey}}).status, 200);
  // gold may call half_plus_two only.
  auto forbidden = c.post("/v1/models/other:predict", kThreeInstances, {{"X-API-Key", kGoldKey}});
  EXPECT_EQ(forbidden.status, 403) << forbidden.body;
  EXPECT_EQ(c.post("/v1/models/other:predict", kThreeInstances, {{"X-API-Key", kSilverKey}}).status, 200);
  // The backend never sees the credentials.
  EXPECT_EQ(sim_stats(sim(0).port).dump().find(kSilverKey), std::string::npos);

  // JWT on the `any` route.
  const auto now = unix_now();
  nlohmann::json claims = {{"iss", "https://issuer.example"}, {"aud", "fusebox"},
                           {"sub", "svc-a"}, {"exp", now + 300}};
  EXPECT_EQ(c.post(kPredict, kThreeInstances,
                   {{"Authorization", "Bearer " + hs256_token(claims, kJwtSecret)}}).status,
            200);
  claims["exp"] = now - 3600;
  auto expired = c.post(kPredict, kThreeInstances,
                        {{"Authorization", "Bearer " + hs256_token(claims, kJwtSecret)}});
  EXPECT_EQ(expired.status, 401);
  EXPECT_NE(expired.header("WWW-Authenticate").value_or("").find("invalid_token"), std::string::npos);
  claims["exp"] = now + 300;
  EXPECT_EQ(c.post(kPredict, kThreeInstances,
                   {{"Authorization", "Bearer " + hs256_token(claims, "another-secret-of-32-bytes-or-more!!")}})
                .status,
            401)
      << "a bad signature";

  const auto metrics = metrics_text();
  EXPECT_GE(metric_value(metrics, R"(fusebox_auth_failures_total{reason="missing"})").value_or(0), 1);
  EXPECT_GE(metric_value(metrics, R"(fusebox_auth_failures_total{reason="forbidden"})").value_or(0), 1);
  EXPECT_GE(metric_value(metrics, R"(fusebox_auth_failures_total{reason="expired"})").value_or(0), 1);
  // No secret in /admin/config.
  const auto dumped = admin_json("/admin/config").dump();
  EXPECT_EQ(dumped.find(kJwtSecret), std::string::npos);
}

TEST_F(AdmissionTest, GrpcAuthenticationAnswersUnauthenticatedAndPermissionDenied) {
  start_sim({"--rest-port", "0", "--grpc-port", "0", "--model", "half_plus_two", "--model", "other"});
  auto config = single_route_config({sim(0).port});
  config.pools[0].grpc_ports = {sim(0).grpc_port};
  config.routes[0].extra = {"auth: api_key"};
  config.routes.push_back({.name = "other", .model = "other", .pool = "primary"});
  config.routes[1].extra = {"auth: api_key"};
  config.top_level = {auth_section()};
  config.grpc = true;
  start_gateway(config);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(gateway().grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto call = [&](const std::string& model, std::vector<std::pair<std::string, std::string>> md) {
    auto stub = tfs::PredictionService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    for (const auto& [k, v] : md) context.AddMetadata(k, v);
    tfs::PredictRequest request;
    request.mutable_model_spec()->set_name(model);
    auto& x = (*request.mutable_inputs())["x"];
    x.set_dtype(tf::DT_FLOAT);
    x.mutable_tensor_shape()->add_dim()->set_size(1);
    x.add_float_val(1.0f);
    tfs::PredictResponse response;
    return stub->Predict(&context, request, &response).error_code();
  };
  EXPECT_EQ(call("half_plus_two", {}), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("half_plus_two", {{"x-api-key", "nope"}}), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("half_plus_two", {{"x-api-key", kGoldKey}}), grpc::StatusCode::OK);
  EXPECT_EQ(call("half_plus_two", {{"authorization", std::string("ApiKey ") + kGoldKey}}),
            grpc::StatusCode::OK);
  EXPECT_EQ(call("other", {{"x-api-key", kGoldKey}}), grpc::StatusCode::PERMISSION_DENIED);
  // Over its rate limit (burst 5): RESOURCE_EXHAUSTED.
  int exhausted = 0;
  for (int i = 0; i < 12; ++i) {
    if (call("other", {{"x-api-key", kSilverKey}}) == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
  }
  EXPECT_GE(exhausted, 4);
}

TEST_F(AdmissionTest, SheddingRefusesLowPriorityAndKeepsAdminEndpointsAnswering) {
  auto config = single_route_config(start_sims(1, {"--latency", "300ms", "--threads", "4"}));
  config.pools[0].health_check = kHealthChecksOff;
  config.threads = 2;
  config.routes[0].extra = {"priority: 9"};
  config.top_level = {"admission: {max_inflight: 5, sample_interval: 50ms}"};
  start_gateway(config);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, shed{0}, other{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 20; ++i) {
    load.emplace_back([&] {
      HttpClient c(gateway().http_port(), Millis{5000});
      for (int n = 0; n < 50 && !stop; ++n) {
        auto r = c.try_request("POST", kPredict, kThreeInstances);
        if (r.ok() && r.response->status == 200) {
          ++ok;
        } else if (r.ok() && r.response->status == 503 &&
                   r.response->body.find("overloaded") != std::string::npos) {
          ++shed;
        } else {
          ++other;
        }
        if (!r.ok()) c.close();
      }
    });
  }
  EXPECT_TRUE(wait_until([&] { return shed > 10; }, Millis{10000})) << "nothing was shed";
  // Under overload the admin listener still answers at once.
  for (const char* path : {"/healthz", "/metrics"}) {
    HttpClient admin(gateway().admin_port(), Millis{1000});
    EXPECT_EQ(admin.get(path).status, 200) << path;
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(other, 0);
  EXPECT_GT(ok, 0);
  const auto metrics = metrics_text();
  EXPECT_GT(metric_value(metrics, R"(fusebox_admission_rejected_total{route="half_plus_two",reason="shed"})")
                .value_or(0),
            0);
}

TEST_F(AdmissionTest, AdminEndpointsNeedTheTokenWhenOneIsConfigured) {
  auto config = single_route_config(start_sims(1));
  config.admin_lines = {"token_hash: \"" + hex_sha256("admin-token-xyz") + "\""};
  start_gateway(config);
  HttpClient admin(gateway().admin_port());
  auto refused = admin.get("/admin/config");
  EXPECT_EQ(refused.status, 401);
  EXPECT_TRUE(refused.has_header("WWW-Authenticate"));
  EXPECT_EQ(admin.get("/admin/config", {{"Authorization", "Bearer wrong"}}).status, 401);
  auto allowed = admin.get("/admin/config", {{"Authorization", "Bearer admin-token-xyz"}});
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.body.find(hex_sha256("admin-token-xyz").substr(7)), std::string::npos)
      << "the hash is redacted";
  EXPECT_EQ(admin.get("/metrics").status, 200) << "scrapers need no token";
  EXPECT_EQ(admin.get("/readyz").status, 200) << "probes need no token";
}

}  // namespace
}  // namespace fusebox_it

namespace fusebox_it {
namespace {

// JWKS rotation: the signing key published in the JWKS file changes, and fusebox picks it up
// from the file change alone.
TEST_F(AdmissionTest, JwksFileChangeRotatesTheSigningKeys) {
  constexpr std::string_view kOld = "the-old-signing-secret-of-32-bytes!!";
  constexpr std::string_view kNew = "the-new-signing-secret-of-32-bytes!!";
  auto jwks = [](std::string_view secret) {
    return nlohmann::json{{"keys", {{{"kty", "oct"}, {"alg", "HS256"}, {"k", base64url(secret)}}}}}.dump();
  };
  TempFile jwks_file(jwks(kOld), ".json");
  auto config = single_route_config(start_sims(1));
  config.routes[0].extra = {"auth: jwt"};
  config.top_level = {"auth: {jwt: {jwks_file: \"" + jwks_file.path() + "\"}}",
                      "reload: {watch: true, debounce: 50ms}"};
  start_gateway(config);
  const nlohmann::json claims = {{"sub", "svc"}, {"exp", unix_now() + 300}};
  auto bearer = [&](std::string_view secret) {
    return Headers{{"Authorization", "Bearer " + hs256_token(claims, secret)}};
  };
  EXPECT_EQ(client().post(kPredict, kThreeInstances, bearer(kOld)).status, 200);
  EXPECT_EQ(client().post(kPredict, kThreeInstances, bearer(kNew)).status, 401);

  const std::string tmp = jwks_file.path() + ".new";
  {
    std::ofstream out(tmp);
    out << jwks(kNew);
  }
  ASSERT_EQ(std::rename(tmp.c_str(), jwks_file.path().c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return admin_json("/admin/reload").at("generation") == 2; }))
      << admin_json("/admin/reload").dump();
  EXPECT_EQ(admin_json("/admin/reload").at("last_attempt").at("trigger"), "JWKS file change");
  EXPECT_EQ(client().post(kPredict, kThreeInstances, bearer(kNew)).status, 200);
  EXPECT_EQ(client().post(kPredict, kThreeInstances, bearer(kOld)).status, 401);
}

}  // namespace
}  // namespace fusebox_it

namespace fusebox_it {
namespace {

// The adaptive limit at work on a steady backend: it measures the baseline, then raises the
// limit while latency stays near it; in dry-run the same computation is only reported.
TEST_F(AdmissionTest, AdaptiveLimitGrowsOnASteadyBackendAndDryRunOnlyReports) {
  const auto ports = start_sims(
      1, {"--latency", "5ms", "--threads", "4", "--model", "half_plus_two", "--model", "shadow"});
  auto config = single_route_config(ports);
  config.pools[0].health_check = kHealthChecksOff;
  config.threads = 2;
  config.routes[0].extra = {
      "concurrency: {limit: 4, max_queued: 100, queue_timeout: 2s, "
      "adaptive: {min_limit: 2, max_limit: 40, interval: 100ms}}"};
  config.routes.push_back({.name = "shadow", .model = "shadow", .pool = "primary"});
  config.routes[1].extra = {
      "concurrency: {limit: 4, max_queued: 100, queue_timeout: 2s, "
      "adaptive: {min_limit: 2, max_limit: 40, interval: 100ms, dry_run: true}}"};
  config.top_level = {"admission: {sample_interval: 50ms}"};
  start_gateway(config);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 12; ++i) {
    load.emplace_back([&, i] {
      HttpClient c(gateway().http_port(), Millis{5000});
      const std::string target = i % 2 ? std::string(kPredict) : "/v1/models/shadow:predict";
      for (int n = 0; n < 5000 && !stop; ++n) {
        auto r = c.try_request("POST", target, kThreeInstances);
        if (!r.ok() || r.response->status >= 500) ++failures;
        if (!r.ok()) c.close();
      }
    });
  }
  auto gauge = [&](const char* family, const char* route) {
    return metric_value(metrics_text(), std::string(family) + "{route=\"" + route + "\"}").value_or(-1);
  };
  const bool grew = wait_until(
      [&] { return gauge("fusebox_concurrency_limit", "half_plus_two") > 8; }, Millis{10000},
      Millis{100});
  const auto computed_shadow = gauge("fusebox_adaptive_concurrency_limit", "shadow");
  const auto applied_shadow = gauge("fusebox_concurrency_limit", "shadow");
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_TRUE(grew) << "limit " << gauge("fusebox_concurrency_limit", "half_plus_two");
  EXPECT_EQ(applied_shadow, 4) << "dry run: the configured limit stays";
  EXPECT_NE(computed_shadow, -1) << "dry run: the computed limit is reported";
  EXPECT_EQ(failures, 0);
  const auto routes = admin_json("/admin/routes").at("routes");
  EXPECT_TRUE(routes[1].at("concurrency").at("adaptive").at("dry_run").get<bool>());
  EXPECT_FALSE(routes[0].at("concurrency").at("adaptive").at("reason").get<std::string>().empty());
}

}  // namespace
}  // namespace fusebox_it

namespace fusebox_it {
namespace {

// Rotating credentials is a reload: a key's new hash and a new admin token apply although
// /admin/config shows both redacted (the same JSON before and after).
TEST_F(AdmissionTest, ReloadRotatesAnApiKeyAndTheAdminToken) {
  auto config = single_route_config(start_sims(1));
  config.routes[0].extra = {"auth: api_key"};
  config.top_level = {"auth: {api_keys: [{name: app, hash: \"" + hex_sha256("first-key-0123456789") +
                          "\"}]}",
                      "reload: {watch: false}"};
  config.admin_lines = {"token_hash: \"" + hex_sha256("first-admin-token") + "\""};
  start_gateway(config);
  EXPECT_EQ(client().post(kPredict, kThreeInstances, {{"X-API-Key", "first-key-0123456789"}}).status, 200);

  config.top_level[0] = "auth: {api_keys: [{name: app, hash: \"" + hex_sha256("second-key-0123456789") + "\"}]}";
  config.admin_lines = {"token_hash: \"" + hex_sha256("second-admin-token") + "\""};
  const std::string tmp = gateway().config_path() + ".new";
  {
    std::ofstream out(tmp);
    out << to_yaml(config);
  }
  ASSERT_EQ(std::rename(tmp.c_str(), gateway().config_path().c_str()), 0);
  HttpClient admin(gateway().admin_port(), Millis{10000});
  auto reload = admin.post("/admin/reload", "", {{"Authorization", "Bearer first-admin-token"}});
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_EQ(json_of(reload).at("generation"), 2) << "applied, not taken for no change";
  EXPECT_EQ(client().post(kPredict, kThreeInstances, {{"X-API-Key", "first-key-0123456789"}}).status, 401);
  EXPECT_EQ(client().post(kPredict, kThreeInstances, {{"X-API-Key", "second-key-0123456789"}}).status, 200);
  EXPECT_EQ(admin.get("/admin/config", {{"Authorization", "Bearer first-admin-token"}}).status, 401);
  EXPECT_EQ(admin.get("/admin/config", {{"Authorization", "Bearer second-admin-token"}}).status, 200);
}

}  // namespace
}  // namespace fusebox_it
