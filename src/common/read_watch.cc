#include "fusebox/common/read_watch.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/version.hpp>
#include <cerrno>
#include <cstring>

#if BOOST_VERSION != 108100
#error "io::ReadWatch is written against the reactor interface of Boost 1.81: check it first"
#endif

namespace fusebox::io {
namespace {

namespace asio = boost::asio;
namespace detail = boost::asio::detail;

// basic_socket keeps its implementation (descriptor, state, reactor registration) protected;
// a derived type may name it.
struct SocketAccess : Socket {
  static auto& implementation(Socket& socket) {
    return (socket.*(&SocketAccess::impl_)).get_implementation();
  }
};

// The reactor and the scheduler of one io_context, found once (a service lookup takes the
// context's lock), for the operations of every watch on its sockets.
class WatchServices final : public asio::execution_context::service {
 public:
  using key_type = WatchServices;
  static inline asio::execution_context::id id;

  explicit WatchServices(asio::execution_context& context)
      : service(context),
        reactor(asio::use_service<detail::reactor>(context)),
        scheduler(asio::use_service<detail::scheduler>(context)) {}

  detail::reactor& reactor;
  detail::scheduler& scheduler;

 private:
  void shutdown() override {}
};

}  // namespace

// The operation a watch keeps queued on its socket. Watching, its perform only notes an edge
// and stays queued; reading or waiting, it receives (or peeks) and completes once something is
// there. One per watch, reused for as long as it stays queued; freed when the socket's queue
// lets go of it (cancel, close, end of stream, an error) or when the io_context is destroyed.
class ReadWatch::Op final : public detail::reactor_op {
 public:
  Op(ReadWatch* owner, WatchServices& services)
      : reactor_op(boost::system::error_code(), &Op::do_perform, &Op::do_complete),
        watch(owner),
        services(services) {}

  ReadWatch* watch;  // null once the watch is gone
  WatchServices& services;
  Mode mode = Mode::watch;
  bool trying = false;   // within start_op, whose first perform is its immediate try
  bool try_now = false;  // whether that try receives; if not, the operation is just queued
  bool counted = false;  // holds a unit of the scheduler's outstanding work
  asio::mutable_buffer buffer;
  Callback callback;

  // Watching: not work (a socket that is merely open does not keep run() going); reading or
  // waiting: work, as any pending operation.
  void set_counted(bool value) {
    if (value == counted) return;
    counted = value;
    if (value) {
      services.scheduler.work_started();
    } else {
      services.scheduler.work_finished();
    }
  }

 private:
  static status do_perform(reactor_op* base) {
    auto* op = static_cast<Op*>(base);
    if (op->trying && !op->try_now) return not_done;
    if (op->mode == Mode::watch) {
      if (op->watch) op->watch->ready_ = true;  // bytes, the peer's close or an error
      return not_done;
    }
    if (!op->watch) {  // its watch went while a read was queued: the socket is closing
      op->ec_ = asio::error::operation_aborted;
      return done;
    }
    boost::system::error_code ec;
    const std::size_t n = op->watch->receive(op->buffer, op->mode == Mode::wait, ec);
    if (ec == asio::error::would_block) return not_done;
    // A wait reports readability, whatever is there to read (bytes, the close, an error).
    op->ec_ = op->mode == Mode::wait ? boost::system::error_code() : ec;
    op->bytes_transferred_ = op->mode == Mode::wait ? 0 : n;
    return done;
  }

  // Runs when the reactor lets go of the operation: it read or waited, or it was cancelled
  // (the socket's cancel or close, or a bad descriptor), or (owner null) its io_context is
  // being destroyed.
  static void do_complete(void* owner, detail::scheduler_operation* base,
                          const boost::system::error_code&, std::size_t) {
    auto* op = static_cast<Op*>(base);
    ReadWatch* watch = op->watch;
    if (!owner) {  // destroyed unrun: no upcall
      if (watch) watch->op_ = nullptr;
      delete op;
      return;
    }
    // The scheduler counts this completion as finished work: an operation that was only
    // watching did not hold a unit.
    if (!op->counted) static_cast<detail::scheduler*>(owner)->compensating_work_started();
    op->counted = false;
    const boost::system::error_code ec = op->ec_;
    const std::size_t n = op->bytes_transferred_;
    const Mode mode = op->mode;
    Callback callback = std::move(op->callback);
    if (!watch) {
      delete op;
    } else if (ec || mode == Mode::watch) {
      // Cancelled, closed, the end of the stream or an error: the next operation starts
      // afresh, with an immediate try.
      watch->op_ = nullptr;
      watch->ready_ = true;
      delete op;
    } else {
      // Bytes read, or readable (the receive noted whether more is there): watch on.
      op->mode = Mode::watch;
      op->ec_ = {};
      op->bytes_transferred_ = 0;
      watch->queue(op, /*try_now=*/false);
    }
    if (callback) callback(ec, n);
  }
};

ReadWatch::~ReadWatch() {
  if (op_) op_->watch = nullptr;
}

std::size_t ReadWatch::receive(asio::mutable_buffer buffer, bool peek,
                               boost::system::error_code& ec) {
  auto& impl = SocketAccess::implementation(socket_);
  const int fd = impl.socket_;
  if (fd != inq_fd_) {
    // TCP_INQ: each receive also reports what is left to read, and counts a peer's close
    // that has arrived as something left. A read that empties the socket thus knows it did,
    // even when the close came with the last bytes, whose edge has been spent.
    const int on = 1;
    inq_ = ::setsockopt(fd, IPPROTO_TCP, TCP_INQ, &on, sizeof on) == 0;
    inq_fd_ = fd;
  }
  char byte;
  iovec iov{peek ? &byte : buffer.data(), peek ? 1 : buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // The system call itself: libc's wrapper is a thread-cancellation point, and its enabling
  // and disabling of asynchronous cancellation around the call cost more than the entry.
  for (;;) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const long got = ::syscall(SYS_recvmsg, fd, &msg, peek ? MSG_PEEK : 0);
    if (got > 0) {
      ec = {};
      // Without the kernel's count, a close behind the bytes cannot be ruled out: the next
      // read tries at once.
      int left = 1;
      if (inq_) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
          if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ) {
            std::memcpy(&left, CMSG_DATA(c), sizeof left);
          }
        }
      }
      ready_ = left != 0;
      return peek ? 0 : static_cast<std::size_t>(got);
    }
    if (got == 0) {
      ec = asio::error::eof;
      ready_ = true;  // and it stays: every later read finds the end again
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ++empty_receives_;
      ready_ = false;
      ec = asio::error::would_block;
      return 0;
    }
    ec = boost::system::error_code(errno, asio::error::get_system_category());
    ready_ = true;
    return 0;
  }
}

std::size_t ReadWatch::read_now(asio::mutable_buffer buffer, boost::system::error_code& ec) {
  if (buffer.size() == 0) {
    ec = {};
    return 0;
  }
  if (!socket_.is_open()) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  return receive(buffer, /*peek=*/false, ec);
}

void ReadWatch::complete_later(Callback callback, boost::system::error_code ec, std::size_t n) {
  asio::post(socket_.get_executor(),
             [callback = std::move(callback), ec, n]() mutable { callback(ec, n); });
}

void ReadWatch::queue(Op* op, bool try_now) {
  auto& impl = SocketAccess::implementation(socket_);
  boost::system::error_code ec;
  if ((impl.state_ & detail::socket_ops::non_blocking) == 0 &&
      !detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, ec)) {
    // As Asio: the operation completes with the error (posting it counts it as work).
    op->ec_ = ec;
    op->counted = true;
    op->services.scheduler.post_immediate_completion(op, false);
    return;
  }
  // start_op counts the operation as work; one that only watches gives its unit back.
  const bool counted = op->mode != Mode::watch;
  op->trying = true;
  op->try_now = try_now;
  op->counted = true;
  op->services.reactor.start_op(detail::reactor::read_op, impl.socket_, impl.reactor_data_, op,
                                /*is_continuation=*/false, /*allow_speculative=*/true);
  op->trying = false;
  if (!counted) op->set_counted(false);
}

void ReadWatch::start(Mode mode, asio::mutable_buffer buffer, Callback callback) {
  if (mode == Mode::read && buffer.size() == 0) {  // as Asio: nothing to read, done at once
    return complete_later(std::move(callback), {}, 0);
  }
  if (op_ && op_->mode != Mode::watch) {
    // A second read or wait while one is pending is refused (Asio would queue it behind the
    // first; nothing here reads a socket twice at once).
    return complete_later(std::move(callback), asio::error::in_progress, 0);
  }
  if (op_ && ready_) {
    // Bytes may have come while nothing was read: take them now (the watching operation
    // stays queued for the next edge).
    boost::system::error_code ec;
    const std::size_t n = receive(buffer, mode == Mode::wait, ec);
    if (ec != asio::error::would_block) {
      if (mode == Mode::wait) ec = {};
      return complete_later(std::move(callback), ec, n);
    }
  }
  if (op_) {
    // Nothing there since the socket was last found empty, and the watching operation has
    // seen every edge since: it becomes the read, with no system call.
    op_->mode = mode;
    op_->buffer = buffer;
    op_->callback = std::move(callback);
    op_->set_counted(true);
    return;
  }
  // Nothing queued (the first operation, or the last one ended): edges may have been missed,
  // so the reactor's immediate try receives.
  auto& context = socket_.get_executor().context();
  op_ = new Op(this, asio::use_service<WatchServices>(context));
  op_->mode = mode;
  op_->buffer = buffer;
  op_->callback = std::move(callback);
  queue(op_, /*try_now=*/true);
}

}  // namespace fusebox::io
