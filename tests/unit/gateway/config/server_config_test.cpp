#include "gateway/config/server_config.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

using ::testing::HasSubstr;

ServerConfig parse_ok(const std::string& text, const std::string& path = "/etc/sluice/sluice.yaml") {
  auto r = parse_server_config(text, path);
  if (!r.ok()) {
    std::string all;
    for (const auto& e : r.error()) all += e.to_string() + "\n";
    ADD_FAILURE() << "unexpected errors:\n" << all;
    return {};
  }
  return std::move(r).value();
}

ConfigErrors parse_errors(const std::string& text, const std::string& path = "conf.yaml") {
  auto r = parse_server_config(text, path);
  EXPECT_FALSE(r.ok()) << "expected errors for:\n" << text;
  if (r.ok()) return {};
  return r.error();
}

std::string dump(const ConfigErrors& errors) {
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  return all;
}

TEST(ConfigErrorTest, FormatsFileLineAndMessage) {
  EXPECT_EQ((ConfigError{"a.yaml", 7, "bad"}).to_string(), "a.yaml:7: bad");
  EXPECT_EQ((ConfigError{"a.yaml", 0, "bad"}).to_string(), "a.yaml: bad");
  EXPECT_EQ((ConfigError{"", 0, "bad"}).to_string(), "bad");
}

TEST(ServerConfigTest, EmptyFileGivesDefaults) {
  const ServerConfig c = parse_ok("", "sluice.yaml");
  EXPECT_EQ(c.path, "sluice.yaml");
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.io_threads, 2);
  EXPECT_EQ(c.server.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(c.server.limits.max_body_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(c.server.request_timeout, Millis(300'000));
  EXPECT_TRUE(c.policy_files.empty());
  EXPECT_TRUE(c.providers.empty());
  EXPECT_FALSE(c.engine.enabled);
  EXPECT_EQ(c.engine.device, "auto");
  EXPECT_DOUBLE_EQ(c.engine.gpu_memory_utilization, 0.90);
  EXPECT_FALSE(c.engine.enforce_eager);
  EXPECT_EQ(c.auth.client_keys_env, "");
}

TEST(ServerConfigTest, ReadsEveryKey) {
  const ServerConfig c = parse_ok(R"(
server:
  host: 0.0.0.0
  port: 0
  io_threads: 8
  shutdown_grace_ms: 2500
  request_timeout_ms: 60000
  limits:
    max_header_bytes: 8192
    max_body_bytes: 1048576
    read_timeout_ms: 1000
    idle_timeout_ms: 2000
    write_timeout_ms: 3000
    output_buffer_bytes: 65536
auth:
  client_keys_env: MY_KEYS
  admin_key_env: MY_ADMIN
policies:
  - ../policies/default.yaml
  - /abs/extra.yaml
engine:
  enabled: true
  model_path: models/m.gguf
  served_model_name: tiny
  device: cuda
  gpu_memory_utilization: 0.5
  enforce_eager: true
providers:
  - name: up-1
    base_url: https://api.example.com/v1
    api_key_env: UP_KEY
    flavor: vllm
    pool_size: 4
    tls: {verify: false, ca_file: certs/ca.pem}
    timeouts: {connect_ms: 100, first_byte_ms: 200, total_ms: 300}
  - name: env_one
    base_url_env: ENV_ONE_URL
)");
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.server.io_threads, 8);
  EXPECT_EQ(c.server.shutdown_grace, Millis(2500));
  EXPECT_EQ(c.server.request_timeout, Millis(60000));
  EXPECT_EQ(c.server.limits.max_header_bytes, 8192u);
  EXPECT_EQ(c.server.limits.max_body_bytes, 1048576u);
  EXPECT_EQ(c.server.limits.read_timeout, Millis(1000));
  EXPECT_EQ(c.server.limits.idle_timeout, Millis(2000));
  EXPECT_EQ(c.server.limits.write_timeout, Millis(3000));
  EXPECT_EQ(c.server.limits.output_buffer_bytes, 65536u);
  EXPECT_EQ(c.auth.client_keys_env, "MY_KEYS");
  EXPECT_EQ(c.auth.admin_key_env, "MY_ADMIN");
  ASSERT_EQ(c.policy_files.size(), 2u);
  EXPECT_EQ(c.policy_files[0], "/etc/policies/default.yaml");
  EXPECT_EQ(c.policy_files[1], "/abs/extra.yaml");
  EXPECT_TRUE(c.engine.enabled);
  EXPECT_EQ(c.engine.model_path, "/etc/sluice/models/m.gguf");
  EXPECT_EQ(c.engine.served_model_name, "tiny");
  EXPECT_EQ(c.engine.device, "cuda");
  EXPECT_DOUBLE_EQ(c.engine.gpu_memory_utilization, 0.5);
  EXPECT_TRUE(c.engine.enforce_eager);
  ASSERT_EQ(c.providers.size(), 2u);
  const ProviderConfig& p = c.providers[0];
  EXPECT_EQ(p.name, "up-1");
  EXPECT_EQ(p.base_url, "https://api.example.com/v1");
  EXPECT_EQ(p.base_url_env, "");
  EXPECT_EQ(p.api_key_env, "UP_KEY");
  EXPECT_EQ(p.flavor, ProviderFlavor::vllm);
  EXPECT_EQ(p.pool_size, 4u);
  EXPECT_FALSE(p.tls_verify);
  EXPECT_EQ(p.ca_file, "/etc/sluice/certs/ca.pem");
  EXPECT_EQ(p.connect_timeout, Millis(100));
  EXPECT_EQ(p.first_byte_timeout, Millis(200));
  EXPECT_EQ(p.total_timeout, Millis(300));
  EXPECT_EQ(p.line, 29);  // the raw string starts with a newline
  const ProviderConfig& q = c.providers[1];
  EXPECT_EQ(q.name, "env_one");
  EXPECT_EQ(q.base_url, "");
  EXPECT_EQ(q.base_url_env, "ENV_ONE_URL");
  EXPECT_EQ(q.flavor, ProviderFlavor::openai);
  EXPECT_TRUE(q.tls_verify);
  EXPECT_EQ(q.total_timeout, Millis(300'000));
}

TEST(ServerConfigTest, RelativePathsWithoutDirectoryStayRelative) {
  const ServerConfig c = parse_ok("policies: [p.yaml, ./q/../r.yaml]\n", "sluice.yaml");
  ASSERT_EQ(c.policy_files.size(), 2u);
  EXPECT_EQ(c.policy_files[0], "p.yaml");
  EXPECT_EQ(c.policy_files[1], "r.yaml");
}

TEST(ServerConfigTest, UnknownKeyNamesSectionAndLine) {
  const ConfigErrors errors = parse_errors("server:\n  port: 80\n  limits:\n    max_body_bytes: 10\n    bogus: 1\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].file, "conf.yaml");
  EXPECT_EQ(errors[0].line, 5);
  EXPECT_EQ(errors[0].message, "unknown key 'bogus' in server.limits");
  EXPECT_EQ(errors[0].to_string(), "conf.yaml:5: unknown key 'bogus' in server.limits");
}

TEST(ServerConfigTest, UnknownTopLevelAndProviderKeys) {
  const ConfigErrors errors = parse_errors(
      "serve:\n  port: 1\nproviders:\n  - name: a\n    base_url: https://x\n    tls: {verfy: true}\n");
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_THAT(errors[0].message, HasSubstr("unknown key 'serve'"));
  EXPECT_EQ(errors[1].line, 6);
  EXPECT_EQ(errors[1].message, "unknown key 'verfy' in providers[0].tls (did you mean 'verify'?)");
}

struct BadCase {
  const char* name;
  const char* yaml;
  int line;
  const char* message;  // a substring of the one expected error
};

class ServerConfigBadTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ServerConfigBadTest, ReportsOneErrorWithLine) {
  const BadCase& c = GetParam();
  const ConfigErrors errors = parse_errors(c.yaml);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, c.line) << dump(errors);
  EXPECT_THAT(errors[0].message, HasSubstr(c.message)) << dump(errors);
  EXPECT_EQ(errors[0].file, "conf.yaml");
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServerConfigBadTest,
    ::testing::Values(
        BadCase{"port_text", "server:\n  port: http\n", 2, "server.port: expected an integer, got 'http'"},
        BadCase{"port_quoted", "server:\n  port: \"80\"\n", 2, "expected an integer, got the quoted string '80'"},
        BadCase{"port_range", "server:\n  port: 70000\n", 2, "server.port: 70000 is out of range (0..65535)"},
        BadCase{"port_negative", "server:\n  port: -1\n", 2, "out of range"},
        BadCase{"port_float", "server:\n  port: 80.5\n", 2, "expected an integer"},
        BadCase{"port_missing_value", "server:\n  port:\n", 2, "server.port: missing value"},
        BadCase{"threads_zero", "server:\n  io_threads: 0\n", 2, "io_threads: 0 is out of range (1..256)"},
        BadCase{"threads_huge", "server:\n  io_threads: 99999999999999999999\n", 2, "out of range"},
        BadCase{"timeout_zero", "server:\n  request_timeout_ms: 0\n", 2, "request_timeout_ms: 0 is out of range"},
        BadCase{"body_zero", "server:\n  limits:\n    max_body_bytes: 0\n", 3, "max_body_bytes: 0 is out of range"},
        BadCase{"read_timeout_huge", "server:\n  limits:\n    read_timeout_ms: 99999999999\n", 3, "out of range"},
        BadCase{"limits_list", "server:\n  limits: [1, 2]\n", 2, "server.limits: expected a map, got a list"},
        BadCase{"server_scalar", "server: yes\n", 1, "server: expected a map"},
        BadCase{"top_list", "- a\n- b\n", 1, "the document: expected a map"},
        BadCase{"host_empty", "server:\n  host: \"\"\n", 2, "server.host"},
        BadCase{"duplicate_key", "server:\n  port: 1\n  port: 2\n", 3, "key 'port' in server given twice (first at line 2)"},
        BadCase{"bool_text", "engine:\n  enabled: maybe\n", 2, "engine.enabled: expected true or false, got 'maybe'"},
        BadCase{"engine_no_model", "engine:\n  enabled: true\n", 2, "engine.model_path is required"},
        BadCase{"served_glob", "engine:\n  served_model_name: a*\n", 2, "must not contain"},
        BadCase{"engine_device", "engine:\n  enabled: false\n  device: gpu\n", 3,
                "engine.device: 'gpu' is not one of auto, cpu, cuda"},
        BadCase{"gpu_utilization", "engine:\n  gpu_memory_utilization: 1.5\n", 2,
                "gpu_memory_utilization: 1.5 is out of range"},
        BadCase{"enforce_eager", "engine:\n  enforce_eager: sometimes\n", 2, "engine.enforce_eager"},
        BadCase{"env_name", "auth:\n  client_keys_env: not a name\n", 2, "is not an environment variable name"},
        BadCase{"policies_map", "policies: {a: 1}\n", 1, "policies: expected a list, got a map"},
        BadCase{"policies_item_map", "policies:\n  - {a: 1}\n", 2, "policies[0]: expected a string, got a map"},
        BadCase{"policies_empty_item", "policies:\n  - \"\"\n", 2, "an entry is empty"},
        BadCase{"policies_twice", "policies:\n  - a.yaml\n  - ./a.yaml\n", 3, "listed twice (first at line 2)"},
        BadCase{"providers_map", "providers: {name: a}\n", 1, "providers: expected a list"},
        BadCase{"provider_no_name", "providers:\n  - base_url: https://h\n", 2, "missing required key 'name'"},
        BadCase{"provider_local", "providers:\n  - name: local\n    base_url: https://h\n", 2, "'local' is reserved"},
        BadCase{"provider_bad_name", "providers:\n  - name: Up Stream\n    base_url: https://h\n", 2, "must be 1-64 characters"},
        BadCase{"provider_both_urls",
                "providers:\n  - name: a\n    base_url: https://h\n    base_url_env: A_URL\n", 4, "not both"},
        BadCase{"provider_no_url", "providers:\n  - name: a\n", 2, "one of base_url or base_url_env is required"},
        BadCase{"provider_ftp", "providers:\n  - name: a\n    base_url: ftp://h\n", 3, "must start with https://"},
        BadCase{"provider_credentials", "providers:\n  - name: a\n    base_url: https://u:p@h/v1\n", 3,
                "must not contain credentials"},
        BadCase{"provider_flavor", "providers:\n  - name: a\n    base_url: https://h\n    flavor: azure\n", 4,
                "'azure' is not one of openai, vllm"},
        BadCase{"provider_pool", "providers:\n  - name: a\n    base_url: https://h\n    pool_size: -3\n", 4,
                "pool_size: -3 is out of range"},
        BadCase{"provider_timeout", "providers:\n  - name: a\n    base_url: https://h\n    timeouts:\n      total_ms: 0\n",
                5, "providers[0].timeouts.total_ms: 0 is out of range"},
        BadCase{"provider_duplicate",
                "providers:\n  - name: a\n    base_url: https://h\n  - name: a\n    base_url: https://i\n", 4,
                "duplicate provider name 'a' (first at line 2)"},
        BadCase{"health_ratio", "health:\n  failure_ratio: 1.5\n", 2, "health.failure_ratio: 1.5 is out of range"},
        BadCase{"health_open_order", "health:\n  open_ms: 9000\n  max_open_ms: 1000\n", 3,
                "health.max_open_ms (1000) must not be below health.open_ms (9000)"},
        BadCase{"health_min_requests", "health:\n  window: 5\n  min_requests: 6\n", 3, "must not exceed"},
        BadCase{"health_unknown", "health:\n  probe: {}\n", 2, "unknown key 'probe'"},
        BadCase{"health_watchdog", "health:\n  engine_watchdog_ms: -1\n", 2, "engine_watchdog_ms: -1 is out of range"},
        BadCase{"probe_path", "providers:\n  - name: a\n    base_url: https://h\n    health:\n      probe:\n"
                "        path: models\n", 6, "providers[0].health.probe.path: 'models' must start with '/'"},
        BadCase{"probe_interval", "providers:\n  - name: a\n    base_url: https://h\n    health:\n      probe:\n"
                "        interval_ms: 5\n", 6, "interval_ms: 5 is out of range"},
        BadCase{"provider_health_key", "providers:\n  - name: a\n    base_url: https://h\n    health:\n"
                "      engine_watchdog_ms: 5\n", 5, "unknown key 'engine_watchdog_ms'"},
        BadCase{"syntax", "server:\n  port: [1\n  host: x\n", 3, "invalid YAML"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(ServerConfigTest, CollectsEveryError) {
  const ConfigErrors errors = parse_errors(R"(server:
  port: 99999
  io_threads: many
  limits:
    nope: 1
engine:
  enabled: perhaps
providers:
  - name: local
    base_url: https://h
  - name: b
    flavor: x
    base_url: gopher://h
)");
  std::map<int, std::string> by_line;
  for (const auto& e : errors) by_line[e.line] += e.message + ";";
  EXPECT_EQ(errors.size(), 7u) << dump(errors);
  EXPECT_THAT(by_line[2], HasSubstr("server.port"));
  EXPECT_THAT(by_line[3], HasSubstr("server.io_threads"));
  EXPECT_THAT(by_line[5], HasSubstr("unknown key 'nope' in server.limits"));
  EXPECT_THAT(by_line[7], HasSubstr("engine.enabled"));
  EXPECT_THAT(by_line[9], HasSubstr("reserved"));
  EXPECT_THAT(by_line[12], HasSubstr("flavor"));
  EXPECT_THAT(by_line[13], HasSubstr("base_url"));
}

TEST(ServerConfigTest, EmptySectionsReadAsEmpty) {
  const ServerConfig c = parse_ok("server:\n  limits:\nauth:\nengine:\npolicies:\nproviders:\n");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_TRUE(c.providers.empty());
  EXPECT_TRUE(c.policy_files.empty());
}

TEST(ServerConfigTest, HttpBaseUrlIsAccepted) {
  const ServerConfig c = parse_ok("providers:\n  - name: mock\n    base_url: http://127.0.0.1:9000\n");
  ASSERT_EQ(c.providers.size(), 1u);
  EXPECT_EQ(c.providers[0].base_url, "http://127.0.0.1:9000");
}

TEST(ServerConfigTest, BaseUrlProblems) {
  EXPECT_EQ(base_url_problem("https://api.openai.com/v1"), std::nullopt);
  EXPECT_EQ(base_url_problem("http://localhost:8000"), std::nullopt);
  EXPECT_EQ(base_url_problem("https://[::1]:8443/x"), std::nullopt);
  EXPECT_NE(base_url_problem(""), std::nullopt);
  EXPECT_NE(base_url_problem("api.openai.com"), std::nullopt);
  EXPECT_NE(base_url_problem("https://"), std::nullopt);
  EXPECT_NE(base_url_problem("https://:80"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h:0"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h:65536"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h:"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h:8x"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h/v1?key=1"), std::nullopt);
  EXPECT_NE(base_url_problem("https://h /v1"), std::nullopt);
  EXPECT_NE(base_url_problem("https://[::1"), std::nullopt);
  EXPECT_NE(base_url_problem("https://key@h"), std::nullopt);
}

TEST(ServerConfigTest, LoadReadsFileAndNamesMissingOne) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sluice_cfg_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "s.yaml";
  {
    std::ofstream out(file);
    out << "server:\n  port: 9\npolicies: [p/x.yaml]\n";
  }
  auto ok = load_server_config(file.string());
  ASSERT_TRUE(ok.ok()) << dump(ok.error());
  EXPECT_EQ(ok->server.port, 9);
  EXPECT_EQ(ok->path, file.string());
  ASSERT_EQ(ok->policy_files.size(), 1u);
  EXPECT_EQ(ok->policy_files[0], (dir / "p/x.yaml").string());

  const std::string missing = (dir / "absent.yaml").string();
  auto bad = load_server_config(missing);
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.error().size(), 1u);
  EXPECT_EQ(bad.error()[0].file, missing);
  EXPECT_THAT(bad.error()[0].to_string(), HasSubstr(missing));

  auto directory = load_server_config(dir.string());
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.error()[0].message, HasSubstr("directory"));
  fs::remove_all(dir);
}

TEST(ServerConfigTest, ResolveEnvFillsBaseUrls) {
  ServerConfig c = parse_ok(R"(providers:
  - name: a
    base_url_env: A_URL
  - name: b
    base_url_env: B_URL
  - name: c
    base_url: https://fixed
)");
  std::map<std::string, std::string> env{{"A_URL", "https://a.example/v1"}, {"B_URL", ""}};
  auto lookup = [&](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  ASSERT_TRUE(resolve_env(c, lookup).ok());
  EXPECT_EQ(c.providers[0].base_url, "https://a.example/v1");
  EXPECT_EQ(c.providers[1].base_url, "");  // empty = not configured
  EXPECT_EQ(c.providers[2].base_url, "https://fixed");

  env["B_URL"] = "https://user:s3cret@b.example";
  auto bad = resolve_env(c, lookup);
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.error().size(), 1u);
  EXPECT_EQ(bad.error()[0].line, 4);
  EXPECT_THAT(bad.error()[0].message, HasSubstr("B_URL"));
  EXPECT_THAT(bad.error()[0].message, ::testing::Not(HasSubstr("s3cret")));
}

}  // namespace
TEST(ServerConfigTest, HealthDefaultsApplyToProvidersAndProvidersOverrideThem) {
  const ServerConfig c = parse_ok(R"(health:
  failure_threshold: 3
  failure_ratio: 0.25
  window: 40
  min_requests: 20
  open_ms: 2000
  max_open_ms: 30000
  half_open_max_probes: 2
  engine_watchdog_ms: 1500
providers:
  - name: a
    base_url: https://a
  - name: b
    base_url: https://b
    health:
      failure_threshold: 9
      probe:
        path: /health
        interval_ms: 250
        timeout_ms: 100
        healthy_threshold: 4
        unhealthy_threshold: 5
)");
  ASSERT_EQ(c.providers.size(), 2u);
  EXPECT_EQ(c.health.engine_watchdog.count(), 1500);
  EXPECT_EQ(c.health.defaults.failure_threshold, 3);
  const HealthConfig& a = c.providers[0].health;
  EXPECT_EQ(a.failure_threshold, 3);
  EXPECT_DOUBLE_EQ(a.failure_ratio, 0.25);
  EXPECT_EQ(a.window, 40);
  EXPECT_EQ(a.min_requests, 20);
  EXPECT_EQ(a.open_duration.count(), 2000);
  EXPECT_EQ(a.max_open_duration.count(), 30000);
  EXPECT_EQ(a.half_open_max_probes, 2);
  EXPECT_FALSE(a.probe.enabled);
  const HealthConfig& b = c.providers[1].health;
  EXPECT_EQ(b.failure_threshold, 9);       // its own
  EXPECT_EQ(b.open_duration.count(), 2000);  // the default
  EXPECT_TRUE(b.probe.enabled);            // naming the probe map turns it on
  EXPECT_EQ(b.probe.path, "/health");
  EXPECT_EQ(b.probe.interval.count(), 250);
  EXPECT_EQ(b.probe.timeout.count(), 100);
  EXPECT_EQ(b.probe.healthy_threshold, 4);
  EXPECT_EQ(b.probe.unhealthy_threshold, 5);
}

TEST(ServerConfigTest, HealthDefaultsWithoutSection) {
  const ServerConfig c = parse_ok("providers:\n  - name: a\n    base_url: https://a\n    health:\n      probe:\n"
                                  "        enabled: false\n");
  EXPECT_EQ(c.health.engine_watchdog.count(), 10'000);
  const HealthConfig d;
  EXPECT_EQ(c.providers[0].health.failure_threshold, d.failure_threshold);
  EXPECT_FALSE(c.providers[0].health.probe.enabled);
  EXPECT_EQ(c.providers[0].health.probe.path, "/models");
}

}  // namespace sluice
