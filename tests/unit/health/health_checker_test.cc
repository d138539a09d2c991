// The health checker against a tiny HTTP responder on 127.0.0.1, both on one io_context that
// the test drives in bounded steps until the expected state is reached (no sleeps); and its gRPC
// probes against an in-process ModelService (gRPC's callback API) on 127.0.0.1.

#include "fusebox/health/health_checker.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensorflow_serving/apis/model_service.grpc.pb.h"

namespace fusebox::health {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;

// What the responder does with one request.
struct Reply {
  unsigned status = 200;
  std::string body;
  bool hang = false;            // never answer (the probe must time out)
  bool announce_close = false;  // answer with "Connection: close" but leave the socket open
  bool drop_after = false;      // answer keep-alive, then close silently (stale keep-alive)
};

std::string model_body(const std::string& version, const std::string& state) {
  return R"({"model_version_status": [{"version": ")" + version + R"(", "state": ")" + state +
         R"(", "status": {"error_code": "OK", "error_message": ""}}]})";
}

// A keep-alive HTTP/1.1 responder for GET requests; `handler` decides each answer.
class Responder {
 public:
  explicit Responder(asio::io_context& ioc)
      : acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  ~Responder() { close(); }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Takes no more connections; open ones are served until the client closes them.
  void stop_accepting() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

  void close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& weak : connections_) {
      if (auto c = weak.lock()) c->socket.close(ignored);
    }
  }

  std::function<Reply(const std::string& target)> handler = [](const std::string&) {
    return Reply{200, model_body("1", "AVAILABLE")};
  };
  int accepted = 0;
  std::vector<std::string> heads;  // every request head received

 private:
  struct Connection {
    explicit Connection(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    asio::streambuf in;
    std::string out;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      ++accepted;
      auto c = std::make_shared<Connection>(std::move(socket));
      connections_.push_back(c);
      read(c);
      accept();
    });
  }

  void read(std::shared_ptr<Connection> c) {
    asio::async_read_until(c->socket, c->in, "\r\n\r\n",
                           [this, c](boost::system::error_code ec, std::size_t n) {
                             if (ec) return;
                             std::string head(asio::buffers_begin(c->in.data()),
                                              asio::buffers_begin(c->in.data()) + n);
                             c->in.consume(n);
                             heads.push_back(head);
                             const auto start = head.find(' ') + 1;
                             const auto target = head.substr(start, head.find(' ', start) - start);
                             answer(c, handler(target));
                           });
  }

  void answer(std::shared_ptr<Connection> c, Reply reply) {
    if (reply.hang) return read(c);  // keep the connection open, never answer
    c->out =
        "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n" +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(reply.body.size()) +
        "\r\n" + (reply.announce_close ? "Connection: close\r\n" : "") + "\r\n" + reply.body;
    asio::async_write(c->socket, asio::buffer(c->out),
                      [this, c, reply](boost::system::error_code ec, std::size_t) {
                        if (ec) return;
                        if (reply.drop_after) {
                          boost::system::error_code ignored;
                          c->socket.shutdown(tcp::socket::shutdown_both, ignored);
                          c->socket.close(ignored);
                          return;
                        }
                        read(c);
                      });
  }

  tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Connection>> connections_;
};

namespace tfs = tensorflow::serving;

// A ModelService whose GetModelStatus answers as scripted. Calls arrive on gRPC's threads.
class ScriptedModelService final : public tfs::ModelService::CallbackService {
 public:
  enum class Answer { state, not_found, hang };

  ScriptedModelService() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ScriptedModelService() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::uint16_t port() const { return static_cast<std::uint16_t>(port_); }

  void answer(Answer answer,
              tfs::ModelVersionStatus::State state = tfs::ModelVersionStatus::AVAILABLE) {
    std::lock_guard lock(mutex_);
    answer_ = answer;
    state_ = state;
  }
  std::size_t calls() const {
    std::lock_guard lock(mutex_);
    return models_.size();
  }
  std::size_t cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }
  std::string model(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return models_.at(i);
  }
  std::string user_agent(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return user_agents_.at(i);
  }

  grpc::ServerUnaryReactor* GetModelStatus(grpc::CallbackServerContext* context,
                                           const tfs::GetModelStatusRequest* request,
                                           tfs::GetModelStatusResponse* response) override {
    std::lock_guard lock(mutex_);
    models_.push_back(request->model_spec().name());
    auto agent = context->client_metadata().find("user-agent");
    user_agents_.emplace_back(agent == context->client_metadata().end()
                                  ? std::string()
                                  : std::string(agent->second.data(), agent->second.size()));
    if (answer_ == Answer::hang) return new HungCall(*this);
    auto* reactor = context->DefaultReactor();
    if (answer_ == Answer::not_found) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       "Could not find any versions of model " + request->model_spec().name()));
      return reactor;
    }
    auto* version = response->add_model_version_status();
    version->set_version(1);
    version->set_state(state_);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  // Never answered; finishes only when the client cancels or its deadline passes.
  class HungCall final : public grpc::ServerUnaryReactor {
   public:
    explicit HungCall(ScriptedModelService& service) : service_(service) {}
    void OnCancel() override {
      {
        std::lock_guard lock(service_.mutex_);
        ++service_.cancelled_;
      }
      Finish(grpc::Status::CANCELLED);
    }
    void OnDone() override { delete this; }

   private:
    ScriptedModelService& service_;
  };

  mutable std::mutex mutex_;
  Answer answer_ = Answer::state;
  tfs::ModelVersionStatus::State state_ = tfs::ModelVersionStatus::AVAILABLE;
  std::vector<std::string> models_;
  std::vector<std::string> user_agents_;
  std::size_t cancelled_ = 0;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

struct StatusChange {
  HealthStatus from;
  HealthStatus to;
  std::string detail;
  std::size_t probes_before;  // on_probe calls up to and including the changing round
};

class RecordingListener final : public HealthListener {
 public:
  void on_probe(upstream::BackendState& backend, ProbeResult result,
                const std::string& detail) override {
    backends.push_back(&backend);
    results.push_back(result);
    details.push_back(detail);
  }
  void on_status_change(upstream::BackendState&, HealthStatus from, HealthStatus to,
                        const std::string& detail) override {
    changes.push_back({from, to, detail, results.size()});
  }
  std::size_t count(ProbeResult r) const {
    std::size_t n = 0;
    for (auto x : results) n += x == r;
    return n;
  }

  std::vector<upstream::BackendState*> backends;
  std::vector<ProbeResult> results;
  std::vector<std::string> details;
  std::vector<StatusChange> changes;
};

class HealthCheckerTest : public testing::Test {
 protected:
  HealthCheckerTest() {
    pool_config_.name = "tfs";
    auto& hc = pool_config_.health_check;
    hc.interval = milliseconds(20);
    hc.unhealthy_interval = milliseconds(10);
    hc.jitter_percent = 0;
    hc.timeout = milliseconds(500);
    hc.healthy_threshold = 2;
    hc.unhealthy_threshold = 2;
  }

  // A pool with one backend per port.
  void make_pool(const std::vector<std::uint16_t>& ports) {
    pool_.config = &pool_config_;
    for (auto port : ports) {
      auto b = std::make_unique<upstream::BackendState>();
      b->pool_name = pool_config_.name;
      b->backend_index = pool_.backends.size();
      b->endpoint.address = "127.0.0.1";
      b->endpoint.port = port;
      b->label = "127.0.0.1:" + std::to_string(port);
      b->resolved.emplace_back(asio::ip::make_address("127.0.0.1"), port);
      pool_.backends.push_back(std::move(b));
    }
  }

  // A pool probed over gRPC, with one gRPC-only backend per port.
  void make_grpc_pool(const std::vector<std::uint16_t>& grpc_ports) {
    pool_config_.health_check.protocol = config::HealthCheckProtocol::grpc;
    pool_.config = &pool_config_;
    for (auto port : grpc_ports) {
      auto b = std::make_unique<upstream::BackendState>();
      b->pool_name = pool_config_.name;
      b->backend_index = pool_.backends.size();
      b->endpoint.address = "127.0.0.1";
      b->endpoint.port = 0;
      b->endpoint.grpc_port = port;
      b->label = config::endpoint_label(b->endpoint);
      pool_.backends.push_back(std::move(b));
    }
  }

  void start(std::vector<std::string> models = {"half_plus_two"}) {
    checker_ = std::make_unique<HealthChecker>(
        ioc_, std::vector<upstream::PoolState*>{&pool_},
        std::vector<std::vector<std::string>>{std::move(models)}, listener_, random_);
    checker_->start();
  }

  // Runs the io_context in small steps until `done()` holds; false after `limit`.
  bool run_until(const std::function<bool()>& done, milliseconds limit = milliseconds(5000)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= give_up) return false;
      ioc_.restart();
      ioc_.run_for(milliseconds(5));
    }
    return true;
  }

  HealthStatus health(std::size_t i = 0) const {
    return static_cast<HealthStatus>(pool_.backends[i]->health.load());
  }

  // A port on 127.0.0.1 where nothing listens (bound once, then released).
  static std::uint16_t closed_port() {
    asio::io_context scratch;
    tcp::acceptor a(scratch, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
  }

  asio::io_context ioc_;  // first member: destroyed last
  config::PoolConfig pool_config_;
  upstream::PoolState pool_;
  RecordingListener listener_;
  ScriptedRandom random_{{0}};
  std::unique_ptr<HealthChecker> checker_;
};

TEST_F(HealthCheckerTest, FirstPassMakesHealthyOverOneKeptAliveConnection) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) { return Reply{200, model_body("3", "AVAILABLE")}; };
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return listener_.results.size() >= 4; }));
  ASSERT_EQ(listener_.changes.size(), 1u);
  EXPECT_EQ(listener_.changes[0].from, HealthStatus::unknown);
  EXPECT_EQ(listener_.changes[0].to, HealthStatus::healthy);
  EXPECT_EQ(listener_.changes[0].probes_before, 1u);  // from unknown the first check decides
  EXPECT_EQ(health(), HealthStatus::healthy);
  EXPECT_EQ(listener_.count(ProbeResult::passed), listener_.results.size());
  EXPECT_EQ(listener_.details[0], "model half_plus_two: version 3 AVAILABLE");
  EXPECT_TRUE(pool_.backends[0]->reachable.load());
  EXPECT_EQ(responder.accepted, 1);  // every round reused the connection
  ASSERT_FALSE(responder.heads.empty());
  const auto& head = responder.heads[0];
  EXPECT_EQ(head.rfind("GET /v1/models/half_plus_two HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nHost: 127.0.0.1:" + std::to_string(responder.port()) + "\r\n"),
            std::string::npos)
      << head;
  EXPECT_NE(head.find("\r\nUser-Agent: fusebox-health-check\r\n"), std::string::npos) << head;
  for (auto* b : listener_.backends) EXPECT_EQ(b, pool_.backends[0].get());
}

TEST_F(HealthCheckerTest, LoadingModelMakesHealthyBackendUnhealthyAndBack) {
  Responder responder(ioc_);
  std::string state = "AVAILABLE";
  responder.handler = [&](const std::string&) { return Reply{200, model_body("1", state)}; };
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::healthy; }));
  state = "LOADING";
  const auto probes_at_switch = listener_.results.size();
  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  ASSERT_EQ(listener_.changes.size(), 2u);
  EXPECT_EQ(listener_.changes[1].from, HealthStatus::healthy);
  EXPECT_EQ(listener_.changes[1].to, HealthStatus::unhealthy);
  EXPECT_EQ(listener_.changes[1].detail, "model half_plus_two: version 1 LOADING");
  // At most one round was already on its way with the old answer, then two failures.
  EXPECT_LE(listener_.changes[1].probes_before, probes_at_switch + 3);
  EXPECT_EQ(listener_.results.back(), ProbeResult::not_available);

  state = "AVAILABLE";
  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::healthy; }));
  ASSERT_EQ(listener_.changes.size(), 3u);
  EXPECT_EQ(listener_.changes[2].from, HealthStatus::unhealthy);
}

TEST_F(HealthCheckerTest, WrongVersionIsVersionMismatchAtOnce) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) { return Reply{200, model_body("2", "AVAILABLE")}; };
  pool_config_.health_check.expected_version = 3;
  pool_config_.health_check.healthy_threshold = 5;
  pool_config_.health_check.unhealthy_threshold = 5;
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return !listener_.results.empty(); }));
  EXPECT_EQ(listener_.results[0], ProbeResult::version_mismatch);
  EXPECT_EQ(health(), HealthStatus::version_mismatch);
  ASSERT_EQ(listener_.changes.size(), 1u);
  EXPECT_EQ(listener_.changes[0].to, HealthStatus::version_mismatch);
  EXPECT_EQ(listener_.changes[0].detail, "model half_plus_two: serving version 2, expected 3");
  EXPECT_FALSE(eligible(health()));
}

TEST_F(HealthCheckerTest, ConnectionRefusedMakesBackendUnhealthy) {
  make_pool({closed_port()});
  pool_.backends[0]->reachable = true;
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  EXPECT_EQ(listener_.count(ProbeResult::connect_failure), listener_.results.size());
  EXPECT_EQ(listener_.details[0].rfind("model half_plus_two: connect: ", 0), 0u)
      << listener_.details[0];
  EXPECT_FALSE(pool_.backends[0]->reachable.load());
  ASSERT_EQ(listener_.changes.size(), 1u);
  EXPECT_EQ(listener_.changes[0].from, HealthStatus::unknown);
  EXPECT_EQ(listener_.changes[0].to, HealthStatus::unhealthy);
  EXPECT_EQ(listener_.changes[0].probes_before, 1u);  // from unknown the first check decides
}

TEST_F(HealthCheckerTest, HungResponderTimesOut) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) { return Reply{.hang = true}; };
  pool_config_.health_check.timeout = milliseconds(60);
  make_pool({responder.port()});
  const auto begin = std::chrono::steady_clock::now();
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(listener_.count(ProbeResult::timeout), listener_.results.size());
  ASSERT_EQ(listener_.changes.size(), 1u);
  EXPECT_EQ(listener_.changes[0].probes_before, 1u);
  EXPECT_EQ(listener_.details[0], "model half_plus_two: no answer within 60ms");
  // One timed-out round decides (from unknown): bounded by the timeout, not hanging.
  EXPECT_GE(took, milliseconds(60));
  EXPECT_LT(took, milliseconds(2000));
  // The timed-out connection is dropped, so each round opened a new one (a further round may
  // have begun when the loop noticed the change).
  EXPECT_GE(responder.accepted, 1);
  EXPECT_LE(static_cast<std::size_t>(responder.accepted), listener_.results.size() + 1);
}

TEST_F(HealthCheckerTest, ErrorStatusAndGarbageAreFailures) {
  Responder responder(ioc_);
  int n = 0;
  responder.handler = [&](const std::string&) {
    return ++n % 2 == 1
               ? Reply{404, R"({"error": "Could not find any versions of model half_plus_two"})"}
               : Reply{200, "<html>"};
  };
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return listener_.results.size() >= 2; }));
  EXPECT_EQ(listener_.results[0], ProbeResult::http_error);
  EXPECT_EQ(listener_.details[0],
            "model half_plus_two: HTTP 404: Could not find any versions of model half_plus_two");
  EXPECT_EQ(listener_.results[1], ProbeResult::bad_response);
  EXPECT_EQ(health(), HealthStatus::unhealthy);
}

TEST_F(HealthCheckerTest, OversizedBodyIsBadResponse) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) {
    return Reply{200, std::string((1u << 20) + 10, ' ') + model_body("1", "AVAILABLE")};
  };
  pool_config_.health_check.unhealthy_threshold = 1;
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return !listener_.results.empty(); }));
  EXPECT_EQ(listener_.results[0], ProbeResult::bad_response);
  EXPECT_EQ(listener_.details[0], "model half_plus_two: response body larger than 1 MiB");
}

TEST_F(HealthCheckerTest, EveryModelIsProbedAndFirstFailureDecides) {
  Responder responder(ioc_);
  responder.handler = [](const std::string& target) {
    if (target == "/v1/models/my%20model") return Reply{200, model_body("7", "AVAILABLE")};
    if (target == "/v1/models/ranker") return Reply{200, model_body("4", "LOADING")};
    return Reply{404, R"({"error": "unexpected target"})"};
  };
  pool_config_.health_check.unhealthy_threshold = 1;
  make_pool({responder.port()});
  start({"my model", "ranker", "never_probed"});

  ASSERT_TRUE(run_until([&] { return listener_.results.size() >= 2; }));
  EXPECT_EQ(listener_.results[0], ProbeResult::not_available);
  EXPECT_EQ(listener_.details[0], "model ranker: version 4 LOADING");
  EXPECT_EQ(health(), HealthStatus::unhealthy);
  // Each round: my model, then ranker; the round stops at the first failing model.
  ASSERT_GE(responder.heads.size(), 4u);
  EXPECT_EQ(responder.heads[0].rfind("GET /v1/models/my%20model HTTP/1.1", 0), 0u);
  EXPECT_EQ(responder.heads[1].rfind("GET /v1/models/ranker HTTP/1.1", 0), 0u);
  EXPECT_EQ(responder.heads[2].rfind("GET /v1/models/my%20model HTTP/1.1", 0), 0u);
  for (const auto& h : responder.heads) EXPECT_EQ(h.find("never_probed"), std::string::npos);
}

TEST_F(HealthCheckerTest, AllModelsAvailablePasses) {
  Responder responder(ioc_);
  responder.handler = [](const std::string& target) {
    return Reply{200, model_body(target == "/v1/models/a" ? "1" : "2", "AVAILABLE")};
  };
  pool_config_.health_check.healthy_threshold = 1;
  make_pool({responder.port()});
  start({"a", "b"});

  ASSERT_TRUE(run_until([&] { return !listener_.results.empty(); }));
  EXPECT_EQ(listener_.results[0], ProbeResult::passed);
  EXPECT_EQ(listener_.details[0], "model a: version 1 AVAILABLE; model b: version 2 AVAILABLE");
  EXPECT_EQ(health(), HealthStatus::healthy);
}

TEST_F(HealthCheckerTest, HonoursConnectionCloseWithANewConnectionPerRound) {
  Responder responder(ioc_);
  // The responder would answer again on the same socket: only the header says not to reuse it.
  responder.handler = [](const std::string&) {
    return Reply{200, model_body("1", "AVAILABLE"), false, /*announce_close=*/true};
  };
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return listener_.results.size() >= 3; }));
  EXPECT_EQ(listener_.count(ProbeResult::passed), listener_.results.size());
  EXPECT_GE(static_cast<std::size_t>(responder.accepted), listener_.results.size());
}

TEST_F(HealthCheckerTest, StaleKeptAliveConnectionIsRetriedTransparently) {
  Responder responder(ioc_);
  // Answers keep-alive, then closes the idle connection: the next round finds it dead.
  responder.handler = [](const std::string&) {
    return Reply{200, model_body("1", "AVAILABLE"), false, false, /*drop_after=*/true};
  };
  make_pool({responder.port()});
  start();

  ASSERT_TRUE(run_until([&] { return listener_.results.size() >= 4; }));
  EXPECT_EQ(listener_.count(ProbeResult::passed), listener_.results.size());
  EXPECT_TRUE(listener_.changes.size() == 1 && health() == HealthStatus::healthy);
}

TEST_F(HealthCheckerTest, ProbesEveryBackendOfThePool) {
  Responder good(ioc_);
  Responder loading(ioc_);
  loading.handler = [](const std::string&) { return Reply{200, model_body("1", "LOADING")}; };
  make_pool({good.port(), loading.port(), closed_port()});
  start();

  ASSERT_TRUE(run_until([&] {
    return health(0) == HealthStatus::healthy && health(1) == HealthStatus::unhealthy &&
           health(2) == HealthStatus::unhealthy;
  }));
  EXPECT_EQ(listener_.changes.size(), 3u);
  std::size_t per_backend[3] = {};
  for (auto* b : listener_.backends) ++per_backend[b->backend_index];
  for (auto n : per_backend) EXPECT_GE(n, 1u);
}

TEST_F(HealthCheckerTest, DisabledOrModelLessPoolsAreNotProbed) {
  Responder responder(ioc_);
  make_pool({responder.port()});
  pool_config_.health_check.enabled = false;
  start();
  ioc_.run_for(milliseconds(100));
  EXPECT_EQ(responder.accepted, 0);
  EXPECT_TRUE(listener_.results.empty());
  EXPECT_EQ(health(), HealthStatus::unknown);

  pool_config_.health_check.enabled = true;
  start(/*models=*/{});
  ioc_.restart();
  ioc_.run_for(milliseconds(100));
  EXPECT_EQ(responder.accepted, 0);
  EXPECT_TRUE(listener_.results.empty());
  EXPECT_EQ(health(), HealthStatus::unknown);
}

TEST_F(HealthCheckerTest, StopEndsProbingCleanly) {
  Responder responder(ioc_);
  pool_config_.health_check.interval = milliseconds(5000);  // the wait stop() must cancel
  make_pool({responder.port()});
  start();
  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::healthy; }));

  checker_->stop();
  checker_->stop();  // twice is fine
  const auto probes = listener_.results.size();
  responder.close();
  // With the checker stopped and the responder closed nothing is left: run() returns by itself.
  ioc_.restart();
  const auto begin = std::chrono::steady_clock::now();
  const auto handlers = ioc_.run_for(milliseconds(3000));
  EXPECT_TRUE(ioc_.stopped());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, milliseconds(1000));
  EXPECT_LT(handlers, 100u);
  EXPECT_EQ(listener_.results.size(), probes);
  checker_.reset();
}

TEST_F(HealthCheckerTest, StopWhileARequestHangs) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) { return Reply{.hang = true}; };
  pool_config_.health_check.timeout = milliseconds(5000);
  make_pool({responder.port()});
  start();
  ASSERT_TRUE(run_until([&] { return !responder.heads.empty(); }));

  checker_->stop();
  responder.stop_accepting();
  ioc_.restart();
  ioc_.run_for(milliseconds(2000));
  // The 5 s request was cancelled and its socket closed (the responder saw the close and let
  // go of its connection), so the io_context ran out of work.
  EXPECT_TRUE(ioc_.stopped());
  EXPECT_TRUE(listener_.results.empty());
}

TEST_F(HealthCheckerTest, DestroyedAfterTheIoContextStopped) {
  Responder responder(ioc_);
  responder.handler = [](const std::string&) { return Reply{.hang = true}; };
  make_pool({responder.port()});
  start();
  ASSERT_TRUE(run_until([&] { return !responder.heads.empty(); }));
  ioc_.stop();
  checker_.reset();  // probes still have operations queued on the stopped io_context
  EXPECT_TRUE(listener_.results.empty());
}

// ---- gRPC probes ----------------------------------------------------------------------------

TEST_F(HealthCheckerTest, GrpcProbeReadsTheModelStateLikeRest) {
  ScriptedModelService service;
  make_grpc_pool({service.port()});
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::healthy; }));
  EXPECT_EQ(listener_.results[0], ProbeResult::passed);
  EXPECT_EQ(listener_.details[0], "model half_plus_two: version 1 AVAILABLE");
  EXPECT_TRUE(pool_.backends[0]->reachable.load());
  EXPECT_EQ(pool_.backends[0]->last_probe().result, "passed");
  ASSERT_GE(service.calls(), 1u);
  EXPECT_EQ(service.model(0), "half_plus_two");
  EXPECT_EQ(service.user_agent(0).rfind("fusebox-health-check", 0), 0u) << service.user_agent(0);

  service.answer(ScriptedModelService::Answer::state, tfs::ModelVersionStatus::LOADING);
  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  EXPECT_EQ(listener_.results.back(), ProbeResult::not_available);
  EXPECT_EQ(listener_.changes.back().detail, "model half_plus_two: version 1 LOADING");
  EXPECT_EQ(pool_.backends[0]->last_probe().detail, "model half_plus_two: version 1 LOADING");

  service.answer(ScriptedModelService::Answer::state, tfs::ModelVersionStatus::AVAILABLE);
  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::healthy; }));
}

TEST_F(HealthCheckerTest, GrpcProbeExpectedVersion) {
  ScriptedModelService service;
  pool_config_.health_check.expected_version = 2;
  make_grpc_pool({service.port()});
  start();

  ASSERT_TRUE(run_until([&] { return !listener_.results.empty(); }));
  EXPECT_EQ(listener_.results[0], ProbeResult::version_mismatch);
  EXPECT_EQ(listener_.details[0], "model half_plus_two: serving version 1, expected 2");
  EXPECT_EQ(health(), HealthStatus::version_mismatch);
}

TEST_F(HealthCheckerTest, GrpcNotFoundIsAFailureWithTheStatus) {
  ScriptedModelService service;
  service.answer(ScriptedModelService::Answer::not_found);
  make_grpc_pool({service.port()});
  start({"ranker"});

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  EXPECT_EQ(listener_.results[0], ProbeResult::grpc_error);
  EXPECT_EQ(listener_.details[0],
            "model ranker: gRPC NOT_FOUND: Could not find any versions of model ranker");
  EXPECT_TRUE(pool_.backends[0]->reachable.load()) << "the backend answered";
}

TEST_F(HealthCheckerTest, GrpcProbeDeadlineIsTheTimeout) {
  ScriptedModelService service;
  service.answer(ScriptedModelService::Answer::hang);
  pool_config_.health_check.timeout = milliseconds(80);
  make_grpc_pool({service.port()});
  const auto begin = std::chrono::steady_clock::now();
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(listener_.results[0], ProbeResult::timeout);
  EXPECT_EQ(listener_.details[0],
            "model half_plus_two: no answer within 80ms (gRPC DEADLINE_EXCEEDED)");
  EXPECT_GE(took, milliseconds(80));
  EXPECT_LT(took, milliseconds(3000));
}

TEST_F(HealthCheckerTest, GrpcProbeOfANonListeningPortIsAConnectFailure) {
  make_grpc_pool({closed_port()});
  pool_.backends[0]->reachable = true;
  start();

  ASSERT_TRUE(run_until([&] { return health() == HealthStatus::unhealthy; }));
  EXPECT_EQ(listener_.results[0], ProbeResult::connect_failure);
  EXPECT_EQ(listener_.details[0].rfind("model half_plus_two: gRPC UNAVAILABLE", 0), 0u)
      << listener_.details[0];
  EXPECT_FALSE(pool_.backends[0]->reachable.load());
}

TEST_F(HealthCheckerTest, StopCancelsAGrpcProbeInFlight) {
  ScriptedModelService service;
  service.answer(ScriptedModelService::Answer::hang);
  pool_config_.health_check.timeout = milliseconds(10'000);
  make_grpc_pool({service.port()});
  start();
  ASSERT_TRUE(run_until([&] { return service.calls() == 1; }));

  checker_->stop();
  // The call was cancelled at once (the server saw it), long before its 10 s deadline, and its
  // completion never reaches the listener.
  ASSERT_TRUE(run_until([&] { return service.cancelled() == 1; }));
  ioc_.restart();
  ioc_.poll();
  EXPECT_TRUE(listener_.results.empty());
}

}  // namespace
}  // namespace fusebox::health
