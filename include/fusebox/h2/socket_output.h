#pragma once
// Writing an h2::Output to a socket: its runs as one buffer sequence (lent runs written from
// where they lie), and its memory after the write.

#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <string_view>
#include <vector>

#include "fusebox/common/adaptive_buffer.h"
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

}  // namespace fusebox::io
