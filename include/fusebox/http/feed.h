#pragma once
// Reading an HTTP/1.1 message with our own read loop and Beast's parser.
//
// Beast's http::async_read is a composed operation: it tracks outstanding work on the executor,
// and a message that is already whole in the buffer still completes through a posted handler.
// The data path instead hands the parser what the buffer holds (`feed`), and starts a plain
// socket read only when the parser needs more: a message that arrives in one piece (most) is
// parsed in the completion of the read that brought it.

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>

namespace fusebox::http {

// The most one read asks for (Beast's own read loop uses the same bound).
inline constexpr std::size_t kMaxReadSize = 64 * 1024;

// What a read loop waits for.
enum class Until { header, message };

template <bool isRequest>
bool reached(const boost::beast::http::basic_parser<isRequest>& parser, Until until) {
  return until == Until::header ? parser.is_header_done() : parser.is_done();
}

// Gives `parser` what `buffer` holds, consuming what it took, until it has `until` or needs
// more bytes. True when it has `until`; false when more must be read (ec clear) or the bytes
// are not HTTP (ec set: header_limit, body_limit, bad_method, ...).
template <bool isRequest>
bool feed(boost::beast::http::basic_parser<isRequest>& parser, boost::beast::flat_buffer& buffer,
          Until until, boost::beast::error_code& ec) {
  ec = {};
  while (!reached(parser, until)) {
    if (buffer.size() == 0) return false;
    buffer.consume(parser.put(buffer.data(), ec));
    if (ec == boost::beast::http::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return false;
  }
  return true;
}

// Where the next read goes: the buffer's free room, 512 bytes at least, kMaxReadSize at most.
inline auto read_space(boost::beast::flat_buffer& buffer) {
  return buffer.prepare(boost::beast::read_size(buffer, kMaxReadSize));
}

// The peer closed its side before the parser had `until`. A message delimited by the close (a
// response without Content-Length) is complete now; otherwise the error says what was cut:
// end_of_stream when nothing had arrived, partial_message when some had.
template <bool isRequest>
boost::beast::error_code at_end_of_stream(boost::beast::http::basic_parser<isRequest>& parser,
                                          Until until) {
  if (!parser.got_some()) return boost::beast::http::error::end_of_stream;
  boost::beast::error_code ec;
  parser.put_eof(ec);
  if (!ec && !reached(parser, until)) ec = boost::beast::http::error::partial_message;
  return ec;
}

}  // namespace fusebox::http
