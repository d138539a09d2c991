// Start-up time of a server, for bench/memory_compare.sh: build/bin/startup_probe.
//
//   startup_probe --port P [--path PATH] [--timeout S] [--log FILE] -- COMMAND [ARGS...]
//
// Reads the monotonic clock, starts COMMAND (posix_spawnp; stdout and stderr to FILE, default
// /dev/null), then polls `GET PATH` (default /readyz) on 127.0.0.1:P as fast as the server
// lets it: a refused connection is retried after 0.2 ms, any answer other than 200 after 1 ms.
// At the first 200 it prints the milliseconds since just before the spawn, e.g. "12.345", then
// stops COMMAND (SIGTERM, SIGKILL after 5 s) and waits for it. Exits 1 (with the reason on
// stderr) when COMMAND exits first, nothing answers 200 within --timeout (default 10 s), or on
// SIGTERM or SIGINT; COMMAND is stopped in every case.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "startup_probe: %s\nusage: startup_probe --port P [--path PATH] [--timeout S] "
               "[--log FILE] -- COMMAND [ARGS...]\n",
               why);
  std::exit(2);
}

enum class Probe { refused, not_ready, ready };

// One GET on a fresh connection; the answer must start within `limit`.
Probe probe(int port, const std::string& request, std::chrono::milliseconds limit) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Probe::refused;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A loopback connect is refused or accepted (into the backlog) at once.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    ::close(fd);
    return Probe::refused;
  }
  Probe result = Probe::not_ready;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[64];
    std::size_t got = 0;
    const auto end = Clock::now() + limit;
    while (got < 12) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) break;
      ssize_t n = ::recv(fd, buf + got, sizeof buf - got, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    // "HTTP/1.1 200"
    if (got >= 12 && std::string_view(buf, 5) == "HTTP/" && std::string_view(buf + 9, 3) == "200") {
      result = Probe::ready;
    }
  }
  ::close(fd);
  return result;
}

void stop(pid_t pid) {
  ::kill(pid, SIGTERM);
  const auto end = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < end) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string path = "/readyz", log = "/dev/null";
  double timeout = 10;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) usage("every option needs a value");
    const char* value = argv[++i];
    if (flag == "--port") {
      port = std::atoi(value);
    } else if (flag == "--path") {
      path = value;
    } else if (flag == "--timeout") {
      timeout = std::atof(value);
    } else if (flag == "--log") {
      log = value;
    } else {
      usage("unknown option");
    }
  }
  if (port <= 0 || port > 65535) usage("--port must be 1..65535");
  if (timeout <= 0) usage("--timeout must be positive");
  if (i >= argc) usage("no COMMAND after --");
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

  const auto start = Clock::now();
  pid_t pid = 0;
  if (int err = ::posix_spawnp(&pid, argv[i], &actions, nullptr, argv + i, environ); err != 0) {
    std::fprintf(stderr, "startup_probe: cannot start %s: %s\n", argv[i], std::strerror(err));
    return 1;
  }
  posix_spawn_file_actions_destroy(&actions);

  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  while (!g_stop && Clock::now() < deadline) {
    const auto result = probe(port, request, std::chrono::milliseconds(500));
    if (result == Probe::ready) {
      const std::chrono::duration<double, std::milli> elapsed = Clock::now() - start;
      std::printf("%.3f\n", elapsed.count());
      std::fflush(stdout);
      stop(pid);
      return 0;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      std::fprintf(stderr, "startup_probe: %s exited (status %d) before answering 200 (log: %s)\n",
                   argv[i], status, log.c_str());
      return 1;
    }
    std::this_thread::sleep_for(result == Probe::refused ? std::chrono::microseconds(200)
                                                         : std::chrono::milliseconds(1));
  }
  if (g_stop) {
    std::fprintf(stderr, "startup_probe: stopped before a 200\n");
  } else {
    std::fprintf(stderr, "startup_probe: no 200 on 127.0.0.1:%d%s within %g s\n", port,
                 path.c_str(), timeout);
  }
  stop(pid);  // never leaves COMMAND running
  return 1;
}
