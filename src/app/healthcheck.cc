#include "healthcheck.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>

#include "fusebox/common/address.h"

namespace fusebox::app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::optional<ProbeTarget> parse_probe_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return std::nullopt;
  url.remove_prefix(kScheme.size());
  auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  ProbeTarget target;
  target.path = slash == std::string_view::npos ? "/readyz" : std::string(url.substr(slash));
  std::string_view port;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos || authority.substr(close + 1, 1) != ":") return std::nullopt;
    target.host = std::string(authority.substr(1, close - 1));
    port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    target.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
  }
  unsigned number = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (target.host.empty() || port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      number == 0 || number > 65535) {
    return std::nullopt;
  }
  target.port = static_cast<std::uint16_t>(number);
  return target;
}

ProbeResult probe(const ProbeTarget& target, std::chrono::milliseconds timeout) {
  const std::string where = "http://" + host_port(target.host, target.port) + target.path;
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, target.path, 11};
  request.set(http::field::host, target.host);
  request.set(http::field::user_agent, "fusebox-healthcheck");
  request.set(http::field::connection, "close");
  http::response<http::string_body> response;
  beast::error_code failure;
  const char* stage = "resolve";
  auto fail = [&](beast::error_code ec) {
    if (!failure) failure = ec;
  };

  // One deadline for the whole exchange: the stream's timer covers each operation, and the
  // io_context stops at the deadline whatever is pending.
  asio::ip::tcp::resolver resolver(ioc);
  resolver.async_resolve(target.host, std::to_string(target.port), [&](beast::error_code ec, auto endpoints) {
    if (ec) return fail(ec);
    stage = "connect";
    stream.expires_after(timeout);
    stream.async_connect(endpoints, [&](beast::error_code ec, const auto&) {
      if (ec) return fail(ec);
      stage = "send";
      http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
        if (ec) return fail(ec);
        stage = "read";
        http::async_read(stream, buffer, response, [&](beast::error_code ec, std::size_t) {
          if (ec) return fail(ec);
          stage = "done";
        });
      });
    });
  });
  ioc.run_for(timeout);

  ProbeResult result;
  if (failure) {
    result.description = std::string("cannot ") + stage + " " + where + ": " + failure.message();
  } else if (std::string_view(stage) != "done") {
    result.description = "no answer from " + where + " within " +
                         std::to_string(timeout.count()) + " ms (stuck at " + stage + ")";
  } else {
    result.ok = response.result_int() == 200;
    result.description = std::to_string(response.result_int()) + " " +
                         std::string(response.reason()) + " from " + where;
  }
  return result;
}

}  // namespace fusebox::app
