#include "scripted_backend.h"

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <stdexcept>

namespace fusebox_it {

namespace {

constexpr std::size_t kMaxHead = 1u << 20;
constexpr std::size_t kMaxBuffered = 256u << 20;
constexpr int kSendTimeoutSeconds = 5;
constexpr int kPollMillis = 200;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

enum class Parse { complete, need_more, bad };

// One request from the front of `buf`; erases it from `buf` when complete.
Parse parse_request(std::string& buf, RecordedRequest& out) {
  const auto head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return buf.size() > kMaxHead ? Parse::bad : Parse::need_more;
  const std::string_view head(buf.data(), head_end);
  const auto line_end = std::min(head.find("\r\n"), head.size());
  const std::string_view request_line = head.substr(0, line_end);
  const auto sp1 = request_line.find(' ');
  const auto sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return Parse::bad;
  RecordedRequest r;
  r.method = std::string(request_line.substr(0, sp1));
  r.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  r.version = std::string(request_line.substr(sp2 + 1));
  std::size_t pos = line_end + 2;
  while (pos < head.size()) {
    auto next = head.find("\r\n", pos);
    if (next == std::string_view::npos) next = head.size();
    const std::string_view line = head.substr(pos, next - pos);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Parse::bad;
    r.headers.emplace_back(std::string(line.substr(0, colon)),
                           std::string(trim(line.substr(colon + 1))));
    pos = next + 2;
  }
  std::size_t body_start = head_end + 4;
  const auto te = r.header("Transfer-Encoding");
  if (te && iequals(trim(*te), "chunked")) {
    std::size_t p = body_start;
    std::string body;
    for (;;) {
      const auto size_end = buf.find("\r\n", p);
      if (size_end == std::string::npos) return Parse::need_more;
      std::string_view size_text = trim(std::string_view(buf).substr(p, size_end - p));
      size_text = size_text.substr(0, size_text.find(';'));
      std::size_t size = 0;
      const auto [ptr, ec] =
          std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
      if (ec != std::errc() || ptr != size_text.data() + size_text.size()) return Parse::bad;
      p = size_end + 2;
      if (size == 0) {
        for (;;) {  // trailers, then an empty line
          const auto trailer_end = buf.find("\r\n", p);
          if (trailer_end == std::string::npos) return Parse::need_more;
          const bool empty = trailer_end == p;
          p = trailer_end + 2;
          if (empty) break;
        }
        r.body = std::move(body);
        buf.erase(0, p);
        out = std::move(r);
        return Parse::complete;
      }
      if (buf.size() < p + size + 2) return Parse::need_more;
      body.append(buf, p, size);
      p += size + 2;
    }
  }
  std::size_t length = 0;
  if (const auto cl = r.header("Content-Length")) {
    const auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
    if (ec != std::errc() || ptr != cl->data() + cl->size()) return Parse::bad;
  }
  if (buf.size() < body_start + length) return Parse::need_more;
  r.body = buf.substr(body_start, length);
  buf.erase(0, body_start + length);
  out = std::move(r);
  return Parse::complete;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::optional<std::string> RecordedRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

std::size_t RecordedRequest::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); }));
}

ScriptedReply ScriptedReply::json(int status, std::string body) {
  ScriptedReply r;
  r.status = status;
  r.reason = status == 200 ? "OK" : "Status";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = std::move(body);
  return r;
}

ScriptedReply ScriptedReply::raw_bytes(std::string bytes, bool close_after) {
  ScriptedReply r;
  r.kind = Kind::raw;
  r.raw = std::move(bytes);
  r.close_after = close_after;
  return r;
}

ScriptedReply ScriptedReply::model_status(std::string_view state) {
  return json(200, R"({"model_version_status": [{"version": "1", "state": ")" + std::string(state) +
                       R"(", "status": {"error_code": "OK", "error_message": ""}}]})");
}

struct ScriptedBackend::Client {
  int fd = -1;
  int index = 0;
  bool hung = false;
  std::string buffer;
};

ScriptedBackend::ScriptedBackend(ScriptedReply default_reply)
    : default_reply_(std::move(default_reply)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC) != 0) {
    const std::string message = std::string("scripted backend: ") + std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error(message);
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

ScriptedBackend::~ScriptedBackend() {
  const char c = 'x';
  [[maybe_unused]] const auto ignored = ::write(wake_[1], &c, 1);
  if (thread_.joinable()) thread_.join();
  for (auto& client : clients_) {
    if (client.fd >= 0) ::close(client.fd);
  }
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void ScriptedBackend::push(ScriptedReply reply) {
  std::lock_guard lock(mu_);
  script_.push_back(std::move(reply));
}

void ScriptedBackend::set_default(ScriptedReply reply) {
  std::lock_guard lock(mu_);
  default_reply_ = std::move(reply);
}

void ScriptedBackend::set_probe_reply(ScriptedReply reply) {
  std::lock_guard lock(mu_);
  probe_reply_ = std::move(reply);
}

std::size_t ScriptedBackend::probe_count() const {
  std::lock_guard lock(mu_);
  return probes_;
}

std::vector<RecordedRequest> ScriptedBackend::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t ScriptedBackend::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

bool ScriptedBackend::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return recorded_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

ScriptedReply ScriptedBackend::next_reply() {
  std::lock_guard lock(mu_);
  if (script_.empty()) return default_reply_;
  auto reply = std::move(script_.front());
  script_.pop_front();
  return reply;
}

void ScriptedBackend::run() {
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
    const int n = ::poll(fds.data(), fds.size(), kPollMillis);
    if (n < 0 && errno != EINTR) return;
    if (n <= 0) continue;
    if (fds[0].revents != 0) return;
    // Clients first: indexes in `fds` match `clients_` only until an accept appends to it.
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      if (fds[i + 2].revents != 0) on_readable(clients_[i]);
    }
    std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
    if (fds[1].revents & POLLIN) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        timeval tv{kSendTimeoutSeconds, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        Client c;
        c.fd = fd;
        c.index = ++accepted_;
        clients_.push_back(std::move(c));
      }
    }
  }
}

void ScriptedBackend::on_readable(Client& c) {
  char buf[65536];
  const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
  if (n < 0 && errno == EINTR) return;
  if (n <= 0) {
    ::close(c.fd);
    c.fd = -1;
    return;
  }
  if (c.hung) return;  // read and discard
  c.buffer.append(buf, static_cast<std::size_t>(n));
  if (c.buffer.size() > kMaxBuffered) {
    ::close(c.fd);
    c.fd = -1;
    return;
  }
  handle_requests(c);
}

void ScriptedBackend::handle_requests(Client& c) {
  while (c.fd >= 0 && !c.hung) {
    RecordedRequest request;
    const Parse result = parse_request(c.buffer, request);
    if (result == Parse::need_more) return;
    if (result == Parse::bad) {
      send_all(c.fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      ::close(c.fd);
      c.fd = -1;
      return;
    }
    request.connection = c.index;
    const auto user_agent = request.header("User-Agent");
    if (user_agent && user_agent->starts_with(kHealthCheckUserAgent)) {
      ScriptedReply probe_reply;
      {
        std::lock_guard lock(mu_);
        ++probes_;
        probe_reply = probe_reply_;
      }
      act(c, probe_reply);
      continue;
    }
    const ScriptedReply reply = next_reply();
    {
      std::lock_guard lock(mu_);
      requests_.push_back(std::move(request));
    }
    recorded_.notify_all();
    act(c, reply);
  }
}

void ScriptedBackend::act(Client& c, const ScriptedReply& reply) {
  auto close_now = [&c](bool reset) {
    if (reset) {
      linger l{1, 0};
      ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(c.fd);
    c.fd = -1;
  };
  switch (reply.kind) {
    case ScriptedReply::Kind::respond: {
      std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reply.reason + "\r\n";
      bool has_length = false;
      for (const auto& [k, v] : reply.headers) {
        has_length = has_length || iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding");
        out.append(k).append(": ").append(v).append("\r\n");
      }
      if (!has_length)
        out.append("Content-Length: ").append(std::to_string(reply.body.size())).append("\r\n");
      out.append("\r\n").append(reply.body);
      if (!send_all(c.fd, out) || reply.close_after) close_now(false);
      return;
    }
    case ScriptedReply::Kind::raw:
      if (!send_all(c.fd, reply.raw) || reply.close_after) close_now(false);
      return;
    case ScriptedReply::Kind::hang:
      c.hung = true;
      c.buffer.clear();
      return;
    case ScriptedReply::Kind::close:
      close_now(false);
      return;
    case ScriptedReply::Kind::reset:
      close_now(true);
      return;
  }
}

}  // namespace fusebox_it
