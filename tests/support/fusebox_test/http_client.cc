#include "fusebox_test/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace fusebox_test {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxHeaderBytes = 1u << 20;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

enum class Parse { complete, need_more, malformed };

// Parses one response from the front of `buf`. `eof`: no more bytes will come (completes a
// body delimited by the connection close).
Parse parse_response(std::string_view buf, bool head_request, bool eof, HttpResponse& out,
                     std::size_t& consumed, std::string& error) {
  std::size_t start = 0;
  for (;;) {  // loops over interim 1xx responses
    const auto header_end = buf.find("\r\n\r\n", start);
    if (header_end == std::string_view::npos) {
      if (buf.size() - start > kMaxHeaderBytes) {
        error = "response header larger than 1 MiB";
        return Parse::malformed;
      }
      const std::string_view pending = buf.substr(start);
      const std::string_view proto = "HTTP/";
      const std::size_t n = std::min(pending.size(), proto.size());
      if (pending.substr(0, n) != proto.substr(0, n)) {
        error = "not an HTTP response: '" + std::string(pending.substr(0, 80)) + "'";
        return Parse::malformed;
      }
      return Parse::need_more;
    }
    HttpResponse r;
    const std::string_view head = buf.substr(start, header_end - start);
    const auto line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12 || status_line[8] != ' ') {
      error = "bad status line: '" + std::string(status_line) + "'";
      return Parse::malformed;
    }
    r.version = std::string(status_line.substr(0, 8));
    const auto code = status_line.substr(9, 3);
    const auto [ptr, ec] = std::from_chars(code.data(), code.data() + 3, r.status);
    if (ec != std::errc() || ptr != code.data() + 3) {
      error = "bad status code: '" + std::string(status_line) + "'";
      return Parse::malformed;
    }
    r.reason = status_line.size() > 13 ? std::string(status_line.substr(13)) : std::string();
    std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      auto next = head.find("\r\n", pos);
      if (next == std::string_view::npos) next = head.size();
      const std::string_view line = head.substr(pos, next - pos);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        error = "bad header line: '" + std::string(line) + "'";
        return Parse::malformed;
      }
      r.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(trim(line.substr(colon + 1))));
      pos = next + 2;
    }
    std::size_t body_start = header_end + 4;
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
      start = body_start;
      continue;
    }
    if (head_request || r.status == 204 || r.status == 304 || r.status == 101) {
      consumed = body_start;
      out = std::move(r);
      return Parse::complete;
    }
    const auto te = r.header("Transfer-Encoding");
    if (te && icontains(*te, "chunked")) {
      std::size_t p = body_start;
      std::string body;
      for (;;) {
        const auto size_end = buf.find("\r\n", p);
        if (size_end == std::string_view::npos) return Parse::need_more;
        auto size_text = trim(buf.substr(p, size_end - p));
        size_text = size_text.substr(0, size_text.find(';'));
        std::size_t size = 0;
        const auto [sp, sec] =
            std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
        if (sec != std::errc() || sp != size_text.data() + size_text.size() || size_text.empty()) {
          error = "bad chunk size: '" + std::string(size_text) + "'";
          return Parse::malformed;
        }
        p = size_end + 2;
        if (size == 0) {
          // Trailers, then an empty line.
          for (;;) {
            const auto trailer_end = buf.find("\r\n", p);
            if (trailer_end == std::string_view::npos) return Parse::need_more;
            const bool empty = trailer_end == p;
            p = trailer_end + 2;
            if (empty) break;
          }
          r.body = std::move(body);
          consumed = p;
          out = std::move(r);
          return Parse::complete;
        }
        if (buf.size() < p + size + 2) return Parse::need_more;
        body.append(buf.substr(p, size));
        if (buf.substr(p + size, 2) != "\r\n") {
          error = "chunk not followed by CRLF";
          return Parse::malformed;
        }
        p += size + 2;
      }
    }
    if (const auto cl = r.header("Content-Length")) {
      std::size_t length = 0;
      const auto [lp, lec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
      if (lec != std::errc() || lp != cl->data() + cl->size()) {
        error = "bad Content-Length: '" + *cl + "'";
        return Parse::malformed;
      }
      if (buf.size() < body_start + length) return Parse::need_more;
      r.body = std::string(buf.substr(body_start, length));
      consumed = body_start + length;
      out = std::move(r);
      return Parse::complete;
    }
    // No length: the body runs until the server closes.
    if (!eof) return Parse::need_more;
    r.body = std::string(buf.substr(body_start));
    consumed = buf.size();
    out = std::move(r);
    return Parse::complete;
  }
}

}  // namespace

const char* to_string(HttpErrorKind kind) {
  switch (kind) {
    case HttpErrorKind::timeout:
      return "timeout";
    case HttpErrorKind::closed:
      return "connection closed";
    case HttpErrorKind::reset:
      return "connection reset";
    case HttpErrorKind::connect_failed:
      return "connect failed";
    case HttpErrorKind::malformed:
      return "malformed response";
    case HttpErrorKind::io:
      return "I/O error";
  }
  return "error";
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

HttpResponse HttpOutcome::value() const {
  if (!response) throw HttpError(error, message);
  return *response;
}

HttpClient::HttpClient(std::uint16_t port, Millis timeout, std::string host)
    : host_(std::move(host)), port_(port), timeout_(timeout) {}

HttpClient::~HttpClient() { close(); }

HttpClient::HttpClient(HttpClient&& other) noexcept
    : host_(std::move(other.host_)),
      port_(other.port_),
      timeout_(other.timeout_),
      fd_(std::exchange(other.fd_, -1)),
      connections_opened_(other.connections_opened_),
      buffer_(std::move(other.buffer_)) {}

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    close();
    host_ = std::move(other.host_);
    port_ = other.port_;
    timeout_ = other.timeout_;
    fd_ = std::exchange(other.fd_, -1);
    connections_opened_ = other.connections_opened_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

void HttpClient::connect() {
  if (fd_ >= 0) return;
  buffer_.clear();
  const bool v6 = host_.find(':') != std::string::npos;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port_);
    if (::inet_pton(AF_INET6, host_.c_str(), &a->sin6_addr) != 1) {
      throw HttpError(HttpErrorKind::connect_failed, "not an IPv6 address: " + host_);
    }
    addr_len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port_);
    if (::inet_pton(AF_INET, host_.c_str(), &a->sin_addr) != 1) {
      throw HttpError(HttpErrorKind::connect_failed, "not an IPv4 address: " + host_);
    }
    addr_len = sizeof(sockaddr_in);
  }
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw HttpError(HttpErrorKind::connect_failed, std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string where = host_ + ":" + std::to_string(port_);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    if (errno != EINPROGRESS) {
      const std::string message = where + ": " + std::strerror(errno);
      ::close(fd);
      throw HttpError(HttpErrorKind::connect_failed, message);
    }
    pollfd p{fd, POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (n <= 0 || so_error != 0) {
      const std::string message =
          where + ": " + (n <= 0 ? std::string("timed out") : std::string(std::strerror(so_error)));
      ::close(fd);
      throw HttpError(n <= 0 ? HttpErrorKind::timeout : HttpErrorKind::connect_failed, message);
    }
  }
  fd_ = fd;
  ++connections_opened_;
}

void HttpClient::send_all(std::string_view bytes, Clock::time_point deadline) {
  if (fd_ < 0) throw HttpError(HttpErrorKind::closed, "not connected");
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
        throw HttpError(HttpErrorKind::timeout, "sending the request");
      }
      continue;
    }
    const int e = errno;
    close();
    throw HttpError(e == ECONNRESET ? HttpErrorKind::reset
                    : e == EPIPE    ? HttpErrorKind::closed
                                    : HttpErrorKind::io,
                    std::string("send: ") + std::strerror(e));
  }
}

void HttpClient::send_raw(std::string_view bytes) {
  connect();
  send_all(bytes, Clock::now() + timeout_);
}

HttpClient::ReadResult HttpClient::read_some(Clock::time_point deadline) {
  if (fd_ < 0) return ReadResult::eof;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return ReadResult::timeout;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      return ReadResult::data;
    }
    if (n == 0) {
      ::close(fd_);
      fd_ = -1;
      return ReadResult::eof;
    }
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    last_error_ = std::strerror(e);
    return e == ECONNRESET ? ReadResult::reset : ReadResult::error;
  }
}

HttpOutcome HttpClient::read_raw_response(Millis timeout, bool head_request) {
  const auto deadline = Clock::now() + timeout;
  HttpOutcome outcome;
  bool eof = fd_ < 0;
  for (;;) {
    HttpResponse response;
    std::size_t consumed = 0;
    std::string error;
    switch (parse_response(buffer_, head_request, eof, response, consumed, error)) {
      case Parse::complete:
        buffer_.erase(0, consumed);
        outcome.response = std::move(response);
        return outcome;
      case Parse::malformed:
        outcome.error = HttpErrorKind::malformed;
        outcome.message = error;
        return outcome;
      case Parse::need_more:
        break;
    }
    if (eof) {
      outcome.error = HttpErrorKind::closed;
      outcome.message = buffer_.empty()
                            ? "connection closed before any response byte"
                            : "connection closed after " + std::to_string(buffer_.size()) +
                                  " bytes of an incomplete response";
      return outcome;
    }
    switch (read_some(deadline)) {
      case ReadResult::data:
        break;
      case ReadResult::eof:
        eof = true;
        break;
      case ReadResult::reset:
        outcome.error = HttpErrorKind::reset;
        outcome.message = "connection reset by peer";
        return outcome;
      case ReadResult::timeout:
        outcome.error = HttpErrorKind::timeout;
        outcome.message = "no complete response within " + std::to_string(timeout.count()) +
                          " ms (" + std::to_string(buffer_.size()) + " bytes buffered)";
        return outcome;
      case ReadResult::error:
        outcome.error = HttpErrorKind::io;
        outcome.message = "recv: " + last_error_;
        return outcome;
    }
  }
}

std::string HttpClient::read_raw(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto r = read_some(deadline);
    if (r != ReadResult::data) break;
  }
  return std::exchange(buffer_, std::string());
}

bool HttpClient::connection_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (fd_ < 0) return true;
    switch (read_some(deadline)) {
      case ReadResult::data:
        continue;
      case ReadResult::timeout:
        return false;
      case ReadResult::eof:
      case ReadResult::reset:
      case ReadResult::error:
        return true;
    }
  }
}

HttpOutcome HttpClient::try_request(std::string_view method, std::string_view target,
                                    std::string_view body, const Headers& headers) {
  HttpOutcome outcome;
  try {
    connect();
  } catch (const HttpError& e) {
    outcome.error = e.kind();
    outcome.message = e.what();
    return outcome;
  }
  std::string req;
  req.reserve(256 + body.size());
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool has_host = false;
  bool has_length = false;
  for (const auto& [k, v] : headers) {
    has_host = has_host || iequals(k, "Host");
    has_length = has_length || iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding");
    req.append(k).append(": ").append(v).append("\r\n");
  }
  if (!has_host)
    req.append("Host: ").append(host_).append(":").append(std::to_string(port_)).append("\r\n");
  if (!has_length && (!body.empty() || method == "POST" || method == "PUT")) {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  const auto deadline = Clock::now() + timeout_;
  try {
    send_all(req, deadline);
  } catch (const HttpError& e) {
    close();
    outcome.error = e.kind();
    outcome.message = e.what();
    return outcome;
  }
  outcome = read_raw_response(std::chrono::duration_cast<Millis>(deadline - Clock::now()),
                              method == "HEAD");
  if (!outcome.ok()) {
    close();  // the connection's state is unknown now
    return outcome;
  }
  const auto connection = outcome.response->header("Connection");
  const bool close_after = (connection && icontains(*connection, "close")) ||
                           (outcome.response->version == "HTTP/1.0" &&
                            !(connection && icontains(*connection, "keep-alive")));
  if (close_after) close();
  return outcome;
}

HttpResponse HttpClient::request(std::string_view method, std::string_view target,
                                 std::string_view body, const Headers& headers) {
  return try_request(method, target, body, headers).value();
}

nlohmann::json json_of(const HttpResponse& response) {
  auto j = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    throw std::runtime_error("response body is not JSON (status " +
                             std::to_string(response.status) + "): '" +
                             response.body.substr(0, 500) + "'");
  }
  return j;
}

}  // namespace fusebox_test
