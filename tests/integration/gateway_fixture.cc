#include "gateway_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fusebox_it {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A socket bound to 127.0.0.1:0 (listening when `listen_too`); returns the fd and the port.
std::pair<int, std::uint16_t> bind_ephemeral(bool listen_too) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  auto addr = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      (listen_too && ::listen(fd, 16) != 0)) {
    const std::string message = std::string("bind/listen: ") + std::strerror(errno);
    ::close(fd);
    throw std::runtime_error(message);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return {fd, ntohs(addr.sin_port)};
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// "ADDRESS:PORT" (IPv4 or bare IPv6; the port follows the last colon).
bool parse_host_port(std::string_view text, std::string& address, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  const auto p = parse_port(text.substr(colon + 1));
  if (!p) return false;
  address = std::string(text.substr(0, colon));
  port = *p;
  return true;
}

std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

}  // namespace

std::string fusebox_path() {
  if (const char* env = std::getenv("FUSEBOX_BIN"); env != nullptr && *env != '\0') return env;
  return FUSEBOX_BIN;
}

std::string source_dir() { return FUSEBOX_SOURCE_DIR; }

bool wait_until(const std::function<bool()>& condition, Millis timeout, Millis interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::min(interval, Millis{remaining_ms(deadline) + 1}));
  }
}

TempFile::TempFile(std::string_view content, std::string_view suffix) {
  std::string pattern = temp_dir() + "/fusebox-it-XXXXXX" + std::string(suffix);
  const int fd = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw std::runtime_error("mkstemps: " + std::string(std::strerror(errno)));
  std::string_view rest = content;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(pattern.c_str());
      throw std::runtime_error("write " + pattern + ": " + std::strerror(errno));
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(fd);
  path_ = std::move(pattern);
}

TempFile::~TempFile() { ::unlink(path_.c_str()); }

std::uint16_t unused_port() {
  auto [fd, port] = bind_ephemeral(false);
  ::close(fd);
  return port;
}

HeldPort::HeldPort() { std::tie(fd_, port_) = bind_ephemeral(true); }

HeldPort::~HeldPort() {
  if (fd_ >= 0) ::close(fd_);
}

GatewayConfig single_route_config(std::vector<std::uint16_t> ports, std::string timeout) {
  GatewayConfig config;
  PoolSpec pool;
  pool.ports = std::move(ports);
  config.pools.push_back(std::move(pool));
  RouteSpec route;
  route.timeout = std::move(timeout);
  config.routes.push_back(std::move(route));
  return config;
}

GatewayConfig single_attempt_config(std::vector<std::uint16_t> ports, std::string timeout) {
  GatewayConfig config = single_route_config(std::move(ports), std::move(timeout));
  config.pools[0].health_check = kHealthChecksOff;
  config.pools[0].extra.emplace_back(kBreakerOff);
  config.routes[0].extra.emplace_back(kSingleAttempt);
  return config;
}

std::string to_yaml(const GatewayConfig& config) {
  std::ostringstream y;
  y << "server:\n"
    << "  threads: " << config.threads << "\n"
    << "drain:\n"
    << "  delay: " << config.drain_delay << "\n"
    << "  timeout: " << config.drain_timeout << "\n"
    << "listeners:\n"
    << "  http:\n"
    << "    address: 127.0.0.1\n"
    << "    port: " << config.http_port << "\n";
  for (const auto& line : config.http) y << "    " << line << "\n";
  y << "  admin:\n"
    << "    address: 127.0.0.1\n"
    << "    port: " << config.admin_port << "\n";
  for (const auto& line : config.admin_lines) y << "    " << line << "\n";
  if (config.grpc) {
    y << "  grpc:\n"
      << "    address: 127.0.0.1\n"
      << "    port: 0\n";
    for (const auto& line : config.grpc_lines) y << "    " << line << "\n";
  }
  y << "pools:\n";
  for (const auto& pool : config.pools) {
    y << "  " << pool.name << ":\n"
      << "    endpoints:\n";
    for (std::size_t i = 0; i < pool.ports.size(); ++i) {
      y << "      - {address: 127.0.0.1, port: " << pool.ports[i];
      if (i < pool.grpc_ports.size()) y << ", grpc_port: " << pool.grpc_ports[i];
      y << "}\n";
    }
    y << "    health_check: " << pool.health_check << "\n";
    for (const auto& line : pool.extra) y << "    " << line << "\n";
  }
  y << "routes:\n";
  for (const auto& route : config.routes) {
    y << "  - name: " << route.name << "\n"
      << "    match: {model: \"" << route.model << "\"}\n"
      << "    pool: " << route.pool << "\n"
      << "    timeout: " << route.timeout << "\n";
    for (const auto& line : route.extra) y << "    " << line << "\n";
  }
  y << "logging:\n"
    << "  level: " << config.log_level << "\n"
    << "  format: text\n"
    << "  access_log: " << (config.access_log ? "true" : "false") << "\n";
  for (const auto& line : config.top_level) y << line << "\n";
  return y.str();
}

std::optional<ListeningLine> parse_listening_line(std::string_view line) {
  constexpr std::string_view kHttp = "listening http=";
  constexpr std::string_view kAdmin = " admin=";
  if (!line.starts_with(kHttp)) return std::nullopt;
  constexpr std::string_view kGrpc = " grpc=";
  const auto admin = line.find(kAdmin);
  if (admin == std::string_view::npos) return std::nullopt;
  ListeningLine out;
  auto grpc = line.find(kGrpc);
  auto admin_end = grpc == std::string_view::npos ? line.size() : grpc;
  if (!parse_host_port(line.substr(kHttp.size(), admin - kHttp.size()), out.http_address,
                       out.http_port) ||
      !parse_host_port(line.substr(admin + kAdmin.size(), admin_end - admin - kAdmin.size()),
                       out.admin_address, out.admin_port)) {
    return std::nullopt;
  }
  if (grpc != std::string_view::npos) {
    std::string address;
    if (!parse_host_port(line.substr(grpc + kGrpc.size()), address, out.grpc_port)) {
      return std::nullopt;
    }
  }
  return out;
}

FuseboxProcess::FuseboxProcess(std::unique_ptr<TempFile> config, ChildProcess process)
    : config_(std::move(config)), process_(std::move(process)) {}

FuseboxProcess::~FuseboxProcess() {
  if (!exit_code_) stop();
}

std::unique_ptr<FuseboxProcess> FuseboxProcess::start(const GatewayConfig& config) {
  auto file = std::make_unique<TempFile>(to_yaml(config));
  fusebox_test::SpawnOptions options;
  options.capture_stderr = true;
  auto child = ChildProcess::spawn(fusebox_path(), {"--config", file->path()}, options);
  std::unique_ptr<FuseboxProcess> fusebox(new FuseboxProcess(std::move(file), std::move(child)));
  const auto line = fusebox->process_.read_line(Millis{10000});
  const auto parsed = line ? parse_listening_line(*line) : std::nullopt;
  if (!parsed) {
    const int code = fusebox->stop(Millis{2000});
    throw std::runtime_error("fusebox did not report its ports (first stdout line: '" +
                             line.value_or("<none>") + "', exit " + std::to_string(code) +
                             "); stderr:\n" + fusebox->stderr_text() + "\nconfig:\n" +
                             to_yaml(config));
  }
  fusebox->http_port_ = parsed->http_port;
  fusebox->admin_port_ = parsed->admin_port;
  fusebox->grpc_port_ = parsed->grpc_port;
  return fusebox;
}

int FuseboxProcess::stop(Millis grace) {
  if (!exit_code_) exit_code_ = process_.stop(SIGTERM, grace);
  return *exit_code_;
}

std::optional<double> metric_value(std::string_view exposition, std::string_view series) {
  std::size_t pos = 0;
  while (pos < exposition.size()) {
    auto end = exposition.find('\n', pos);
    if (end == std::string_view::npos) end = exposition.size();
    const std::string_view line = exposition.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
      const std::string value(line.substr(series.size() + 1));
      char* parse_end = nullptr;
      const double v = std::strtod(value.c_str(), &parse_end);
      if (parse_end == value.c_str()) return std::nullopt;
      return v;
    }
  }
  return std::nullopt;
}

bool is_hex32(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool is_version00_traceparent(std::string_view s) {
  auto hex = [](std::string_view part) {
    for (char c : part) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return !part.empty();
  };
  auto zero = [](std::string_view part) {
    return part.find_first_not_of('0') == std::string_view::npos;
  };
  return s.size() == 55 && s.substr(0, 3) == "00-" && s[35] == '-' && s[52] == '-' &&
         hex(s.substr(3, 32)) && hex(s.substr(36, 16)) && hex(s.substr(53, 2)) &&
         !zero(s.substr(3, 32)) && !zero(s.substr(36, 16));
}

// ---- RawSocket ---------------------------------------------------------------------------

RawSocket::RawSocket(std::uint16_t port, Millis timeout) : timeout_(timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto addr = loopback(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string message =
        "connect to port " + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(message);
  }
}

RawSocket::~RawSocket() {
  if (fd_ >= 0) ::close(fd_);
}

void RawSocket::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

bool RawSocket::fill() {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
  if (ready <= 0) return false;
  char buf[65536];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) return false;
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> RawSocket::read_until(std::string_view needle) {
  for (;;) {
    if (const auto at = buffer_.find(needle); at != std::string::npos) {
      std::string out = buffer_.substr(0, at + needle.size());
      buffer_.erase(0, at + needle.size());
      return out;
    }
    if (!fill()) return std::nullopt;
  }
}

std::optional<HttpResponse> RawSocket::read_response() {
  const auto head = read_until("\r\n\r\n");
  if (!head) return std::nullopt;
  HttpResponse r;
  std::istringstream lines(*head);
  std::string line;
  std::getline(lines, line);
  if (line.size() < 12 || !line.starts_with("HTTP/")) return std::nullopt;
  r.version = line.substr(0, 8);
  r.status = std::atoi(line.substr(9, 3).c_str());
  r.reason = line.size() > 13 ? line.substr(13) : std::string();
  if (!r.reason.empty() && r.reason.back() == '\r') r.reason.pop_back();
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string::npos) return std::nullopt;
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(line.substr(0, colon), value);
  }
  const auto length = r.header("Content-Length");
  const std::size_t n = length ? static_cast<std::size_t>(std::stoull(*length)) : 0;
  while (buffer_.size() < n) {
    if (!fill()) return std::nullopt;
  }
  r.body = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return r;
}

bool RawSocket::closed_by_peer() {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

// ---- GatewayTest -------------------------------------------------------------------------

void GatewayTest::TearDown() {
  if (gateway_ && !gateway_->stopped()) {
    const int code = gateway_->stop();
    EXPECT_EQ(code, 0) << "fusebox did not exit cleanly on SIGTERM; stderr:\n"
                       << gateway_->stderr_text();
  }
  if (gateway_ && HasFailure()) {
    std::cerr << "---- fusebox stderr ----\n"
              << gateway_->stderr_text() << "------------------------\n";
  }
  gateway_.reset();
  sims_.clear();
}

TfsSim& GatewayTest::start_sim(const std::vector<std::string>& args) {
  sims_.push_back(std::make_unique<TfsSim>(fusebox_test::start_tfs_sim(args)));
  return *sims_.back();
}

std::vector<std::uint16_t> GatewayTest::start_sims(std::size_t n,
                                                   const std::vector<std::string>& args) {
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) ports.push_back(start_sim(args).port);
  return ports;
}

void GatewayTest::kill_sim(std::size_t i) { sims_.at(i)->process.stop(SIGKILL); }

bool GatewayTest::restart_sim_on_same_port(std::size_t i, const std::vector<std::string>& args) {
  const std::uint16_t port = sims_.at(i)->port;
  kill_sim(i);
  std::vector<std::string> full = args;
  full.push_back("--rest-port");
  full.push_back(std::to_string(port));
  try {
    auto sim = fusebox_test::start_tfs_sim(full);
    if (sim.port != port) return false;
    sims_[i] = std::make_unique<TfsSim>(std::move(sim));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

FuseboxProcess& GatewayTest::start_gateway(const GatewayConfig& config) {
  gateway_ = FuseboxProcess::start(config);
  return *gateway_;
}

nlohmann::json GatewayTest::admin_json(std::string_view path) const {
  auto admin = admin_client();
  return fusebox_test::json_of(admin.get(path));
}

std::string GatewayTest::metrics_text() const {
  auto admin = admin_client();
  auto response = admin.get("/metrics");
  EXPECT_EQ(response.status, 200);
  return response.body;
}

nlohmann::json GatewayTest::sim_stats(std::uint16_t sim_port) {
  HttpClient sim(sim_port);
  return fusebox_test::json_of(sim.get("/sim/stats"));
}

void GatewayTest::set_sim_faults(std::uint16_t sim_port, const nlohmann::json& faults) {
  HttpClient sim(sim_port);
  auto response = sim.post("/sim/faults", faults.dump());
  if (response.status != 200) {
    throw std::runtime_error("POST /sim/faults " + faults.dump() + " -> " +
                             std::to_string(response.status) + " " + response.body);
  }
}

nlohmann::json GatewayTest::backend_json(std::string_view pool, std::size_t index) const {
  return admin_json("/admin/backends").at("pools").at(std::string(pool)).at("backends").at(index);
}

bool GatewayTest::wait_all_backends_health(std::string expected, Millis timeout) const {
  return wait_until(
      [&] {
        const auto backends = admin_json("/admin/backends");
        for (const auto& [name, pool] : backends.at("pools").items()) {
          for (const auto& b : pool.at("backends")) {
            if (b.at("health") != expected) return false;
          }
        }
        return true;
      },
      timeout);
}

bool GatewayTest::wait_backend_health(std::string_view pool, std::size_t index,
                                      std::string expected, Millis timeout) const {
  return wait_until([&] { return backend_json(pool, index).at("health") == expected; }, timeout);
}

bool GatewayTest::wait_readyz(int status, Millis timeout) const {
  return wait_until([&] { return admin_client().get("/readyz").status == status; }, timeout);
}

}  // namespace fusebox_it
