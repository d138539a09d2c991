// Server reflection answers, read back with libprotobuf: responses are decoded by libprotobuf's
// own wire parser (UnknownFieldSet, by field number, so the hand-written writer is checked
// against an independent reader) and the files they carry are parsed as FileDescriptorProto.

#include "fusebox/rpc/reflection.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tensorflow_serving/apis/model_service.pb.h"
#include "tensorflow_serving/apis/prediction_service.pb.h"

namespace fusebox::rpc {

// The service files sit in objects of the static proto library that nothing in the test binary
// references; naming their descriptor tables (external linkage, so always emitted) links them.
extern const void* const kReflectionTestServiceFiles[];
const void* const kReflectionTestServiceFiles[] = {
    &descriptor_table_tensorflow_5fserving_2fapis_2fprediction_5fservice_2eproto,
    &descriptor_table_tensorflow_5fserving_2fapis_2fmodel_5fservice_2eproto};

namespace {

namespace pb = google::protobuf;

constexpr char kPredictionService[] = "tensorflow.serving.PredictionService";
constexpr char kModelService[] = "tensorflow.serving.ModelService";
constexpr char kPredictionServiceFile[] = "tensorflow_serving/apis/prediction_service.proto";
constexpr char kPredictFile[] = "tensorflow_serving/apis/predict.proto";

constexpr int kNotFound = 5;
constexpr int kUnimplemented = 12;

std::string serialized(const pb::UnknownFieldSet& fields) {
  std::string bytes;
  EXPECT_TRUE(fields.SerializeToString(&bytes));
  return bytes;
}

// A ServerReflectionRequest built by libprotobuf (field numbers of reflection.proto).
struct RequestBuilder {
  pb::UnknownFieldSet fields;

  RequestBuilder& host(const std::string& h) {
    fields.AddLengthDelimited(1, h);
    return *this;
  }
  RequestBuilder& file_by_filename(const std::string& name) {
    fields.AddLengthDelimited(3, name);
    return *this;
  }
  RequestBuilder& file_containing_symbol(const std::string& symbol) {
    fields.AddLengthDelimited(4, symbol);
    return *this;
  }
  RequestBuilder& file_containing_extension(const std::string& type, std::int32_t number) {
    pb::UnknownFieldSet extension;
    extension.AddLengthDelimited(1, type);
    extension.AddVarint(2, static_cast<std::uint64_t>(static_cast<std::int64_t>(number)));
    fields.AddLengthDelimited(5, serialized(extension));
    return *this;
  }
  RequestBuilder& all_extension_numbers_of_type(const std::string& type) {
    fields.AddLengthDelimited(6, type);
    return *this;
  }
  RequestBuilder& list_services() {
    fields.AddLengthDelimited(7, "*");
    return *this;
  }
  std::string bytes() const { return serialized(fields); }
};

// A ServerReflectionResponse as libprotobuf reads it.
struct Response {
  std::string valid_host;
  bool has_original_request = false;
  std::string original_request;
  int response_field = 0;  // the oneof member present: 4, 5, 6 or 7 (0: none)
  std::vector<std::string> files;
  std::vector<std::string> services;
  std::string base_type_name;
  std::vector<std::int32_t> extension_numbers;
  int error_code = 0;
  std::string error_message;
};

std::unique_ptr<pb::UnknownFieldSet> parse_fields(const std::string& bytes) {
  auto set = std::make_unique<pb::UnknownFieldSet>();
  EXPECT_TRUE(set->ParseFromString(bytes));
  return set;
}

Response decode(const std::string& bytes) {
  Response r;
  const std::unique_ptr<pb::UnknownFieldSet> top = parse_fields(bytes);
  for (int i = 0; i < top->field_count(); ++i) {
    const pb::UnknownField& f = top->field(i);
    EXPECT_EQ(f.type(), pb::UnknownField::TYPE_LENGTH_DELIMITED) << "field " << f.number();
    if (f.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const std::string& value = f.length_delimited();
    if (f.number() == 1) r.valid_host = value;
    if (f.number() == 2) {
      r.has_original_request = true;
      r.original_request = value;
    }
    if (f.number() < 4) continue;
    EXPECT_EQ(r.response_field, 0) << "two members of message_response";
    r.response_field = f.number();
    const std::unique_ptr<pb::UnknownFieldSet> inner = parse_fields(value);
    for (int j = 0; j < inner->field_count(); ++j) {
      const pb::UnknownField& g = inner->field(j);
      if (f.number() == 4 && g.number() == 1) r.files.push_back(g.length_delimited());
      if (f.number() == 5 && g.number() == 1) r.base_type_name = g.length_delimited();
      if (f.number() == 5 && g.number() == 2) {  // packed
        pb::io::CodedInputStream in(
            reinterpret_cast<const std::uint8_t*>(g.length_delimited().data()),
            static_cast<int>(g.length_delimited().size()));
        std::uint32_t n = 0;
        while (in.ReadVarint32(&n)) r.extension_numbers.push_back(static_cast<std::int32_t>(n));
      }
      if (f.number() == 6 && g.number() == 1) {
        const std::unique_ptr<pb::UnknownFieldSet> service = parse_fields(g.length_delimited());
        EXPECT_EQ(service->field_count(), 1);
        if (service->field_count() == 1) r.services.push_back(service->field(0).length_delimited());
      }
      if (f.number() == 7 && g.number() == 1) r.error_code = static_cast<int>(g.varint());
      if (f.number() == 7 && g.number() == 2) r.error_message = g.length_delimited();
    }
  }
  return r;
}

pb::FileDescriptorProto file_proto(const std::string& bytes) {
  pb::FileDescriptorProto file;
  EXPECT_TRUE(file.ParseFromString(bytes));
  return file;
}

std::vector<std::string> file_names(const Response& r) {
  std::vector<std::string> names;
  for (const std::string& f : r.files) names.push_back(file_proto(f).name());
  return names;
}

// Asks, and checks what every answer must hold: the request echoed, and no file twice.
Response ask(const ReflectionService& service, const std::string& request,
             std::set<std::string>& sent_files) {
  const std::optional<std::string> answer = service.answer(request, sent_files);
  EXPECT_TRUE(answer.has_value());
  if (!answer) return {};
  Response r = decode(*answer);
  EXPECT_TRUE(r.has_original_request);
  EXPECT_EQ(r.original_request, request);
  const std::vector<std::string> names = file_names(r);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  return r;
}

Response ask(const ReflectionService& service, const std::string& request) {
  std::set<std::string> sent_files;
  return ask(service, request, sent_files);
}

// Every import of every file in the answer is in it too, or was sent before on the stream.
void expect_imports_covered(const Response& r, const std::set<std::string>& sent_before) {
  const std::vector<std::string> names = file_names(r);
  for (const std::string& bytes : r.files) {
    const pb::FileDescriptorProto file = file_proto(bytes);
    for (const std::string& import : file.dependency()) {
      const bool sent = std::find(names.begin(), names.end(), import) != names.end();
      EXPECT_TRUE(sent || sent_before.contains(import)) << file.name() << " imports " << import;
    }
  }
}

ReflectionService tf_serving_reflection() {
  return ReflectionService({kPredictionService, kModelService});
}

TEST(ReflectionService, ListServicesNamesTheGivenServicesThenTheReflectionOnes) {
  const ReflectionService service = tf_serving_reflection();
  const std::string request = RequestBuilder{}.host("gateway:8500").list_services().bytes();
  const Response r = ask(service, request);
  EXPECT_EQ(r.response_field, 6);
  EXPECT_EQ(r.valid_host, "gateway:8500");
  EXPECT_EQ(r.original_request, request);
  const std::vector<std::string> expected = {kPredictionService, kModelService,
                                             "grpc.reflection.v1alpha.ServerReflection",
                                             "grpc.reflection.v1.ServerReflection"};
  EXPECT_EQ(r.services, expected);
  EXPECT_EQ(service.services(), expected);
}

TEST(ReflectionService, AReflectionServiceGivenByTheCallerIsListedOnce) {
  const ReflectionService service({"grpc.reflection.v1.ServerReflection", kPredictionService});
  const Response r = ask(service, RequestBuilder{}.list_services().bytes());
  const std::vector<std::string> expected = {"grpc.reflection.v1.ServerReflection",
                                             kPredictionService,
                                             "grpc.reflection.v1alpha.ServerReflection"};
  EXPECT_EQ(r.services, expected);
  EXPECT_TRUE(r.valid_host.empty());
}

TEST(ReflectionService, FileContainingAServiceSendsItsFileFirstThenAllItsImports) {
  const ReflectionService service = tf_serving_reflection();
  std::set<std::string> sent_files;
  const Response r =
      ask(service, RequestBuilder{}.file_containing_symbol(kPredictionService).bytes(), sent_files);
  ASSERT_EQ(r.response_field, 4);
  ASSERT_GT(r.files.size(), 1u);
  const pb::FileDescriptorProto first = file_proto(r.files[0]);
  EXPECT_EQ(first.name(), kPredictionServiceFile);
  ASSERT_EQ(first.service_size(), 1);
  EXPECT_EQ(first.service(0).name(), "PredictionService");
  std::vector<std::string> methods;
  for (const auto& method : first.service(0).method()) methods.push_back(method.name());
  const std::vector<std::string> expected = {"Classify", "Regress", "Predict", "MultiInference",
                                             "GetModelMetadata"};
  EXPECT_EQ(methods, expected);
  expect_imports_covered(r, {});
  const std::vector<std::string> names = file_names(r);
  EXPECT_EQ(sent_files, std::set<std::string>(names.begin(), names.end()));
  EXPECT_TRUE(sent_files.contains(kPredictFile));
}

TEST(ReflectionService, TheFilesBuildAPoolThatDescribesTheService) {
  const ReflectionService service = tf_serving_reflection();
  const Response r = ask(service, RequestBuilder{}.file_containing_symbol(kModelService).bytes());
  // Imports first, as a client resolves them.
  std::vector<pb::FileDescriptorProto> files;
  for (const std::string& bytes : r.files) files.push_back(file_proto(bytes));
  std::reverse(files.begin(), files.end());
  pb::DescriptorPool pool;
  for (const pb::FileDescriptorProto& file : files) ASSERT_NE(pool.BuildFile(file), nullptr);
  const pb::ServiceDescriptor* model = pool.FindServiceByName(kModelService);
  ASSERT_NE(model, nullptr);
  ASSERT_NE(model->FindMethodByName("GetModelStatus"), nullptr);
  EXPECT_EQ(model->FindMethodByName("GetModelStatus")->input_type()->full_name(),
            "tensorflow.serving.GetModelStatusRequest");
}

TEST(ReflectionService, AskingAgainOnTheStreamSendsOnlyTheFileAskedFor) {
  const ReflectionService service = tf_serving_reflection();
  std::set<std::string> sent_files;
  const std::string request = RequestBuilder{}.file_containing_symbol(kPredictionService).bytes();
  const Response first = ask(service, request, sent_files);
  const std::set<std::string> after_first = sent_files;

  const Response again = ask(service, request, sent_files);
  EXPECT_EQ(file_names(again), std::vector<std::string>{kPredictionServiceFile});
  EXPECT_EQ(sent_files, after_first);

  // predict.proto went out as an import: now only it, none of its own imports.
  const Response import =
      ask(service, RequestBuilder{}.file_by_filename(kPredictFile).bytes(), sent_files);
  EXPECT_EQ(file_names(import), std::vector<std::string>{kPredictFile});

  // Another stream starts from nothing.
  const Response fresh = ask(service, request);
  EXPECT_EQ(file_names(fresh), file_names(first));
}

TEST(ReflectionService, FilesSentBeforeAreLeftOutButTheirImportsAreNot) {
  const ReflectionService service = tf_serving_reflection();
  const std::set<std::string> sent_before = {kPredictFile, "tensorflow/core/framework/types.proto"};
  std::set<std::string> sent_files = sent_before;
  const Response r =
      ask(service, RequestBuilder{}.file_containing_symbol(kPredictionService).bytes(), sent_files);
  const std::vector<std::string> names = file_names(r);
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], kPredictionServiceFile);
  for (const std::string& name : sent_before) {
    EXPECT_EQ(std::count(names.begin(), names.end(), name), 0) << name;
  }
  // tensor.proto is imported by predict.proto (sent before) and by others: still sent here.
  EXPECT_EQ(std::count(names.begin(), names.end(), "tensorflow/core/framework/tensor.proto"), 1);
  expect_imports_covered(r, sent_before);
}

TEST(ReflectionService, MethodAndMessageSymbolsResolveToTheirFiles) {
  const ReflectionService service = tf_serving_reflection();
  const Response method =
      ask(service, RequestBuilder{}
                       .file_containing_symbol(std::string(kPredictionService) + ".Predict")
                       .bytes());
  ASSERT_FALSE(method.files.empty());
  EXPECT_EQ(file_names(method)[0], kPredictionServiceFile);

  const Response message =
      ask(service,
          RequestBuilder{}.file_containing_symbol("tensorflow.serving.PredictRequest").bytes());
  ASSERT_FALSE(message.files.empty());
  EXPECT_EQ(file_names(message)[0], kPredictFile);

  const Response field =
      ask(service, RequestBuilder{}
                       .file_containing_symbol("tensorflow.serving.ModelSpec.signature_name")
                       .bytes());
  ASSERT_FALSE(field.files.empty());
  EXPECT_EQ(file_names(field)[0], "tensorflow_serving/apis/model.proto");
}

TEST(ReflectionService, FileByFilenameSendsThatFile) {
  const ReflectionService service = tf_serving_reflection();
  const Response r =
      ask(service,
          RequestBuilder{}.file_by_filename("tensorflow_serving/apis/model_service.proto").bytes());
  ASSERT_EQ(r.response_field, 4);
  EXPECT_EQ(file_names(r)[0], "tensorflow_serving/apis/model_service.proto");
  expect_imports_covered(r, {});
}

TEST(ReflectionService, UnknownNamesAreNotFound) {
  const ReflectionService service = tf_serving_reflection();
  std::set<std::string> sent_files;
  const Response symbol =
      ask(service, RequestBuilder{}.file_containing_symbol("no.such.Symbol").bytes(), sent_files);
  EXPECT_EQ(symbol.response_field, 7);
  EXPECT_EQ(symbol.error_code, kNotFound);
  EXPECT_EQ(symbol.error_message, "symbol not found: no.such.Symbol");

  const Response file =
      ask(service, RequestBuilder{}.file_by_filename("no/such/file.proto").bytes(), sent_files);
  EXPECT_EQ(file.response_field, 7);
  EXPECT_EQ(file.error_code, kNotFound);
  EXPECT_EQ(file.error_message, "file not found: no/such/file.proto");

  const Response type =
      ask(service, RequestBuilder{}.all_extension_numbers_of_type("no.such.Type").bytes());
  EXPECT_EQ(type.error_code, kNotFound);
  const Response extension =
      ask(service, RequestBuilder{}.file_containing_extension("no.such.Type", 100).bytes());
  EXPECT_EQ(extension.error_code, kNotFound);
  // A service is not a message type.
  const Response not_a_message =
      ask(service, RequestBuilder{}.all_extension_numbers_of_type(kPredictionService).bytes());
  EXPECT_EQ(not_a_message.error_code, kNotFound);
  EXPECT_TRUE(sent_files.empty());
}

TEST(ReflectionService, TheReflectionServicesThemselvesCanBeDescribed) {
  const ReflectionService service = tf_serving_reflection();
  for (const std::string version : {"v1alpha", "v1"}) {
    const std::string package = "grpc.reflection." + version;
    const Response r = ask(
        service,
        RequestBuilder{}.host("h").file_containing_symbol(package + ".ServerReflection").bytes());
    ASSERT_EQ(r.files.size(), 1u) << version;
    const pb::FileDescriptorProto file = file_proto(r.files[0]);
    EXPECT_EQ(file.name(), "grpc/reflection/" + version + "/reflection.proto");
    pb::DescriptorPool pool;
    const pb::FileDescriptor* built = pool.BuildFile(file);
    ASSERT_NE(built, nullptr) << version;
    const pb::MethodDescriptor* info =
        pool.FindMethodByName(package + ".ServerReflection.ServerReflectionInfo");
    ASSERT_NE(info, nullptr);
    EXPECT_TRUE(info->client_streaming());
    EXPECT_TRUE(info->server_streaming());

    // The answers read by name through this very descriptor: the writer's field numbers and the
    // carried file agree.
    pb::DynamicMessageFactory factory(&pool);
    const pb::Descriptor* response_type = info->output_type();
    std::unique_ptr<pb::Message> response(factory.GetPrototype(response_type)->New());
    std::set<std::string> sent_files;
    const std::string request = RequestBuilder{}.host("h").list_services().bytes();
    const std::optional<std::string> answer = service.answer(request, sent_files);
    ASSERT_TRUE(answer);
    ASSERT_TRUE(response->ParseFromString(*answer));
    std::string text;
    pb::TextFormat::PrintToString(*response, &text);
    EXPECT_NE(text.find("valid_host: \"h\""), std::string::npos) << text;
    EXPECT_NE(text.find("original_request {"), std::string::npos) << text;
    EXPECT_NE(text.find("list_services: \"*\""), std::string::npos) << text;
    EXPECT_NE(text.find("list_services_response {"), std::string::npos) << text;
    EXPECT_NE(text.find("name: \"tensorflow.serving.ModelService\""), std::string::npos) << text;
  }
}

// A proto2 pool with extensions (the generated pool has none to ask about).
class ExtensionPool {
 public:
  ExtensionPool() {
    build(R"pb(
      name: "reflection_test/base.proto"
      package: "reflection_test"
      message_type {
        name: "Base"
        extension_range { start: 100 end: 201 }
      }
    )pb");
    build(R"pb(
      name: "reflection_test/extras.proto"
      package: "reflection_test"
      dependency: "reflection_test/base.proto"
      extension {
        name: "colour"
        number: 150
        label: LABEL_OPTIONAL
        type: TYPE_STRING
        extendee: ".reflection_test.Base"
      }
      extension {
        name: "size"
        number: 120
        label: LABEL_OPTIONAL
        type: TYPE_INT32
        extendee: ".reflection_test.Base"
      }
    )pb");
  }
  const pb::DescriptorPool& pool() const { return pool_; }

 private:
  void build(const std::string& text) {
    pb::FileDescriptorProto file;
    ASSERT_TRUE(pb::TextFormat::ParseFromString(text, &file));
    ASSERT_NE(pool_.BuildFile(file), nullptr);
  }
  pb::DescriptorPool pool_;
};

TEST(ReflectionService, ExtensionsAreFoundByNumberAndListedInOrder) {
  const ExtensionPool extensions;
  const ReflectionService service({"reflection_test.Nothing"}, extensions.pool());

  const Response numbers =
      ask(service, RequestBuilder{}.all_extension_numbers_of_type("reflection_test.Base").bytes());
  ASSERT_EQ(numbers.response_field, 5);
  EXPECT_EQ(numbers.base_type_name, "reflection_test.Base");
  EXPECT_EQ(numbers.extension_numbers, (std::vector<std::int32_t>{120, 150}));

  const Response file =
      ask(service, RequestBuilder{}.file_containing_extension("reflection_test.Base", 150).bytes());
  ASSERT_EQ(file.response_field, 4);
  EXPECT_EQ(file_names(file), (std::vector<std::string>{"reflection_test/extras.proto",
                                                        "reflection_test/base.proto"}));

  const Response missing =
      ask(service, RequestBuilder{}.file_containing_extension("reflection_test.Base", 151).bytes());
  EXPECT_EQ(missing.error_code, kNotFound);
  EXPECT_EQ(missing.error_message, "extension not found: reflection_test.Base 151");

  // A type without extensions: its name and no numbers.
  const ReflectionService tf = tf_serving_reflection();
  const Response none = ask(
      tf, RequestBuilder{}.all_extension_numbers_of_type("tensorflow.serving.ModelSpec").bytes());
  ASSERT_EQ(none.response_field, 5);
  EXPECT_EQ(none.base_type_name, "tensorflow.serving.ModelSpec");
  EXPECT_TRUE(none.extension_numbers.empty());

  // Its own pool lacks the reflection files; they are still there.
  const Response own =
      ask(service, RequestBuilder{}
                       .file_containing_symbol("grpc.reflection.v1.ServerReflectionRequest")
                       .bytes());
  EXPECT_EQ(file_names(own), std::vector<std::string>{"grpc/reflection/v1/reflection.proto"});
}

TEST(ReflectionService, ARequestForNothingIsUnimplemented) {
  const ReflectionService service = tf_serving_reflection();
  pb::UnknownFieldSet future;  // a member of message_request this version does not know
  future.AddLengthDelimited(9, "something new");
  for (const std::string& request :
       {std::string(), RequestBuilder{}.host("h").bytes(), serialized(future)}) {
    const Response r = ask(service, request);
    EXPECT_EQ(r.response_field, 7);
    EXPECT_EQ(r.error_code, kUnimplemented);
  }
}

TEST(ReflectionService, MalformedRequestsAreRejected) {
  const ReflectionService service = tf_serving_reflection();
  const std::string symbol = RequestBuilder{}.file_containing_symbol(kPredictionService).bytes();
  const std::vector<std::string> garbage = {
      "\xff",                               // a varint cut short
      symbol.substr(0, symbol.size() - 1),  // a length past the end
      "\x22\x05"
      "ab",                            // the same, short
      std::string("\x0f", 1),          // wire type 7
      std::string("\x00\x01", 2),      // field number 0
      std::string("\x0c", 1),          // an end-group without its start
      std::string("\x0b\x08\x01", 3),  // a group never closed
      "\x22\x02\xc3\x28",              // a symbol that is not UTF-8
      "\x0a\x01\xff",                  // a host that is not UTF-8
      "\x2a\x03\x0a\x01\xff",          // an extension type that is not UTF-8
      "\x2a\x02\x10\xff",              // an extension number cut short
      "not a protobuf message at all \xff\xff\xff",
  };
  for (const std::string& request : garbage) {
    std::set<std::string> sent_files;
    EXPECT_FALSE(service.answer(request, sent_files).has_value())
        << testing::PrintToString(request);
    EXPECT_TRUE(sent_files.empty());
  }
}

TEST(ReflectionService, UnknownFieldsAreSkipped) {
  const ReflectionService service = tf_serving_reflection();
  pb::UnknownFieldSet request;
  request.AddVarint(20, 300);
  request.AddFixed64(21, 0x0102030405060708);
  request.AddFixed32(22, 7);
  request.AddLengthDelimited(23, "\xff\xfe");  // not UTF-8, but not a string this reader knows
  pb::UnknownFieldSet* group = request.AddGroup(24);
  group->AddVarint(1, 1);
  group->AddGroup(2)->AddFixed32(3, 4);
  request.AddLengthDelimited(4, kPredictionService);
  request.AddVarint(1, 5);  // host with the wrong wire type: an unknown field
  request.AddFixed32(25, 9);
  const std::string bytes = serialized(request);
  const Response r = ask(service, bytes);
  ASSERT_EQ(r.response_field, 4);
  EXPECT_EQ(file_names(r)[0], kPredictionServiceFile);
  EXPECT_TRUE(r.valid_host.empty());
  EXPECT_EQ(r.original_request, bytes);
}

TEST(ReflectionService, TheLastMemberOfTheOneofWins) {
  const ReflectionService service = tf_serving_reflection();
  const Response files =
      ask(service, RequestBuilder{}.list_services().file_containing_symbol(kModelService).bytes());
  EXPECT_EQ(files.response_field, 4);
  const Response list =
      ask(service, RequestBuilder{}.file_containing_symbol(kModelService).list_services().bytes());
  EXPECT_EQ(list.response_field, 6);
  // Two ExtensionRequest occurrences merge; a string member in between starts it afresh.
  const ExtensionPool extensions;
  const ReflectionService own({}, extensions.pool());
  pb::UnknownFieldSet type_only;
  type_only.AddLengthDelimited(1, "reflection_test.Base");
  pb::UnknownFieldSet number_only;
  number_only.AddVarint(2, 120);
  pb::UnknownFieldSet merged;
  merged.AddLengthDelimited(5, serialized(type_only));
  merged.AddLengthDelimited(5, serialized(number_only));
  EXPECT_EQ(ask(own, serialized(merged)).response_field, 4);
  pb::UnknownFieldSet restarted;
  restarted.AddLengthDelimited(5, serialized(type_only));
  restarted.AddLengthDelimited(3, "reflection_test/base.proto");
  restarted.AddLengthDelimited(5, serialized(number_only));
  EXPECT_EQ(ask(own, serialized(restarted)).error_code, kNotFound);
}

}  // namespace
}  // namespace fusebox::rpc
