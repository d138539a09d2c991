#pragma once
// Integration-test helpers: a real fusebox process started from a generated YAML file on
// ephemeral loopback ports, real tfs-sim backends, bounded polling, and a raw socket for
// byte-level exchanges the HttpClient cannot express (e.g. reading an interim 100 Continue).
//
// Every wait is bounded; nothing sleeps to synchronize (wait_until() polls a condition).
// Not thread-safe: use from the test's thread.

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox_test/http_client.h"
#include "fusebox_test/process.h"

namespace fusebox_it {

// The canonical half_plus_two exchange used throughout the suite.
inline constexpr std::string_view kPredict = "/v1/models/half_plus_two:predict";
inline constexpr std::string_view kThreeInstances = R"({"instances": [1.0, 2.0, 5.0]})";
inline constexpr std::string_view kThreePredictions = R"({"predictions": [2.5, 3.0, 4.5]})";

using fusebox_test::ChildProcess;
using fusebox_test::Headers;
using fusebox_test::HttpClient;
using fusebox_test::HttpResponse;
using fusebox_test::Millis;
using fusebox_test::TfsSim;

// Path of the binaries under test (compile definitions of the integration_tests target).
std::string fusebox_path();
std::string source_dir();

// Evaluates `condition` every `interval` until it is true or `timeout` has passed; returns
// whether it became true.
bool wait_until(const std::function<bool()>& condition, Millis timeout = Millis{5000},
                Millis interval = Millis{10});

// A file in $TMPDIR (default /tmp) holding `content`; removed on destruction.
class TempFile {
 public:
  explicit TempFile(std::string_view content, std::string_view suffix = ".yaml");
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback port nothing listens on (bound, then released). Another process could take it in
// between, which on an ephemeral port is unlikely enough for tests.
std::uint16_t unused_port();

// Keeps a listening socket on 127.0.0.1 open (to make a port "already in use").
class HeldPort {
 public:
  HeldPort();
  ~HeldPort();
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

struct PoolSpec {
  std::string name = "primary";
  std::vector<std::uint16_t> ports;  // endpoints on 127.0.0.1
  // Fast model-aware health checks, so readiness and health flip within a test's patience.
  // kHealthChecksOff turns them off (backends stay "unknown", eligible).
  std::string health_check =
      "{interval: 100ms, unhealthy_interval: 100ms, timeout: 50ms, healthy_threshold: 1, "
      "unhealthy_threshold: 1}";
  std::vector<std::string> extra;  // more "key: value" lines for the pool
  std::vector<std::uint16_t> grpc_ports;  // grpc_port of the endpoints, in order (may be shorter)
};

struct RouteSpec {
  std::string name = "half_plus_two";
  std::string model = "half_plus_two";
  std::string pool = "primary";
  std::string timeout = "5s";
  std::vector<std::string> extra;  // more "key: value" lines for the route, e.g. "retry: {...}"
};

// Lines that take the resilience pipeline out of a test about one upstream exchange, so what
// the client sees is exactly what one attempt produced.
inline constexpr std::string_view kHealthChecksOff = "{enabled: false}";  // PoolSpec::health_check
inline constexpr std::string_view kBreakerOff = "circuit_breaker: {mode: disabled}";  // pool line
inline constexpr std::string_view kSingleAttempt = "retry: {max_attempts: 1}";        // route line

struct GatewayConfig {
  std::vector<PoolSpec> pools;
  std::vector<RouteSpec> routes;
  int threads = 1;
  std::string drain_timeout = "5s";
  std::string drain_delay = "0s";
  std::vector<std::string> top_level;  // more top-level YAML lines (e.g. "reload: {watch: false}")
  std::vector<std::string> http;  // more "key: value" lines under listeners.http
  std::vector<std::string> admin_lines;  // more "key: value" lines under listeners.admin
  std::uint16_t http_port = 0;
  std::uint16_t admin_port = 0;
  std::string log_level = "warn";
  bool access_log = false;
  bool grpc = false;                   // listeners.grpc on 127.0.0.1, port 0
  std::vector<std::string> grpc_lines;  // more "key: value" lines under listeners.grpc
};

// Pool "primary" with `ports`, route "half_plus_two" (model half_plus_two) with `timeout`.
GatewayConfig single_route_config(std::vector<std::uint16_t> ports, std::string timeout = "5s");

// single_route_config() with no health checks, no circuit breaker and one attempt per request:
// every client request is exactly one upstream exchange, answered as that exchange ended.
GatewayConfig single_attempt_config(std::vector<std::uint16_t> ports, std::string timeout = "5s");

// The configuration file for `config` (ports 0 unless set).
std::string to_yaml(const GatewayConfig& config);

// A running fusebox.
class FuseboxProcess {
 public:
  // Writes the configuration to a temp file, starts fusebox and reads its listening line
  // (bounded). Throws std::runtime_error, quoting fusebox's stderr, when it does not come up.
  static std::unique_ptr<FuseboxProcess> start(const GatewayConfig& config);
  ~FuseboxProcess();

  std::uint16_t http_port() const { return http_port_; }
  std::uint16_t admin_port() const { return admin_port_; }
  std::uint16_t grpc_port() const { return grpc_port_; }  // 0 when the config has no gRPC
  const std::string& config_path() const { return config_->path(); }
  ChildProcess& process() { return process_; }
  std::string stderr_text() const { return process_.stderr_text(); }

  // SIGTERM, then waits up to `grace`; returns the exit status (128 + signal when killed, -1
  // when it had to be SIGKILLed after `grace`).
  int stop(Millis grace = Millis{10000});
  bool stopped() const { return exit_code_.has_value(); }

 private:
  FuseboxProcess(std::unique_ptr<TempFile> config, ChildProcess process);
  std::unique_ptr<TempFile> config_;
  ChildProcess process_;
  std::uint16_t http_port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::uint16_t grpc_port_ = 0;
  std::optional<int> exit_code_;
};

// Parses "listening http=A:P admin=A:P"; nullopt when the line has another shape.
struct ListeningLine {
  std::string http_address;
  std::uint16_t http_port = 0;
  std::string admin_address;
  std::uint16_t admin_port = 0;
  std::uint16_t grpc_port = 0;  // 0 when the line has no grpc=
};
std::optional<ListeningLine> parse_listening_line(std::string_view line);

// The value of one series in a Prometheus text exposition, `series` written exactly as in the
// text (`name{label="v",...}` or a bare name); nullopt when absent.
std::optional<double> metric_value(std::string_view exposition, std::string_view series);

// True for 32 lowercase hex digits.
bool is_hex32(std::string_view s);

// A W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>" with non-zero ids.
bool is_version00_traceparent(std::string_view s);

// One blocking TCP connection with bounded reads, for exchanges where the test must see bytes
// as they arrive.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port, Millis timeout = Millis{5000});
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  void send(std::string_view bytes);
  // Reads until the received bytes contain `needle`; returns everything up to and including
  // it (the rest stays buffered). nullopt on timeout or close before it arrived.
  std::optional<std::string> read_until(std::string_view needle);
  // One response with a Content-Length body (what fusebox sends); nullopt on timeout/close.
  std::optional<HttpResponse> read_response();
  // True when the peer closed the connection within the timeout (bytes are discarded).
  bool closed_by_peer();

 private:
  bool fill();  // one recv into buffer_; false on close, error or timeout
  int fd_ = -1;
  Millis timeout_;
  std::string buffer_;
};

// GoogleTest fixture owning the processes of one test: tfs-sim backends and one fusebox.
// TearDown stops fusebox with SIGTERM and expects exit code 0.
class GatewayTest : public ::testing::Test {
 protected:
  void TearDown() override;

  // Starts a tfs-sim (`args` as on its command line; "--rest-port 0" unless given).
  TfsSim& start_sim(const std::vector<std::string>& args = {});
  // Starts `n` tfs-sims with the same args; returns their ports.
  std::vector<std::uint16_t> start_sims(std::size_t n, const std::vector<std::string>& args = {});
  TfsSim& sim(std::size_t i) { return *sims_.at(i); }
  // Stops sim `i` (SIGKILL: its sockets close at once).
  void kill_sim(std::size_t i);
  // Starts a new sim in slot `i` on the port sim `i` had. False when the port cannot be bound
  // again (the caller should skip what depends on it).
  bool restart_sim_on_same_port(std::size_t i, const std::vector<std::string>& args = {});

  FuseboxProcess& start_gateway(const GatewayConfig& config);
  FuseboxProcess& gateway() { return *gateway_; }

  // Clients on a new connection to fusebox's data / admin listener.
  HttpClient client() const { return HttpClient(gateway_->http_port()); }
  HttpClient admin_client() const { return HttpClient(gateway_->admin_port()); }

  // GET on the admin listener (fresh connection), body as JSON / as text.
  nlohmann::json admin_json(std::string_view path) const;
  std::string metrics_text() const;

  // tfs-sim control API (fresh connection per call).
  static nlohmann::json sim_stats(std::uint16_t sim_port);
  static void set_sim_faults(std::uint16_t sim_port, const nlohmann::json& faults);

  // One entry of /admin/backends: backend `index` of `pool`.
  nlohmann::json backend_json(std::string_view pool, std::size_t index) const;
  // Polls /admin/backends until every backend of every pool reports `health == expected`
  // ("unknown", "healthy", "unhealthy" or "version_mismatch").
  bool wait_all_backends_health(std::string expected, Millis timeout = Millis{5000}) const;
  // Polls until backend `index` of `pool` reports `health == expected`.
  bool wait_backend_health(std::string_view pool, std::size_t index, std::string expected,
                           Millis timeout = Millis{5000}) const;
  // Polls /readyz until it answers `status`.
  bool wait_readyz(int status, Millis timeout = Millis{5000}) const;

  std::vector<std::unique_ptr<TfsSim>> sims_;
  std::unique_ptr<FuseboxProcess> gateway_;
};

}  // namespace fusebox_it
