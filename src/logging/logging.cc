#include "fusebox/logging/logging.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>

namespace fusebox::logging {
namespace {

constexpr const char* kMainLogger = "fusebox";
constexpr const char* kAccessLogger = "access";

std::atomic<bool> g_access_enabled{false};
std::shared_ptr<spdlog::logger> g_main;
std::shared_ptr<spdlog::logger> g_access;
std::shared_ptr<spdlog::details::thread_pool> g_pool;

void append_timestamp(std::string& out, std::chrono::system_clock::time_point tp) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(tp);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(tp - secs).count();
  fmt::format_to(std::back_inserter(out), "{:%Y-%m-%dT%H:%M:%S}.{:06d}Z",
                 fmt::gmtime(std::chrono::system_clock::to_time_t(tp)), micros);
}

// One JSON object per line; the message is escaped, so any text is safe to log.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(96 + msg.payload.size());
    line += "{\"ts\":\"";
    append_timestamp(line, msg.time);
    line += "\",\"level\":\"";
    auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += "\",\"logger\":\"";
    append_json_escaped(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += "\",\"msg\":\"";
    append_json_escaped(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "\"}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// The access logger's payload is already a complete line (JSON or text).
std::unique_ptr<spdlog::formatter> raw_formatter() {
  return std::make_unique<spdlog::pattern_formatter>("%v");
}

std::unique_ptr<spdlog::formatter> main_formatter(config::LogFormat format) {
  if (format == config::LogFormat::json) return std::make_unique<JsonFormatter>();
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v",
                                                     spdlog::pattern_time_type::utc);
}

spdlog::sink_ptr make_sink(const std::string& file) {
  if (file.empty()) return std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
}

config::LogFormat g_format = config::LogFormat::text;

}  // namespace

void init(const config::LoggingConfig& config) {
  shutdown();
  g_format = config.format;
  g_pool = std::make_shared<spdlog::details::thread_pool>(16384, 1);
  auto main_sink = make_sink(config.file);
  auto access_sink =
      config.access_log_file.empty() ? main_sink : make_sink(config.access_log_file);

  g_main = std::make_shared<spdlog::async_logger>(kMainLogger, main_sink, g_pool,
                                                  spdlog::async_overflow_policy::overrun_oldest);
  g_main->set_formatter(main_formatter(config.format));
  g_main->set_level(spdlog::level::from_str(config.level));
  g_main->flush_on(spdlog::level::warn);

  // The access logger shares the main sink when no separate file is set; a sink keeps one
  // formatter, so a shared sink gets the access lines through a dedicated sink copy.
  if (access_sink == main_sink) access_sink = make_sink(config.file);
  access_sink->set_formatter(raw_formatter());
  g_access = std::make_shared<spdlog::async_logger>(kAccessLogger, access_sink, g_pool,
                                                    spdlog::async_overflow_policy::overrun_oldest);
  g_access->set_formatter(raw_formatter());
  g_access->set_level(spdlog::level::info);
  g_access_enabled.store(config.access_log, std::memory_order_relaxed);
}

void shutdown() {
  g_access_enabled.store(false, std::memory_order_relaxed);
  if (g_main) g_main->flush();
  if (g_access) g_access->flush();
  if (g_pool) {
    auto dropped = g_pool->overrun_counter();
    if (dropped > 0 && g_main) {
      g_main->warn("log queue overflowed: {} lines dropped", dropped);
      g_main->flush();
    }
  }
  g_access.reset();
  g_main.reset();
  g_pool.reset();  // joins the writer thread once the loggers are gone
}

spdlog::logger& log() {
  if (g_main) return *g_main;
  static auto fallback = [] {
    auto l = std::make_shared<spdlog::logger>(
        kMainLogger, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_formatter(main_formatter(config::LogFormat::text));
    return l;
  }();
  return *fallback;
}

bool access_log_enabled() { return g_access_enabled.load(std::memory_order_relaxed) && g_access; }

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}

void access(const AccessLogEntry& e) {
  if (!access_log_enabled()) return;
  std::string line;
  line.reserve(256 + e.path.size());
  if (g_format == config::LogFormat::json) {
    auto str = [&line](const char* key, std::string_view value) {
      line += ",\"";
      line += key;
      line += "\":\"";
      append_json_escaped(line, value);
      line += '"';
    };
    line += "{\"ts\":\"";
    append_timestamp(line, e.time);
    line += "\",\"type\":\"access\"";
    str("request_id", e.request_id);
    str("trace_id", e.trace_id);
    str("client", e.client);
    str("method", e.method);
    str("path", e.path);
    str("route", e.route);
    str("backend", e.backend);
    fmt::format_to(std::back_inserter(line),
                   ",\"status\":{},\"upstream_status\":{},\"bytes_received\":{},"
                   "\"bytes_sent\":{},\"duration_ms\":{:.3f},\"attempts\":{}}}",
                   e.status, e.upstream_status, e.bytes_received, e.bytes_sent,
                   e.duration_seconds * 1e3, e.attempts);
  } else {
    append_timestamp(line, e.time);
    std::string path;
    append_json_escaped(path, e.path);  // keeps control bytes out of text logs too
    fmt::format_to(std::back_inserter(line),
                   " access {} {} {} \"{} {}\" route={} backend={} status={} upstream_status={} "
                   "rx={} tx={} {:.3f}ms attempts={}",
                   e.request_id, e.trace_id, e.client, e.method, path, e.route,
                   e.backend.empty() ? "-" : e.backend, e.status, e.upstream_status,
                   e.bytes_received, e.bytes_sent, e.duration_seconds * 1e3, e.attempts);
  }
  g_access->info(line);
}

}  // namespace fusebox::logging
