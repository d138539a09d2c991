#include "fusebox/rpc/model_spec.h"

#include <utility>

namespace fusebox::rpc {

namespace {

// Field numbers.
constexpr std::uint32_t kRequestModelSpec = 1;  // in every routed request, and in InferenceTask
constexpr std::uint32_t kMultiInferenceTasks = 1;
constexpr std::uint32_t kSpecName = 1;
constexpr std::uint32_t kSpecVersion = 2;
constexpr std::uint32_t kSpecSignatureName = 3;
constexpr std::uint32_t kSpecVersionLabel = 4;
constexpr std::uint32_t kInt64ValueValue = 1;

// A ModelSpec being merged from one or more serialized occurrences, with the bytes of the
// fields it does not know (kept for rewriting).
struct SpecState {
  ModelSpec spec;
  std::string unknown;
};

WireError read_string(WireReader& reader, std::string& out) {
  std::string_view text;
  if (const auto e = reader.read_string(text); e != WireError::none) return e;
  out.assign(text);
  return WireError::none;
}

// google.protobuf.Int64Value merged into `value` (value = 1; everything else ignored).
WireError merge_int64_value(std::string_view bytes, std::int64_t& value) {
  WireReader reader(bytes);
  while (!reader.done()) {
    Tag tag;
    if (const auto e = reader.read_field_tag(tag); e != WireError::none) return e;
    if (tag.field == kInt64ValueValue && tag.wire_type == kVarint) {
      std::uint64_t raw = 0;
      if (const auto e = reader.read_varint(raw); e != WireError::none) return e;
      value = static_cast<std::int64_t>(raw);
    } else if (const auto e = reader.skip(tag); e != WireError::none) {
      return e;
    }
  }
  return WireError::none;
}

// Parses one serialized ModelSpec into `state`, merging with what it holds already (a later
// occurrence of a message field continues the earlier one, as libprotobuf parses it).
WireError merge_spec(std::string_view bytes, SpecState& state) {
  WireReader reader(bytes);
  ModelSpec& spec = state.spec;
  while (!reader.done()) {
    const std::size_t field_start = reader.position();
    Tag tag;
    if (const auto e = reader.read_field_tag(tag); e != WireError::none) return e;
    WireError e = WireError::none;
    const bool length_delimited = tag.wire_type == kLengthDelimited;
    if (tag.field == kSpecName && length_delimited) {
      e = read_string(reader, spec.name);
    } else if (tag.field == kSpecSignatureName && length_delimited) {
      e = read_string(reader, spec.signature_name);
    } else if (tag.field == kSpecVersionLabel && length_delimited) {
      std::string label;
      e = read_string(reader, label);
      spec.version.reset();  // oneof: the label replaces a version
      spec.version_label = std::move(label);
    } else if (tag.field == kSpecVersion && length_delimited) {
      std::string_view wrapper;
      e = reader.read_length_delimited(wrapper);
      if (e == WireError::none) {
        // oneof: a version merges into a version, and replaces a label.
        std::int64_t value = spec.version.value_or(0);
        e = merge_int64_value(wrapper, value);
        spec.version_label.reset();
        spec.version = value;
      }
    } else {
      e = reader.skip(tag);
      if (e == WireError::none) {
        state.unknown.append(bytes.substr(field_start, reader.position() - field_start));
      }
    }
    if (e != WireError::none) return e;
  }
  return WireError::none;
}

// One pass over a message whose field `field` is an embedded message: calls on_field(payload,
// start, end) for each occurrence with wire type 2 (start/end delimit the whole field, tag
// included) and checks the framing of everything else.
template <typename OnField>
WireError scan_fields(std::string_view message, std::uint32_t field, OnField&& on_field) {
  WireReader reader(message);
  while (!reader.done()) {
    const std::size_t start = reader.position();
    Tag tag;
    if (const auto e = reader.read_field_tag(tag); e != WireError::none) return e;
    if (tag.field == field && tag.wire_type == kLengthDelimited) {
      std::string_view payload;
      if (const auto e = reader.read_length_delimited(payload); e != WireError::none) return e;
      if (const auto e = on_field(payload, start, reader.position()); e != WireError::none) {
        return e;
      }
    } else if (const auto e = reader.skip(tag); e != WireError::none) {
      return e;
    }
  }
  return WireError::none;
}

struct MergedSpec {
  WireError error = WireError::none;
  bool present = false;
  SpecState state;
  // Where the occurrences of field 1 sit in the message: [start, end) of each.
  std::vector<std::pair<std::size_t, std::size_t>> spans;
};

MergedSpec merge_request_spec(std::string_view request) {
  MergedSpec merged;
  merged.error =
      scan_fields(request, kRequestModelSpec,
                  [&merged](std::string_view payload, std::size_t start, std::size_t end) {
                    merged.present = true;
                    merged.spans.emplace_back(start, end);
                    return merge_spec(payload, merged.state);
                  });
  return merged;
}

std::string serialize_spec_state(const SpecState& state) {
  std::string out = serialize_model_spec(state.spec);
  out.append(state.unknown);
  return out;
}

bool is_empty(const ModelSpec& spec) { return spec == ModelSpec{}; }

// The request with its model_spec occurrences replaced by one rewritten occurrence.
RewriteResult rewrite_request(std::string_view request, const ModelSpecRewrite& rewrite) {
  MergedSpec merged = merge_request_spec(request);
  RewriteResult result;
  if (merged.error != WireError::none) {
    result.error = merged.error;
    return result;
  }
  SpecState state = std::move(merged.state);
  state.spec = apply_rewrite(state.spec, rewrite);
  if (!merged.present) {
    if (is_empty(state.spec)) {
      result.bytes.assign(request);
      return result;
    }
    append_length_delimited(result.bytes, kRequestModelSpec, serialize_spec_state(state));
    result.bytes.append(request);
    return result;
  }
  const std::string field = [&state] {
    std::string f;
    append_length_delimited(f, kRequestModelSpec, serialize_spec_state(state));
    return f;
  }();
  result.bytes.reserve(request.size() + field.size());
  std::size_t copied = 0;
  for (std::size_t i = 0; i < merged.spans.size(); ++i) {
    const auto [start, end] = merged.spans[i];
    result.bytes.append(request.substr(copied, start - copied));
    if (i == 0) result.bytes.append(field);
    copied = end;
  }
  result.bytes.append(request.substr(copied));
  return result;
}

}  // namespace

ModelSpecResult parse_model_spec(std::string_view request) {
  MergedSpec merged = merge_request_spec(request);
  ModelSpecResult result;
  result.error = merged.error;
  if (merged.error == WireError::none && merged.present) result.spec = std::move(merged.state.spec);
  return result;
}

ModelSpecResult parse_model_spec_message(std::string_view spec) {
  SpecState state;
  ModelSpecResult result;
  result.error = merge_spec(spec, state);
  if (result.ok()) result.spec = std::move(state.spec);
  return result;
}

TaskModelSpecsResult parse_task_model_specs(std::string_view request) {
  TaskModelSpecsResult result;
  result.error = scan_fields(request, kMultiInferenceTasks,
                             [&result](std::string_view task, std::size_t, std::size_t) {
                               ModelSpecResult spec = parse_model_spec(task);
                               result.tasks.push_back(std::move(spec.spec));
                               return spec.error;
                             });
  if (!result.ok()) result.tasks.clear();
  return result;
}

ModelSpec apply_rewrite(const ModelSpec& spec, const ModelSpecRewrite& rewrite) {
  ModelSpec out = spec;
  if (rewrite.name) out.name = *rewrite.name;
  if (rewrite.signature_name) out.signature_name = *rewrite.signature_name;
  if (rewrite.version) {
    out.version.reset();
    out.version_label.reset();
    if (const auto* number = std::get_if<std::int64_t>(&*rewrite.version)) {
      out.version = *number;
    } else if (const auto* label = std::get_if<std::string>(&*rewrite.version)) {
      out.version_label = *label;
    }
  }
  return out;
}

std::string serialize_model_spec(const ModelSpec& spec) {
  std::string out;
  if (!spec.name.empty()) append_length_delimited(out, kSpecName, spec.name);
  if (spec.version) {
    std::string wrapper;
    if (*spec.version != 0) {
      append_tag(wrapper, kInt64ValueValue, kVarint);
      append_varint(wrapper, static_cast<std::uint64_t>(*spec.version));
    }
    append_length_delimited(out, kSpecVersion, wrapper);
  }
  if (!spec.signature_name.empty()) {
    append_length_delimited(out, kSpecSignatureName, spec.signature_name);
  }
  // A oneof member is written even when empty: presence is what selects it.
  if (spec.version_label) append_length_delimited(out, kSpecVersionLabel, *spec.version_label);
  return out;
}

RewriteResult rewrite_model_spec(std::string_view request, const ModelSpecRewrite& rewrite) {
  return rewrite_request(request, rewrite);
}

RewriteResult rewrite_task_model_specs(std::string_view request, const ModelSpecRewrite& rewrite) {
  RewriteResult result;
  std::size_t copied = 0;
  result.error =
      scan_fields(request, kMultiInferenceTasks,
                  [&](std::string_view task, std::size_t start, std::size_t end) {
                    RewriteResult task_result = rewrite_request(task, rewrite);
                    if (!task_result.ok()) return task_result.error;
                    result.bytes.append(request.substr(copied, start - copied));
                    append_length_delimited(result.bytes, kMultiInferenceTasks, task_result.bytes);
                    copied = end;
                    return WireError::none;
                  });
  if (!result.ok()) {
    result.bytes.clear();
    return result;
  }
  result.bytes.append(request.substr(copied));
  return result;
}

}  // namespace fusebox::rpc
