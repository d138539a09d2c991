// openloop: an open-loop, constant-rate load generator for TF Serving's REST predict
// (bench/scenario.sh).
//
//   openloop --target HOST:PORT [--model half_plus_two] [--rate 200] [--seconds 10]
//            [--timeout 10] [--max-connections 2000] [--out-csv FILE] [--body JSON]
//
// Request i is due at start + i / rate, whatever happened to the earlier ones: it is sent on an
// idle keep-alive connection, or on a new one when none is idle, so a stalled answer never delays
// the next request (no coordinated omission). Its latency runs from its *scheduled* time, so a
// generator that falls behind shows up in the figures instead of hiding a stall. Each request
// has its own deadline (--timeout seconds, connect included); missing it is an error. A request
// that fails on a reused connection before any byte of an answer came (the server closed it
// while idle) is sent once more on a fresh connection, as HTTP clients do.
//
// Every request is recorded; with --out-csv one line each, in schedule order:
//
//   scheduled_ms,latency_ms,status,error,send_lag_ms
//
// scheduled_ms is the due time after the start, latency_ms the time from it to the complete
// answer (or the failure), status the HTTP status (0 without an answer), error empty for a
// 2xx answer, else http_<status>, timeout, connect_refused, connect_error, reset, closed,
// io_error or no_connection (--max-connections were all busy), and send_lag_ms how late the
// generator itself started the request (a busy machine, not the target). At the end one JSON
// line is printed on stdout:
//
//   {"target": ..., "rate": r, "seconds": s, "start_unix_ms": t, "requests": n, "ok": k,
//    "errors": e, "errors_by_kind": {...}, "statuses": {...}, "p50_ms": ..., "p99_ms": ...,
//    "p999_ms": ..., "max_ms": ..., "connections_opened": c, "max_connections_open": m,
//    "max_send_lag_ms": l}
//
// Percentiles cover every request, failed ones included (a timeout counts its full wait).
// max_send_lag_ms is how late the generator itself sent a request; above a few milliseconds
// the machine, not the target, was the bottleneck. The run is bounded: requests are due for
// --seconds, then the last answers are awaited for at most --timeout. Exit status: 0 when at
// least one request succeeded, 1 when none did, 2 on bad arguments.

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  tcp::endpoint target;
  std::string target_text;
  std::string model = "half_plus_two";
  double rate = 200;
  double seconds = 10;
  double timeout = 10;
  int max_connections = 2000;
  std::string out_csv;
  std::string body = R"({"instances": [1.0, 2.0, 5.0]})";
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(
      stderr,
      "openloop: %s\n"
      "usage: openloop --target HOST:PORT [--model NAME] [--rate PER_S] [--seconds S]\n"
      "                [--timeout S] [--max-connections N] [--out-csv FILE] [--body JSON]\n",
      problem.c_str());
  std::exit(2);
}

double number(const std::string& flag, const std::string& text, double max) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(v) || v <= 0 || v > max) {
    usage(flag + " needs a number above 0 and at most " + std::to_string(static_cast<long>(max)) +
          ", not '" + text + "'");
  }
  return v;
}

tcp::endpoint parse_target(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) usage("--target is HOST:PORT, not '" + text + "'");
  auto host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) usage("--target needs an IP address (or localhost), not '" + host + "'");
  auto port = number("--target port", text.substr(colon + 1), 65535);
  if (port != std::floor(port)) usage("--target port must be a whole number");
  return {address, static_cast<unsigned short>(port)};
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("an open-loop, constant-rate REST predict load");
    if (i + 1 >= argc) usage(flag + " needs a value");
    std::string value = argv[i + 1];
    if (flag == "--target") {
      o.target = parse_target(value);
      o.target_text = value;
    } else if (flag == "--model") {
      if (value.empty() || value.find_first_of("/?# ") != std::string::npos) {
        usage("--model needs a plain model name, not '" + value + "'");
      }
      o.model = value;
    } else if (flag == "--rate") {
      o.rate = number(flag, value, 100000);
    } else if (flag == "--seconds") {
      o.seconds = number(flag, value, 86400);
    } else if (flag == "--timeout") {
      o.timeout = number(flag, value, 3600);
    } else if (flag == "--max-connections") {
      auto n = number(flag, value, 60000);
      if (n != std::floor(n)) usage("--max-connections must be a whole number");
      o.max_connections = static_cast<int>(n);
    } else if (flag == "--out-csv") {
      if (value.empty()) usage("--out-csv needs a file name");
      o.out_csv = value;
    } else if (flag == "--body") {
      o.body = value;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (o.target_text.empty()) usage("--target HOST:PORT is required");
  if (o.rate * o.seconds < 1) usage("--rate x --seconds must be at least one request");
  if (o.rate * o.seconds > 50'000'000) usage("--rate x --seconds is above 50 million requests");
  return o;
}

// The outcome of one scheduled request.
struct Record {
  std::int64_t latency_us = -1;  // -1: not finished
  std::int64_t send_lag_us = 0;
  int status = 0;
  std::string error;  // empty for a 2xx answer
};

struct Connection {
  explicit Connection(asio::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  bool dropped = false;
};

class Load {
 public:
  explicit Load(Options o)
      : o_(std::move(o)),
        period_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / o_.rate))),
        total_(static_cast<std::size_t>(std::llround(o_.rate * o_.seconds))),
        records_(total_),
        tick_(ioc_),
        watchdog_(ioc_) {
    request_.method(http::verb::post);
    request_.target("/v1/models/" + o_.model + ":predict");
    request_.version(11);
    request_.set(http::field::host, o_.target_text);
    request_.set(http::field::user_agent, "fusebox-openloop");
    request_.set(http::field::content_type, "application/json");
    request_.keep_alive(true);
    request_.body() = o_.body;
    request_.prepare_payload();
  }

  int run() {
    start_ = Clock::now();
    start_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    // Hard bound: every request is due by `seconds` and ends by its deadline.
    watchdog_.expires_at(start_ + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o_.seconds + o_.timeout + 5)));
    watchdog_.async_wait([this](beast::error_code ec) {
      if (!ec) {
        std::fprintf(stderr, "openloop: watchdog: %zu requests still unfinished, stopping\n",
                     outstanding_);
        ioc_.stop();
      }
    });
    schedule_next();
    ioc_.run();
    return report();
  }

 private:
  struct Exchange {
    std::size_t index;
    Clock::time_point scheduled;
    Clock::time_point deadline;
    std::shared_ptr<Connection> conn;
    bool reused = false;
    bool resent = false;
    http::response<http::string_body> response;
  };

  Clock::time_point due(std::size_t i) const {
    return start_ + period_ * static_cast<std::int64_t>(i);
  }

  void schedule_next() {
    auto now = Clock::now();
    while (next_ < total_ && due(next_) <= now) {
      max_lag_ = std::max(max_lag_, now - due(next_));
      records_[next_].send_lag_us =
          std::chrono::duration_cast<std::chrono::microseconds>(now - due(next_)).count();
      launch(next_++);
    }
    if (next_ >= total_) {
      maybe_finish();
      return;
    }
    tick_.expires_at(due(next_));
    tick_.async_wait([this](beast::error_code ec) {
      if (!ec) schedule_next();
    });
  }

  void launch(std::size_t i) {
    auto x = std::make_shared<Exchange>();
    x->index = i;
    x->scheduled = due(i);
    x->deadline = x->scheduled + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(o_.timeout));
    ++outstanding_;
    if (!idle_.empty()) {
      x->conn = std::move(idle_.back());
      idle_.pop_back();
      x->reused = true;
      send(x);
      return;
    }
    connect(x);
  }

  void connect(const std::shared_ptr<Exchange>& x) {
    if (open_ >= o_.max_connections) return finish(x, 0, "no_connection");
    x->conn = std::make_shared<Connection>(ioc_);
    x->reused = false;
    ++open_;
    ++opened_;
    max_open_ = std::max(max_open_, open_);
    x->conn->stream.expires_at(x->deadline);
    x->conn->stream.async_connect(o_.target, [this, x](beast::error_code ec) {
      if (ec) {
        drop(x);
        if (ec == beast::error::timeout) return finish(x, 0, "timeout");
        if (ec == asio::error::connection_refused) return finish(x, 0, "connect_refused");
        return finish(x, 0, "connect_error");
      }
      x->conn->stream.socket().set_option(tcp::no_delay(true));
      send(x);
    });
  }

  void send(const std::shared_ptr<Exchange>& x) {
    x->conn->stream.expires_at(x->deadline);
    http::async_write(x->conn->stream, request_, [this, x](beast::error_code ec, std::size_t) {
      if (ec) return failed(x, ec);
      x->conn->buffer.clear();
      http::async_read(x->conn->stream, x->conn->buffer, x->response,
                       [this, x](beast::error_code ec, std::size_t bytes) {
                         if (ec) return failed(x, ec, bytes);
                         x->conn->stream.expires_never();
                         int status = x->response.result_int();
                         std::string error =
                             status / 100 == 2 ? "" : "http_" + std::to_string(status);
                         if (x->response.keep_alive()) {
                           idle_.push_back(std::move(x->conn));
                         } else {
                           drop(x);
                         }
                         finish(x, status, std::move(error));
                       });
    });
  }

  // `bytes_read`: how much of an answer had arrived (0 when the write failed).
  void failed(const std::shared_ptr<Exchange>& x, beast::error_code ec,
              std::size_t bytes_read = 0) {
    drop(x);
    if (ec == beast::error::timeout) return finish(x, 0, "timeout");
    bool nothing_came = bytes_read == 0 && x->conn->buffer.size() == 0;
    bool closed = ec == http::error::end_of_stream || ec == asio::error::eof ||
                  ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
    if (x->reused && !x->resent && closed && nothing_came) {
      // The server closed this idle connection as we reused it: it cannot have seen the request.
      x->resent = true;
      x->response = {};
      return connect(x);
    }
    if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
      return finish(x, 0, "reset");
    if (closed || ec == http::error::partial_message) return finish(x, 0, "closed");
    return finish(x, 0, "io_error");
  }

  // Closes the exchange's connection and forgets it (it is never reused).
  void drop(const std::shared_ptr<Exchange>& x) {
    if (!x->conn || x->conn->dropped) return;
    x->conn->dropped = true;
    beast::error_code ignored;
    x->conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    x->conn->stream.close();
    --open_;
    x->conn->stream.expires_never();
    // Keep the object (its buffer tells failed() whether an answer had started); a resend's
    // connect() replaces it.
  }

  void finish(const std::shared_ptr<Exchange>& x, int status, std::string error) {
    auto& r = records_[x->index];
    r.latency_us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - x->scheduled).count();
    r.status = status;
    r.error = std::move(error);
    --outstanding_;
    maybe_finish();
  }

  void maybe_finish() {
    if (next_ < total_ || outstanding_ > 0 || done_) return;
    done_ = true;
    tick_.cancel();
    watchdog_.cancel();
    for (auto& c : idle_) c->stream.close();
    idle_.clear();
  }

  static double percentile(const std::vector<std::int64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return static_cast<double>(sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1]) / 1e3;
  }

  int report() {
    std::map<std::string, std::size_t> errors_by_kind;
    std::map<int, std::size_t> statuses;
    std::vector<std::int64_t> latencies;
    latencies.reserve(records_.size());
    std::size_t ok = 0;
    std::size_t requests = 0;
    for (auto& r : records_) {
      if (r.latency_us < 0) continue;  // only after the watchdog fired
      ++requests;
      latencies.push_back(r.latency_us);
      if (r.status != 0) ++statuses[r.status];
      if (r.error.empty()) {
        ++ok;
      } else {
        ++errors_by_kind[r.error];
      }
    }
    if (requests < records_.size()) errors_by_kind["unfinished"] = records_.size() - requests;
    std::sort(latencies.begin(), latencies.end());

    if (!o_.out_csv.empty()) {
      std::FILE* f = std::fopen(o_.out_csv.c_str(), "w");
      if (f == nullptr) {
        std::fprintf(stderr, "openloop: cannot write %s\n", o_.out_csv.c_str());
        return 1;
      }
      std::fputs("scheduled_ms,latency_ms,status,error,send_lag_ms\n", f);
      for (std::size_t i = 0; i < records_.size(); ++i) {
        const auto& r = records_[i];
        auto scheduled_ms =
            std::chrono::duration<double, std::milli>(period_ * static_cast<std::int64_t>(i))
                .count();
        if (r.latency_us < 0) {
          std::fprintf(f, "%.3f,,0,unfinished,\n", scheduled_ms);
        } else {
          std::fprintf(f, "%.3f,%.3f,%d,%s,%.3f\n", scheduled_ms,
                       static_cast<double>(r.latency_us) / 1e3, r.status, r.error.c_str(),
                       static_cast<double>(r.send_lag_us) / 1e3);
        }
      }
      std::fclose(f);
    }

    std::string kinds;
    for (const auto& [k, n] : errors_by_kind)
      kinds += (kinds.empty() ? "" : ", ") + ("\"" + k + "\": ") + std::to_string(n);
    std::string codes;
    for (const auto& [s, n] : statuses)
      codes +=
          (codes.empty() ? "" : ", ") + ("\"" + std::to_string(s) + "\": ") + std::to_string(n);
    auto errors = records_.size() - ok;
    std::printf(
        "{\"target\": \"%s\", \"rate\": %g, \"seconds\": %g, \"timeout_s\": %g, \"start_unix_ms\": "
        "%lld, "
        "\"requests\": %zu, \"ok\": %zu, \"errors\": %zu, \"errors_by_kind\": {%s}, \"statuses\": "
        "{%s}, "
        "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
        "\"connections_opened\": %d, "
        "\"max_connections_open\": %d, \"max_send_lag_ms\": %.3f}\n",
        o_.target_text.c_str(), o_.rate, o_.seconds, o_.timeout,
        static_cast<long long>(start_unix_ms_), records_.size(), ok, errors, kinds.c_str(),
        codes.c_str(), percentile(latencies, 0.50), percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies.empty() ? 0.0 : static_cast<double>(latencies.back()) / 1e3, opened_, max_open_,
        std::chrono::duration<double, std::milli>(max_lag_).count());
    std::fflush(stdout);
    return ok > 0 ? 0 : 1;
  }

  Options o_;
  Clock::duration period_;
  std::size_t total_;
  std::vector<Record> records_;
  asio::io_context ioc_{1};
  asio::steady_timer tick_;
  asio::steady_timer watchdog_;
  http::request<http::string_body> request_;
  std::vector<std::shared_ptr<Connection>> idle_;
  Clock::time_point start_;
  long long start_unix_ms_ = 0;
  std::size_t next_ = 0;
  std::size_t outstanding_ = 0;
  int open_ = 0;
  int opened_ = 0;
  int max_open_ = 0;
  Clock::duration max_lag_{};
  bool done_ = false;
};

// A few thousand connections may be open at once when the target stalls.
void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto options = parse(argc, argv);
  if (!options.out_csv.empty()) {
    // Fail before the run, not after it.
    std::FILE* f = std::fopen(options.out_csv.c_str(), "w");
    if (f == nullptr) usage("cannot write --out-csv " + options.out_csv);
    std::fclose(f);
  }
  raise_file_limit();
  auto load = std::make_unique<Load>(std::move(options));
  return load->run();
}
