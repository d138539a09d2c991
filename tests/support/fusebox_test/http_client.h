#pragma once
// A blocking HTTP/1.1 client for integration tests, on plain POSIX sockets so tests control
// every byte. Every operation is bounded by a timeout (poll()); nothing sleeps.
//
// request() keeps one persistent keep-alive connection, opened on first use and closed when a
// response says "Connection: close"; it never retries or reconnects behind the test's back
// (connections_opened() tells how many connections were made). send_raw() / read_raw_response()
// / read_raw() give byte-level access on the same connection for malformed-input, smuggling and
// pipelining tests; several responses sent back to back are read one call at a time.
//
// Not thread-safe: one client per thread.

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fusebox_test/process.h"

namespace fusebox_test {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  Headers headers;   // in arrival order
  std::string body;  // de-chunked

  // First header with this name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  bool has_header(std::string_view name) const { return header(name).has_value(); }
};

enum class HttpErrorKind {
  timeout,         // nothing (or not enough) arrived in time
  closed,          // the peer closed the connection (FIN) before a complete response
  reset,           // the peer reset the connection (RST)
  connect_failed,  // could not connect
  malformed,       // bytes arrived that are not an HTTP/1.x response
  io,              // any other socket error
};

const char* to_string(HttpErrorKind kind);

class HttpError : public std::runtime_error {
 public:
  HttpError(HttpErrorKind kind, const std::string& message)
      : std::runtime_error(std::string(to_string(kind)) + ": " + message), kind_(kind) {}
  HttpErrorKind kind() const { return kind_; }

 private:
  HttpErrorKind kind_;
};

// A response or the reason there is none.
struct HttpOutcome {
  std::optional<HttpResponse> response;
  HttpErrorKind error = HttpErrorKind::io;  // meaningful when !response
  std::string message;

  bool ok() const { return response.has_value(); }
  // The response, or throws HttpError.
  HttpResponse value() const;
};

class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, Millis timeout = kDefaultTimeout,
                      std::string host = "127.0.0.1");
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Bound of every later operation (connect, each send, each full response read).
  void set_timeout(Millis timeout) { timeout_ = timeout; }
  Millis timeout() const { return timeout_; }
  std::uint16_t port() const { return port_; }

  // One request/response on the persistent connection. Adds Host and, when a body is given,
  // Content-Length (unless the caller passed them). Throws HttpError.
  HttpResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       const Headers& headers = {});
  // Same without throwing.
  HttpOutcome try_request(std::string_view method, std::string_view target,
                          std::string_view body = {}, const Headers& headers = {});
  HttpResponse get(std::string_view target, const Headers& headers = {}) {
    return request("GET", target, {}, headers);
  }
  HttpResponse post(std::string_view target, std::string_view body, const Headers& headers = {}) {
    return request("POST", target, body, headers);
  }

  // Raw access on the same connection (connects first if needed).
  void connect();                         // throws HttpError(connect_failed)
  void send_raw(std::string_view bytes);  // throws HttpError
  // The next response on the connection; bytes after it stay buffered for the next call.
  // Interim 1xx responses (except 101) are skipped; read_raw() shows them.
  // `head_request`: the response has no body whatever its headers say.
  HttpOutcome read_raw_response(Millis timeout, bool head_request = false);
  HttpOutcome read_raw_response() { return read_raw_response(timeout_); }
  // Whatever arrives (buffered bytes first) until `timeout` passes or the peer closes.
  std::string read_raw(Millis timeout);
  // True when the peer closed or reset the connection within `timeout`; bytes that arrive
  // meanwhile are kept for the next read. True as well when not connected.
  bool connection_closed(Millis timeout);

  void close();
  bool connected() const { return fd_ >= 0; }
  int connections_opened() const { return connections_opened_; }

 private:
  enum class ReadResult { data, eof, reset, timeout, error };
  ReadResult read_some(std::chrono::steady_clock::time_point deadline);
  void send_all(std::string_view bytes, std::chrono::steady_clock::time_point deadline);

  std::string host_;
  std::uint16_t port_;
  Millis timeout_;
  int fd_ = -1;
  int connections_opened_ = 0;
  std::string buffer_;  // received, not yet consumed
  std::string last_error_;
};

// The body parsed as JSON; throws std::runtime_error quoting the body when it is not JSON.
nlohmann::json json_of(const HttpResponse& response);

}  // namespace fusebox_test
