#pragma once
// Writing an h2::Output to a socket: its runs as one buffer sequence (lent runs written from
// where they lie), and its memory after the write.

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <utility>
#include <cstddef>
#include <string_view>
#include <vector>

#include "fusebox/common/adaptive_buffer.h"
#include "fusebox/common/io.h"
#include "fusebox/h2/connection.h"

namespace fusebox::io {

inline void output_buffers(const h2::Output& out, std::vector<boost::asio::const_buffer>& buffers) {
  buffers.clear();
  out.for_each([&](std::string_view run) { buffers.emplace_back(run.data(), run.size()); });
}

// After the write: the lent runs are released (their owners may free the bytes), and storage
// grown by a large message is freed (clear_output), so a quiet connection keeps little.
inline void clear_output(h2::Output& out, std::vector<boost::asio::const_buffer>& buffers) {
  constexpr std::size_t kKeptRuns = 8;
  clear_output(out.bytes);
  if (out.lent.capacity() > kKeptRuns) {
    std::vector<h2::Output::Lent>().swap(out.lent);
  } else {
    out.lent.clear();
  }
  if (buffers.capacity() > 2 * kKeptRuns + 1) {
    std::vector<boost::asio::const_buffer>().swap(buffers);
  } else {
    buffers.clear();
  }
}

// What a connection's owner keeps to write its h2::Connection's output: one write at a time.
class OutputWriter {
 public:
  bool writing() const { return writing_; }

  // Takes what `conn` has to send and writes all of it to `socket`; then releases the storage
  // and calls `done(ec)`. `done` must keep the writer's owner alive until it runs.
  template <class Socket, class Done>
  void write(h2::Connection& conn, Socket& socket, Done&& done) {
    conn.take_output(out_);
    output_buffers(out_, buffers_);
    writing_ = true;
    boost::asio::async_write(
        socket, buffers_, TransferAllInLargeSends{},
        [this, done = std::forward<Done>(done)](boost::system::error_code ec, std::size_t) mutable {
          writing_ = false;
          clear_output(out_, buffers_);
          done(ec);
        });
  }

 private:
  h2::Output out_;  // being written
  std::vector<boost::asio::const_buffer> buffers_;
  bool writing_ = false;
};

}  // namespace fusebox::io
