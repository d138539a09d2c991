// grpc_load: a load generator for TF Serving's gRPC Predict (bench/grpc_compare.sh).
//
//   grpc_load --target HOST:PORT [--model half_plus_two] [--floats N] [--concurrency C]
//             [--rate R] [--seconds S] [--channels K] [--encoding tensor_content|float_val]
//             [--timeout-ms T]
//
// Closed loop (the default): C calls are kept in flight for S seconds, spread over K channels
// (K HTTP/2 connections); each answer starts the next call on the same slot. Open loop (--rate):
// R calls per second start on a fixed schedule whatever the answers do, so every target gets the
// same load; a call's latency counts from its scheduled start, so a stall cannot hide behind
// the calls it delays (no coordinated omission). The request (input "x" of N DT_FLOAT values) is
// serialized once and sent as a shared ByteBuffer with gRPC's generic callback API, so the
// client spends its CPU on the calls, not on building them. Every answer is checked: status OK,
// output "y" with N values, the first one 0.5 x + 2. Latencies go into a log-linear histogram
// (bounded memory, < 0.4% relative error). At the end (calls started before S seconds are
// waited for, each bounded by its deadline) one JSON line is printed on stdout:
//
//   {"target": ..., "requests": n, "errors": e, "seconds": t, "rps": r,
//    "p50_ms": ..., "p99_ms": ..., "p999_ms": ..., "max_ms": ..., "errors_by_code": {...}, ...}
//
// "requests" counts every finished call (errors included), "rps" the successful ones per second
// of the run (first call to last answer). Exit status: 0 when at least one call succeeded, 1
// when none did or the target never answered the warm-up call, 2 on bad arguments.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tensorflow_serving/apis/predict.pb.h"

namespace {

namespace tf = tensorflow;
namespace tfs = tensorflow::serving;
using Clock = std::chrono::steady_clock;

constexpr const char* kPredictMethod = "/tensorflow.serving.PredictionService/Predict";

struct Options {
  std::string target;
  std::string model = "half_plus_two";
  std::int64_t floats = 3;
  int concurrency = 10;
  double rate = 0;  // calls per second, open loop; 0 = closed loop
  double seconds = 5;
  int channels = 1;
  bool tensor_content = true;
  int timeout_ms = 10000;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(
      stderr,
      "grpc_load: %s\n"
      "usage: grpc_load --target HOST:PORT [--model NAME] [--floats N] [--concurrency C]\n"
      "                 [--rate R] [--seconds S] [--channels K]\n"
      "                 [--encoding tensor_content|float_val]\n"
      "                 [--timeout-ms T]\n",
      problem.c_str());
  std::exit(2);
}

std::int64_t positive(const std::string& flag, const std::string& text, std::int64_t max) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < 1 || v > max) {
    usage(flag + " needs an integer from 1 to " + std::to_string(max) + ", not '" + text + "'");
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("a closed-loop gRPC Predict load");
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--target") {
      o.target = value;
    } else if (flag == "--model") {
      o.model = value;
    } else if (flag == "--floats") {
      o.floats = positive(flag, value, 64 << 20);
    } else if (flag == "--concurrency") {
      o.concurrency = static_cast<int>(positive(flag, value, 100000));
    } else if (flag == "--seconds") {
      std::size_t used = 0;
      try {
        o.seconds = std::stod(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || !(o.seconds > 0) || o.seconds > 86400) {
        usage("--seconds needs a number of seconds above 0, not '" + value + "'");
      }
    } else if (flag == "--rate") {
      o.rate = static_cast<double>(positive(flag, value, 1'000'000));
    } else if (flag == "--channels") {
      o.channels = static_cast<int>(positive(flag, value, 1024));
    } else if (flag == "--encoding") {
      if (value != "tensor_content" && value != "float_val") {
        usage("--encoding is tensor_content or float_val, not '" + value + "'");
      }
      o.tensor_content = value == "tensor_content";
    } else if (flag == "--timeout-ms") {
      o.timeout_ms = static_cast<int>(positive(flag, value, 3600 * 1000));
    } else {
      usage("unknown option " + flag);
    }
  }
  if (o.target.empty()) usage("--target HOST:PORT is required");
  if (o.rate == 0 && o.channels > o.concurrency) o.channels = o.concurrency;
  return o;
}

// Log-linear latency histogram in nanoseconds: values below 2^kBits exactly, above that 2^(kBits-1)
// sub-buckets per power of two. Lock-free (relaxed counters), fixed size.
class Histogram {
 public:
  void record(std::uint64_t ns) {
    counts_[index(ns)].fetch_add(1, std::memory_order_relaxed);
    auto seen = max_.load(std::memory_order_relaxed);
    while (ns > seen && !max_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
    }
  }

  // The value at quantile q (0 < q <= 1): the middle of the bucket holding it, capped at the max.
  double quantile_ms(double q) const {
    std::uint64_t total = 0;
    for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
    if (total == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
    if (rank < 1) rank = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) {
        const auto [low, high] = bounds(i);
        const auto mid = low + (high - low) / 2;
        return static_cast<double>(std::min(mid, max())) / 1e6;
      }
    }
    return max_ms();
  }

  std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  double max_ms() const { return static_cast<double>(max()) / 1e6; }

 private:
  static constexpr int kBits = 9;  // 256 sub-buckets per octave: < 0.4% relative error
  static constexpr std::uint64_t kExact = 1ULL << kBits;
  static constexpr std::uint64_t kHalf = kExact / 2;
  static constexpr std::size_t kBuckets = kExact + (64 - kBits) * kHalf;

  static std::size_t index(std::uint64_t v) {
    if (v < kExact) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kBits + 1;     // >= 1
    const std::uint64_t top = v >> shift;  // in [kHalf, kExact)
    return static_cast<std::size_t>(kExact + static_cast<std::uint64_t>(shift - 1) * kHalf +
                                    (top - kHalf));
  }
  // Inclusive value range of bucket i.
  static std::pair<std::uint64_t, std::uint64_t> bounds(std::size_t i) {
    if (i < kExact) return {i, i};
    const auto shift = (i - kExact) / kHalf + 1;
    const auto top = (i - kExact) % kHalf + kHalf;
    return {top << shift, ((top + 1) << shift) - 1};
  }

  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> max_{0};
};

float input_value(std::int64_t i) { return 1.0f + static_cast<float>(i % 7); }

grpc::ByteBuffer build_request(const Options& o) {
  tfs::PredictRequest request;
  request.mutable_model_spec()->set_name(o.model);
  tf::TensorProto& x = (*request.mutable_inputs())["x"];
  x.set_dtype(tf::DT_FLOAT);
  x.mutable_tensor_shape()->add_dim()->set_size(o.floats);
  if (o.tensor_content) {
    std::string bytes(static_cast<std::size_t>(o.floats) * sizeof(float), '\0');
    for (std::int64_t i = 0; i < o.floats; ++i) {
      const float v = input_value(i);
      std::memcpy(bytes.data() + i * sizeof(float), &v, sizeof v);  // little-endian hosts
    }
    x.set_tensor_content(std::move(bytes));
  } else {
    auto* values = x.mutable_float_val();
    values->Reserve(static_cast<int>(o.floats));
    for (std::int64_t i = 0; i < o.floats; ++i) values->Add(input_value(i));
  }
  grpc::ByteBuffer buffer;
  bool own = false;
  if (!grpc::SerializationTraits<tfs::PredictRequest>::Serialize(request, &buffer, &own).ok()) {
    std::fprintf(stderr, "grpc_load: cannot serialize the request\n");
    std::exit(1);
  }
  return buffer;
}

// Checks one answer; returns an empty string when it is right, else what is wrong.
std::string check_answer(grpc::ByteBuffer& buffer, tfs::PredictResponse& response,
                         std::int64_t floats) {
  response.Clear();
  grpc::ProtoBufferReader reader(&buffer);
  if (!response.ParseFromZeroCopyStream(&reader)) return "unparsable PredictResponse";
  const auto it = response.outputs().find("y");
  if (it == response.outputs().end()) return "no output y";
  const tf::TensorProto& y = it->second;
  std::int64_t n = 0;
  float first = 0;
  if (!y.tensor_content().empty()) {
    n = static_cast<std::int64_t>(y.tensor_content().size() / sizeof(float));
    std::memcpy(&first, y.tensor_content().data(), sizeof first);
  } else {
    n = y.float_val_size();
    if (n > 0) first = y.float_val(0);
  }
  if (n != floats) return "output y has " + std::to_string(n) + " values";
  const float want = 0.5f * input_value(0) + 2.0f;
  if (first != want) return "output y[0] is " + std::to_string(first);
  return {};
}

class Load;

// One open-loop call, alive from its scheduled start to its callback.
struct OpenCall {
  Load* load = nullptr;
  grpc::ClientContext context;
  grpc::ByteBuffer answer;
  tfs::PredictResponse response;
  Clock::time_point scheduled;
};

// One closed-loop slot: one call in flight at a time.
struct Slot {
  Load* load = nullptr;
  grpc::GenericStub* stub = nullptr;
  std::optional<grpc::ClientContext> context;
  grpc::ByteBuffer answer;
  tfs::PredictResponse response;
  Clock::time_point started;
};

class Load {
 public:
  explicit Load(Options options) : o_(std::move(options)), request_(build_request(o_)) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    // One connection per channel: without this, channels with equal arguments share one.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    for (int k = 0; k < o_.channels; ++k) {
      auto channel = grpc::CreateCustomChannel(o_.target, grpc::InsecureChannelCredentials(), args);
      stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
      channels_.push_back(std::move(channel));
    }
    slots_ = std::vector<Slot>(static_cast<std::size_t>(o_.concurrency));
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].load = this;
      slots_[i].stub = stubs_[i % stubs_.size()].get();
    }
  }

  // One verified call per channel, so connection set-up is not measured.
  bool warm_up() {
    for (auto& stub : stubs_) {
      Slot probe;
      probe.stub = stub.get();
      probe.context.emplace();
      probe.context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      grpc::Status status;
      stub->UnaryCall(&*probe.context, kPredictMethod, grpc::StubOptions(), &request_,
                      &probe.answer, [&](grpc::Status s) {
                        std::lock_guard lock(m);
                        status = std::move(s);
                        done = true;
                        cv.notify_one();
                      });
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
      if (!status.ok()) {
        std::fprintf(stderr, "grpc_load: the warm-up call to %s failed: %s: %s\n",
                     o_.target.c_str(), code_name(status.error_code()),
                     status.error_message().c_str());
        return false;
      }
      const auto wrong = check_answer(probe.answer, probe.response, o_.floats);
      if (!wrong.empty()) {
        std::fprintf(stderr, "grpc_load: wrong warm-up answer from %s: %s\n", o_.target.c_str(),
                     wrong.c_str());
        return false;
      }
    }
    return true;
  }

  void run() { o_.rate > 0 ? run_open() : run_closed(); }

  // Starts calls on schedule until S seconds have passed, then waits for the last answers.
  void run_open() {
    start_ = Clock::now();
    stop_at_ = start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o_.seconds));
    const std::chrono::duration<double> interval(1.0 / o_.rate);
    for (std::uint64_t i = 0;; ++i) {
      const auto at = start_ + std::chrono::duration_cast<Clock::duration>(interval * i);
      if (at >= stop_at_) break;
      std::this_thread::sleep_until(at);
      {
        std::lock_guard lock(mutex_);
        ++in_flight_;
      }
      auto* call = new OpenCall;
      call->load = this;
      call->scheduled = at;
      call->context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(o_.timeout_ms));
      stubs_[i % stubs_.size()]->UnaryCall(
          &call->context, kPredictMethod, grpc::StubOptions(), &request_, &call->answer,
          [call](grpc::Status s) { call->load->done_open(call, s); });
    }
    wait_idle();
  }

  void run_closed() {
    start_ = Clock::now();
    stop_at_ = start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o_.seconds));
    in_flight_ = static_cast<int>(slots_.size());
    for (auto& slot : slots_) issue(slot);
    wait_idle();
  }

  void wait_idle() {
    // Every call started before stop_at_ ends by its deadline; allow a margin beyond that.
    const auto give_up =
        stop_at_ + std::chrono::milliseconds(o_.timeout_ms) + std::chrono::seconds(5);
    std::unique_lock lock(mutex_);
    if (!idle_.wait_until(lock, give_up, [&] { return in_flight_ == 0; })) {
      std::fprintf(stderr, "grpc_load: %d calls still open after their deadlines; giving up\n",
                   in_flight_);
      stuck_ = true;
      last_end_ = Clock::now();
    }
  }

  void report() {
    std::lock_guard lock(mutex_);
    const double seconds = std::chrono::duration<double>(last_end_ - start_).count();
    const auto ok = ok_.load();
    const auto errors = errors_.load();
    std::string codes;
    for (const auto& [code, n] : errors_by_code_) {
      codes += (codes.empty() ? "" : ", ") + json_string(code) + ": " + std::to_string(n);
    }
    std::printf(
        "{\"target\": %s, \"model\": %s, \"floats\": %lld, \"encoding\": \"%s\", "
        "\"mode\": \"%s\", \"rate\": %.0f, \"concurrency\": %d, \"channels\": %d, \"requests\": %llu, \"errors\": %llu, "
        "\"seconds\": %.3f, \"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
        "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"errors_by_code\": {%s}, \"first_error\": %s}\n",
        json_string(o_.target).c_str(), json_string(o_.model).c_str(),
        static_cast<long long>(o_.floats), o_.tensor_content ? "tensor_content" : "float_val",
        o_.rate > 0 ? "open" : "closed", o_.rate, o_.concurrency, o_.channels, static_cast<unsigned long long>(ok + errors),
        static_cast<unsigned long long>(errors), seconds,
        seconds > 0 ? static_cast<double>(ok) / seconds : 0.0, latency_.quantile_ms(0.50),
        latency_.quantile_ms(0.99), latency_.quantile_ms(0.999), latency_.max_ms(), codes.c_str(),
        first_error_.empty() ? "null" : json_string(first_error_).c_str());
    std::fflush(stdout);
  }

  bool succeeded() const { return ok_.load() > 0 && !stuck_; }
  bool stuck() const { return stuck_; }

 private:
  void issue(Slot& slot) {
    slot.context.emplace();
    slot.context->set_deadline(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(o_.timeout_ms));
    slot.answer.Clear();
    slot.started = Clock::now();
    slot.stub->UnaryCall(&*slot.context, kPredictMethod, grpc::StubOptions(), &request_,
                         &slot.answer, [&slot](grpc::Status s) { slot.load->done(slot, s); });
  }

  // On one of gRPC's callback threads.
  void done_open(OpenCall* call, const grpc::Status& status) {
    const auto now = Clock::now();
    verify(status, call->answer, call->response, now - call->scheduled);
    delete call;
    std::lock_guard lock(mutex_);
    if (now > last_end_) last_end_ = now;
    if (--in_flight_ == 0) idle_.notify_all();
  }

  void verify(const grpc::Status& status, grpc::ByteBuffer& answer,
              tfs::PredictResponse& response, Clock::duration latency) {
    if (!status.ok()) {
      const std::string code = code_name(status.error_code());
      note_error(code, code + ": " + status.error_message());
    } else if (auto problem = check_answer(answer, response, o_.floats); !problem.empty()) {
      note_error("BAD_ANSWER", problem);
    } else {
      ok_.fetch_add(1, std::memory_order_relaxed);
      latency_.record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count()));
    }
  }

  // On one of gRPC's callback threads. The slot's context may be replaced here: the callback is
  // the last use gRPC makes of it.
  void done(Slot& slot, const grpc::Status& status) {
    const auto now = Clock::now();
    verify(status, slot.answer, slot.response, now - slot.started);
    if (now < stop_at_) {
      issue(slot);
      return;
    }
    std::lock_guard lock(mutex_);
    if (now > last_end_) last_end_ = now;
    if (--in_flight_ == 0) idle_.notify_all();
  }

  void note_error(const std::string& code, const std::string& message) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    ++errors_by_code_[code];
    if (first_error_.empty()) first_error_ = message;
  }

  static const char* code_name(grpc::StatusCode code) {
    static constexpr std::array<const char*, 17> kNames = {"OK",
                                                           "CANCELLED",
                                                           "UNKNOWN",
                                                           "INVALID_ARGUMENT",
                                                           "DEADLINE_EXCEEDED",
                                                           "NOT_FOUND",
                                                           "ALREADY_EXISTS",
                                                           "PERMISSION_DENIED",
                                                           "RESOURCE_EXHAUSTED",
                                                           "FAILED_PRECONDITION",
                                                           "ABORTED",
                                                           "OUT_OF_RANGE",
                                                           "UNIMPLEMENTED",
                                                           "INTERNAL",
                                                           "UNAVAILABLE",
                                                           "DATA_LOSS",
                                                           "UNAUTHENTICATED"};
    const auto i = static_cast<std::size_t>(code);
    return i < kNames.size() ? kNames[i] : "UNKNOWN_CODE";
  }

  static std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
        out += escaped;
      } else {
        out += c;
      }
    }
    return out + "\"";
  }

  const Options o_;
  const grpc::ByteBuffer request_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::vector<Slot> slots_;
  Histogram latency_;
  std::atomic<std::uint64_t> ok_{0};
  std::atomic<std::uint64_t> errors_{0};
  Clock::time_point start_;
  Clock::time_point stop_at_;

  std::mutex mutex_;  // guards what follows
  std::condition_variable idle_;
  int in_flight_ = 0;
  Clock::time_point last_end_;
  std::map<std::string, std::uint64_t> errors_by_code_;
  std::string first_error_;
  bool stuck_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  auto load = std::make_unique<Load>(parse(argc, argv));
  if (!load->warm_up()) return 1;
  load->run();
  load->report();
  if (load->stuck()) std::_Exit(1);  // calls still open: do not wait for them in destructors
  return load->succeeded() ? 0 : 1;
}
