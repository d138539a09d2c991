// fusebox: inference gateway for TF Serving.
//
//   fusebox --config FILE            serve
//   fusebox validate --config FILE   check a configuration and exit
//   fusebox healthcheck [...]        probe a running fusebox's /readyz (container health checks)
//   fusebox hash-key                 the sha256: form of an API key or admin token read on stdin
//   fusebox --version | --help

#include <absl/synchronization/mutex.h>
#include <malloc.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <cstdio>
#include <exception>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "fusebox/auth/api_keys.h"
#include "fusebox/common/address.h"
#include "fusebox/common/units.h"
#include "fusebox/config/loader.h"
#include "fusebox/logging/logging.h"
#include "fusebox/server/gateway.h"
#include "healthcheck.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kUsage =
    "usage: fusebox --config FILE             run the gateway\n"
    "       fusebox validate --config FILE    check a configuration; exit 0 when valid\n"
    "       fusebox healthcheck [--url URL | --config FILE] [--timeout DURATION]\n"
    "                                         GET /readyz (default http://127.0.0.1:9901/readyz,\n"
    "                                         or the admin listener of FILE); exit 0 on 200\n"
    "       fusebox hash-key                  read an API key (or admin token) on stdin, print the\n"
    "                                         sha256:<hex> to put in the configuration\n"
    "       fusebox --version                 print the version\n"
    "       fusebox --help                    this text\n"
    "\n"
    "See docs/configuration.md for the configuration file.\n";

struct Options {
  std::string command = "run";
  std::string config_path;
  std::string url;                           // healthcheck
  std::chrono::milliseconds timeout{2000};   // healthcheck
};

int usage_error(const std::string& message) {
  std::cerr << "fusebox: " << message << "\n" << kUsage;
  return kExitUsage;
}

fusebox::config::LoadResult load(const std::string& path) {
  auto result = fusebox::config::load_config_file(path);
  for (const auto& error : result.errors) std::cerr << error.to_string() << "\n";
  return result;
}

int validate(const Options& options) {
  auto result = load(options.config_path);
  if (!result.ok()) {
    std::cerr << options.config_path << ": " << result.errors.size()
              << (result.errors.size() == 1 ? " problem\n" : " problems\n");
    return kExitFailure;
  }
  std::cout << options.config_path << ": ok\n";
  return kExitOk;
}

// The admin listener of a configuration, as a URL a local probe can reach.
std::optional<std::string> readyz_url_of(const std::string& config_path) {
  auto result = load(config_path);
  if (!result.ok()) return std::nullopt;
  const auto& admin = result.config->listeners.admin;
  if (admin.port == 0) {
    std::cerr << "fusebox healthcheck: " << config_path
              << ": listeners.admin.port is 0 (a port chosen at start): use --url\n";
    return std::nullopt;
  }
  std::string host = admin.address;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  return "http://" + fusebox::host_port(host, admin.port) + "/readyz";
}

int healthcheck(const Options& options) {
  std::string url = options.url.empty() ? "http://127.0.0.1:9901/readyz" : options.url;
  if (!options.config_path.empty()) {
    auto from_config = readyz_url_of(options.config_path);
    if (!from_config) return kExitFailure;
    url = *from_config;
  }
  auto target = fusebox::app::parse_probe_url(url);
  if (!target) return usage_error("--url: expected http://HOST:PORT[/PATH], got '" + url + "'");
  auto result = fusebox::app::probe(*target, options.timeout);
  if (!result.ok) {
    std::cerr << "fusebox healthcheck: " << result.description << "\n";
    return kExitFailure;
  }
  std::cout << "ok: " << result.description << "\n";
  return kExitOk;
}

// The key is read from stdin (not argv, which other users see in the process list); one
// trailing newline, as `echo` or a terminal adds, is not part of it.
int hash_key() {
  std::string key((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (key.ends_with("\r\n")) {
    key.resize(key.size() - 2);
  } else if (key.ends_with('\n')) {
    key.pop_back();
  }
  if (key.empty()) {
    std::cerr << "fusebox hash-key: no key on stdin (e.g. printf %s \"$KEY\" | fusebox hash-key)\n";
    return kExitFailure;
  }
  std::cout << fusebox::auth::hash_api_key(key) << "\n";
  return kExitOk;
}

int serve(const Options& options) {
  auto result = load(options.config_path);
  if (!result.ok()) return kExitFailure;
  const auto& config = *result.config;
  try {
    fusebox::logging::init(config.logging);
  } catch (const std::exception& e) {
    std::cerr << "fusebox: cannot open log: " << e.what() << "\n";
    return kExitFailure;
  }
  std::signal(SIGPIPE, SIG_IGN);
  int code = kExitFailure;
  try {
    fusebox::server::Gateway gateway(result.config);
    auto http = gateway.http_endpoint();
    auto admin = gateway.admin_endpoint();
    fusebox::logging::log().info(
        "fusebox {} serving http={}:{} admin={}:{} workers={} routes={} pools={}", FUSEBOX_VERSION,
        http.address().to_string(), http.port(), admin.address().to_string(), admin.port(),
        gateway.worker_count(), config.routes.size(), config.pools.size());
    // One line on stdout with the bound ports, for supervisors and tests that asked for port 0.
    std::string grpc;
    if (gateway.grpc_port() != 0) {
      grpc = " grpc=" + config.listeners.grpc.address + ":" + std::to_string(gateway.grpc_port());
    }
    std::printf("listening http=%s:%u admin=%s:%u%s\n", http.address().to_string().c_str(),
                http.port(), admin.address().to_string().c_str(), admin.port(), grpc.c_str());
    std::fflush(stdout);
    code = gateway.run();
  } catch (const std::exception& e) {
    fusebox::logging::log().error("{}", e.what());
    std::cerr << "fusebox: " << e.what() << "\n";
    code = kExitFailure;
  }
  fusebox::logging::shutdown();
  return code;
}

// glibc's allocator by default hands freed memory back to the kernel as soon as the free space
// at the top of an arena passes 128 KiB (MADV_DONTNEED for a worker thread's arena), and
// serves blocks above a threshold that adapts from 128 KiB with mmap. After a burst of
// connections has left a large top, every request body of tens of kilobytes is then freed into
// it, given back, and faulted in again on the next request: measured, 64 KiB bodies went from
// nginx's throughput to 0.72x of it after 500 connections had come and gone, with some 70,000
// page faults a second. Bodies up to 32 MiB come from the arenas instead, and freed memory up to
// 32 MiB per arena is kept for reuse (steady use then neither grows nor gives memory back).
void tune_allocator() {
#ifdef M_TRIM_THRESHOLD
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator();
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on: a
  // lock-order graph updated on every lock gRPC takes (a few percent of a proxied call's CPU).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options options;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return kExitOk;
    }
    if (arg == "--version") {
      std::cout << "fusebox " << FUSEBOX_VERSION << "\n";
      return kExitOk;
    }
    if (arg == "--config" || arg == "-c") {
      if (i + 1 >= args.size()) return usage_error("--config needs a file");
      options.config_path = std::string(args[++i]);
    } else if (arg.starts_with("--config=")) {
      options.config_path = std::string(arg.substr(9));
    } else if (i == 0 && (arg == "validate" || arg == "run" || arg == "healthcheck" ||
                          arg == "hash-key")) {
      options.command = std::string(arg);
    } else if (options.command == "healthcheck" && (arg == "--url" || arg == "--timeout")) {
      if (i + 1 >= args.size()) return usage_error(std::string(arg) + " needs a value");
      auto value = args[++i];
      if (arg == "--url") {
        options.url = std::string(value);
      } else {
        auto duration = fusebox::parse_duration(value);
        if (!duration || duration->count() <= 0) {
          return usage_error("--timeout: expected a duration such as 2s or 500ms, got '" +
                             std::string(value) + "'");
        }
        options.timeout = *duration;
      }
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (options.command == "hash-key") {
    if (!options.config_path.empty()) return usage_error("hash-key takes no options");
    return hash_key();
  }
  if (options.command == "healthcheck") {
    if (!options.url.empty() && !options.config_path.empty()) {
      return usage_error("healthcheck takes --url or --config, not both");
    }
    return healthcheck(options);
  }
  if (!options.url.empty()) return usage_error("--url is an option of healthcheck");
  if (options.config_path.empty()) return usage_error("--config FILE is required");
  if (options.command == "validate") return validate(options);
  return serve(options);
}
