#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/routing/policy.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using Files = std::vector<std::pair<std::string, std::string>>;

const std::vector<std::string> kProviders{"upstream", "cloud"};

std::string dump(const ConfigErrors& errors) {
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  return all;
}

std::shared_ptr<const Policy> parse_ok(const Files& files) {
  auto r = parse_policy_texts(files, kProviders);
  if (!r.ok()) {
    ADD_FAILURE() << "unexpected errors:\n" << dump(r.error());
    return nullptr;
  }
  return r.value();
}

ConfigErrors parse_errors(const Files& files) {
  auto r = parse_policy_texts(files, kProviders);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return {};
  return r.error();
}

TEST(PolicyParserTest, ReadsEveryKey) {
  auto policy = parse_ok({{"p.yaml", R"(client_limits:
  requests_per_second: 5
  tokens_per_minute: 1000
routes:
  - name: main
    model: gpt-4o
    default_max_tokens: 128
    limits:
      requests_per_second: 10
      burst: 20
      tokens_per_minute: 6000
      max_concurrency: 3
      max_queue: 7
      queue_timeout_ms: 1500
    retries:
      max_attempts: 3
      backoff_base_ms: 10
      backoff_max_ms: 100
      retry_on: [timeout, rate_limited]
    fallback_on: [unavailable]
    targets:
      - provider: cloud
        model: gpt-4o-2024
        tier: 2
        weight: 0.5
        max_concurrency: 4
        timeouts: {connect_ms: 11, first_byte_ms: 12, total_ms: 13}
      - provider: local
        tier: 0
      - provider: upstream
        tier: 2
)"}});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->client_limits.requests_per_second, 5);
  EXPECT_EQ(policy->client_limits.burst, 5);  // defaults to requests_per_second
  EXPECT_EQ(policy->client_limits.tokens_per_minute, 1000);
  ASSERT_EQ(policy->routes.size(), 1u);
  const Route& r = policy->routes[0];
  EXPECT_EQ(r.name, "main");
  EXPECT_EQ(r.model, "gpt-4o");
  EXPECT_FALSE(r.is_glob);
  EXPECT_EQ(r.default_max_tokens, 128);
  EXPECT_EQ(r.file, "p.yaml");
  EXPECT_EQ(r.line, 5);
  EXPECT_EQ(r.limits.bucket.requests_per_second, 10);
  EXPECT_EQ(r.limits.bucket.burst, 20);
  EXPECT_EQ(r.limits.bucket.tokens_per_minute, 6000);
  EXPECT_EQ(r.limits.max_concurrency, 3);
  EXPECT_EQ(r.limits.max_queue, 7);
  EXPECT_EQ(r.limits.queue_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(r.retry.max_attempts, 3);
  EXPECT_EQ(r.retry.backoff_base, std::chrono::milliseconds(10));
  EXPECT_EQ(r.retry.backoff_max, std::chrono::milliseconds(100));
  EXPECT_EQ(r.retry.retry_on, (std::set<ErrorKind>{ErrorKind::timeout, ErrorKind::rate_limited}));
  EXPECT_EQ(r.fallback_on, (std::set<ErrorKind>{ErrorKind::unavailable}));
  // Sorted by tier, file order kept within a tier; the key keeps the index of the file order.
  ASSERT_EQ(r.targets.size(), 3u);
  EXPECT_EQ(r.targets[0].provider, "local");
  EXPECT_EQ(r.targets[0].key, "main/local//1");
  EXPECT_EQ(r.targets[1].provider, "cloud");
  EXPECT_EQ(r.targets[1].key, "main/cloud/gpt-4o-2024/0");
  EXPECT_EQ(r.targets[1].model, "gpt-4o-2024");
  EXPECT_EQ(r.targets[1].tier, 2);
  EXPECT_EQ(r.targets[1].weight, 0.5);
  EXPECT_EQ(r.targets[1].max_concurrency, 4);
  EXPECT_EQ(r.targets[1].connect_timeout, std::chrono::milliseconds(11));
  EXPECT_EQ(r.targets[1].first_byte_timeout, std::chrono::milliseconds(12));
  EXPECT_EQ(r.targets[1].total_timeout, std::chrono::milliseconds(13));
  EXPECT_EQ(r.targets[2].provider, "upstream");
  EXPECT_EQ(r.targets[2].key, "main/upstream//2");
  EXPECT_FALSE(r.targets[2].connect_timeout.has_value());
}

TEST(PolicyParserTest, Defaults) {
  auto policy = parse_ok({{"p.yaml", "routes:\n  - name: d\n    model: \"*\"\n    targets: [{provider: local}]\n"}});
  ASSERT_NE(policy, nullptr);
  const Route& r = policy->routes[0];
  EXPECT_TRUE(r.is_glob);
  EXPECT_EQ(r.default_max_tokens, 256);
  EXPECT_EQ(r.limits.bucket.requests_per_second, 0);
  EXPECT_EQ(r.limits.max_concurrency, 0);
  EXPECT_EQ(r.retry.max_attempts, 1);
  EXPECT_EQ(r.retry.retry_on, (std::set<ErrorKind>{ErrorKind::connect_error, ErrorKind::upstream_5xx}));
  EXPECT_EQ(r.fallback_on,
            (std::set<ErrorKind>{ErrorKind::connect_error, ErrorKind::timeout, ErrorKind::upstream_5xx,
                                 ErrorKind::rate_limited, ErrorKind::overloaded, ErrorKind::context_too_long,
                                 ErrorKind::unsupported, ErrorKind::unavailable}));
  EXPECT_EQ(r.targets[0].tier, 0);
  EXPECT_EQ(r.targets[0].weight, 1);
  EXPECT_EQ(r.targets[0].model, "");
  EXPECT_EQ(policy->client_limits.requests_per_second, 0);
  EXPECT_EQ(policy->files, std::vector<std::string>{"p.yaml"});
}

TEST(PolicyParserTest, EmptyFallbackListMeansNoFallback) {
  auto policy =
      parse_ok({{"p.yaml", "routes:\n  - name: d\n    model: m\n    fallback_on: []\n    targets: [{provider: local}]\n"}});
  ASSERT_NE(policy, nullptr);
  EXPECT_TRUE(policy->routes[0].fallback_on.empty());
}

struct BadCase {
  const char* name;
  const char* body;  // appended after a line "routes:"; line numbers count that line as 1
  int line;
  const char* message;
};

class PolicyBadTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(PolicyBadTest, ReportsOneErrorWithLine) {
  const BadCase& c = GetParam();
  const ConfigErrors errors = parse_errors({{"bad.yaml", std::string("routes:\n") + c.body}});
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].file, "bad.yaml");
  EXPECT_EQ(errors[0].line, c.line) << dump(errors);
  EXPECT_THAT(errors[0].message, HasSubstr(c.message)) << dump(errors);
}

#define ROUTE "  - name: r\n    model: m\n"  // lines 2 and 3
#define TARGET "    targets: [{provider: local}]\n"

INSTANTIATE_TEST_SUITE_P(
    Table, PolicyBadTest,
    ::testing::Values(
        BadCase{"unknown_route_key", ROUTE "    modle: x\n" TARGET, 4, "unknown key 'modle' in routes[0]"},
        BadCase{"unknown_limits_key", ROUTE "    limits:\n      rps: 1\n" TARGET, 5,
                "unknown key 'rps' in routes[0].limits"},
        BadCase{"unknown_target_key", ROUTE "    targets:\n      - provider: local\n        priority: 1\n", 6,
                "unknown key 'priority' in routes[0].targets[0]"},
        BadCase{"missing_name", "  - model: m\n" TARGET, 2, "missing required key 'name'"},
        BadCase{"missing_model", "  - name: r\n" TARGET, 2, "missing required key 'model'"},
        BadCase{"missing_targets", ROUTE, 2, "missing required key 'targets'"},
        BadCase{"empty_targets", ROUTE "    targets: []\n", 4, "non-empty list"},
        BadCase{"targets_map", ROUTE "    targets: {provider: local}\n", 4, "non-empty list"},
        BadCase{"missing_provider", ROUTE "    targets:\n      - tier: 1\n", 5, "missing required key 'provider'"},
        BadCase{"unknown_provider", ROUTE "    targets:\n      - provider: openai\n", 5,
                "unknown provider 'openai' (known: cloud, upstream, local)"},
        BadCase{"bad_type_tier", ROUTE "    targets:\n      - provider: local\n        tier: high\n", 6,
                "routes[0].targets[0].tier: expected an integer, got 'high'"},
        BadCase{"tier_range", ROUTE "    targets:\n      - provider: local\n        tier: 100\n", 6,
                "tier: 100 is out of range (0..99)"},
        BadCase{"negative_weight", ROUTE "    targets:\n      - provider: local\n        weight: -1\n", 6,
                "weight: -1 is out of range"},
        BadCase{"zero_weight", ROUTE "    targets:\n      - provider: local\n        weight: 0\n", 6,
                "weight: must be greater than 0"},
        BadCase{"weight_text", ROUTE "    targets:\n      - provider: local\n        weight: heavy\n", 6,
                "expected a number"},
        BadCase{"target_glob_model", ROUTE "    targets:\n      - provider: local\n        model: gpt-*\n", 6,
                "must be a plain model name"},
        BadCase{"target_empty_model", ROUTE "    targets:\n      - provider: local\n        model: \"\"\n", 6,
                "omit the key"},
        BadCase{"target_timeout_zero", ROUTE "    targets:\n      - provider: local\n        timeouts: {total_ms: 0}\n",
                6, "routes[0].targets[0].timeouts.total_ms: 0 is out of range"},
        BadCase{"zero_attempts", ROUTE "    retries:\n      max_attempts: 0\n" TARGET, 5,
                "retries.max_attempts: 0 is out of range (1..10)"},
        BadCase{"backoff_order", ROUTE "    retries:\n      backoff_base_ms: 500\n      backoff_max_ms: 100\n" TARGET,
                6, "must not be less than backoff_base_ms"},
        BadCase{"bad_fallback_name", ROUTE "    fallback_on: [timeout, upstream_500]\n" TARGET, 4,
                "'upstream_500' is not an error kind"},
        BadCase{"fallback_cancelled", ROUTE "    fallback_on:\n      - cancelled\n" TARGET, 5,
                "'cancelled' is not an error kind"},
        BadCase{"retry_internal", ROUTE "    retries:\n      retry_on: [internal]\n" TARGET, 5,
                "'internal' is not an error kind"},
        BadCase{"fallback_twice", ROUTE "    fallback_on: [timeout, timeout]\n" TARGET, 4, "listed twice"},
        BadCase{"fallback_scalar", ROUTE "    fallback_on: timeout\n" TARGET, 4, "expected a list"},
        BadCase{"bad_glob", "  - name: r\n    model: \"gpt-[45]\"\n" TARGET, 3, "unsupported glob syntax"},
        BadCase{"model_space", "  - name: r\n    model: \"a b\"\n" TARGET, 3, "must not contain spaces"},
        BadCase{"bad_route_name", "  - name: a/b\n    model: m\n" TARGET, 2, "must be 1-64 characters"},
        BadCase{"negative_rps", ROUTE "    limits: {requests_per_second: -5}\n" TARGET, 4, "out of range"},
        BadCase{"burst_below_one", ROUTE "    limits: {requests_per_second: 5, burst: 0.5}\n" TARGET, 4,
                "burst: must be at least 1"},
        BadCase{"burst_alone", ROUTE "    limits: {burst: 5}\n" TARGET, 4, "has no effect without requests_per_second"},
        BadCase{"concurrency_text", ROUTE "    limits: {max_concurrency: lots}\n" TARGET, 4, "expected an integer"},
        BadCase{"queue_timeout_zero", ROUTE "    limits: {queue_timeout_ms: 0}\n" TARGET, 4, "out of range"},
        BadCase{"default_max_tokens_zero", ROUTE "    default_max_tokens: 0\n" TARGET, 4, "out of range"},
        BadCase{"route_not_map", "  - just-a-string\n", 2, "routes[0]: expected a map, got a scalar"},
        BadCase{"routes_map", "  name: x\n", 1, "routes: expected a list"},
        BadCase{"duplicate_key", ROUTE "    model: n\n" TARGET, 4, "given twice (first at line 3)"},
        BadCase{"syntax_alias", "  - name: r\n    model: *\n" TARGET, 3, "invalid YAML"},
        BadCase{"duplicate_route_same_file",
                ROUTE TARGET "  - name: r\n    model: other\n" TARGET, 5,
                "duplicate route name 'r' (first defined at bad.yaml:2)"},
        BadCase{"duplicate_model_same_file",
                ROUTE TARGET "  - name: s\n    model: m\n" TARGET, 5,
                "model 'm' of route 's' is already routed by route 'r' at bad.yaml:2"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

#undef ROUTE
#undef TARGET

TEST(PolicyParserTest, UnknownTopLevelKey) {
  const ConfigErrors errors = parse_errors({{"x.yaml", "route:\n  - name: r\n"}});
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_EQ(errors[0].message, "unknown key 'route' at the top level (did you mean 'routes'?)");
}

TEST(PolicyParserTest, CollectsAllErrorsAcrossFiles) {
  const ConfigErrors errors = parse_errors({
      {"b.yaml", "routes:\n  - name: r\n    model: m\n    targets: [{provider: nope}]\n"},
      {"a.yaml",
       "client_limits: {requests_per_second: x}\nroutes:\n  - name: q\n    model: n\n    targets: [{provider: local, tier: -1}]\n"},
  });
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  // a.yaml is read first (file-name order).
  EXPECT_EQ(errors[0].file, "a.yaml");
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_EQ(errors[1].file, "a.yaml");
  EXPECT_EQ(errors[1].line, 5);
  EXPECT_EQ(errors[2].file, "b.yaml");
  EXPECT_EQ(errors[2].line, 4);
  EXPECT_THAT(errors[2].to_string(), HasSubstr("b.yaml:4: "));
  EXPECT_THAT(errors[2].message, HasSubstr("unknown provider 'nope'"));
}

TEST(PolicyParserTest, DuplicatesAcrossFilesNameBothLocations) {
  const ConfigErrors errors = parse_errors({
      {"20-more.yaml", "routes:\n  - name: main\n    model: other\n    targets: [{provider: local}]\n"
                       "  - name: extra\n    model: gpt-4o\n    targets: [{provider: local}]\n"
                       "  - name: star2\n    model: \"*\"\n    targets: [{provider: local}]\n"},
      {"10-base.yaml", "\nroutes:\n  - name: main\n    model: gpt-4o\n    targets: [{provider: local}]\n"
                       "  - name: star\n    model: \"*\"\n    targets: [{provider: local}]\n"},
  });
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_EQ(errors[0].file, "20-more.yaml");
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].message, "duplicate route name 'main' (first defined at 10-base.yaml:3)");
  EXPECT_EQ(errors[1].line, 5);
  EXPECT_THAT(errors[1].message, HasSubstr("model 'gpt-4o' of route 'extra' is already routed by route 'main' at "
                                           "10-base.yaml:3"));
  EXPECT_EQ(errors[2].line, 8);
  EXPECT_THAT(errors[2].message, HasSubstr("model pattern '*' of route 'star2'"));
}

TEST(PolicyParserTest, ClientLimitsInOneFileOnly) {
  const ConfigErrors errors = parse_errors({
      {"a.yaml", "client_limits: {requests_per_second: 1}\nroutes:\n  - name: r\n    model: m\n    targets: [{provider: local}]\n"},
      {"b.yaml", "\n\nclient_limits: {requests_per_second: 2}\n"},
  });
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].file, "b.yaml");
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_THAT(errors[0].message, HasSubstr("already set in a.yaml:1"));
}

TEST(PolicyParserTest, NoRoutesIsAnError) {
  const ConfigErrors errors = parse_errors({{"empty.yaml", ""}, {"c.yaml", "client_limits: {}\nroutes: []\n"}});
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_THAT(errors[0].message, HasSubstr("no routes"));
}

TEST(PolicyParserTest, EmptyFileNextToOthersIsFine) {
  auto policy = parse_ok({{"z.yaml", "routes:\n  - name: r\n    model: m\n    targets: [{provider: local}]\n"},
                          {"a.yaml", "# nothing yet\n"}});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->files, (std::vector<std::string>{"a.yaml", "z.yaml"}));
}

TEST(PolicyParserTest, LocalIsAlwaysKnownAndListedOnce) {
  auto r = parse_policy_texts({{"p.yaml", "routes:\n  - name: r\n    model: m\n    targets: [{provider: x}]\n"}},
                              {"local", "b", "a", "b"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error()[0].message, HasSubstr("unknown provider 'x' (known: a, b, local)"));
}

TEST(PolicyParserTest, LoadPolicyReadsFilesInNameOrderAndNamesMissingOnes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sluice_policy_test_" + std::to_string(::getpid()));
  fs::create_directories(dir / "sub");
  auto write = [&](const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    out << text;
  };
  write(dir / "sub" / "a.yaml", "routes:\n  - name: first\n    model: \"g*\"\n    targets: [{provider: local}]\n");
  write(dir / "b.yaml", "routes:\n  - name: second\n    model: \"*\"\n    targets: [{provider: upstream}]\n");

  auto ok = load_policy({(dir / "b.yaml").string(), (dir / "sub" / "a.yaml").string()}, kProviders);
  ASSERT_TRUE(ok.ok()) << dump(ok.error());
  const Policy& p = *ok.value();
  ASSERT_EQ(p.routes.size(), 2u);
  EXPECT_EQ(p.routes[0].name, "first");  // a.yaml sorts before b.yaml by file name, not by directory
  EXPECT_EQ(p.routes[0].file, (dir / "sub" / "a.yaml").string());
  EXPECT_EQ(p.match("gpt")->name, "first");
  EXPECT_EQ(p.match("llama")->name, "second");

  const std::string missing = (dir / "missing.yaml").string();
  write(dir / "c.yaml", "routes:\n  - name: third\n    model: x\n    targets: [{provider: gone}]\n");
  auto bad = load_policy({(dir / "b.yaml").string(), missing, (dir / "c.yaml").string()}, kProviders);
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.error().size(), 2u) << dump(bad.error());
  EXPECT_EQ(bad.error()[0].file, (dir / "c.yaml").string());
  EXPECT_EQ(bad.error()[0].line, 4);
  EXPECT_EQ(bad.error()[1].file, missing);
  EXPECT_THAT(bad.error()[1].to_string(), HasSubstr(missing));

  auto none = load_policy({}, kProviders);
  ASSERT_FALSE(none.ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice
