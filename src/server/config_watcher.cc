#include "fusebox/server/config_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fusebox::server {

namespace asio = boost::asio;

ConfigWatcher::ConfigWatcher(asio::io_context& ioc, std::string path,
                             std::chrono::milliseconds debounce, std::function<void()> on_change)
    : events_(ioc), debounce_timer_(ioc), debounce_(debounce), on_change_(std::move(on_change)) {
  auto slash = path.rfind('/');
  directory_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  file_name_ = slash == std::string::npos ? path : path.substr(slash + 1);
}

ConfigWatcher::~ConfigWatcher() { stop(); }

std::string ConfigWatcher::start() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return std::string("inotify_init1: ") + std::strerror(errno);
  constexpr std::uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY;
  if (::inotify_add_watch(fd, directory_.c_str(), kMask) < 0) {
    std::string error = "cannot watch " + directory_ + ": " + std::strerror(errno);
    ::close(fd);
    return error;
  }
  events_.assign(fd);
  read_events();
  return {};
}

void ConfigWatcher::stop() {
  boost::system::error_code ec;
  debounce_timer_.cancel();
  events_.close(ec);
}

bool ConfigWatcher::concerns_file(std::string_view name) const {
  return name == file_name_ || name.starts_with("..");
}

void ConfigWatcher::read_events() {
  events_.async_read_some(asio::buffer(buffer_), [this](boost::system::error_code ec,
                                                        std::size_t n) {
    if (ec) return;  // closed (stop) or failed: SIGHUP still reloads
    bool relevant = false;
    for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
      inotify_event event;
      std::memcpy(&event, buffer_.data() + at, sizeof event);
      std::string_view name;
      if (event.len > 0) {
        name = std::string_view(buffer_.data() + at + sizeof(inotify_event), event.len);
        name = name.substr(0, name.find('\0'));
      }
      if (concerns_file(name) || (event.mask & IN_Q_OVERFLOW)) relevant = true;
      at += sizeof(inotify_event) + event.len;
    }
    if (relevant) {
      debounce_timer_.expires_after(debounce_);
      debounce_timer_.async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec) on_change_();
      });
    }
    read_events();
  });
}

}  // namespace fusebox::server
