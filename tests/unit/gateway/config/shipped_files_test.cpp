// Every config and policy file shipped in the repository loads without error, every key they use is
// documented in the README beside them, and the shipped defaults are what the docs promise.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "gateway/config/server_config.h"
#include "gateway/routing/policy.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = SLUICE_SOURCE_DIR;

std::vector<std::string> yaml_files(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> config_files() {
  auto a = yaml_files(kRoot / "config");
  auto b = yaml_files(kRoot / "config" / "examples");
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> policy_files() {
  auto a = yaml_files(kRoot / "policies");
  auto b = yaml_files(kRoot / "policies" / "examples");
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string dump(const ConfigErrors& errors) {
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  return all;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void collect_keys(const YAML::Node& node, std::set<std::string>& keys) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      keys.insert(it->first.Scalar());
      collect_keys(it->second, keys);
    }
  } else if (node.IsSequence()) {
    for (const YAML::Node& item : node) collect_keys(item, keys);
  }
}

std::vector<std::string> providers_of(const ServerConfig& c) {
  std::vector<std::string> names;
  for (const auto& p : c.providers) names.push_back(p.name);
  return names;
}

TEST(ShippedFilesTest, TheExpectedFilesExist) {
  EXPECT_TRUE(fs::exists(kRoot / "config" / "sluice.yaml"));
  EXPECT_TRUE(fs::exists(kRoot / "config" / "examples" / "local-only.yaml"));
  EXPECT_TRUE(fs::exists(kRoot / "config" / "examples" / "cloud-fallback.yaml"));
  EXPECT_TRUE(fs::exists(kRoot / "policies" / "default.yaml"));
  EXPECT_GE(yaml_files(kRoot / "policies" / "examples").size(), 3u);
  EXPECT_TRUE(fs::exists(kRoot / "config" / "README.md"));
  EXPECT_TRUE(fs::exists(kRoot / "policies" / "README.md"));
}

TEST(ShippedFilesTest, EveryConfigLoadsWithItsPolicies) {
  for (const std::string& file : config_files()) {
    SCOPED_TRACE(file);
    auto config = load_server_config(file);
    ASSERT_TRUE(config.ok()) << dump(config.error());
    EXPECT_FALSE(config->policy_files.empty());
    auto policy = load_policy(config->policy_files, providers_of(*config));
    EXPECT_TRUE(policy.ok()) << (policy.ok() ? "" : dump(policy.error()));
  }
}

TEST(ShippedFilesTest, EveryPolicyFileLoadsAlone) {
  // The examples are alternatives (several route "*"), so each is checked on its own, against every provider
  // some shipped config declares.
  std::vector<std::string> providers;
  for (const std::string& file : config_files()) {
    auto config = load_server_config(file);
    if (!config.ok()) continue;  // reported by the test above
    for (const auto& name : providers_of(*config)) providers.push_back(name);
  }
  const auto files = policy_files();
  ASSERT_FALSE(files.empty());
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    auto policy = load_policy({file}, providers);
    EXPECT_TRUE(policy.ok()) << (policy.ok() ? "" : dump(policy.error()));
  }
}

TEST(ShippedFilesTest, EveryKeyUsedIsDocumented) {
  const std::string config_readme = read_text(kRoot / "config" / "README.md");
  const std::string policy_readme = read_text(kRoot / "policies" / "README.md");
  auto check = [](const std::vector<std::string>& files, const std::string& readme) {
    for (const std::string& file : files) {
      std::set<std::string> keys;
      collect_keys(YAML::LoadFile(file), keys);
      for (const std::string& key : keys)
        EXPECT_NE(readme.find("`" + key + "`"), std::string::npos) << "key '" << key << "' of " << file
                                                                   << " is not documented";
    }
  };
  check(config_files(), config_readme);
  check(policy_files(), policy_readme);
}

TEST(ShippedFilesTest, ShippedConfigIsTheDocumentedStartingPoint) {
  auto config = load_server_config((kRoot / "config" / "sluice.yaml").string());
  ASSERT_TRUE(config.ok()) << dump(config.error());
  EXPECT_TRUE(config->engine.enabled);
  EXPECT_EQ(std::filesystem::path(config->engine.model_path).filename(), "SmolLM2-135M-Instruct.Q4_1.gguf");
  ASSERT_EQ(config->providers.size(), 1u);
  EXPECT_EQ(config->providers[0].name, "upstream");
  EXPECT_EQ(config->providers[0].base_url_env, "SLUICE_UPSTREAM_URL");
  EXPECT_EQ(config->providers[0].api_key_env, "SLUICE_UPSTREAM_KEY");
  ASSERT_EQ(config->policy_files.size(), 1u);
  EXPECT_EQ(fs::weakly_canonical(config->policy_files[0]), fs::weakly_canonical(kRoot / "policies" / "default.yaml"));

  auto policy = load_policy(config->policy_files, providers_of(*config));
  ASSERT_TRUE(policy.ok()) << dump(policy.error());
  const Route* r = policy.value()->match("whatever-model");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "default");
  EXPECT_EQ(r->limits.bucket.requests_per_second, 100);
  EXPECT_EQ(r->limits.bucket.burst, 100);
  EXPECT_EQ(r->limits.max_concurrency, 50);
  ASSERT_EQ(r->targets.size(), 2u);
  EXPECT_EQ(r->targets[0].provider, "local");
  EXPECT_EQ(r->targets[0].tier, 0);
  EXPECT_EQ(r->targets[1].provider, "upstream");
  EXPECT_EQ(r->targets[1].tier, 1);
  EXPECT_TRUE(r->fallback_on.count(ErrorKind::unavailable));
}

}  // namespace
}  // namespace sluice
