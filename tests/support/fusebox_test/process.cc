#include "fusebox_test/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace fusebox_test {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxCapture = 16u << 20;  // per stream; older output is dropped beyond

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

struct ChildProcess::Impl {
  struct Stream {
    int fd = -1;
    std::string data;
    std::size_t consumed = 0;  // read_line() position
    bool eof = false;
    std::thread reader;
  };

  pid_t pid = -1;
  int pidfd = -1;
  std::optional<int> exit_status;
  int wake[2] = {-1, -1};  // written to stop the reader threads
  std::mutex mu;
  std::condition_variable cv;
  Stream out;
  Stream err;

  void start_reader(Stream& s) {
    if (s.fd < 0) return;
    s.reader = std::thread([this, &s] { read_loop(s); });
  }

  void read_loop(Stream& s) {
    char buf[8192];
    for (;;) {
      pollfd fds[2] = {{s.fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      const int n = ::poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (fds[1].revents & POLLIN) != 0) break;
      const ssize_t got = ::read(s.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      std::lock_guard lock(mu);
      if (got <= 0) {
        s.eof = true;
        cv.notify_all();
        return;
      }
      s.data.append(buf, static_cast<std::size_t>(got));
      if (s.data.size() > kMaxCapture) {
        const std::size_t drop = s.data.size() - kMaxCapture / 2;
        s.data.erase(0, drop);
        s.consumed = s.consumed > drop ? s.consumed - drop : 0;
      }
      cv.notify_all();
    }
    std::lock_guard lock(mu);
    s.eof = true;
    cv.notify_all();
  }

  bool reap(int options) {
    if (exit_status) return true;
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, options);
    if (r == pid) {
      exit_status = decode_wait_status(status);
      return true;
    }
    if (r < 0 && errno == ECHILD) {
      exit_status = -1;
      return true;
    }
    return false;
  }

  std::optional<int> wait_exit(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (reap(WNOHANG)) return exit_status;
      const int left = remaining_ms(deadline);
      if (left == 0) return std::nullopt;
      if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        ::poll(&p, 1, left);
      } else {
        ::poll(nullptr, 0, std::min(left, 2));  // no pidfd: poll the condition every 2 ms
      }
    }
  }

  ~Impl() {
    if (pid > 0 && !reap(WNOHANG)) {
      ::kill(pid, SIGKILL);
      reap(0);
    }
    if (wake[1] >= 0) {
      const char c = 'x';
      [[maybe_unused]] const auto ignored = ::write(wake[1], &c, 1);
    }
    if (out.reader.joinable()) out.reader.join();
    if (err.reader.joinable()) err.reader.join();
    close_fd(out.fd);
    close_fd(err.fd);
    close_fd(wake[0]);
    close_fd(wake[1]);
    close_fd(pidfd);
  }
};

ChildProcess::ChildProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChildProcess::ChildProcess(ChildProcess&&) noexcept = default;
ChildProcess& ChildProcess::operator=(ChildProcess&&) noexcept = default;
ChildProcess::~ChildProcess() = default;

ChildProcess ChildProcess::spawn(const std::string& executable,
                                 const std::vector<std::string>& args, SpawnOptions options) {
  auto impl = std::make_unique<Impl>();
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};  // CLOEXEC: closes on a successful exec, carries errno otherwise
  auto cleanup = [&] {
    for (int* fd :
         {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1], &exec_pipe[0], &exec_pipe[1]}) {
      close_fd(*fd);
    }
  };
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(impl->wake, O_CLOEXEC) != 0 ||
      (options.capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0)) {
    const auto message = errno_text("pipe2");
    cleanup();
    throw std::runtime_error(message);
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // Everything the child needs is prepared before fork(): after it only async-signal-safe calls.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(executable);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [k, v] : options.env) overridden = overridden || k == name;
    if (!overridden) env_storage.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const auto message = errno_text("fork");
    cleanup();
    if (devnull >= 0) ::close(devnull);
    throw std::runtime_error(message);
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    if (err_pipe[1] >= 0) ::dup2(err_pipe[1], STDERR_FILENO);
    if (!options.working_directory.empty() && ::chdir(options.working_directory.c_str()) != 0) {
      const int e = errno;
      [[maybe_unused]] const auto ignored = ::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(executable.c_str(), argv.data(), envp.data());
    const int e = errno;
    [[maybe_unused]] const auto ignored = ::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }

  if (devnull >= 0) ::close(devnull);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t got = 0;
  do {
    got = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  close_fd(exec_pipe[0]);

  impl->pid = pid;
  // pidfd (Linux 5.3+) makes wait_exit() a poll(); without it wait_exit() polls waitpid().
  impl->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  impl->out.fd = out_pipe[0];
  impl->err.fd = err_pipe[0];
  if (got > 0) {
    impl->reap(0);
    throw std::runtime_error("cannot start " + executable + ": " + std::strerror(exec_errno));
  }
  impl->start_reader(impl->out);
  impl->start_reader(impl->err);
  return ChildProcess(std::move(impl));
}

pid_t ChildProcess::pid() const { return impl_->pid; }

bool ChildProcess::running() { return !impl_->reap(WNOHANG); }

std::optional<std::string> ChildProcess::read_line(Millis timeout) {
  auto& s = impl_->out;
  std::unique_lock lock(impl_->mu);
  const auto has_line = [&] { return s.data.find('\n', s.consumed) != std::string::npos || s.eof; };
  impl_->cv.wait_for(lock, timeout, has_line);
  const auto nl = s.data.find('\n', s.consumed);
  if (nl != std::string::npos) {
    std::string line = s.data.substr(s.consumed, nl - s.consumed);
    s.consumed = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (s.eof && s.consumed < s.data.size()) {
    std::string line = s.data.substr(s.consumed);
    s.consumed = s.data.size();
    return line;
  }
  return std::nullopt;
}

std::string ChildProcess::stdout_text() const {
  std::lock_guard lock(impl_->mu);
  return impl_->out.data;
}

std::string ChildProcess::stderr_text() const {
  std::lock_guard lock(impl_->mu);
  return impl_->err.data;
}

bool ChildProcess::wait_for_stdout(std::string_view needle, Millis timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] {
    return impl_->out.data.find(needle) != std::string::npos || impl_->out.eof;
  }) && impl_->out.data.find(needle) != std::string::npos;
}

bool ChildProcess::wait_for_stderr(std::string_view needle, Millis timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] {
    return impl_->err.data.find(needle) != std::string::npos || impl_->err.eof;
  }) && impl_->err.data.find(needle) != std::string::npos;
}

bool ChildProcess::signal(int sig) {
  if (impl_->reap(WNOHANG)) return false;
  return ::kill(impl_->pid, sig) == 0;
}

std::optional<int> ChildProcess::wait_exit(Millis timeout) { return impl_->wait_exit(timeout); }

int ChildProcess::stop(int sig, Millis grace) {
  signal(sig);
  if (auto status = impl_->wait_exit(grace)) return *status;
  ::kill(impl_->pid, SIGKILL);
  impl_->reap(0);
  return impl_->exit_status.value_or(-1);
}

std::string tfs_sim_path() {
  if (const char* env = std::getenv("FUSEBOX_TFS_SIM_BIN"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef TFS_SIM_BIN
  return TFS_SIM_BIN;
#else
  return "tfs-sim";
#endif
}

namespace {

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args) {
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// The next stdout line as a port number; throws (with the child's exit status) otherwise.
std::uint16_t read_port_line(ChildProcess& process, const std::string& path, const char* which,
                             Clock::time_point deadline) {
  const auto line = process.read_line(Millis{remaining_ms(deadline)});
  std::uint16_t port = 0;
  if (line) {
    const auto [ptr, ec] = std::from_chars(line->data(), line->data() + line->size(), port);
    if (ec != std::errc() || ptr != line->data() + line->size()) port = 0;
  }
  if (port == 0) {
    const auto status = process.wait_exit(Millis{500});
    throw std::runtime_error(
        "tfs-sim (" + path + ") did not report its " + which + " port" +
        (line ? " (line: '" + *line + "')" : std::string()) +
        (status ? "; exit status " + std::to_string(*status) : std::string("; still running")));
  }
  return port;
}

}  // namespace

TfsSim start_tfs_sim(const std::vector<std::string>& args, SpawnOptions options, Millis timeout) {
  std::vector<std::string> full = args;
  if (!has_flag(args, "--rest-port")) {
    full.push_back("--rest-port");
    full.push_back("0");
  }
  const auto deadline = Clock::now() + timeout;
  const std::string path = tfs_sim_path();
  ChildProcess process = ChildProcess::spawn(path, full, std::move(options));
  const std::uint16_t port = read_port_line(process, path, "REST", deadline);
  const std::uint16_t grpc_port =
      has_flag(args, "--grpc-port") ? read_port_line(process, path, "gRPC", deadline) : 0;
  return TfsSim{std::move(process), port, grpc_port};
}

}  // namespace fusebox_test
