#include "fusebox/common/address.h"

#include <gtest/gtest.h>

namespace fusebox {
namespace {

TEST(HostPort, BracketsIpv6LiteralsOnly) {
  EXPECT_EQ(host_port("127.0.0.1", 8500), "127.0.0.1:8500");
  EXPECT_EQ(host_port("tfs-a.models.svc", 8501), "tfs-a.models.svc:8501");
  EXPECT_EQ(host_port("::1", 9901), "[::1]:9901");
  EXPECT_EQ(host_port("fe80::1", 1), "[fe80::1]:1");
  EXPECT_EQ(host_port("[::1]", 9901), "[::1]:9901") << "already bracketed";
}

}  // namespace
}  // namespace fusebox
