// The hand-written ModelSpec reader/rewriter against libprotobuf: requests serialized by the
// generated classes are read by fusebox::rpc, and what fusebox::rpc writes is read back by the
// generated classes.

#include "fusebox/rpc/model_spec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tensorflow_serving/apis/classification.pb.h"
#include "tensorflow_serving/apis/get_model_metadata.pb.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"
#include "tensorflow_serving/apis/inference.pb.h"
#include "tensorflow_serving/apis/predict.pb.h"
#include "tensorflow_serving/apis/regression.pb.h"

namespace fusebox::rpc {
namespace {

namespace tfs = tensorflow::serving;

ModelSpec spec_of(const tfs::ModelSpec& pb) {
  ModelSpec s;
  s.name = pb.name();
  s.signature_name = pb.signature_name();
  if (pb.has_version()) s.version = pb.version().value();
  if (pb.version_choice_case() == tfs::ModelSpec::kVersionLabel)
    s.version_label = pb.version_label();
  return s;
}

tfs::ModelSpec pb_of(const ModelSpec& s) {
  tfs::ModelSpec pb;
  pb.set_name(s.name);
  pb.set_signature_name(s.signature_name);
  if (s.version) pb.mutable_version()->set_value(*s.version);
  if (s.version_label) pb.set_version_label(*s.version_label);
  return pb;
}

tensorflow::TensorProto float_tensor(std::vector<float> values) {
  tensorflow::TensorProto t;
  t.set_dtype(tensorflow::DT_FLOAT);
  t.mutable_tensor_shape()->add_dim()->set_size(static_cast<std::int64_t>(values.size()));
  for (float v : values) t.add_float_val(v);
  return t;
}

tfs::PredictRequest predict_request(const ModelSpec& spec) {
  tfs::PredictRequest r;
  *r.mutable_model_spec() = pb_of(spec);
  (*r.mutable_inputs())["x"] = float_tensor({1.0f, 2.0f, 5.0f});
  r.add_output_filter("y");
  return r;
}

ModelSpec named(std::string name, std::optional<std::int64_t> version = std::nullopt,
                std::optional<std::string> label = std::nullopt, std::string signature = "") {
  ModelSpec s;
  s.name = std::move(name);
  s.version = version;
  s.version_label = std::move(label);
  s.signature_name = std::move(signature);
  return s;
}

// Raw wire-format builders for what the generated classes cannot produce.
std::string varint(std::uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::string tag(std::uint32_t field, std::uint32_t wire_type) {
  return varint((static_cast<std::uint64_t>(field) << 3) | wire_type);
}

std::string delimited(std::uint32_t field, const std::string& payload) {
  return tag(field, 2) + varint(payload.size()) + payload;
}

// How many top-level fields with this number the bytes hold (read by libprotobuf).
int count_fields(const std::string& bytes, int number) {
  google::protobuf::UnknownFieldSet set;
  EXPECT_TRUE(set.ParseFromString(bytes));
  int n = 0;
  for (int i = 0; i < set.field_count(); ++i) n += set.field(i).number() == number ? 1 : 0;
  return n;
}

TEST(ModelSpecParse, ReadsWhatLibprotobufWrote) {
  const std::vector<ModelSpec> specs = {
      named("half_plus_two"),
      named("m", 7),
      named("m", 0),  // version 0 is an empty wrapper, still "a version"
      named("m", -1),
      named("m", std::numeric_limits<std::int64_t>::max()),
      named("m", std::numeric_limits<std::int64_t>::min()),
      named("m", std::nullopt, "stable"),
      named("m", std::nullopt, ""),  // an empty label still selects the label member
      named("m", 3, std::nullopt, "serving_default"),
      named("caf\xC3\xA9", std::nullopt, "canary", "regress_x_to_y"),
      named(""),
  };
  for (const auto& spec : specs) {
    const std::string bytes = predict_request(spec).SerializeAsString();
    const auto parsed = parse_model_spec(bytes);
    ASSERT_TRUE(parsed.ok()) << to_string(parsed.error);
    ASSERT_TRUE(parsed.spec.has_value());
    EXPECT_EQ(*parsed.spec, spec) << spec.name;
    // And through the generated class, to be sure the fixture says what it means.
    tfs::PredictRequest back;
    ASSERT_TRUE(back.ParseFromString(bytes));
    EXPECT_EQ(spec_of(back.model_spec()), spec);
  }
}

TEST(ModelSpecParse, EveryRequestKindCarriesTheSpecInFieldOne) {
  const ModelSpec spec = named("m", 4, std::nullopt, "sig");
  std::vector<std::string> requests;
  tfs::ClassificationRequest classify;
  *classify.mutable_model_spec() = pb_of(spec);
  classify.mutable_input()->mutable_example_list()->add_examples();
  requests.push_back(classify.SerializeAsString());
  tfs::RegressionRequest regress;
  *regress.mutable_model_spec() = pb_of(spec);
  requests.push_back(regress.SerializeAsString());
  tfs::GetModelStatusRequest status;
  *status.mutable_model_spec() = pb_of(spec);
  requests.push_back(status.SerializeAsString());
  tfs::GetModelMetadataRequest metadata;
  *metadata.mutable_model_spec() = pb_of(spec);
  metadata.add_metadata_field("signature_def");
  requests.push_back(metadata.SerializeAsString());
  requests.push_back(predict_request(spec).SerializeAsString());
  for (const auto& bytes : requests) {
    const auto parsed = parse_model_spec(bytes);
    ASSERT_TRUE(parsed.ok()) << to_string(parsed.error);
    ASSERT_TRUE(parsed.spec.has_value());
    EXPECT_EQ(*parsed.spec, spec);
  }
}

TEST(ModelSpecParse, NoSpecIsNotAnError) {
  tfs::PredictRequest r;
  (*r.mutable_inputs())["x"] = float_tensor({1.0f});
  auto parsed = parse_model_spec(r.SerializeAsString());
  EXPECT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.spec.has_value());
  parsed = parse_model_spec("");
  EXPECT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.spec.has_value());
  // An empty but present spec is present.
  parsed = parse_model_spec(delimited(1, ""));
  EXPECT_TRUE(parsed.ok());
  ASSERT_TRUE(parsed.spec.has_value());
  EXPECT_EQ(*parsed.spec, ModelSpec{});
}

TEST(ModelSpecParse, UnknownFieldsOfEveryWireTypeAreSkipped) {
  tfs::PredictRequest r = predict_request(named("m", 2, std::nullopt, "s"));
  auto* top = r.GetReflection()->MutableUnknownFields(&r);
  top->AddVarint(99, 12345);
  top->AddFixed32(100, 7);
  top->AddFixed64(101, 8);
  top->AddLengthDelimited(102, "opaque");
  auto* group = top->AddGroup(103);
  group->AddVarint(1, 1);
  group->AddGroup(2)->AddLengthDelimited(3, "nested");
  auto* spec_unknown =
      r.mutable_model_spec()->GetReflection()->MutableUnknownFields(r.mutable_model_spec());
  spec_unknown->AddVarint(5, 1);
  spec_unknown->AddLengthDelimited(6, "future field");
  spec_unknown->AddGroup(7)->AddFixed64(1, 9);
  const std::string bytes = r.SerializeAsString();
  const auto parsed = parse_model_spec(bytes);
  ASSERT_TRUE(parsed.ok()) << to_string(parsed.error);
  EXPECT_EQ(*parsed.spec, named("m", 2, std::nullopt, "s"));
}

TEST(ModelSpecParse, KnownNumberWithAnotherWireTypeIsAnUnknownField) {
  // Field 1 as a varint: libprotobuf keeps it as an unknown field and sees no model_spec.
  const std::string request = tag(1, 0) + varint(5) + delimited(3, "y");
  tfs::PredictRequest pb;
  ASSERT_TRUE(pb.ParseFromString(request));
  EXPECT_FALSE(pb.has_model_spec());
  auto parsed = parse_model_spec(request);
  EXPECT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.spec.has_value());

  // Inside the spec: name as fixed32, version as a varint.
  const std::string spec =
      tag(1, 5) + std::string(4, 'a') + tag(2, 0) + varint(9) + delimited(3, "sig");
  ASSERT_TRUE(pb.ParseFromString(delimited(1, spec)));
  parsed = parse_model_spec(delimited(1, spec));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed.spec, spec_of(pb.model_spec()));
  EXPECT_EQ(*parsed.spec, named("", std::nullopt, std::nullopt, "sig"));
}

// Several occurrences of field 1 merge; the expected value is whatever libprotobuf makes of the
// same bytes.
TEST(ModelSpecParse, RepeatedOccurrencesMergeLikeLibprotobuf) {
  struct Case {
    const char* what;
    std::vector<ModelSpec> parts;
    ModelSpec expected;
  };
  const std::vector<Case> cases = {
      {"later name wins", {named("a"), named("b")}, named("b")},
      {"empty name keeps the earlier", {named("a", 1), named("", 2)}, named("a", 2)},
      {"label replaces version",
       {named("a", 1), named("", std::nullopt, "stable")},
       named("a", std::nullopt, "stable")},
      {"version replaces label", {named("a", std::nullopt, "stable"), named("", 9)}, named("a", 9)},
      {"version 0 merges into 5 (empty wrapper)", {named("a", 5), named("", 0)}, named("a", 5)},
      {"signature kept",
       {named("a", std::nullopt, std::nullopt, "sig"), named("b")},
       named("b", std::nullopt, std::nullopt, "sig")},
      {"three parts",
       {named("a", 1, std::nullopt, "s1"), named("", std::nullopt, "l"), named("c", 3)},
       named("c", 3, std::nullopt, "s1")},
  };
  for (const auto& c : cases) {
    std::string bytes;
    for (const auto& part : c.parts) bytes += predict_request(part).SerializeAsString();
    tfs::PredictRequest pb;
    ASSERT_TRUE(pb.ParseFromString(bytes)) << c.what;
    EXPECT_EQ(spec_of(pb.model_spec()), c.expected) << c.what << " (libprotobuf)";
    const auto parsed = parse_model_spec(bytes);
    ASSERT_TRUE(parsed.ok()) << c.what << ": " << to_string(parsed.error);
    EXPECT_EQ(*parsed.spec, c.expected) << c.what;
  }
}

TEST(ModelSpecParse, RepeatedFieldsInsideOneSpecMergeToo) {
  // Two names, two wrappers (the second setting only an unknown field) in one occurrence.
  const std::string wrapper_a = tag(1, 0) + varint(11);
  const std::string wrapper_b = tag(2, 0) + varint(1);  // Int64Value field 2: unknown
  const std::string spec = delimited(1, "first") + delimited(2, wrapper_a) +
                           delimited(1, "second") + delimited(2, wrapper_b);
  tfs::ModelSpec pb;
  ASSERT_TRUE(pb.ParseFromString(spec));
  const auto parsed = parse_model_spec_message(spec);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed.spec, spec_of(pb));
  EXPECT_EQ(*parsed.spec, named("second", 11));
}

TEST(ModelSpecParse, TruncatedInputIsAnError) {
  const std::string full = predict_request(named("half_plus_two", 123456789)).SerializeAsString();
  // Every proper prefix that cuts a field short fails (some prefixes end between fields and
  // are valid messages: compare with libprotobuf).
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::string prefix = full.substr(0, n);
    tfs::PredictRequest pb;
    const bool pb_ok = pb.ParseFromString(prefix);
    const auto parsed = parse_model_spec(prefix);
    if (!pb_ok) {
      EXPECT_FALSE(parsed.ok()) << "prefix of " << n << " bytes";
    } else {
      ASSERT_TRUE(parsed.ok()) << "prefix of " << n << " bytes";
      EXPECT_EQ(parsed.spec.has_value(), pb.has_model_spec());
    }
  }
  EXPECT_EQ(parse_model_spec("\x0a").error, WireError::truncated);      // tag, no length
  EXPECT_EQ(parse_model_spec("\x0a\x80").error, WireError::truncated);  // length cut
  EXPECT_EQ(parse_model_spec("\x80").error, WireError::truncated);      // tag cut
  EXPECT_EQ(parse_model_spec(tag(9, 0) + "\xff\xff").error, WireError::truncated);
  EXPECT_EQ(parse_model_spec(tag(9, 1) + "1234567").error, WireError::truncated);
  EXPECT_EQ(parse_model_spec(tag(9, 5) + "123").error, WireError::truncated);
  // Inside the version wrapper.
  EXPECT_EQ(parse_model_spec(delimited(1, delimited(2, tag(1, 0) + "\x80"))).error,
            WireError::truncated);
}

TEST(ModelSpecParse, OverlongVarintsAndLengths) {
  // Eleven bytes of varint.
  const std::string eleven = std::string(10, '\xff') + "\x01";
  EXPECT_EQ(parse_model_spec(tag(9, 0) + eleven).error, WireError::bad_varint);
  EXPECT_EQ(parse_model_spec(delimited(1, delimited(2, tag(1, 0) + eleven))).error,
            WireError::bad_varint);
  // A tag of six bytes.
  EXPECT_EQ(parse_model_spec("\xff\xff\xff\xff\xff\x01").error, WireError::bad_tag);
  // Lengths past the end: of the request, of the spec, of a skipped field.
  EXPECT_EQ(parse_model_spec(tag(1, 2) + varint(10) + "abc").error, WireError::bad_length);
  EXPECT_EQ(parse_model_spec(tag(1, 2) + varint(1ull << 62)).error, WireError::bad_length);
  EXPECT_EQ(parse_model_spec(delimited(1, tag(1, 2) + varint(5) + "ab")).error,
            WireError::bad_length);
  EXPECT_EQ(parse_model_spec(tag(2, 2) + varint(100) + "x").error, WireError::bad_length);
  // The spec's length is fine but its content claims more than the spec holds.
  const std::string inner = tag(1, 2) + varint(4) + "ab";
  EXPECT_EQ(parse_model_spec(delimited(1, inner) + "cd").error, WireError::bad_length);
  tfs::PredictRequest pb;
  EXPECT_FALSE(pb.ParseFromString(delimited(1, inner) + "cd"));
}

TEST(ModelSpecParse, BadTagsAndGroups) {
  EXPECT_EQ(parse_model_spec(tag(0, 0) + varint(1)).error, WireError::bad_tag);  // field 0
  EXPECT_EQ(parse_model_spec(tag(9, 6)).error, WireError::bad_tag);
  EXPECT_EQ(parse_model_spec(tag(9, 7)).error, WireError::bad_tag);
  EXPECT_EQ(parse_model_spec(tag(9, 4)).error, WireError::unbalanced_group);  // end, no start
  EXPECT_EQ(parse_model_spec(tag(9, 3) + tag(1, 0) + varint(1)).error,
            WireError::unbalanced_group);  // never closed
  EXPECT_EQ(parse_model_spec(tag(9, 3) + tag(8, 4)).error, WireError::unbalanced_group);
  EXPECT_TRUE(parse_model_spec(tag(9, 3) + tag(1, 0) + varint(1) + tag(9, 4)).ok());
  std::string deep;
  for (int i = 0; i < kMaxGroupDepth + 1; ++i) deep += tag(9, 3);
  for (int i = 0; i < kMaxGroupDepth + 1; ++i) deep += tag(9, 4);
  EXPECT_EQ(parse_model_spec(deep).error, WireError::too_deep);
}

TEST(ModelSpecParse, InvalidUtf8IsRejectedLikeLibprotobuf) {
  const google::protobuf::LogSilencer quiet;  // libprotobuf logs every string it rejects
  for (const std::string bad :
       {"\xff", "\xc0\x80", "\xed\xa0\x80", "a\xe2\x82", "\xf4\x90\x80\x80"}) {
    for (std::uint32_t field : {1u, 3u, 4u}) {
      const std::string request = delimited(1, delimited(field, bad));
      tfs::PredictRequest pb;
      EXPECT_FALSE(pb.ParseFromString(request)) << "field " << field;
      EXPECT_EQ(parse_model_spec(request).error, WireError::invalid_utf8) << "field " << field;
    }
  }
  // Valid multi-byte text, and bytes outside the spec are not our business.
  EXPECT_TRUE(parse_model_spec(delimited(1, delimited(1, "\xe2\x82\xac\xf0\x9f\x98\x80"))).ok());
  EXPECT_TRUE(parse_model_spec(delimited(9, "\xff")).ok());
}

TEST(ModelSpecSerialize, MatchesLibprotobufBytes) {
  const std::vector<ModelSpec> specs = {
      ModelSpec{},
      named("m"),
      named("m", 0),
      named("m", -5, std::nullopt, "sig"),
      named("m", std::nullopt, "stable", "sig"),
      named("", std::nullopt, ""),
      named("m", std::numeric_limits<std::int64_t>::min()),
  };
  for (const auto& spec : specs) {
    std::string expected;
    ASSERT_TRUE(pb_of(spec).SerializeToString(&expected));
    EXPECT_EQ(serialize_model_spec(spec), expected) << spec.name;
  }
}

TEST(ModelSpecRewrite, ApplyRewriteTable) {
  const ModelSpec base = named("a", 3, std::nullopt, "sig");
  ModelSpecRewrite r;
  EXPECT_EQ(apply_rewrite(base, r), base);
  r.name = "b";
  EXPECT_EQ(apply_rewrite(base, r), named("b", 3, std::nullopt, "sig"));
  r.version = LatestVersion{};
  EXPECT_EQ(apply_rewrite(base, r), named("b", std::nullopt, std::nullopt, "sig"));
  r.version = std::string("canary");
  EXPECT_EQ(apply_rewrite(base, r), named("b", std::nullopt, "canary", "sig"));
  r.version = std::int64_t{0};
  r.signature_name = "";
  EXPECT_EQ(apply_rewrite(named("a", std::nullopt, "stable"), r), named("b", 0));
}

TEST(ModelSpecRewrite, RoundTripsThroughLibprotobufAndKeepsEverythingElse) {
  tfs::PredictRequest original = predict_request(named("primary", 4, std::nullopt, "sig"));
  auto* unknown = original.GetReflection()->MutableUnknownFields(&original);
  unknown->AddVarint(77, 1);
  unknown->AddLengthDelimited(78, "keep me");
  const std::string bytes = original.SerializeAsString();

  ModelSpecRewrite rewrite;
  rewrite.name = "light";
  rewrite.version = LatestVersion{};
  const auto result = rewrite_model_spec(bytes, rewrite);
  ASSERT_TRUE(result.ok()) << to_string(result.error);

  tfs::PredictRequest back;
  ASSERT_TRUE(back.ParseFromString(result.bytes));
  EXPECT_EQ(spec_of(back.model_spec()), named("light", std::nullopt, std::nullopt, "sig"));
  // Everything but the spec is what the client sent.
  tfs::PredictRequest expected = original;
  expected.mutable_model_spec()->set_name("light");
  expected.mutable_model_spec()->clear_version();
  std::string a;
  std::string b;
  google::protobuf::io::StringOutputStream sa(&a);
  {
    google::protobuf::io::CodedOutputStream out(&sa);
    out.SetSerializationDeterministic(true);
    expected.SerializeToCodedStream(&out);
  }
  google::protobuf::io::StringOutputStream sb(&b);
  {
    google::protobuf::io::CodedOutputStream out(&sb);
    out.SetSerializationDeterministic(true);
    back.SerializeToCodedStream(&out);
  }
  EXPECT_EQ(a, b);
  EXPECT_EQ(back.GetReflection()->GetUnknownFields(back).field_count(), 2);
  // And the reader agrees with itself.
  EXPECT_EQ(*parse_model_spec(result.bytes).spec, spec_of(back.model_spec()));
}

TEST(ModelSpecRewrite, OtherBytesStayInPlaceAndOccurrencesCollapseIntoOne) {
  // A request written by hand in an order libprotobuf would not use: inputs first, the spec in
  // two occurrences around an unknown field, trailing bytes after them.
  const std::string inputs = delimited(2, delimited(1, "x") + delimited(2, "tensor bytes"));
  const std::string spec_a = delimited(1, delimited(1, "a") + delimited(3, "sig"));
  const std::string middle = tag(50, 0) + varint(300);
  const std::string spec_b = delimited(1, delimited(2, tag(1, 0) + varint(7)));
  const std::string tail = delimited(3, "y") + tag(51, 5) + "abcd";
  const std::string request = inputs + spec_a + middle + spec_b + tail;

  ModelSpecRewrite rewrite;
  rewrite.name = "b";
  const auto result = rewrite_model_spec(request, rewrite);
  ASSERT_TRUE(result.ok()) << to_string(result.error);
  const std::string new_spec =
      delimited(1, serialize_model_spec(named("b", 7, std::nullopt, "sig")));
  EXPECT_EQ(result.bytes, inputs + new_spec + middle + tail);
  EXPECT_EQ(count_fields(result.bytes, 1), 1);
}

TEST(ModelSpecRewrite, UnknownFieldsInsideTheSpecSurvive) {
  tfs::PredictRequest r = predict_request(named("a", 1));
  auto* spec_unknown =
      r.mutable_model_spec()->GetReflection()->MutableUnknownFields(r.mutable_model_spec());
  spec_unknown->AddVarint(9, 42);
  spec_unknown->AddLengthDelimited(10, "later field");
  ModelSpecRewrite rewrite;
  rewrite.version = std::string("stable");
  const auto result = rewrite_model_spec(r.SerializeAsString(), rewrite);
  ASSERT_TRUE(result.ok());
  tfs::PredictRequest back;
  ASSERT_TRUE(back.ParseFromString(result.bytes));
  EXPECT_EQ(spec_of(back.model_spec()), named("a", std::nullopt, "stable"));
  const auto& kept = back.model_spec().GetReflection()->GetUnknownFields(back.model_spec());
  ASSERT_EQ(kept.field_count(), 2);
  EXPECT_EQ(kept.field(0).number(), 9);
  EXPECT_EQ(kept.field(0).varint(), 42u);
  EXPECT_EQ(kept.field(1).length_delimited(), "later field");
}

TEST(ModelSpecRewrite, RequestWithoutSpec) {
  tfs::GetModelStatusRequest empty;
  const std::string other = delimited(9, "x");
  ModelSpecRewrite nothing;
  auto result = rewrite_model_spec(other, nothing);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.bytes, other);  // nothing to write: unchanged, still no spec
  ModelSpecRewrite rename;
  rename.name = "m";
  result = rewrite_model_spec(other, rename);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.bytes, delimited(1, delimited(1, "m")) + other);
  ASSERT_TRUE(empty.ParseFromString(result.bytes));
  EXPECT_EQ(empty.model_spec().name(), "m");
}

TEST(ModelSpecRewrite, MalformedInputIsAnErrorWithNoBytes) {
  ModelSpecRewrite rewrite;
  rewrite.name = "m";
  for (const std::string& bad : {std::string("\x0a\x05"
                                             "ab"),
                                 std::string("\x80"), delimited(1, delimited(1, "\xff"))}) {
    const auto result = rewrite_model_spec(bad, rewrite);
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.bytes.empty());
  }
}

tfs::MultiInferenceRequest multi_inference(const std::vector<ModelSpec>& specs) {
  tfs::MultiInferenceRequest r;
  for (const auto& s : specs) {
    auto* task = r.add_tasks();
    *task->mutable_model_spec() = pb_of(s);
    task->set_method_name("tensorflow/serving/regress");
  }
  auto* example = r.mutable_input()->mutable_example_list()->add_examples();
  (*example->mutable_features()->mutable_feature())["x"].mutable_float_list()->add_value(1.0f);
  return r;
}

TEST(TaskModelSpecs, ParsesEveryTask) {
  tfs::MultiInferenceRequest r =
      multi_inference({named("m", 1, std::nullopt, "regress_x_to_y"), named("m", 1)});
  r.add_tasks()->set_method_name("tensorflow/serving/classify");  // no spec
  const auto parsed = parse_task_model_specs(r.SerializeAsString());
  ASSERT_TRUE(parsed.ok()) << to_string(parsed.error);
  ASSERT_EQ(parsed.tasks.size(), 3u);
  EXPECT_EQ(parsed.tasks[0], named("m", 1, std::nullopt, "regress_x_to_y"));
  EXPECT_EQ(parsed.tasks[1], named("m", 1));
  EXPECT_FALSE(parsed.tasks[2].has_value());
  EXPECT_TRUE(parse_task_model_specs("").tasks.empty());
  // A malformed task makes the whole request an error.
  const auto bad = parse_task_model_specs(delimited(1, delimited(1, "\x0a\x09")));
  EXPECT_EQ(bad.error, WireError::bad_length);
  EXPECT_TRUE(bad.tasks.empty());
}

TEST(TaskModelSpecs, RewriteEveryTaskKeepsInputAndOrder) {
  const tfs::MultiInferenceRequest r =
      multi_inference({named("primary", 1, std::nullopt, "regress_x_to_y"),
                       named("primary", std::nullopt, "stable")});
  ModelSpecRewrite rewrite;
  rewrite.name = "light";
  rewrite.version = LatestVersion{};
  const auto result = rewrite_task_model_specs(r.SerializeAsString(), rewrite);
  ASSERT_TRUE(result.ok()) << to_string(result.error);
  tfs::MultiInferenceRequest back;
  ASSERT_TRUE(back.ParseFromString(result.bytes));
  ASSERT_EQ(back.tasks_size(), 2);
  EXPECT_EQ(spec_of(back.tasks(0).model_spec()),
            named("light", std::nullopt, std::nullopt, "regress_x_to_y"));
  EXPECT_EQ(spec_of(back.tasks(1).model_spec()), named("light"));
  EXPECT_EQ(back.tasks(1).method_name(), "tensorflow/serving/regress");
  EXPECT_EQ(back.input().SerializeAsString(), r.input().SerializeAsString());
}

// Random bytes and random damage to valid requests: never a crash, never an answer that
// contradicts libprotobuf. Deterministic seed, bounded loop.
TEST(ModelSpecFuzz, RandomBytesNeverCrashAndAgreeWithLibprotobuf) {
  const google::protobuf::LogSilencer quiet;
  std::mt19937_64 rng(20240611);
  const std::string valid_bytes =
      predict_request(named("half_plus_two", 3, std::nullopt, "serving_default"))
          .SerializeAsString() +
      predict_request(named("", std::nullopt, "stable")).SerializeAsString();
  std::uniform_int_distribution<int> byte(0, 255);
  int libprotobuf_accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string input;
    if (i % 2 == 0) {
      const std::size_t n = rng() % 48;
      for (std::size_t k = 0; k < n; ++k) input.push_back(static_cast<char>(byte(rng)));
    } else {
      input = valid_bytes;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !input.empty(); ++e) {
        const std::size_t at = rng() % input.size();
        switch (rng() % 3) {
          case 0:
            input[at] = static_cast<char>(byte(rng));
            break;
          case 1:
            input.erase(at, 1 + rng() % 3);
            break;
          default:
            input.insert(at, 1, static_cast<char>(byte(rng)));
        }
      }
    }
    const auto parsed = parse_model_spec(input);
    tfs::PredictRequest pb;
    if (pb.ParseFromString(input)) {
      ++libprotobuf_accepted;
      ASSERT_TRUE(parsed.ok()) << "iteration " << i << ": " << to_string(parsed.error);
      ASSERT_EQ(parsed.spec.has_value(), pb.has_model_spec()) << "iteration " << i;
      if (parsed.spec) {
        ASSERT_EQ(*parsed.spec, spec_of(pb.model_spec())) << "iteration " << i;
      }
    }
    ModelSpecRewrite rewrite;
    rewrite.name = "n";
    const auto rewritten = rewrite_model_spec(input, rewrite);
    ASSERT_EQ(rewritten.ok(), parsed.ok()) << "iteration " << i;
    if (rewritten.ok()) {
      const auto again = parse_model_spec(rewritten.bytes);
      ASSERT_TRUE(again.ok()) << "iteration " << i;
      ASSERT_EQ(again.spec->name, "n");
    }
    (void)parse_task_model_specs(input);
  }
  // The mutations must exercise the accepting path too, or the comparison proves nothing.
  EXPECT_GT(libprotobuf_accepted, 500);
}

}  // namespace
}  // namespace fusebox::rpc
