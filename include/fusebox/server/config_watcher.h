#pragma once
// Notices changes of the configuration file with inotify, for hot reload.
//
// The file's directory is watched, not the file: editors save by writing a new file and
// renaming it over the old one, and a Kubernetes ConfigMap volume swaps a `..data` symlink, so
// the inode behind the path changes and a watch on it would go quiet. Events for the file's name
// or for names starting with ".." (the ConfigMap's own entries) count; a burst of them ends in
// one call of `on_change` once `debounce` has passed without another.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <chrono>
#include <functional>
#include <string>

namespace fusebox::server {

class ConfigWatcher {
 public:
  ConfigWatcher(boost::asio::io_context& ioc, std::string path,
                std::chrono::milliseconds debounce, std::function<void()> on_change);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Starts watching; returns an empty string, or why the watch could not be set up (the
  // gateway then logs it and relies on SIGHUP).
  std::string start();
  void stop();

 private:
  void read_events();
  bool concerns_file(std::string_view name) const;

  boost::asio::posix::stream_descriptor events_;
  boost::asio::steady_timer debounce_timer_;
  std::string directory_;
  std::string file_name_;
  std::chrono::milliseconds debounce_;
  std::function<void()> on_change_;
  alignas(8) std::array<char, 8192> buffer_{};
};

}  // namespace fusebox::server
