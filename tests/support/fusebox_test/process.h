#pragma once
// Child processes for integration tests (fusebox, tfs-sim, ...). Every wait is bounded.
//
// stdout of the child is always captured: a background thread drains the pipe into a buffer, so
// a chatty child never blocks on a full pipe; read_line() hands out whole lines in order.
// stderr goes to the test's stderr unless SpawnOptions::capture_stderr is set (then it is
// drained the same way and readable with stderr_text()).
//
// The child gets PR_SET_PDEATHSIG(SIGKILL): if the test binary dies, its children die too.
// The destructor SIGKILLs and reaps a child that is still running.
//
// Not thread-safe: use one ChildProcess from one test thread.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fusebox_test {

using Millis = std::chrono::milliseconds;

// Default bound for every wait in the test support code.
inline constexpr Millis kDefaultTimeout{5000};

struct SpawnOptions {
  bool capture_stderr = false;
  // Environment variables set (or overridden) for the child; the rest is inherited.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_directory;  // empty: the test's
};

class ChildProcess {
 public:
  // Starts `executable` with `args` (argv[0] is `executable`). Throws std::runtime_error when
  // the process cannot be started (including when exec fails).
  static ChildProcess spawn(const std::string& executable, const std::vector<std::string>& args,
                            SpawnOptions options = {});

  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const;
  // False once the child has exited (reaps it).
  bool running();

  // The next complete stdout line, without the trailing newline; nullopt when no line arrived
  // within `timeout` or stdout reached EOF (a last line without newline is returned at EOF).
  std::optional<std::string> read_line(Millis timeout = kDefaultTimeout);
  // Everything written to stdout / stderr (capture_stderr only) so far, consumed or not.
  std::string stdout_text() const;
  std::string stderr_text() const;
  // Waits until the captured stdout / stderr contains `needle`.
  bool wait_for_stdout(std::string_view needle, Millis timeout = kDefaultTimeout);
  bool wait_for_stderr(std::string_view needle, Millis timeout = kDefaultTimeout);

  // Sends a signal; false when the child is gone.
  bool signal(int sig);
  // The exit code (128 + signal number when killed by a signal), or nullopt when the child is
  // still running at the deadline.
  std::optional<int> wait_exit(Millis timeout = kDefaultTimeout);
  // Sends `sig`, waits up to `grace`, then SIGKILLs. Returns the exit status as wait_exit().
  int stop(int sig = SIGTERM, Millis grace = kDefaultTimeout);

 private:
  struct Impl;
  explicit ChildProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A running tfs-sim and the ports it bound.
struct TfsSim {
  ChildProcess process;
  std::uint16_t port = 0;       // REST (and control API)
  std::uint16_t grpc_port = 0;  // 0 unless started with --grpc-port
};

// Path of the tfs-sim binary: $FUSEBOX_TFS_SIM_BIN if set, else the one built with the tests.
std::string tfs_sim_path();

// Starts tfs-sim with `args` ("--rest-port 0" is added unless args name a port) and reads the
// port from its first stdout line; when args contain --grpc-port (0 picks a free port), the
// gRPC port from the second. Throws std::runtime_error (with the child's exit status) when it
// does not come up within `timeout`.
TfsSim start_tfs_sim(const std::vector<std::string>& args = {}, SpawnOptions options = {},
                     Millis timeout = Millis{10000});

}  // namespace fusebox_test
