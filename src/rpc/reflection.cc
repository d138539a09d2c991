#include "fusebox/rpc/reflection.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <utility>

#include "fusebox/rpc/protobuf_wire.h"

namespace fusebox::rpc {
namespace {

namespace pb = google::protobuf;

// Field numbers of grpc/reflection/v1alpha/reflection.proto (v1 is the same).
// ServerReflectionRequest: host, then the oneof message_request.
constexpr std::uint32_t kRequestHost = 1;
constexpr std::uint32_t kRequestFileByFilename = 3;
constexpr std::uint32_t kRequestFileContainingSymbol = 4;
constexpr std::uint32_t kRequestFileContainingExtension = 5;
constexpr std::uint32_t kRequestAllExtensionNumbersOfType = 6;
constexpr std::uint32_t kRequestListServices = 7;
// ExtensionRequest.
constexpr std::uint32_t kExtensionContainingType = 1;
constexpr std::uint32_t kExtensionNumber = 2;
// ServerReflectionResponse: valid_host, original_request, then the oneof message_response.
constexpr std::uint32_t kResponseValidHost = 1;
constexpr std::uint32_t kResponseOriginalRequest = 2;
constexpr std::uint32_t kResponseFileDescriptors = 4;
constexpr std::uint32_t kResponseExtensionNumbers = 5;
constexpr std::uint32_t kResponseListServices = 6;
constexpr std::uint32_t kResponseError = 7;
// FileDescriptorResponse, ExtensionNumberResponse, ListServiceResponse/ServiceResponse,
// ErrorResponse.
constexpr std::uint32_t kFileDescriptorProto = 1;
constexpr std::uint32_t kBaseTypeName = 1;
constexpr std::uint32_t kExtensionNumbers = 2;
constexpr std::uint32_t kListedService = 1;
constexpr std::uint32_t kServiceName = 1;
constexpr std::uint32_t kErrorCode = 1;
constexpr std::uint32_t kErrorMessage = 2;

// gRPC status codes carried in ErrorResponse.error_code.
constexpr std::uint64_t kNotFound = 5;
constexpr std::uint64_t kUnimplemented = 12;

constexpr std::string_view kReflectionServices[] = {"grpc.reflection.v1alpha.ServerReflection",
                                                    "grpc.reflection.v1.ServerReflection"};

// The reflection protocol's own file, for one version ("v1alpha", "v1"; `$v` below). Text format
// of the FileDescriptorProto protoc builds from gRPC's reflection.proto (json_name left out: the
// answers do not carry it). Carried so that the listed reflection services can be described
// whether or not the binary links gRPC's generated reflection code.
constexpr std::string_view kReflectionFileText = R"text(
  name: "grpc/reflection/$v/reflection.proto"
  package: "grpc.reflection.$v"
  syntax: "proto3"
  message_type {
    name: "ServerReflectionRequest"
    field { name: "host" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "file_by_filename" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING
            oneof_index: 0 }
    field { name: "file_containing_symbol" number: 4 label: LABEL_OPTIONAL type: TYPE_STRING
            oneof_index: 0 }
    field { name: "file_containing_extension" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.ExtensionRequest" oneof_index: 0 }
    field { name: "all_extension_numbers_of_type" number: 6 label: LABEL_OPTIONAL
            type: TYPE_STRING oneof_index: 0 }
    field { name: "list_services" number: 7 label: LABEL_OPTIONAL type: TYPE_STRING
            oneof_index: 0 }
    oneof_decl { name: "message_request" }
  }
  message_type {
    name: "ExtensionRequest"
    field { name: "containing_type" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "extension_number" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
  }
  message_type {
    name: "ServerReflectionResponse"
    field { name: "valid_host" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "original_request" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.ServerReflectionRequest" }
    field { name: "file_descriptor_response" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.FileDescriptorResponse" oneof_index: 0 }
    field { name: "all_extension_numbers_response" number: 5 label: LABEL_OPTIONAL
            type: TYPE_MESSAGE type_name: ".grpc.reflection.$v.ExtensionNumberResponse"
            oneof_index: 0 }
    field { name: "list_services_response" number: 6 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.ListServiceResponse" oneof_index: 0 }
    field { name: "error_response" number: 7 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.ErrorResponse" oneof_index: 0 }
    oneof_decl { name: "message_response" }
  }
  message_type {
    name: "FileDescriptorResponse"
    field { name: "file_descriptor_proto" number: 1 label: LABEL_REPEATED type: TYPE_BYTES }
  }
  message_type {
    name: "ExtensionNumberResponse"
    field { name: "base_type_name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "extension_number" number: 2 label: LABEL_REPEATED type: TYPE_INT32 }
  }
  message_type {
    name: "ListServiceResponse"
    field { name: "service" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".grpc.reflection.$v.ServiceResponse" }
  }
  message_type {
    name: "ServiceResponse"
    field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  message_type {
    name: "ErrorResponse"
    field { name: "error_code" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
    field { name: "error_message" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  service {
    name: "ServerReflection"
    method { name: "ServerReflectionInfo"
             input_type: ".grpc.reflection.$v.ServerReflectionRequest"
             output_type: ".grpc.reflection.$v.ServerReflectionResponse"
             client_streaming: true server_streaming: true }
  }
  options {
    java_package: "io.grpc.reflection.$v" java_outer_classname: "ServerReflectionProto"
    java_multiple_files: true go_package: "google.golang.org/grpc/reflection/grpc_reflection_$v"
  }
)text";

std::unique_ptr<pb::DescriptorPool> build_reflection_pool() {
  auto pool = std::make_unique<pb::DescriptorPool>();
  for (const std::string_view version : {"v1alpha", "v1"}) {
    std::string text(kReflectionFileText);
    for (auto at = text.find("$v"); at != std::string::npos; at = text.find("$v", at)) {
      text.replace(at, 2, version);
    }
    pb::FileDescriptorProto file;
    // Fixed text checked by the tests: parsing and building cannot fail at run time.
    pb::TextFormat::ParseFromString(text, &file);
    if (version == "v1alpha") file.mutable_options()->set_deprecated(true);
    pool->BuildFile(file);
  }
  return pool;
}

// Built once, on the first ReflectionService's construction; read-only afterwards.
const pb::DescriptorPool& reflection_pool() {
  static const std::unique_ptr<pb::DescriptorPool> pool = build_reflection_pool();
  return *pool;
}

// A lookup in the server's pool, then in the reflection protocol's own files.
template <typename Find>
auto find_in(const pb::DescriptorPool& pool, Find&& find) {
  const auto* found = find(pool);
  return found != nullptr ? found : find(reflection_pool());
}

enum class Ask {
  nothing,  // no member of message_request (or only ones this version does not know)
  file_by_filename,
  file_containing_symbol,
  file_containing_extension,
  all_extension_numbers_of_type,
  list_services,
};

// A parsed ServerReflectionRequest; the views point into the request bytes.
struct Request {
  std::string_view host;
  Ask ask = Ask::nothing;
  std::string_view name;  // file name, symbol, type name, or the extension's containing type
  std::int32_t extension_number = 0;
};

// The string members of the oneof.
Ask string_ask(std::uint32_t field) {
  switch (field) {
    case kRequestFileByFilename:
      return Ask::file_by_filename;
    case kRequestFileContainingSymbol:
      return Ask::file_containing_symbol;
    case kRequestAllExtensionNumbersOfType:
      return Ask::all_extension_numbers_of_type;
    case kRequestListServices:
      return Ask::list_services;
    default:
      return Ask::nothing;
  }
}

// One occurrence of ExtensionRequest merged into `request` (each field takes its last value).
WireError merge_extension_request(std::string_view bytes, Request& request) {
  WireReader reader(bytes);
  while (!reader.done()) {
    Tag tag;
    if (const auto e = reader.read_field_tag(tag); e != WireError::none) return e;
    WireError e = WireError::none;
    if (tag.field == kExtensionContainingType && tag.wire_type == kLengthDelimited) {
      e = reader.read_string(request.name);
    } else if (tag.field == kExtensionNumber && tag.wire_type == kVarint) {
      std::uint64_t raw = 0;
      e = reader.read_varint(raw);
      request.extension_number = static_cast<std::int32_t>(raw);  // int32 keeps the low 32 bits
    } else {
      e = reader.skip(tag);
    }
    if (e != WireError::none) return e;
  }
  return WireError::none;
}

// libprotobuf's reading: the last member of the oneof wins, a repeated message member merges
// into the previous one, a known field with another wire type is an unknown field.
WireError parse_request(std::string_view bytes, Request& request) {
  WireReader reader(bytes);
  while (!reader.done()) {
    Tag tag;
    if (const auto e = reader.read_field_tag(tag); e != WireError::none) return e;
    WireError e = WireError::none;
    const Ask ask = string_ask(tag.field);
    if (tag.wire_type != kLengthDelimited) {
      e = reader.skip(tag);  // every known field is length-delimited
    } else if (tag.field == kRequestHost) {
      e = reader.read_string(request.host);
    } else if (ask != Ask::nothing) {
      std::string_view name;
      e = reader.read_string(name);
      request.ask = ask;
      request.name = name;
    } else if (tag.field == kRequestFileContainingExtension) {
      std::string_view payload;
      e = reader.read_length_delimited(payload);
      if (e == WireError::none) {
        if (request.ask != Ask::file_containing_extension) {
          request = Request{request.host, Ask::file_containing_extension, {}, 0};
        }
        e = merge_extension_request(payload, request);
      }
    } else {
      e = reader.skip(tag);
    }
    if (e != WireError::none) return e;
  }
  return WireError::none;
}

// The member of message_response an answer sets.
struct Reply {
  std::uint32_t field = kResponseError;
  std::string payload;
};

Reply error_reply(std::uint64_t code, std::string message) {
  Reply reply{kResponseError, {}};
  append_tag(reply.payload, kErrorCode, kVarint);
  append_varint(reply.payload, code);
  append_length_delimited(reply.payload, kErrorMessage, message);
  return reply;
}

std::string serialized(const pb::FileDescriptor& file) {
  pb::FileDescriptorProto proto;
  file.CopyTo(&proto);
  return proto.SerializeAsString();
}

// `root` and its transitive imports (breadth first), less the imports already sent on the
// stream; `root` itself is always sent, so the answer names the file the client asked about.
Reply files_reply(const pb::FileDescriptor& root, std::set<std::string>& sent_files) {
  Reply reply{kResponseFileDescriptors, {}};
  std::vector<const pb::FileDescriptor*> queue{&root};
  std::unordered_set<const pb::FileDescriptor*> queued{&root};
  for (std::size_t i = 0; i < queue.size(); ++i) {
    const pb::FileDescriptor& file = *queue[i];
    const bool first_time = sent_files.insert(file.name()).second;
    if (first_time || &file == &root) {
      append_length_delimited(reply.payload, kFileDescriptorProto, serialized(file));
    }
    for (int d = 0; d < file.dependency_count(); ++d) {
      const pb::FileDescriptor* import = file.dependency(d);
      if (import != nullptr && queued.insert(import).second) queue.push_back(import);
    }
  }
  return reply;
}

Reply extension_numbers_reply(const pb::DescriptorPool& pool, const std::string& type_name) {
  const pb::Descriptor* type = find_in(
      pool, [&](const pb::DescriptorPool& p) { return p.FindMessageTypeByName(type_name); });
  if (type == nullptr) return error_reply(kNotFound, "type not found: " + type_name);
  std::vector<const pb::FieldDescriptor*> extensions;
  type->file()->pool()->FindAllExtensions(type, &extensions);
  std::vector<std::int32_t> numbers;
  for (const pb::FieldDescriptor* extension : extensions) numbers.push_back(extension->number());
  std::sort(numbers.begin(), numbers.end());
  std::string packed;  // proto3 packs repeated scalars
  for (const std::int32_t number : numbers) {
    append_varint(packed, static_cast<std::uint64_t>(static_cast<std::int64_t>(number)));
  }
  Reply reply{kResponseExtensionNumbers, {}};
  append_length_delimited(reply.payload, kBaseTypeName, type_name);
  if (!packed.empty()) append_length_delimited(reply.payload, kExtensionNumbers, packed);
  return reply;
}

Reply reply_to(const Request& request, const pb::DescriptorPool& pool,
               std::string_view list_services_response, std::set<std::string>& sent_files) {
  const std::string name(request.name);
  switch (request.ask) {
    case Ask::list_services:
      return Reply{kResponseListServices, std::string(list_services_response)};
    case Ask::file_by_filename: {
      const pb::FileDescriptor* file =
          find_in(pool, [&](const pb::DescriptorPool& p) { return p.FindFileByName(name); });
      if (file == nullptr) return error_reply(kNotFound, "file not found: " + name);
      return files_reply(*file, sent_files);
    }
    case Ask::file_containing_symbol: {
      const pb::FileDescriptor* file = find_in(
          pool, [&](const pb::DescriptorPool& p) { return p.FindFileContainingSymbol(name); });
      if (file == nullptr) return error_reply(kNotFound, "symbol not found: " + name);
      return files_reply(*file, sent_files);
    }
    case Ask::file_containing_extension: {
      const pb::Descriptor* type =
          find_in(pool, [&](const pb::DescriptorPool& p) { return p.FindMessageTypeByName(name); });
      if (type == nullptr) return error_reply(kNotFound, "type not found: " + name);
      const pb::FieldDescriptor* extension =
          type->file()->pool()->FindExtensionByNumber(type, request.extension_number);
      if (extension == nullptr) {
        return error_reply(kNotFound, "extension not found: " + name + " " +
                                          std::to_string(request.extension_number));
      }
      return files_reply(*extension->file(), sent_files);
    }
    case Ask::all_extension_numbers_of_type:
      return extension_numbers_reply(pool, name);
    case Ask::nothing:
      break;
  }
  return error_reply(kUnimplemented, "the request asks for nothing this server knows");
}

}  // namespace

ReflectionService::ReflectionService(std::vector<std::string> services)
    : ReflectionService(std::move(services), *pb::DescriptorPool::generated_pool()) {}

ReflectionService::ReflectionService(std::vector<std::string> services,
                                     const pb::DescriptorPool& pool)
    : services_(std::move(services)), pool_(&pool) {
  for (const std::string_view reflection : kReflectionServices) {
    if (std::find(services_.begin(), services_.end(), reflection) == services_.end()) {
      services_.emplace_back(reflection);
    }
  }
  for (const std::string& service : services_) {
    std::string entry;
    append_length_delimited(entry, kServiceName, service);
    append_length_delimited(list_services_response_, kListedService, entry);
  }
  reflection_pool();  // built now rather than on a stream's first request
}

std::optional<std::string> ReflectionService::answer(std::string_view request,
                                                     std::set<std::string>& sent_files) const {
  Request parsed;
  if (parse_request(request, parsed) != WireError::none) return std::nullopt;
  const Reply reply = reply_to(parsed, *pool_, list_services_response_, sent_files);
  std::string response;
  response.reserve(request.size() + reply.payload.size() + parsed.host.size() + 16);
  if (!parsed.host.empty()) append_length_delimited(response, kResponseValidHost, parsed.host);
  // Set even when empty, as gRPC does: a present original_request is written.
  append_length_delimited(response, kResponseOriginalRequest, request);
  append_length_delimited(response, reply.field, reply.payload);
  return response;
}

}  // namespace fusebox::rpc
