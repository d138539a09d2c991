#pragma once
// A tiny HTTP/1.1 "backend" on 127.0.0.1:0 for checking exactly what fusebox forwards and how it
// treats bad upstream answers. A background thread accepts connections, records every request
// it receives byte for byte (method, target, headers in order, de-chunked body) and answers
// each with the next scripted reply: a response, silence (hang), a FIN, a TCP reset, or raw
// bytes (garbage, a truncated response).
//
// fusebox's health checks (User-Agent "fusebox-health-check") are answered apart: with the probe
// reply (by default a model status with version 1 AVAILABLE, so the backend is healthy), never
// with a scripted reply, and they are counted by probe_count() instead of being recorded, so
// requests() is exactly the client traffic fusebox forwarded.
//
// Blocking sockets driven by poll() with timeouts; every send is bounded by SO_SNDTIMEO. The
// destructor stops the thread and joins it. The accessors are thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fusebox_test/http_client.h"

namespace fusebox_it {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::string version;            // "HTTP/1.1"
  fusebox_test::Headers headers;  // in arrival order, names as sent
  std::string body;               // de-chunked
  int connection = 0;             // 1-based index of the connection it arrived on

  // First value of a header (case-insensitive name).
  std::optional<std::string> header(std::string_view name) const;
  // How many times a header appears.
  std::size_t count(std::string_view name) const;
};

struct ScriptedReply {
  enum class Kind {
    respond,  // status line, headers, body (Content-Length added unless given)
    hang,     // never answer; keep reading and discarding
    close,    // close the connection (FIN) without answering
    reset,    // close with SO_LINGER 0 (RST) without answering
    raw,      // send `raw` exactly as it is
  };
  Kind kind = Kind::respond;
  int status = 200;
  std::string reason = "OK";
  fusebox_test::Headers headers;
  std::string body;
  std::string raw;
  bool close_after = false;  // respond/raw: close (FIN) after sending

  // Content-Type: application/json with `body`.
  static ScriptedReply json(int status, std::string body);
  static ScriptedReply hang_up() { return ScriptedReply{Kind::hang}; }
  static ScriptedReply close_connection() { return ScriptedReply{Kind::close}; }
  static ScriptedReply reset_connection() { return ScriptedReply{Kind::reset}; }
  static ScriptedReply raw_bytes(std::string bytes, bool close_after = true);
  // 200 with TF Serving's model status: version 1 in `state` (AVAILABLE, LOADING, ...).
  static ScriptedReply model_status(std::string_view state = "AVAILABLE");
};

// The User-Agent of fusebox's health checks (a prefix match, as tfs-sim does).
inline constexpr std::string_view kHealthCheckUserAgent = "fusebox-health-check";

class ScriptedBackend {
 public:
  // Starts listening; requests without a scripted reply get `default_reply`.
  explicit ScriptedBackend(ScriptedReply default_reply = ScriptedReply::json(200,
                                                                             R"({"ok": true})"));
  ~ScriptedBackend();
  ScriptedBackend(const ScriptedBackend&) = delete;
  ScriptedBackend& operator=(const ScriptedBackend&) = delete;

  std::uint16_t port() const { return port_; }

  // Replies for the next requests, in order; after them the default reply.
  void push(ScriptedReply reply);
  void set_default(ScriptedReply reply);
  // The answer to every health check from now on.
  void set_probe_reply(ScriptedReply reply);

  // Health checks received (never in requests()).
  std::size_t probe_count() const;
  std::vector<RecordedRequest> requests() const;
  std::size_t request_count() const;
  int connections_accepted() const { return accepted_.load(); }
  // Polls until at least `n` requests were recorded.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Client;
  void run();
  void on_readable(Client& c);
  void handle_requests(Client& c);
  void act(Client& c, const ScriptedReply& reply);
  ScriptedReply next_reply();

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable recorded_;  // signalled when a request is recorded
  std::deque<ScriptedReply> script_;
  ScriptedReply default_reply_;
  ScriptedReply probe_reply_ = ScriptedReply::model_status();
  std::size_t probes_ = 0;
  std::vector<RecordedRequest> requests_;
  std::vector<Client> clients_;  // only the thread touches it
  std::thread thread_;
};

}  // namespace fusebox_it
