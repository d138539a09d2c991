#include "fusebox/h2/connection.h"

#include <algorithm>
#include <vector>

namespace fusebox::h2 {
namespace {

constexpr std::uint8_t kEndStream = 0x1;
constexpr std::uint8_t kAck = 0x1;
constexpr std::uint8_t kEndHeaders = 0x4;
constexpr std::uint8_t kPadded = 0x8;
constexpr std::uint8_t kPriority = 0x20;

// A header block may arrive in many CONTINUATION frames; beyond this it is refused before
// decoding (the decoded list has its own limit, max_header_list_size).
constexpr std::size_t kMaxHeaderBlock = 1u << 20;
// Bytes reserved past a run of data frames for what usually follows them (trailers).
constexpr std::size_t kOutputSlack = 512;

constexpr const char* kNotAPreface = "not an HTTP/2 connection preface";

// The 24-bit length at the start of a frame header.
std::uint32_t frame_length(std::string_view header) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(header[0])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(header[1])) << 8 |
         static_cast<unsigned char>(header[2]);
}

std::uint32_t read32(std::string_view s, std::size_t at) {
  auto b = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i]));
  };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

void append32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void append_setting(std::string& out, std::uint16_t id, std::uint32_t value) {
  out.push_back(static_cast<char>(id >> 8));
  out.push_back(static_cast<char>(id));
  append32(out, value);
}

// Removes the padding of a PADDED frame; false when the padding is longer than the frame.
bool strip_padding(std::uint8_t flags, std::string_view& payload) {
  if ((flags & kPadded) == 0) return true;
  if (payload.empty()) return false;
  auto pad = static_cast<unsigned char>(payload[0]);
  payload.remove_prefix(1);
  if (pad > payload.size()) return false;
  payload.remove_suffix(pad);
  return true;
}

}  // namespace

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::no_error:
      return "NO_ERROR";
    case ErrorCode::protocol_error:
      return "PROTOCOL_ERROR";
    case ErrorCode::internal_error:
      return "INTERNAL_ERROR";
    case ErrorCode::flow_control_error:
      return "FLOW_CONTROL_ERROR";
    case ErrorCode::settings_timeout:
      return "SETTINGS_TIMEOUT";
    case ErrorCode::stream_closed:
      return "STREAM_CLOSED";
    case ErrorCode::frame_size_error:
      return "FRAME_SIZE_ERROR";
    case ErrorCode::refused_stream:
      return "REFUSED_STREAM";
    case ErrorCode::cancel:
      return "CANCEL";
    case ErrorCode::compression_error:
      return "COMPRESSION_ERROR";
    case ErrorCode::connect_error:
      return "CONNECT_ERROR";
    case ErrorCode::enhance_your_calm:
      return "ENHANCE_YOUR_CALM";
    case ErrorCode::inadequate_security:
      return "INADEQUATE_SECURITY";
    case ErrorCode::http_1_1_required:
      return "HTTP_1_1_REQUIRED";
  }
  return "UNKNOWN_ERROR";
}

void append_frame_header(std::string& out, std::uint32_t length, FrameType type, std::uint8_t flags,
                         std::uint32_t stream_id) {
  out.push_back(static_cast<char>(length >> 16));
  out.push_back(static_cast<char>(length >> 8));
  out.push_back(static_cast<char>(length));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  append32(out, stream_id & kMaxWindow);
}

Connection::Connection(Role role, Handler& handler, const Options& options)
    : role_(role),
      handler_(handler),
      local_(options.settings),
      connection_window_(
          std::clamp<std::uint32_t>(options.connection_window, kDefaultWindow, kMaxWindow)),
      decoder_(options.settings.header_table_size),
      preface_pending_(role == Role::server),
      next_stream_id_(role == Role::client ? 1 : 2) {
  // Below the protocol's defaults the peer could overrun this side before seeing SETTINGS.
  local_.initial_window_size =
      std::clamp<std::uint32_t>(local_.initial_window_size, kDefaultWindow, kMaxWindow);
  local_.max_frame_size = std::clamp<std::uint32_t>(local_.max_frame_size, 16384, 16777215);
}

void Connection::start() {
  if (role_ == Role::client) out_.append(kClientPreface);
  std::string payload;
  if (role_ == Role::client) append_setting(payload, 0x2, 0);  // no server push
  if (role_ == Role::server && local_.max_concurrent_streams != 0xffffffff) {
    append_setting(payload, 0x3, local_.max_concurrent_streams);
  }
  if (local_.header_table_size != 4096) append_setting(payload, 0x1, local_.header_table_size);
  if (local_.initial_window_size != kDefaultWindow) {
    append_setting(payload, 0x4, local_.initial_window_size);
  }
  if (local_.max_frame_size != 16384) append_setting(payload, 0x5, local_.max_frame_size);
  if (local_.max_header_list_size != 0xffffffff) {
    append_setting(payload, 0x6, local_.max_header_list_size);
  }
  append_frame_header(out_, static_cast<std::uint32_t>(payload.size()), FrameType::settings, 0, 0);
  out_.append(payload);
  if (connection_window_ > kDefaultWindow) {
    write_window_update(0, connection_window_ - kDefaultWindow);
  }
}

bool Connection::fail(ErrorCode code, std::string why) {
  if (failed_) return false;
  failed_ = true;
  error_ = std::move(why);
  if (!goaway_sent_) {
    goaway_sent_ = true;
    std::string_view debug(error_);
    debug = debug.substr(0, 256);
    append_frame_header(out_, static_cast<std::uint32_t>(8 + debug.size()), FrameType::goaway, 0,
                        0);
    append32(out_, last_peer_stream_);
    append32(out_, static_cast<std::uint32_t>(code));
    out_.append(debug);
  }
  return false;
}

std::size_t Connection::unit_size(std::string_view data) const {
  if (preface_pending_) return kClientPreface.size();
  if (data.size() < kFrameHeaderSize) return kFrameHeaderSize;
  const auto length = frame_length(data);
  // An oversized frame fails in parse() as soon as its header is known; an unpadded DATA
  // frame's payload is taken in pieces after its header.
  const auto type = static_cast<FrameType>(data[3]);
  const auto flags = static_cast<std::uint8_t>(data[4]);
  if (length > local_.max_frame_size || (type == FrameType::data && (flags & kPadded) == 0)) {
    return kFrameHeaderSize;
  }
  return kFrameHeaderSize + length;
}

bool Connection::receive(std::string_view bytes) {
  if (failed_) return false;
  // A unit (the preface, a frame) cut by an earlier read is completed first, with only the bytes
  // it lacks; the rest is parsed where it lies, so a large transfer is not copied through in_.
  while (!in_.empty()) {
    const auto want = unit_size(in_);
    if (in_.size() < want) {
      const auto take = std::min(want - in_.size(), bytes.size());
      in_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (in_.size() < want) {
        // A preface that already differs fails now rather than when it is whole.
        if (preface_pending_ && !kClientPreface.starts_with(in_)) {
          in_.clear();
          return fail(ErrorCode::protocol_error, kNotAPreface);
        }
        return true;
      }
      continue;  // a completed header may show how long its frame is
    }
    std::size_t used = 0;  // all of in_: it holds exactly one unit
    const bool ok = parse(in_, used);
    in_.clear();
    if (!ok) return false;
  }
  // The rest of a DATA frame's payload comes first (its header was in an earlier read, or in
  // in_ just now).
  if (data_left_ != 0) {
    const auto take = std::min(data_left_, bytes.size());
    if (!data_piece(bytes.substr(0, take))) return false;
    bytes.remove_prefix(take);
    if (data_left_ != 0) return true;
  }
  std::size_t used = 0;
  if (!parse(bytes, used)) return false;
  in_.assign(bytes.substr(used));
  return true;
}

bool Connection::parse(std::string_view data, std::size_t& used) {
  std::size_t pos = 0;
  if (preface_pending_) {
    auto have = std::min(data.size(), kClientPreface.size());
    if (data.substr(0, have) != kClientPreface.substr(0, have)) {
      return fail(ErrorCode::protocol_error, kNotAPreface);
    }
    if (have < kClientPreface.size()) {
      used = 0;
      return true;
    }
    preface_pending_ = false;
    pos = kClientPreface.size();
  }
  while (data.size() - pos >= kFrameHeaderSize) {
    const auto length = frame_length(data.substr(pos));
    if (length > local_.max_frame_size) {
      return fail(ErrorCode::frame_size_error,
                  "frame of " + std::to_string(length) + " bytes exceeds SETTINGS_MAX_FRAME_SIZE");
    }
    auto type = static_cast<FrameType>(data[pos + 3]);
    auto flags = static_cast<std::uint8_t>(data[pos + 4]);
    auto stream_id = read32(data, pos + 5) & kMaxWindow;
    if (data.size() - pos - kFrameHeaderSize < length) {
      // An unpadded DATA frame cut by the end of the read is taken in pieces: splitting a DATA
      // frame changes nothing for flow control or its stream (END_STREAM stays with the last
      // piece), and the checks run on the first piece, as for the whole frame.
      if (type != FrameType::data || (flags & kPadded) != 0) break;
      if (!data_frame_fits(stream_id, length)) return false;
      data_stream_ = stream_id;
      data_flags_ = flags;
      data_left_ = length;
      const auto piece = data.substr(pos + kFrameHeaderSize);
      pos = data.size();
      used = pos;
      return data_piece(piece);
    }
    auto payload = data.substr(pos + kFrameHeaderSize, length);
    pos += kFrameHeaderSize + length;
    if (!handle_frame(type, flags, stream_id, payload)) return false;
  }
  used = pos;
  return true;
}

bool Connection::data_frame_fits(std::uint32_t stream_id, std::uint32_t length) {
  if (length > connection_window_ - conn_recv_unacked_) {
    return fail(ErrorCode::flow_control_error, "DATA beyond the connection window");
  }
  auto it = streams_.find(stream_id);
  if (it != streams_.end() && !it->second.remote_closed &&
      length > local_.initial_window_size - it->second.recv_unacked) {
    stream_error(stream_id, ErrorCode::flow_control_error);  // its pieces are then ignored
  }
  return true;
}

bool Connection::data_piece(std::string_view piece) {
  data_left_ -= piece.size();
  const auto flags =
      data_left_ == 0 ? data_flags_ : static_cast<std::uint8_t>(data_flags_ & ~kEndStream);
  return handle_frame(FrameType::data, flags, data_stream_, piece);
}

bool Connection::handle_frame(FrameType type, std::uint8_t flags, std::uint32_t stream_id,
                              std::string_view payload) {
  if (block_stream_ != 0 && type != FrameType::continuation) {
    return fail(ErrorCode::protocol_error, "a header block was interrupted by another frame");
  }
  if (settings_pending_ && type != FrameType::settings) {
    return fail(ErrorCode::protocol_error, "the first frame was not SETTINGS");
  }
  switch (type) {
    case FrameType::data:
      return on_data_frame(flags, stream_id, payload);
    case FrameType::headers:
      return on_headers_frame(flags, stream_id, payload);
    case FrameType::priority:
      if (stream_id == 0) return fail(ErrorCode::protocol_error, "PRIORITY on stream 0");
      if (payload.size() != 5) stream_error(stream_id, ErrorCode::frame_size_error);
      return true;
    case FrameType::rst_stream:
      return on_rst_stream_frame(stream_id, payload);
    case FrameType::settings:
      return on_settings_frame(flags, stream_id, payload);
    case FrameType::push_promise:
      return fail(ErrorCode::protocol_error, "PUSH_PROMISE is not allowed here");
    case FrameType::ping:
      if (stream_id != 0) return fail(ErrorCode::protocol_error, "PING on a stream");
      if (payload.size() != 8) return fail(ErrorCode::frame_size_error, "PING of wrong size");
      if (flags & kAck) {
        handler_.on_ping_ack(static_cast<std::uint64_t>(read32(payload, 0)) << 32 |
                             read32(payload, 4));
      } else {
        append_frame_header(out_, 8, FrameType::ping, kAck, 0);
        out_.append(payload);
      }
      return true;
    case FrameType::goaway:
      return on_goaway_frame(stream_id, payload);
    case FrameType::window_update:
      return on_window_update_frame(stream_id, payload);
    case FrameType::continuation:
      return on_continuation_frame(flags, stream_id, payload);
  }
  return true;  // unknown frame types are ignored (RFC 9113 section 4.1)
}

bool Connection::on_settings_frame(std::uint8_t flags, std::uint32_t stream_id,
                                   std::string_view payload) {
  if (stream_id != 0) return fail(ErrorCode::protocol_error, "SETTINGS on a stream");
  if (flags & kAck) {
    if (!payload.empty()) return fail(ErrorCode::frame_size_error, "SETTINGS ack with a payload");
    return true;
  }
  if (payload.size() % 6 != 0) return fail(ErrorCode::frame_size_error, "SETTINGS of wrong size");
  settings_pending_ = false;
  bool window_grew = false;
  for (std::size_t i = 0; i < payload.size(); i += 6) {
    auto id = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[i]) << 8 |
                                         static_cast<unsigned char>(payload[i + 1]));
    auto value = read32(payload, i + 2);
    switch (id) {
      case 0x1:
        peer_.header_table_size = value;
        encoder_.set_peer_max_table_size(value);
        break;
      case 0x2:
        if (value > 1) return fail(ErrorCode::protocol_error, "SETTINGS_ENABLE_PUSH above 1");
        if (role_ == Role::client && value != 0) {
          return fail(ErrorCode::protocol_error, "a server enabled push");
        }
        break;
      case 0x3:
        peer_.max_concurrent_streams = value;
        break;
      case 0x4: {
        if (value > kMaxWindow) {
          return fail(ErrorCode::flow_control_error, "SETTINGS_INITIAL_WINDOW_SIZE too large");
        }
        auto delta = static_cast<std::int64_t>(value) - peer_.initial_window_size;
        for (auto& [id_, stream] : streams_) {
          stream.send_window += delta;
          if (stream.send_window > kMaxWindow) {
            return fail(ErrorCode::flow_control_error, "a stream window overflowed");
          }
        }
        window_grew = window_grew || delta > 0;
        peer_.initial_window_size = value;
        break;
      }
      case 0x5:
        if (value < 16384 || value > 16777215) {
          return fail(ErrorCode::protocol_error, "SETTINGS_MAX_FRAME_SIZE out of range");
        }
        peer_.max_frame_size = value;
        break;
      case 0x6:
        peer_.max_header_list_size = value;
        break;
      default:
        break;  // unknown settings are ignored
    }
  }
  append_frame_header(out_, 0, FrameType::settings, kAck, 0);
  if (window_grew) flush_blocked();
  return true;
}

bool Connection::on_headers_frame(std::uint8_t flags, std::uint32_t stream_id,
                                  std::string_view payload) {
  if (stream_id == 0) return fail(ErrorCode::protocol_error, "HEADERS on stream 0");
  if (!strip_padding(flags, payload)) {
    return fail(ErrorCode::protocol_error, "HEADERS padding longer than the frame");
  }
  if (flags & kPriority) {
    if (payload.size() < 5) return fail(ErrorCode::frame_size_error, "HEADERS priority cut short");
    payload.remove_prefix(5);
  }
  block_stream_ = stream_id;
  block_end_stream_ = (flags & kEndStream) != 0;
  block_.assign(payload);
  if (flags & kEndHeaders) return on_header_block_done();
  return true;
}

bool Connection::on_continuation_frame(std::uint8_t flags, std::uint32_t stream_id,
                                       std::string_view payload) {
  if (block_stream_ == 0 || stream_id != block_stream_) {
    return fail(ErrorCode::protocol_error, "CONTINUATION without a header block to continue");
  }
  if (block_.size() + payload.size() > kMaxHeaderBlock) {
    return fail(ErrorCode::enhance_your_calm, "header block too large");
  }
  block_.append(payload);
  if (flags & kEndHeaders) return on_header_block_done();
  return true;
}

bool Connection::on_header_block_done() {
  const auto id = block_stream_;
  const bool end = block_end_stream_;
  block_stream_ = 0;
  HeaderList headers;
  headers.reserve(16);  // a gRPC request or answer has about ten fields
  auto result = decoder_.decode(block_, headers, local_.max_header_list_size);
  block_.clear();
  if (result == HpackDecoder::Result::compression_error) {
    return fail(ErrorCode::compression_error, "HPACK: " + decoder_.error());
  }
  const bool too_large = result == HpackDecoder::Result::too_large;
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    if (role_ == Role::client) {
      if (id % 2 == 1 && id < next_stream_id_) return true;  // a stream this side reset
      return fail(ErrorCode::protocol_error, "HEADERS on a stream the client never opened");
    }
    if (id % 2 == 0) return fail(ErrorCode::protocol_error, "a client opened an even stream id");
    if (id <= last_peer_stream_) return true;  // trailers of a stream this side reset
    last_peer_stream_ = id;
    if (goaway_sent_ || streams_.size() >= local_.max_concurrent_streams) {
      write_rst_stream(id, ErrorCode::refused_stream);
      return true;
    }
    Stream stream;
    stream.send_window = peer_.initial_window_size;
    stream.remote_closed = end;
    streams_.emplace(id, std::move(stream));
    if (too_large) {
      handler_.on_headers_too_large(id);
      auto again = streams_.find(id);
      if (again != streams_.end()) {
        reset_stream(id,
                     again->second.local_closed ? ErrorCode::no_error : ErrorCode::protocol_error);
      }
      return true;
    }
    handler_.on_headers(id, headers, end);
    maybe_forget(id);
    return true;
  }
  auto& stream = it->second;
  if (stream.remote_closed) {
    stream_error(id, ErrorCode::stream_closed);
    return true;
  }
  if (too_large) {
    handler_.on_headers_too_large(id);
    reset_stream(id, ErrorCode::cancel);
    return true;
  }
  // A second block from a client is its trailers, which must end the stream.
  if (role_ == Role::server && !end) {
    stream_error(id, ErrorCode::protocol_error);
    return true;
  }
  stream.remote_closed = end;
  handler_.on_headers(id, headers, end);
  maybe_forget(id);
  return true;
}

bool Connection::on_data_frame(std::uint8_t flags, std::uint32_t stream_id,
                               std::string_view payload) {
  if (stream_id == 0) return fail(ErrorCode::protocol_error, "DATA on stream 0");
  // Flow control counts the whole frame payload, padding included.
  const auto length = static_cast<std::uint32_t>(payload.size());
  if (length > connection_window_ - conn_recv_unacked_) {
    return fail(ErrorCode::flow_control_error, "DATA beyond the connection window");
  }
  conn_recv_unacked_ += length;
  if (conn_recv_unacked_ >= connection_window_ / 2) {
    write_window_update(0, conn_recv_unacked_);
    conn_recv_unacked_ = 0;
  }
  if (!strip_padding(flags, payload)) {
    return fail(ErrorCode::protocol_error, "DATA padding longer than the frame");
  }
  const bool end = (flags & kEndStream) != 0;
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    if (was_open(stream_id)) return true;  // a stream this side reset: data still in flight
    return fail(ErrorCode::protocol_error, "DATA on a stream never opened");
  }
  auto& stream = it->second;
  if (stream.remote_closed) {
    stream_error(stream_id, ErrorCode::stream_closed);
    return true;
  }
  if (length > local_.initial_window_size - stream.recv_unacked) {
    stream_error(stream_id, ErrorCode::flow_control_error);
    return true;
  }
  stream.recv_unacked += length;
  if (!end && stream.recv_unacked >= local_.initial_window_size / 2) {
    write_window_update(stream_id, stream.recv_unacked);
    stream.recv_unacked = 0;
  }
  stream.remote_closed = end;
  if (!payload.empty() || end) handler_.on_data(stream_id, payload, end);
  maybe_forget(stream_id);
  return true;
}

bool Connection::on_window_update_frame(std::uint32_t stream_id, std::string_view payload) {
  if (payload.size() != 4) return fail(ErrorCode::frame_size_error, "WINDOW_UPDATE of wrong size");
  auto increment = read32(payload, 0) & kMaxWindow;
  if (stream_id == 0) {
    if (increment == 0) return fail(ErrorCode::protocol_error, "WINDOW_UPDATE of 0");
    conn_send_window_ += increment;
    if (conn_send_window_ > kMaxWindow) {
      return fail(ErrorCode::flow_control_error, "the connection window overflowed");
    }
    flush_blocked();
    return true;
  }
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    if (!was_open(stream_id))
      return fail(ErrorCode::protocol_error, "WINDOW_UPDATE on an idle stream");
    return true;
  }
  if (increment == 0) {
    stream_error(stream_id, ErrorCode::protocol_error);
    return true;
  }
  it->second.send_window += increment;
  if (it->second.send_window > kMaxWindow) {
    stream_error(stream_id, ErrorCode::flow_control_error);
    return true;
  }
  flush_stream(stream_id, it->second);
  return true;
}

bool Connection::on_rst_stream_frame(std::uint32_t stream_id, std::string_view payload) {
  if (stream_id == 0) return fail(ErrorCode::protocol_error, "RST_STREAM on stream 0");
  if (payload.size() != 4) return fail(ErrorCode::frame_size_error, "RST_STREAM of wrong size");
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    if (!was_open(stream_id))
      return fail(ErrorCode::protocol_error, "RST_STREAM on an idle stream");
    return true;
  }
  forget(it);
  handler_.on_stream_reset(stream_id, static_cast<ErrorCode>(read32(payload, 0)));
  return true;
}

bool Connection::on_goaway_frame(std::uint32_t stream_id, std::string_view payload) {
  if (stream_id != 0) return fail(ErrorCode::protocol_error, "GOAWAY on a stream");
  if (payload.size() < 8) return fail(ErrorCode::frame_size_error, "GOAWAY cut short");
  auto last = read32(payload, 0) & kMaxWindow;
  auto code = static_cast<ErrorCode>(read32(payload, 4));
  goaway_received_ = true;
  goaway_last_stream_ = std::min(goaway_last_stream_, last);
  handler_.on_goaway(last, code);
  if (role_ == Role::client) {
    // Streams above `last` were never processed: they may safely go elsewhere.
    std::vector<std::uint32_t> refused;
    for (const auto& [id, stream] : streams_) {
      if (id > last) refused.push_back(id);
    }
    std::sort(refused.begin(), refused.end());
    for (auto id : refused) {
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;
      forget(it);
      handler_.on_stream_reset(id, ErrorCode::refused_stream);
    }
  }
  return true;
}

bool Connection::can_open_stream() const {
  return role_ == Role::client && !failed_ && !goaway_received_ && !goaway_sent_ &&
         next_stream_id_ <= kMaxWindow && streams_.size() < peer_.max_concurrent_streams;
}

std::uint32_t Connection::open_stream(HeaderRefs headers, bool end_stream) {
  if (!can_open_stream()) return 0;
  const auto id = next_stream_id_;
  next_stream_id_ += 2;
  Stream stream;
  stream.send_window = peer_.initial_window_size;
  stream.local_closed = end_stream;
  streams_.emplace(id, std::move(stream));
  write_header_block(id, headers, end_stream);
  return id;
}

void Connection::send_headers(std::uint32_t stream_id, HeaderRefs headers, bool end_stream) {
  auto it = streams_.find(stream_id);
  if (failed_ || it == streams_.end() || it->second.local_closed) return;
  auto& stream = it->second;
  if (end_stream && stream.blocked) {
    stream.has_trailers = true;
    stream.trailers = owned(headers);
    stream.local_closed = true;
    return;
  }
  write_header_block(stream_id, headers, end_stream);
  if (end_stream) {
    stream.local_closed = true;
    maybe_forget(stream_id);
  }
}

void Connection::send_data(std::uint32_t stream_id, std::string_view head, std::string_view body,
                           bool end_stream, std::shared_ptr<const void> body_owner) {
  auto it = streams_.find(stream_id);
  if (failed_ || it == streams_.end() || it->second.local_closed) return;
  auto& stream = it->second;
  if (end_stream) stream.local_closed = true;
  if (stream.blocked) {
    // Rare (gRPC sends one message per stream): everything queued becomes a copy.
    stream.pending.append(stream.borrowed).append(head).append(body);
    stream.borrowed = {};
    stream.borrowed_owner.reset();
    pending_bytes_ += head.size() + body.size();
    stream.pending_end = end_stream;
    return;
  }
  auto sent = write_data_frames(stream_id, stream, head, body, end_stream, body_owner);
  const auto total = head.size() + body.size();
  if (sent < total) {
    stream.pending.clear();
    stream.pending_off = 0;
    if (sent < head.size()) {
      stream.pending.append(head.substr(sent));
      sent = head.size();
    }
    auto rest = body.substr(sent - head.size());
    if (body_owner) {
      stream.borrowed = rest;
      stream.borrowed_owner = std::move(body_owner);
    } else {
      stream.pending.append(rest);
    }
    pending_bytes_ += stream.pending.size() + stream.borrowed.size();
    stream.pending_end = end_stream;
    stream.blocked = true;
    blocked_.push_back(stream_id);
    return;
  }
  if (end_stream) maybe_forget(stream_id);
}

void Connection::take_output(Output& into) {
  into.bytes.clear();
  into.lent.clear();
  into.bytes.swap(out_);
  into.lent.swap(lent_);
}

std::string& Connection::output() {
  if (!lent_.empty()) {
    Output lent;
    take_output(lent);
    lent.for_each([this](std::string_view run) { out_.append(run); });
  }
  return out_;
}

std::size_t Connection::write_data_frames(std::uint32_t stream_id, Stream& stream,
                                          std::string_view head, std::string_view body,
                                          bool end_stream,
                                          const std::shared_ptr<const void>& body_owner) {
  const auto total = head.size() + body.size();
  if (total == 0) {
    if (end_stream) append_frame_header(out_, 0, FrameType::data, kEndStream, stream_id);
    return 0;
  }
  // Room for every frame the windows let out now, made once: growing the output as frames are
  // appended would copy everything already in it at each doubling (a large message twice over).
  // Lent bytes take no room.
  const auto window = std::min(conn_send_window_, stream.send_window);
  if (window > 0) {
    const auto now = std::min<std::size_t>(total, static_cast<std::size_t>(window));
    const auto frames = (now + peer_.max_frame_size - 1) / peer_.max_frame_size;
    const auto copied = body_owner ? std::min(now, head.size()) : now;
    const auto need = out_.size() + copied + frames * kFrameHeaderSize + kOutputSlack;
    if (need > out_.capacity()) out_.reserve(need);
  }
  std::size_t sent = 0;
  while (sent < total) {
    auto allowed = std::min<std::int64_t>(
        {conn_send_window_, stream.send_window, static_cast<std::int64_t>(peer_.max_frame_size)});
    if (allowed <= 0) break;
    auto n = std::min<std::size_t>(static_cast<std::size_t>(allowed), total - sent);
    const bool last = end_stream && sent + n == total;
    append_frame_header(out_, static_cast<std::uint32_t>(n), FrameType::data, last ? kEndStream : 0,
                        stream_id);
    // The frame's bytes: what is left of head, then body.
    auto from = sent;
    auto left = n;
    if (from < head.size()) {
      auto k = std::min(left, head.size() - from);
      out_.append(head.substr(from, k));
      from += k;
      left -= k;
    }
    if (left > 0) {
      auto run = body.substr(from - head.size(), left);
      if (body_owner) {
        lent_.push_back({out_.size(), run, body_owner});
      } else {
        out_.append(run);
      }
    }
    sent += n;
    conn_send_window_ -= static_cast<std::int64_t>(n);
    stream.send_window -= static_cast<std::int64_t>(n);
  }
  return sent;
}

void Connection::flush_stream(std::uint32_t stream_id, Stream& stream) {
  if (!stream.blocked) return;
  std::string_view copied(stream.pending);
  copied.remove_prefix(stream.pending_off);
  const auto rest = copied.size() + stream.borrowed.size();
  const bool end_with_data = stream.pending_end && !stream.has_trailers;
  if (rest == 0 && !end_with_data && !stream.has_trailers) return;
  auto sent =
      rest == 0 ? 0
                : write_data_frames(stream_id, stream, copied, stream.borrowed, end_with_data,
                                    stream.borrowed_owner);
  pending_bytes_ -= sent;
  if (sent < rest) {
    if (sent <= copied.size()) {
      stream.pending_off += sent;
    } else {
      stream.pending_off = stream.pending.size();
      stream.borrowed.remove_prefix(sent - copied.size());
    }
    return;
  }
  if (rest == 0 && end_with_data) write_data_frames(stream_id, stream, {}, {}, true);
  stream.pending.clear();
  stream.pending_off = 0;
  stream.borrowed = {};
  stream.borrowed_owner.reset();
  stream.blocked = false;
  if (stream.has_trailers) {
    stream.has_trailers = false;
    write_header_block(stream_id, views(stream.trailers), true);
    stream.trailers.clear();
  }
  maybe_forget(stream_id);
}

void Connection::flush_blocked() {
  for (auto n = blocked_.size(); n > 0 && conn_send_window_ > 0; --n) {
    auto id = blocked_.front();
    blocked_.pop_front();
    auto it = streams_.find(id);
    if (it == streams_.end() || !it->second.blocked) continue;
    flush_stream(id, it->second);
    it = streams_.find(id);
    if (it != streams_.end() && it->second.blocked) blocked_.push_back(id);
  }
}

void Connection::reset_stream(std::uint32_t stream_id, ErrorCode code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  if (!failed_) write_rst_stream(stream_id, code);
  forget(it);
}

void Connection::stream_error(std::uint32_t stream_id, ErrorCode code) {
  write_rst_stream(stream_id, code);
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  forget(it);
  handler_.on_stream_reset(stream_id, code);
}

void Connection::abort_streams(ErrorCode code) {
  std::vector<std::uint32_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (auto id : ids) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    forget(it);
    handler_.on_stream_reset(id, code);
  }
}

void Connection::goaway(ErrorCode code, std::string_view debug) {
  if (goaway_sent_ || failed_) return;
  goaway_sent_ = true;
  debug = debug.substr(0, 256);
  append_frame_header(out_, static_cast<std::uint32_t>(8 + debug.size()), FrameType::goaway, 0, 0);
  append32(out_, role_ == Role::server ? last_peer_stream_ : 0);
  append32(out_, static_cast<std::uint32_t>(code));
  out_.append(debug);
}

void Connection::ping(std::uint64_t opaque) {
  if (failed_) return;
  append_frame_header(out_, 8, FrameType::ping, 0, 0);
  append32(out_, static_cast<std::uint32_t>(opaque >> 32));
  append32(out_, static_cast<std::uint32_t>(opaque));
}

void Connection::write_header_block(std::uint32_t stream_id, HeaderRefs headers,
                                    bool end_stream) {
  scratch_.clear();
  encoder_.encode(headers, scratch_);
  std::string_view block(scratch_);
  const auto max = peer_.max_frame_size;
  auto first = std::min<std::size_t>(block.size(), max);
  std::uint8_t flags = (end_stream ? kEndStream : 0) | (first == block.size() ? kEndHeaders : 0);
  append_frame_header(out_, static_cast<std::uint32_t>(first), FrameType::headers, flags,
                      stream_id);
  out_.append(block.substr(0, first));
  block.remove_prefix(first);
  while (!block.empty()) {
    auto n = std::min<std::size_t>(block.size(), max);
    append_frame_header(out_, static_cast<std::uint32_t>(n), FrameType::continuation,
                        n == block.size() ? kEndHeaders : 0, stream_id);
    out_.append(block.substr(0, n));
    block.remove_prefix(n);
  }
}

void Connection::write_window_update(std::uint32_t stream_id, std::uint32_t increment) {
  append_frame_header(out_, 4, FrameType::window_update, 0, stream_id);
  append32(out_, increment & kMaxWindow);
}

void Connection::write_rst_stream(std::uint32_t stream_id, ErrorCode code) {
  append_frame_header(out_, 4, FrameType::rst_stream, 0, stream_id);
  append32(out_, static_cast<std::uint32_t>(code));
}

void Connection::maybe_forget(std::uint32_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  const auto& s = it->second;
  if (s.local_closed && s.remote_closed && !s.blocked) forget(it);
}

void Connection::forget(StreamMap::iterator it) {
  pending_bytes_ -= it->second.pending.size() - it->second.pending_off + it->second.borrowed.size();
  streams_.erase(it);  // a stale id left in blocked_ is skipped there
}

bool Connection::was_open(std::uint32_t stream_id) const {
  if (role_ == Role::server) return stream_id % 2 == 1 && stream_id <= last_peer_stream_;
  return stream_id % 2 == 1 && stream_id < next_stream_id_;
}

}  // namespace fusebox::h2
