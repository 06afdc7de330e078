#include "gateway/proxy/auth.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(KeySet, MatchesOnlyExactKeys) {
  KeySet keys({"alpha-key", "beta-key"});
  EXPECT_TRUE(keys.contains("alpha-key"));
  EXPECT_TRUE(keys.contains("beta-key"));
  EXPECT_FALSE(keys.contains("alpha-ke"));
  EXPECT_FALSE(keys.contains("alpha-key "));
  EXPECT_FALSE(keys.contains(""));
  EXPECT_EQ(keys.find("beta-key"), 1u);
  EXPECT_EQ(keys.find("nope"), std::nullopt);
}

TEST(KeySet, ReadsCommaSeparatedKeysFromTheEnvironment) {
  ::setenv("SLUICE_TEST_KEYS", " k1 , k2,,k3 ", 1);
  auto keys = KeySet::from_env("SLUICE_TEST_KEYS");
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_TRUE(keys.contains("k2"));
  EXPECT_TRUE(keys.contains("k3"));
  ::unsetenv("SLUICE_TEST_KEYS");
  EXPECT_TRUE(KeySet::from_env("SLUICE_TEST_KEYS").empty());
  EXPECT_TRUE(KeySet::from_env("").empty());
}

TEST(BearerToken, ParsesTheAuthorizationHeader) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
  EXPECT_EQ(bearer_token(""), std::nullopt);
}

}  // namespace
}  // namespace sluice
