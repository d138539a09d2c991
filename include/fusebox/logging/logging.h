#pragma once
// Process-wide logging: one asynchronous spdlog thread pool, a main logger for events and an
// access logger (one line per request). I/O threads only format and enqueue; a background
// thread writes. When the queue is full the oldest line is dropped (never block an I/O thread),
// and the drop count is reported at shutdown.

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "fusebox/config/config.h"

namespace fusebox::logging {

// Installs the loggers described by `config`; call once before serving. Throws on an
// unopenable log file (startup only). Before init() a synchronous stderr logger is used.
void init(const config::LoggingConfig& config);
// Flushes and stops the background writer. Safe to call more than once.
void shutdown();

// The main event logger ("fusebox"). Messages are plain text; in JSON format each line is
// {"ts":..., "level":..., "logger":..., "msg":...}.
spdlog::logger& log();

struct AccessLogEntry {
  std::chrono::system_clock::time_point time;
  std::string_view request_id;
  std::string_view trace_id;
  std::string_view client;
  std::string_view method;
  std::string_view path;
  std::string_view route;     // "unmatched" when no route
  std::string_view backend;   // "" when no upstream was tried
  unsigned status = 0;
  unsigned upstream_status = 0;  // 0 when no upstream answer
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  double duration_seconds = 0;
  unsigned attempts = 0;
};

// True when access logging is on; callers skip building entries otherwise.
bool access_log_enabled();
// Formats on the calling thread, writes asynchronously.
void access(const AccessLogEntry& entry);

// Appends `s` to `out` as the inside of a JSON string (quotes not included).
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace fusebox::logging
