#include "fusebox/upstream/grpc_upstream.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <boost/asio/post.hpp>
#include <climits>
#include <mutex>

#include "fusebox/common/address.h"

namespace fusebox::upstream {

using metrics::UpstreamOutcome;

unsigned http_status_for(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    default: return 500;  // UNKNOWN, INTERNAL, DATA_LOSS
  }
}

grpc::StatusCode grpc_code_for(unsigned http_status) {
  switch (http_status) {
    case 200: return grpc::StatusCode::OK;
    case 400: return grpc::StatusCode::INVALID_ARGUMENT;
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 403: return grpc::StatusCode::PERMISSION_DENIED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 408:
    case 504: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case 409: return grpc::StatusCode::ABORTED;
    case 413:
    case 429: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 499: return grpc::StatusCode::CANCELLED;
    case 501: return grpc::StatusCode::UNIMPLEMENTED;
    case 502:
    case 503: return grpc::StatusCode::UNAVAILABLE;
    default:
      return http_status >= 400 && http_status < 500 ? grpc::StatusCode::FAILED_PRECONDITION
                                                     : grpc::StatusCode::INTERNAL;
  }
}

const char* grpc_code_name(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",   "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  auto i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

namespace {

// A received message's bytes, in one string.
std::string bytes_of(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

int clamp_int(std::uint64_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); }

std::chrono::system_clock::time_point to_system(TimePoint deadline) {
  auto left = deadline - std::chrono::steady_clock::now();
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
}

}  // namespace

// One call in flight. Owned by gRPC's completion (and weakly by the pipeline, to cancel it).
class GrpcChannel::Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::mutex mutex;                        // guards done and ioc against abandon()
  GrpcResultHandler done;                  // empty once abandoned
  boost::asio::io_context* ioc = nullptr;  // null once abandoned
  std::atomic<bool> cancelled{false};
};

std::string grpc_target(const config::EndpointConfig& endpoint) {
  return host_port(endpoint.address, endpoint.grpc_port);
}

GrpcChannel::GrpcChannel(const std::string& target, const config::PoolConfig& pool,
                         const std::string& user_agent)
    : target_(target),
      channel_([&] {
        grpc::ChannelArguments args;
        args.SetMaxReceiveMessageSize(clamp_int(pool.grpc.max_message_bytes));
        args.SetMaxSendMessageSize(clamp_int(pool.grpc.max_message_bytes));
        args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, clamp_int(pool.grpc.keepalive_time.count()));
        args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, clamp_int(pool.grpc.keepalive_timeout.count()));
        args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
        // Reconnect quickly after a backend restart; the breaker and health checks decide
        // whether calls go there meanwhile.
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
        // Each backend gets its own connection rather than sharing gRPC's global subchannels.
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // fusebox's pipeline retries, not the channel
        args.SetUserAgentPrefix(user_agent.empty() ? "fusebox/" FUSEBOX_VERSION : user_agent);
        return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
      }()),
      stub_(channel_) {}

GrpcChannel::~GrpcChannel() = default;

GrpcChannel::ExchangeHandle GrpcChannel::send(const GrpcRequest& request, TimePoint deadline,
                                              boost::asio::io_context& ioc,
                                              GrpcResultHandler done) {
  auto ex = std::make_shared<Exchange>();
  grpc::Slice slice(request.payload.data(), request.payload.size());
  ex->request = grpc::ByteBuffer(&slice, 1);
  ex->done = std::move(done);
  ex->ioc = &ioc;
  ex->context.set_deadline(to_system(deadline));
  // Unavailable backends fail fast (connect failure) instead of waiting for the deadline.
  ex->context.set_wait_for_ready(false);
  for (const auto& [key, value] : request.metadata) ex->context.AddMetadata(key, value);
  if (!request.request_id.empty()) {
    ex->context.AddMetadata("x-request-id", std::string(request.request_id));
  }
  auto keep = ex;  // the completion owns the exchange until it has run
  stub_.UnaryCall(&ex->context, request.method, grpc::StubOptions(), &ex->request, &ex->response,
                  [keep](grpc::Status status) {
                    GrpcResult result;
                    result.status = std::move(status);
                    auto code = result.status.error_code();
                    if (keep->cancelled.load(std::memory_order_relaxed)) {
                      result.outcome = UpstreamOutcome::reset;
                      result.error = "cancelled";
                    } else if (code == grpc::StatusCode::OK) {
                      result.outcome = UpstreamOutcome::success;
                      result.response = SharedBytes(bytes_of(keep->response));
                    } else if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
                      result.outcome = UpstreamOutcome::timeout;
                      result.error = "upstream request timeout";
                    } else if (code == grpc::StatusCode::UNAVAILABLE &&
                               (keep->context.peer().empty() ||
                                result.status.error_message().find("failed to connect") !=
                                    std::string::npos)) {
                      // No connection was ever made for this call.
                      result.outcome = UpstreamOutcome::connect_failure;
                      result.error = "cannot connect: " + result.status.error_message();
                    } else {
                      result.outcome = http_status_for(code) >= 500 ? UpstreamOutcome::http_5xx
                                                                    : UpstreamOutcome::success;
                    }
                    for (const auto& [key, value] : keep->context.GetServerTrailingMetadata()) {
                      result.trailing_metadata.emplace_back(std::string(key.data(), key.size()),
                                                            std::string(value.data(), value.size()));
                    }
                    std::lock_guard lock(keep->mutex);
                    if (keep->ioc == nullptr) return;  // abandoned: the worker is gone
                    boost::asio::post(*keep->ioc, [keep, result = std::move(result)]() mutable {
                      GrpcResultHandler done;
                      {
                        std::lock_guard lock(keep->mutex);
                        done = std::move(keep->done);
                      }
                      if (done) done(std::move(result));
                    });
                  });
  return ex;
}

void GrpcChannel::abandon(const ExchangeHandle& handle) {
  auto ex = handle.lock();
  if (!ex) return;
  GrpcResultHandler done;
  {
    std::lock_guard lock(ex->mutex);
    done = std::move(ex->done);
    ex->ioc = nullptr;
  }
  ex->cancelled.store(true, std::memory_order_relaxed);
  ex->context.TryCancel();
  // `done` (and the pipeline call it holds) is destroyed here, on the worker's thread.
}

void GrpcChannel::cancel(const ExchangeHandle& handle) {
  if (auto ex = handle.lock()) {
    ex->cancelled.store(true, std::memory_order_relaxed);
    ex->context.TryCancel();
  }
}

}  // namespace fusebox::upstream
