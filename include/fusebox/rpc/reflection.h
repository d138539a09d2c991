#pragma once
// gRPC server reflection (grpc.reflection.v1alpha and grpc.reflection.v1, which share one wire
// format) answered from a protobuf descriptor pool, one request message at a time: no sockets, no
// gRPC library. The listener owns the stream; per stream it keeps the set of files already sent
// and calls answer() for each ServerReflectionRequest it reads.
//
// Behaviour follows gRPC's reflection plugins:
//  - list_services: the given services, then grpc.reflection.v1alpha.ServerReflection and
//    grpc.reflection.v1.ServerReflection (gRPC lists the reflection service it registers);
//  - file_by_filename, file_containing_symbol (a package, service, method, message, enum, enum
//    value, field or extension name), file_containing_extension: the file, then its transitive
//    imports not yet sent on the stream. The file asked for is sent even when sent before, so a
//    client never gets an empty answer (grpc-go does the same; gRPC C++ re-sends every import
//    in every answer);
//  - all_extension_numbers_of_type: the type name and its extension numbers, in ascending order;
//  - an unknown name: error_response NOT_FOUND (5); no request kind at all (or one from a newer
//    version of the protocol): error_response UNIMPLEMENTED (12), as gRPC C++ answers.
// The reflection protocol's own files are always describable, even when the pool lacks them
// (fusebox carries their descriptors), so `grpcurl describe` can resolve every listed service.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace google::protobuf {
class DescriptorPool;
}  // namespace google::protobuf

namespace fusebox::rpc {

inline constexpr std::string_view kReflectionV1alphaMethod =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
inline constexpr std::string_view kReflectionV1Method =
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

// Answers reflection requests about the services a server registers. Immutable after
// construction: answer() is const, takes no lock of its own and may be called from any thread.
class ReflectionService {
 public:
  // `services`: full names of the services to list (e.g. "tensorflow.serving.PredictionService"),
  // described from google::protobuf::DescriptorPool::generated_pool(). The files that declare them
  // must be linked into the binary (a generated .pb.cc that nothing references is left out by the
  // linker: reference its descriptor table).
  explicit ReflectionService(std::vector<std::string> services);
  // The same from another pool, which must outlive the service (tests use a pool of their own).
  ReflectionService(std::vector<std::string> services,
                    const google::protobuf::DescriptorPool& pool);

  // One serialized ServerReflectionRequest -> one serialized ServerReflectionResponse, whose
  // valid_host is the request's host and original_request the request itself. `sent_files`:
  // names of the files already sent on this stream, updated with those this answer sends.
  // nullopt when the request is not a well-formed ServerReflectionRequest (bad framing, or a
  // string that is not UTF-8, as libprotobuf rejects it): the caller ends the stream with
  // INVALID_ARGUMENT.
  std::optional<std::string> answer(std::string_view request,
                                    std::set<std::string>& sent_files) const;

  // The names list_services answers with, in that order.
  const std::vector<std::string>& services() const { return services_; }

 private:
  std::vector<std::string> services_;
  std::string list_services_response_;  // the serialized ListServiceResponse, built once
  const google::protobuf::DescriptorPool* pool_;
};

}  // namespace fusebox::rpc
