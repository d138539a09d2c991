#include "fusebox/rpc/metadata_policy.h"

#include <gtest/gtest.h>

namespace fusebox::rpc {
namespace {

TEST(MetadataPolicyTest, HopMetadataIsNeverForwarded) {
  for (const char* key : {":path", "grpc-timeout", "grpc-encoding", "te", "content-type",
                          "user-agent", "host", "x-request-id", "traceparent", ""}) {
    EXPECT_FALSE(forwards_metadata({}, {}, key)) << key;
    // Not even when listed explicitly.
    EXPECT_FALSE(forwards_metadata({key, "grpc-*"}, {}, key)) << key;
  }
}

TEST(MetadataPolicyTest, EmptyAllowListForwardsEverythingNotDenied) {
  EXPECT_TRUE(forwards_metadata({}, {}, "x-tenant"));
  EXPECT_TRUE(forwards_metadata({}, {}, "authorization"));
  EXPECT_FALSE(forwards_metadata({}, {"authorization"}, "authorization"));
  EXPECT_TRUE(forwards_metadata({}, {"authorization"}, "authorization-hint"));
}

TEST(MetadataPolicyTest, AllowListAndPrefixesDecideFirstDenyWins) {
  std::vector<std::string> allow{"x-tenant", "x-team-*"};
  std::vector<std::string> deny{"x-team-secret*"};
  EXPECT_TRUE(forwards_metadata(allow, deny, "x-tenant"));
  EXPECT_FALSE(forwards_metadata(allow, deny, "x-tenant-id"));  // exact entry, not a prefix
  EXPECT_TRUE(forwards_metadata(allow, deny, "x-team-"));
  EXPECT_TRUE(forwards_metadata(allow, deny, "x-team-name"));
  EXPECT_FALSE(forwards_metadata(allow, deny, "x-team-secret-bin"));
  EXPECT_FALSE(forwards_metadata(allow, deny, "authorization"));
}

TEST(MetadataPolicyTest, MatchesIsExactOrPrefix) {
  EXPECT_TRUE(metadata_matches({"a*"}, "a"));
  EXPECT_TRUE(metadata_matches({"a*"}, "abc"));
  EXPECT_FALSE(metadata_matches({"ab"}, "abc"));
  EXPECT_FALSE(metadata_matches({}, "abc"));
}

}  // namespace
}  // namespace fusebox::rpc
