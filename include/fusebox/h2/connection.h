#pragma once
// One HTTP/2 connection (RFC 9113) as a state machine with no sockets in it: bytes received go
// in through receive(), frames to send come out of output(). The owner moves bytes between
// it and a socket; the Handler hears about streams. Both roles: fusebox serves gRPC clients
// (server) and calls backends (client) with it.
//
// What it does for the owner: the connection preface and SETTINGS exchange, HPACK in both
// directions, header blocks split over CONTINUATION frames, PING answers, flow control (data
// beyond the peer's windows waits, and is sent when WINDOW_UPDATE frames arrive; received data
// is credited back at once, so memory is bounded by the owner's message limits, not by
// windows), GOAWAY both ways, stream limits, and the protocol errors that close a connection.
//
// Single-threaded. Handler callbacks run inside receive() (and inside goaway() for the streams
// it refuses); they may call back into the connection (send, reset, open a stream), but must
// not destroy it.

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fusebox/h2/hpack.h"

namespace fusebox::h2 {

enum class ErrorCode : std::uint32_t {
  no_error = 0x0,
  protocol_error = 0x1,
  internal_error = 0x2,
  flow_control_error = 0x3,
  settings_timeout = 0x4,
  stream_closed = 0x5,
  frame_size_error = 0x6,
  refused_stream = 0x7,
  cancel = 0x8,
  compression_error = 0x9,
  connect_error = 0xa,
  enhance_your_calm = 0xb,
  inadequate_security = 0xc,
  http_1_1_required = 0xd,
};
const char* to_string(ErrorCode code);

enum class FrameType : std::uint8_t {
  data = 0x0,
  headers = 0x1,
  priority = 0x2,
  rst_stream = 0x3,
  settings = 0x4,
  push_promise = 0x5,
  ping = 0x6,
  goaway = 0x7,
  window_update = 0x8,
  continuation = 0x9,
};

inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr std::size_t kFrameHeaderSize = 9;
inline constexpr std::uint32_t kDefaultWindow = 65535;
inline constexpr std::uint32_t kMaxWindow = 0x7fffffff;

// Appends a frame header (length, type, flags, stream id).
void append_frame_header(std::string& out, std::uint32_t length, FrameType type, std::uint8_t flags,
                         std::uint32_t stream_id);

// SETTINGS values (RFC 9113 section 6.5.2).
struct Settings {
  std::uint32_t header_table_size = 4096;
  std::uint32_t max_concurrent_streams = 0xffffffff;  // "unlimited" until the peer says
  std::uint32_t initial_window_size = kDefaultWindow;
  std::uint32_t max_frame_size = 16384;
  std::uint32_t max_header_list_size = 0xffffffff;
};

// Bytes for the socket, in order: `bytes`, with each lent run inserted at its offset. A lent
// run views bytes its `owner` keeps alive (a large message's), so they are written without
// being copied first.
struct Output {
  struct Lent {
    std::size_t at;  // inserted before bytes[at]
    std::string_view bytes;
    std::shared_ptr<const void> owner;
  };
  std::string bytes;
  std::vector<Lent> lent;

  bool empty() const { return bytes.empty() && lent.empty(); }
  // Calls f(std::string_view) for each run, in order (empty runs skipped).
  template <class F>
  void for_each(F&& f) const {
    std::size_t at = 0;
    for (const auto& l : lent) {
      if (l.at > at) f(std::string_view(bytes).substr(at, l.at - at));
      if (!l.bytes.empty()) f(l.bytes);
      at = l.at;
    }
    if (bytes.size() > at) f(std::string_view(bytes).substr(at));
  }
};

class Connection {
 public:
  enum class Role : std::uint8_t { client, server };

  class Handler {
   public:
    virtual ~Handler() = default;
    // A header block arrived on `stream_id`: request headers (server; a new stream), response
    // headers or trailers (client), or request trailers (server).
    virtual void on_headers(std::uint32_t stream_id, HeaderList& headers, bool end_stream) = 0;
    // Data arrived; `end_stream` on the last piece (which may be empty).
    virtual void on_data(std::uint32_t stream_id, std::string_view data, bool end_stream) = 0;
    // The stream ended without finishing: the peer reset it, a GOAWAY excluded it
    // (refused_stream: the peer never processed it), or the connection closed with it open.
    // Not called for streams the owner reset itself.
    virtual void on_stream_reset(std::uint32_t stream_id, ErrorCode code) = 0;
    // A header block larger than max_header_list_size: the stream is reset
    // (server: after on_headers_too_large, which may still answer it with headers).
    virtual void on_headers_too_large(std::uint32_t /*stream_id*/) {}
    virtual void on_goaway(std::uint32_t /*last_stream_id*/, ErrorCode /*code*/) {}
    virtual void on_ping_ack(std::uint64_t /*opaque*/) {}
  };

  struct Options {
    Settings settings;                            // what this side announces
    std::uint32_t connection_window = 16u << 20;  // this side's connection receive window
  };

  Connection(Role role, Handler& handler, const Options& options);

  // Queues the opening: the client preface (client), SETTINGS, and the connection window.
  void start();

  // Feeds received bytes. False on a connection error: a GOAWAY with the error is queued (send
  // it, then close); error() says what went wrong. Nothing is accepted after that.
  //
  // A DATA frame without padding is taken in pieces as its payload arrives (Handler::on_data
  // gets each piece; END_STREAM comes with the last): a large frame is never gathered first.
  bool receive(std::string_view bytes);

  // The DATA frame whose payload is arriving: its stream and how many payload bytes are still
  // to come (0: none). Those bytes come next on the wire, so the owner may read them straight
  // into storage of its own and pass that storage to receive(): a large message is then
  // written once, by the kernel, where its stream's handler keeps it (see
  // grpc_framing.h's append_message_data).
  std::uint32_t pending_data_stream() const { return data_left_ != 0 ? data_stream_ : 0; }
  std::size_t pending_data_bytes() const { return data_left_; }

  // Bytes to write, in order. The owner takes them with take_output() and writes them as a
  // sequence of buffers: a large message's bytes are lent to the output, not copied into it.
  // output() gives them as one string (lent bytes copied in), for tests.
  void take_output(Output& into);
  std::string& output();
  bool has_output() const { return !out_.empty(); }  // a lent run always follows a frame header

  // Client: opens a stream with a request header block. Returns its id, or 0 when no stream
  // can be opened (GOAWAY received, ids used up, the peer's stream limit reached, closed).
  // The fields are encoded before it returns.
  std::uint32_t open_stream(HeaderRefs headers, bool end_stream);
  std::uint32_t open_stream(std::initializer_list<HeaderRef> headers, bool end_stream) {
    return open_stream(HeaderRefs(headers.begin(), headers.size()), end_stream);
  }
  std::uint32_t open_stream(const HeaderList& headers, bool end_stream) {
    return open_stream(views(headers), end_stream);
  }
  // Headers on an open stream: response headers (server) or trailers (either side; queued,
  // as a copy, behind data still waiting for window when `end_stream`).
  void send_headers(std::uint32_t stream_id, HeaderRefs headers, bool end_stream);
  void send_headers(std::uint32_t stream_id, std::initializer_list<HeaderRef> headers,
                    bool end_stream) {
    send_headers(stream_id, HeaderRefs(headers.begin(), headers.size()), end_stream);
  }
  void send_headers(std::uint32_t stream_id, const HeaderList& headers, bool end_stream) {
    send_headers(stream_id, views(headers), end_stream);
  }
  // Queues data: sent in frames as the peer's windows allow. `head` and `body` are sent as one
  // run of bytes (a gRPC message prefix and the message, without joining them first). What the
  // windows hold back is copied, unless `body_owner` keeps `body`'s bytes alive: then the
  // connection keeps `body_owner` until those bytes are sent, instead of a copy.
  void send_data(std::uint32_t stream_id, std::string_view data, bool end_stream) {
    send_data(stream_id, {}, data, end_stream);
  }
  void send_data(std::uint32_t stream_id, std::string_view head, std::string_view body,
                 bool end_stream, std::shared_ptr<const void> body_owner = nullptr);
  // Resets a stream (RST_STREAM) and forgets it; no callback follows for it.
  void reset_stream(std::uint32_t stream_id, ErrorCode code);
  // GOAWAY: no new streams from the peer beyond those already seen. Streams in flight finish.
  void goaway(ErrorCode code, std::string_view debug = {});
  void ping(std::uint64_t opaque);

  // The connection is gone (socket closed, or receive() failed): every open stream ends with
  // on_stream_reset(code), and is forgotten.
  void abort_streams(ErrorCode code);

  bool is_open(std::uint32_t stream_id) const { return streams_.count(stream_id) != 0; }
  // Whether the peer is still sending on an open stream (no END_STREAM from it yet).
  bool peer_sending(std::uint32_t stream_id) const {
    auto it = streams_.find(stream_id);
    return it != streams_.end() && !it->second.remote_closed;
  }
  std::size_t open_streams() const { return streams_.size(); }
  // Client: whether open_stream() can succeed now.
  bool can_open_stream() const;
  bool goaway_received() const { return goaway_received_; }
  bool goaway_sent() const { return goaway_sent_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  const Settings& peer_settings() const { return peer_; }
  // Bytes of data waiting for the peer's flow-control window.
  std::size_t pending_data() const { return pending_bytes_; }

 private:
  struct Stream {
    bool local_closed = false;   // END_STREAM sent (or queued behind pending data)
    bool remote_closed = false;  // END_STREAM received
    bool blocked = false;        // output queued (data, END_STREAM or trailers): in blocked_
    std::int64_t send_window = 0;
    std::uint32_t recv_unacked = 0;  // data received but not yet credited back
    std::string pending;             // data waiting for window (copied), sent first
    std::size_t pending_off = 0;
    std::string_view borrowed;  // then these bytes, kept alive by borrowed_owner
    std::shared_ptr<const void> borrowed_owner;
    bool pending_end = false;  // END_STREAM after the pending data
    bool has_trailers = false;
    HeaderList trailers;  // sent after the pending data, with END_STREAM
  };

  bool fail(ErrorCode code, std::string why);
  bool handle_frame(FrameType type, std::uint8_t flags, std::uint32_t stream_id,
                    std::string_view payload);
  bool on_settings_frame(std::uint8_t flags, std::uint32_t stream_id, std::string_view payload);
  bool on_headers_frame(std::uint8_t flags, std::uint32_t stream_id, std::string_view payload);
  bool on_continuation_frame(std::uint8_t flags, std::uint32_t stream_id, std::string_view payload);
  bool on_header_block_done();
  bool on_data_frame(std::uint8_t flags, std::uint32_t stream_id, std::string_view payload);
  bool on_window_update_frame(std::uint32_t stream_id, std::string_view payload);
  bool on_rst_stream_frame(std::uint32_t stream_id, std::string_view payload);
  bool on_goaway_frame(std::uint32_t stream_id, std::string_view payload);

  void write_header_block(std::uint32_t stream_id, HeaderRefs headers, bool end_stream);
  void write_window_update(std::uint32_t stream_id, std::uint32_t increment);
  void write_rst_stream(std::uint32_t stream_id, ErrorCode code);
  // Sends what the windows allow of a stream's pending data (and its trailers after it).
  void flush_stream(std::uint32_t stream_id, Stream& stream);
  void flush_blocked();
  // Writes DATA frames for head + body as far as the windows allow; returns the bytes sent.
  // With a `body_owner`, large runs of body are lent to the output rather than copied.
  std::size_t write_data_frames(std::uint32_t stream_id, Stream& stream, std::string_view head,
                                std::string_view body, bool end_stream,
                                const std::shared_ptr<const void>& body_owner = nullptr);
  // Feeds complete units (the preface, frames) of `data` to the frame handlers; `used` is how
  // many bytes they took (an incomplete unit at the end is left, but for an unpadded DATA
  // frame, whose first piece is taken).
  bool parse(std::string_view data, std::size_t& used);
  // Flow control for a DATA frame taken in pieces, checked on its whole length at its header,
  // as for a whole frame: false (a connection error) beyond the connection window; a stream
  // beyond its window is reset.
  bool data_frame_fits(std::uint32_t stream_id, std::uint32_t length);
  // Takes the next piece of the DATA frame being received (see data_left_).
  bool data_piece(std::string_view piece);
  // The size of the unit starting `data` (as far as it is known: a header's size until the
  // header is whole).
  std::size_t unit_size(std::string_view data) const;
  void maybe_forget(std::uint32_t stream_id);
  // Streams by id; their nodes come from the thread's block cache (one per call).
  using StreamMap =
      std::unordered_map<std::uint32_t, Stream, std::hash<std::uint32_t>, std::equal_to<>,
                         memory::PooledAllocator<std::pair<const std::uint32_t, Stream>>>;
  void forget(StreamMap::iterator it);
  // A stream error (RFC 9113 section 5.4.2): RST_STREAM, and the handler hears of it.
  void stream_error(std::uint32_t stream_id, ErrorCode code);
  // Whether `stream_id` was opened earlier and is closed now (frames on it may still be in
  // flight), rather than never opened.
  bool was_open(std::uint32_t stream_id) const;

  Role role_;
  Handler& handler_;
  Settings local_;  // announced by this side
  Settings peer_;   // the peer's, as received
  std::uint32_t connection_window_;
  HpackDecoder decoder_;
  HpackEncoder encoder_;

  std::string in_;  // an incomplete frame (or preface) carried over
  // The DATA frame being taken in pieces: payload bytes still to come, its stream and flags.
  // in_ is empty meanwhile (those bytes come first).
  std::size_t data_left_ = 0;
  std::uint32_t data_stream_ = 0;
  std::uint8_t data_flags_ = 0;
  std::string out_;
  std::vector<Output::Lent> lent_;  // runs lent to out_ (see Output)
  bool preface_pending_;          // server: the client preface not yet received
  bool settings_pending_ = true;  // the peer's first frame must be SETTINGS
  StreamMap streams_;
  std::deque<std::uint32_t> blocked_;  // streams with data waiting for window, in order
  std::size_t pending_bytes_ = 0;
  std::int64_t conn_send_window_ = kDefaultWindow;
  std::uint32_t conn_recv_unacked_ = 0;
  std::uint32_t next_stream_id_;        // client: the next id to open
  std::uint32_t last_peer_stream_ = 0;  // the highest stream id the peer opened
  std::string scratch_;                 // a header block being encoded

  // A header block in progress (HEADERS without END_HEADERS, then CONTINUATIONs).
  std::uint32_t block_stream_ = 0;
  bool block_end_stream_ = false;
  std::string block_;

  bool goaway_sent_ = false;
  bool goaway_received_ = false;
  std::uint32_t goaway_last_stream_ = kMaxWindow;  // from the peer's GOAWAY
  bool failed_ = false;
  std::string error_;
};

}  // namespace fusebox::h2
