// Holds many idle HTTP/1.1 keep-alive connections open against one server, for
// bench/memory_compare.sh: build/bin/idle_conns.
//
//   idle_conns --port P --connections N [--path PATH] [--body JSON] [--max-seconds S]
//              [--window W]
//
// Opens N connections to 127.0.0.1:P (at most W, default 64, connects and requests in progress
// at once, so the server's transient per-request memory stays small next to N connections),
// sends one POST PATH with BODY on each and reads the complete answer, which must be a 200, so
// the server has set up all its per-connection state. Then keeps them open and idle and prints
//   open N
// on stdout. Each line read from stdin afterwards ("check") is answered with "open K", K being
// the connections the server has not closed. At end of stdin, SIGTERM, SIGINT or after
// --max-seconds (default 300) every connection is closed and the program exits: 0 when all N
// were set up, 1 otherwise (with the reason on stderr). Loopback only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Options {
  int port = 0;
  long connections = 0;
  std::string path = "/v1/models/half_plus_two:predict";
  std::string body = R"({"instances": [1.0, 2.0, 5.0]})";
  double max_seconds = 300;
  long window = 64;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "idle_conns: %s\nusage: idle_conns --port P --connections N [--path PATH] "
               "[--body JSON] [--max-seconds S] [--window W]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) usage("every option needs a value");
    const char* value = argv[++i];
    char* end = nullptr;
    if (flag == "--port") {
      o.port = static_cast<int>(std::strtol(value, &end, 10));
    } else if (flag == "--connections") {
      o.connections = std::strtol(value, &end, 10);
    } else if (flag == "--window") {
      o.window = std::strtol(value, &end, 10);
    } else if (flag == "--max-seconds") {
      o.max_seconds = std::strtod(value, &end);
    } else if (flag == "--path") {
      o.path = value;
      continue;
    } else if (flag == "--body") {
      o.body = value;
      continue;
    } else {
      usage("unknown option");
    }
    if (end == value || *end != '\0') usage("not a number");
  }
  if (o.port <= 0 || o.port > 65535) usage("--port must be 1..65535");
  if (o.connections <= 0) usage("--connections must be positive");
  if (o.window <= 0) usage("--window must be positive");
  if (o.max_seconds <= 0) usage("--max-seconds must be positive");
  return o;
}

enum class Phase { connecting, writing, reading, idle, failed };

struct Conn {
  int fd = -1;
  Phase phase = Phase::connecting;
  std::size_t written = 0;
  std::string in;  // the answer so far
};

// Whether `in` holds one complete HTTP answer (Content-Length or chunked), and its status.
bool complete_answer(const std::string& in, int& status) {
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  if (in.size() < 12 || in.compare(0, 5, "HTTP/") != 0) {
    status = -1;
    return true;
  }
  status = std::atoi(in.c_str() + 9);
  std::string head = in.substr(0, head_end + 2);
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::size_t body = head_end + 4;
  if (auto p = head.find("\r\ncontent-length:"); p != std::string::npos) {
    return in.size() >= body + std::strtoull(head.c_str() + p + 17, nullptr, 10);
  }
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    return in.find("\r\n0\r\n\r\n", body - 2) != std::string::npos;
  }
  return true;  // no body
}

int open_socket(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether the server still holds `fd` open (no end of stream, no error pending).
bool still_open(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.max_seconds));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < static_cast<rlim_t>(o.connections) + 16) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, static_cast<rlim_t>(o.connections) + 16);
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  const std::string request = "POST " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                              std::to_string(o.port) +
                              "\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(o.body.size()) + "\r\n\r\n" + o.body;

  std::vector<Conn> conns(static_cast<std::size_t>(o.connections));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    std::perror("idle_conns: epoll_create1");
    return 1;
  }
  std::size_t next = 0, active = 0, done = 0;
  std::string failure;
  auto fail = [&](Conn& c, std::string why) {
    if (failure.empty()) failure = std::move(why);
    c.phase = Phase::failed;
  };

  // Set-up: a sliding window of connections in progress.
  while (done < conns.size() && failure.empty() && !g_stop) {
    while (active < static_cast<std::size_t>(o.window) && next < conns.size()) {
      Conn& c = conns[next];
      c.fd = open_socket(o.port);
      if (c.fd < 0) {
        fail(c, std::string("socket/connect: ") + std::strerror(errno));
        break;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = next;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      ++next;
      ++active;
    }
    if (!failure.empty()) break;
    if (Clock::now() > deadline) {
      failure = "timed out setting up the connections";
      break;
    }
    epoll_event events[256];
    int n = ::epoll_wait(ep, events, 256, 100);
    for (int i = 0; i < n; ++i) {
      Conn& c = conns[events[i].data.u64];
      if (c.phase == Phase::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(c, std::string("connect: ") + std::strerror(err));
          break;
        }
        c.phase = Phase::writing;
      }
      if (c.phase == Phase::writing) {
        ssize_t w = ::send(c.fd, request.data() + c.written, request.size() - c.written, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          fail(c, std::string("send: ") + std::strerror(errno));
          break;
        }
        if (w > 0) c.written += static_cast<std::size_t>(w);
        if (c.written == request.size()) {
          c.phase = Phase::reading;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = events[i].data.u64;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
        continue;
      }
      if (c.phase == Phase::reading) {
        char buf[4096];
        ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          fail(c, "the server closed a connection before answering");
          break;
        }
        if (r > 0) c.in.append(buf, static_cast<std::size_t>(r));
        int status = 0;
        if (complete_answer(c.in, status)) {
          if (status != 200) {
            fail(c, "answer with status " + std::to_string(status) + ": " + c.in.substr(0, 200));
            break;
          }
          c.phase = Phase::idle;
          std::string().swap(c.in);
          ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          --active;
          ++done;
        }
      }
    }
  }

  int rc = 0;
  if (done == conns.size()) {
    std::printf("open %zu\n", done);
    std::fflush(stdout);
    // Idle: answer "check" lines until stdin ends, a signal or the deadline.
    std::string line;
    while (!g_stop && Clock::now() < deadline) {
      pollfd p{STDIN_FILENO, POLLIN, 0};
      int ready = ::poll(&p, 1, 200);
      if (ready <= 0) continue;
      char buf[256];
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r <= 0) break;
      for (ssize_t i = 0; i < r; ++i) {
        if (buf[i] != '\n') continue;
        std::size_t open = 0;
        for (const auto& c : conns) open += still_open(c.fd) ? 1 : 0;
        std::printf("open %zu\n", open);
        std::fflush(stdout);
      }
    }
  } else {
    if (failure.empty()) failure = g_stop ? "stopped" : "not every connection was set up";
    std::fprintf(stderr, "idle_conns: %zu of %zu connections set up: %s\n", done, conns.size(),
                 failure.c_str());
    rc = 1;
  }
  for (auto& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  ::close(ep);
  return rc;
}
