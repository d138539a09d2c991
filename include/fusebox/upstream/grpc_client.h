#pragma once
// gRPC calls from one worker to one backend's gRPC port, over fusebox's own HTTP/2 connection
// (h2::Connection) on the worker's event loop: the request goes out, and its answer comes back,
// without leaving the worker's thread. The serialized request is forwarded unchanged.
//
// One connection carries every call of the worker to that backend (HTTP/2 multiplexes them).
// After a GOAWAY or a lost connection the next call opens a new one; calls the backend refused
// unprocessed (a GOAWAY's REFUSED_STREAM) end as connect_failure, so they may go elsewhere.
// While calls are in flight and nothing arrives for keepalive_time, a PING checks the
// connection; no answer within keepalive_timeout closes it.
//
// Single-threaded: use on the worker's thread only. Done callbacks run on that thread, never
// inside send() or cancel().

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>

#include "fusebox/common/block_cache.h"
#include "fusebox/common/clock.h"
#include "fusebox/config/config.h"
#include "fusebox/h2/hpack.h"
#include "fusebox/upstream/backend.h"
#include "fusebox/upstream/grpc_upstream.h"

namespace fusebox::upstream {

class GrpcClient {
 public:
  GrpcClient(boost::asio::io_context& ioc, BackendState& backend, const config::PoolConfig& pool);
  // Calls still in flight are dropped: their done callbacks never run.
  ~GrpcClient();
  GrpcClient(const GrpcClient&) = delete;
  GrpcClient& operator=(const GrpcClient&) = delete;

  class Exchange;
  using ExchangeHandle = std::weak_ptr<Exchange>;

  // Starts one call ending by `deadline`; `done` runs exactly once (later, on this thread).
  ExchangeHandle send(const GrpcRequest& request, TimePoint deadline,
                      GrpcResultHandler done);
  // Cancels a call still in flight: RST_STREAM to the backend, and done runs with outcome
  // reset, error "cancelled".
  static void cancel(const ExchangeHandle& handle);
  // Closes connections without calls in flight (drain, reload).
  void close_idle();

  class Link;

 private:
  friend class Exchange;
  friend class Link;
  Link& usable_link();
  void close_idle_retiring();  // closes and forgets the retiring links without calls
  void arm_deadlines();
  void on_deadline_timer();
  // A finished call's done callback is queued, and run by run_finished() at the end of the
  // event that finished it (a read, a timer), outside any connection callback; post_finished()
  // schedules that run when the finishing code cannot (cancel()).
  void finish(const std::shared_ptr<Exchange>& exchange, GrpcResult&& result);
  void run_finished();
  void post_finished();

  boost::asio::io_context& ioc_;
  BackendState& backend_;
  const config::PoolConfig& pool_;
  std::string authority_;
  std::string user_agent_;
  std::vector<h2::HeaderRef> header_scratch_;  // send()'s header block, reused
  std::shared_ptr<Link> link_;                   // the connection new calls go to
  std::vector<std::shared_ptr<Link>> retiring_;  // after GOAWAY, finishing their calls
  // Calls by deadline; nodes from the thread's block cache (one per call).
  using DeadlineEntry = std::pair<const TimePoint, std::weak_ptr<Exchange>>;
  using Deadlines = std::multimap<TimePoint, std::weak_ptr<Exchange>, std::less<>,
                                  memory::PooledAllocator<DeadlineEntry>>;
  Deadlines deadlines_;
  std::unique_ptr<boost::asio::steady_timer> deadline_timer_;
  TimePoint timer_at_ = TimePoint::max();
  std::vector<std::pair<GrpcResultHandler, GrpcResult>> finished_;
  // finished_'s storage while run_finished() works through a batch, reused for the next.
  std::vector<std::pair<GrpcResultHandler, GrpcResult>> spare_finished_;
  bool finished_posted_ = false;
  std::shared_ptr<bool> alive_;
};

}  // namespace fusebox::upstream
