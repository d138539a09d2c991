#pragma once
// Reading a socket the way an edge-triggered event loop does (nginx keeps a "ready" flag per
// connection), on Asio's reactor.
//
// Asio registers each socket with epoll once, edge-triggered, and an edge that arrives while no
// read is queued on the socket is dropped. So that bytes which came meanwhile are not missed,
// every async_read_some first tries the read at once, and every async_wait re-arms the socket
// with epoll_ctl. On a request/answer connection that try nearly always finds nothing: the
// client's next request cannot come before its answer has gone out, nor a backend's answer
// before the request has. A proxied request paid two empty receives for them.
//
// A ReadWatch keeps an operation queued on its socket while it is not reading, so the reactor
// hands it every edge; it remembers whether bytes may have come since the socket was last
// found empty (`ready`). A read or wait then starts at once only when they may have, and
// otherwise takes over the queued operation: no system call until the bytes are there.
// "Found empty" comes from the kernel: with TCP_INQ every receive also says what it left
// behind, counting a close that came right after the bytes (whose edge was spent with theirs;
// nginx learns the same from EPOLLRDHUP). Where the count is not available, every receive
// leaves the watch ready: correct, only without the saving.
//
// Rules:
// - Every read-side operation on the socket goes through its watch: an Asio read or wait on
//   the socket would queue behind the watch's operation and never run. Writes are unaffected.
// - One thread runs the socket's io_context (the watch's state is not locked).
// - A watching operation does not count as work: io_context::run() returns as it would with
//   the socket idle. Cancelling or closing the socket ends it; a pending read or wait then
//   completes with operation_aborted, as Asio's own do.
// - The watch may be destroyed before its socket; the socket (the reference given) must
//   outlive the operations the watch starts on it, as with Asio's own operations.
//
// Built on the reactor interface of Boost 1.81 (boost::asio::detail: reactor_op, start_op),
// which Asio's own socket operations use; read_watch.cc refuses to build against another
// version rather than guess at its internals.

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "fusebox/common/inline_function.h"
#include "fusebox/common/io.h"

namespace fusebox::io {

class ReadWatch {
 public:
  explicit ReadWatch(Socket& socket) : socket_(socket) {}
  ~ReadWatch();
  ReadWatch(const ReadWatch&) = delete;
  ReadWatch& operator=(const ReadWatch&) = delete;

  // As Socket::async_read_some: handler(ec, bytes), never called from within this call.
  template <class Handler>
  void async_read_some(boost::asio::mutable_buffer buffer, Handler&& handler) {
    start(Mode::read, buffer, Callback(std::forward<Handler>(handler)));
  }

  // As Socket::async_wait(wait_read): handler(ec) once bytes (or the peer's close, or an error)
  // are there to read, never called from within this call.
  template <class Handler>
  void async_wait(Handler&& handler) {
    start(Mode::wait, {},
          Callback([h = std::forward<Handler>(handler)](boost::system::error_code ec,
                                                        std::size_t) mutable { h(ec); }));
  }

  // Reads what has arrived without waiting: 0 with would_block when nothing has.
  std::size_t read_now(boost::asio::mutable_buffer buffer, boost::system::error_code& ec);

  // Whether bytes may have arrived since the socket was last found empty.
  bool ready() const { return ready_; }
  // Receives that found nothing so far (the cost this class exists to avoid; for tests).
  std::uint64_t empty_receives() const { return empty_receives_; }

 private:
  enum class Mode : std::uint8_t { watch, read, wait };
  // Room for the handlers of the data path (a shared_ptr and an index); a larger one is kept
  // on the heap. Every open connection holds one while it watches, so it is small.
  using Callback = InlineFunction<void(boost::system::error_code, std::size_t), 24>;
  class Op;

  void start(Mode mode, boost::asio::mutable_buffer buffer, Callback callback);
  // Receives into `buffer` now: the bytes, or 0 with would_block, eof or an error in `ec`.
  std::size_t receive(boost::asio::mutable_buffer buffer, bool peek, boost::system::error_code& ec);
  // Queues `op` on the socket; its first perform is the reactor's immediate try, made only
  // when `try_now`.
  void queue(Op* op, bool try_now);
  void complete_later(Callback callback, boost::system::error_code ec, std::size_t n);

  Socket& socket_;
  Op* op_ = nullptr;  // queued on the socket (watching, reading or waiting), or none
  int inq_fd_ = -1;   // the descriptor TCP_INQ was asked for
  bool inq_ = false;  // whether receives on it report what is left to read
  bool ready_ = true;
  std::uint64_t empty_receives_ = 0;
};

}  // namespace fusebox::io
