#include "gateway/config/server_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/config/yaml_reader.h"
#include "gateway/config/health_section.h"

namespace sluice {

namespace {

constexpr std::int64_t kSecond = 1'000;
constexpr std::int64_t kHour = 3'600 * kSecond;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kMiB = 1024 * 1024;
constexpr std::int64_t kGiB = 1024 * kMiB;

bool is_provider_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

bool is_env_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// A relative path in the config names a file next to the config, not next to the process's cwd.
std::string resolve_path(const std::string& config_path, const std::string& p) {
  namespace fs = std::filesystem;
  const fs::path given(p);
  if (given.is_absolute()) return given.lexically_normal().string();
  const fs::path dir = fs::path(config_path).parent_path();
  if (dir.empty()) return given.lexically_normal().string();
  return (dir / given).lexically_normal().string();
}

// Reads an optional *_env key: empty is allowed (feature off), anything else must be a variable name.
void read_env_name(YamlReader& reader, YamlMap& map, std::string_view key, std::string& out) {
  std::string v;
  if (!map.read_string(key, v)) return;
  if (!v.empty() && !is_env_name(v)) {
    reader.error(map.line_of(key), map.path(key) + ": '" + v +
                                       "' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    return;
  }
  out = std::move(v);
}

void read_limits(YamlReader& reader, const YAML::Node& node, int line, HttpLimits& out) {
  YamlMap m(reader, node, "server.limits",
            {"max_header_bytes", "max_body_bytes", "read_timeout_ms", "idle_timeout_ms", "write_timeout_ms",
             "output_buffer_bytes"},
            line);
  if (!m.is_map()) return;
  m.read_integer("max_header_bytes", out.max_header_bytes, 1, kMiB);
  m.read_integer("max_body_bytes", out.max_body_bytes, 1, kGiB);
  m.read_millis("read_timeout_ms", out.read_timeout, 1, kHour);
  m.read_millis("idle_timeout_ms", out.idle_timeout, 1, kHour);
  m.read_millis("write_timeout_ms", out.write_timeout, 1, kHour);
  m.read_integer("output_buffer_bytes", out.output_buffer_bytes, 1, kGiB);
}

void read_server(YamlReader& reader, const YAML::Node& node, int line, ServerSection& out) {
  YamlMap m(reader, node, "server",
            {"host", "port", "io_threads", "shutdown_grace_ms", "request_timeout_ms", "limits"}, line);
  if (!m.is_map()) return;
  std::string host;
  if (m.read_string("host", host)) {
    if (host.empty() || host.find_first_of(" \t\r\n/") != std::string::npos)
      reader.error(m.line_of("host"), "server.host: '" + host + "' is not a host name or address");
    else
      out.host = std::move(host);
  }
  m.read_integer("port", out.port, 0, 65535);
  m.read_integer("io_threads", out.io_threads, 1, 256);
  m.read_millis("shutdown_grace_ms", out.shutdown_grace, 0, kHour);
  m.read_millis("request_timeout_ms", out.request_timeout, 1, kDay);
  if (m.has("limits")) read_limits(reader, m.value("limits"), m.line_of("limits"), out.limits);
}

void read_auth(YamlReader& reader, const YAML::Node& node, int line, AuthSection& out) {
  YamlMap m(reader, node, "auth", {"client_keys_env", "admin_key_env"}, line);
  if (!m.is_map()) return;
  read_env_name(reader, m, "client_keys_env", out.client_keys_env);
  read_env_name(reader, m, "admin_key_env", out.admin_key_env);
}

void read_engine(YamlReader& reader, const YAML::Node& node, int line, const std::string& config_path,
                 EngineSection& out) {
  YamlMap m(reader, node, "engine",
            {"enabled", "model_path", "served_model_name", "chat_template", "threads", "kv_cache_bytes",
             "block_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len", "enable_chunked_prefill",
             "max_waiting", "device", "gpu_memory_utilization", "enforce_eager"},
            line);
  if (!m.is_map()) return;
  m.read_bool("enabled", out.enabled);
  m.read_string("chat_template", out.chat_template);
  m.read_integer("threads", out.threads, 1, 256);
  m.read_integer("kv_cache_bytes", out.kv_cache_bytes, 1 << 20, std::int64_t{1} << 40);
  m.read_integer("block_size", out.block_size, 1, 256);
  m.read_integer("max_num_seqs", out.max_num_seqs, 1, 4096);
  m.read_integer("max_num_batched_tokens", out.max_num_batched_tokens, 1, 1 << 20);
  m.read_integer("max_model_len", out.max_model_len, 0, 1 << 24);
  m.read_bool("enable_chunked_prefill", out.enable_chunked_prefill);
  m.read_integer("max_waiting", out.max_waiting, 1, 1 << 20);
  m.read_number("gpu_memory_utilization", out.gpu_memory_utilization, 0.01, 1.0);
  m.read_bool("enforce_eager", out.enforce_eager);
  std::string device;
  if (m.read_string("device", device)) {
    if (device != "auto" && device != "cpu" && device != "cuda")
      reader.error(m.line_of("device"), "engine.device: '" + device + "' is not one of auto, cpu, cuda");
    else
      out.device = std::move(device);
  }
  std::string model_path;
  if (m.read_string("model_path", model_path))
    out.model_path = model_path.empty() ? std::string() : resolve_path(config_path, model_path);
  std::string served;
  if (m.read_string("served_model_name", served)) {
    if (served.find_first_of(" \t\r\n*?") != std::string::npos)
      reader.error(m.line_of("served_model_name"),
                   "engine.served_model_name: '" + served + "' must not contain spaces, '*' or '?'");
    else
      out.served_model_name = std::move(served);
  }
  if (out.enabled && out.model_path.empty())
    reader.error(m.line_of("enabled"), "engine.model_path is required when engine.enabled is true");
}

void read_provider_tls(YamlReader& reader, const YAML::Node& node, int line, const std::string& where,
                       const std::string& config_path, ProviderConfig& out) {
  YamlMap m(reader, node, where, {"verify", "ca_file"}, line);
  if (!m.is_map()) return;
  m.read_bool("verify", out.tls_verify);
  std::string ca;
  if (m.read_string("ca_file", ca)) out.ca_file = ca.empty() ? std::string() : resolve_path(config_path, ca);
}

void read_provider_timeouts(YamlReader& reader, const YAML::Node& node, int line, const std::string& where,
                            ProviderConfig& out) {
  YamlMap m(reader, node, where, {"connect_ms", "first_byte_ms", "total_ms"}, line);
  if (!m.is_map()) return;
  m.read_millis("connect_ms", out.connect_timeout, 1, 10 * 60 * kSecond);
  m.read_millis("first_byte_ms", out.first_byte_timeout, 1, kDay);
  m.read_millis("total_ms", out.total_timeout, 1, kDay);
}

std::optional<ProviderConfig> read_provider(YamlReader& reader, const YAML::Node& node, int line,
                                            const std::string& where, const std::string& config_path,
                                            const HealthConfig& health_defaults) {
  YamlMap m(reader, node, where,
            {"name", "base_url", "base_url_env", "api_key_env", "flavor", "pool_size", "tls", "timeouts", "health"},
            line);
  if (!m.is_map()) return std::nullopt;
  ProviderConfig p;
  p.health = health_defaults;
  p.line = m.line();
  const std::size_t errors_before = reader.errors().size();

  if (m.require("name") && m.read_string("name", p.name)) {
    if (p.name == "local")
      reader.error(m.line_of("name"), where + ".name: 'local' is reserved for the embedded engine");
    else if (!is_provider_name(p.name))
      reader.error(m.line_of("name"), where + ".name: '" + p.name +
                                          "' must be 1-64 characters of a-z, 0-9, '_' and '-'");
  }

  const bool has_url = m.has("base_url");
  const bool has_url_env = m.has("base_url_env");
  if (has_url && has_url_env) {
    reader.error(m.line_of("base_url_env"), where + ": give either base_url or base_url_env, not both");
  } else if (!has_url && !has_url_env) {
    reader.error(m.line(), where + ": one of base_url or base_url_env is required");
  } else if (has_url) {
    std::string url;
    if (m.read_string("base_url", url)) {
      if (auto why = base_url_problem(url))
        reader.error(m.line_of("base_url"), where + ".base_url: " + *why);
      else
        p.base_url = std::move(url);
    }
  } else {
    std::string env;
    if (m.read_string("base_url_env", env)) {
      if (!is_env_name(env))
        reader.error(m.line_of("base_url_env"), where + ".base_url_env: '" + env +
                                                    "' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      else
        p.base_url_env = std::move(env);
    }
  }
  read_env_name(reader, m, "api_key_env", p.api_key_env);

  std::string flavor;
  if (m.read_string("flavor", flavor)) {
    if (flavor == "openai")
      p.flavor = ProviderFlavor::openai;
    else if (flavor == "vllm")
      p.flavor = ProviderFlavor::vllm;
    else
      reader.error(m.line_of("flavor"), where + ".flavor: '" + flavor + "' is not one of openai, vllm");
  }
  m.read_integer("pool_size", p.pool_size, 0, 4096);
  if (m.has("tls")) read_provider_tls(reader, m.value("tls"), m.line_of("tls"), where + ".tls", config_path, p);
  if (m.has("timeouts"))
    read_provider_timeouts(reader, m.value("timeouts"), m.line_of("timeouts"), where + ".timeouts", p);
  if (m.has("health"))
    read_provider_health(reader, m.value("health"), m.line_of("health"), where + ".health", p.health);

  if (reader.errors().size() != errors_before) return std::nullopt;
  return p;
}

void read_providers(YamlReader& reader, YamlMap& root, const std::string& config_path,
                    const HealthConfig& health_defaults, std::vector<ProviderConfig>& out) {
  const YAML::Node list = root.value("providers");
  if (list.IsNull()) return;
  if (!list.IsSequence()) {
    reader.error(root.line_of("providers"), "providers: expected a list of providers");
    return;
  }
  std::size_t index = 0;
  for (const YAML::Node& item : list) {
    const std::string where = "providers[" + std::to_string(index++) + "]";
    const int line = YamlReader::line_of(item) > 0 ? YamlReader::line_of(item) : root.line_of("providers");
    auto p = read_provider(reader, item, line, where, config_path, health_defaults);
    if (!p) continue;
    bool duplicate = false;
    for (const ProviderConfig& other : out) {
      if (other.name == p->name) {
        reader.error(p->line, where + ": duplicate provider name '" + p->name + "' (first at line " +
                                  std::to_string(other.line) + ")");
        duplicate = true;
        break;
      }
    }
    if (!duplicate) out.push_back(std::move(*p));
  }
}

void read_supervisor(YamlReader& reader, const YAML::Node& node, int line, SupervisorSection& out) {
  YamlMap m(reader, node, "supervisor",
            {"heartbeat_interval_ms", "heartbeat_timeout_ms", "startup_timeout_ms", "restart_backoff_ms",
             "restart_backoff_max_ms", "crash_loop_restarts", "crash_loop_window_ms"},
            line);
  if (!m.is_map()) return;
  m.read_millis("heartbeat_interval_ms", out.heartbeat_interval, 10, kHour);
  m.read_millis("heartbeat_timeout_ms", out.heartbeat_timeout, 20, kHour);
  m.read_millis("startup_timeout_ms", out.startup_timeout, 100, kDay);
  m.read_millis("restart_backoff_ms", out.restart_backoff, 0, kHour);
  m.read_millis("restart_backoff_max_ms", out.restart_backoff_max, 0, kHour);
  m.read_integer("crash_loop_restarts", out.crash_loop_restarts, 0, 1000);
  m.read_millis("crash_loop_window_ms", out.crash_loop_window, 1, kDay);
  // A timeout no longer than the interval would kill a healthy worker between two heartbeats.
  if (out.heartbeat_timeout < 2 * out.heartbeat_interval)
    reader.error(m.line_of(m.has("heartbeat_timeout_ms") ? "heartbeat_timeout_ms" : "heartbeat_interval_ms"),
                 "supervisor.heartbeat_timeout_ms (" + std::to_string(out.heartbeat_timeout.count()) +
                     ") must be at least twice supervisor.heartbeat_interval_ms (" +
                     std::to_string(out.heartbeat_interval.count()) + ")");
  if (out.restart_backoff_max < out.restart_backoff)
    reader.error(m.line_of(m.has("restart_backoff_max_ms") ? "restart_backoff_max_ms" : "restart_backoff_ms"),
                 "supervisor.restart_backoff_max_ms must not be below supervisor.restart_backoff_ms");
}

void read_policies(YamlReader& reader, YamlMap& root, const std::string& config_path,
                   std::vector<std::string>& out) {
  std::vector<YamlMap::Item> items;
  if (!root.read_string_list("policies", items)) return;
  std::vector<std::pair<std::string, int>> seen;
  for (const YamlMap::Item& item : items) {
    if (item.text.empty()) {
      reader.error(item.line, "policies: an entry is empty; give a file path");
      continue;
    }
    std::string resolved = resolve_path(config_path, item.text);
    bool duplicate = false;
    for (const auto& [path, line] : seen) {
      if (path == resolved) {
        reader.error(item.line, "policies: '" + item.text + "' is listed twice (first at line " +
                                    std::to_string(line) + ")");
        duplicate = true;
      }
    }
    if (duplicate) continue;
    seen.emplace_back(resolved, item.line);
    out.push_back(std::move(resolved));
  }
}

}  // namespace

std::optional<std::string> base_url_problem(std::string_view url) {
  std::string_view rest;
  if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else {
    return std::string("must start with https:// (or http:// for local tests)");
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::string("must not contain spaces");
  }
  if (rest.find_first_of("?#") != std::string_view::npos)
    return std::string("must not contain a query or fragment");
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos)
    return std::string("must not contain credentials; put the key in the variable named by api_key_env");
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::string("has an unterminated [IPv6] host");
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::string("has junk after the [IPv6] host");
      port = after.substr(1);
      if (port.empty()) return std::string("has an empty port");
    }
    if (host.size() <= 2) return std::string("has no host");
  } else {
    const std::size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return std::string("has an empty port");
    }
    if (host.empty()) return std::string("has no host");
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
      if (!ok) return std::string("has an invalid host name");
    }
  }
  if (!port.empty()) {
    if (port.size() > 5) return std::string("has an invalid port");
    int value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return std::string("has an invalid port");
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return std::string("has a port out of range (1..65535)");
  }
  return std::nullopt;
}

Result<ServerConfig, ConfigErrors> parse_server_config(const std::string& yaml_text, const std::string& path) {
  YamlReader reader(path);
  const auto doc = reader.parse(yaml_text);
  if (!doc) return fail(reader.take_errors());

  ServerConfig config;
  config.path = path;
  YamlMap root(reader, *doc, "", {"server", "auth", "policies", "engine", "providers", "supervisor", "health"},
            1);
  if (root.is_map()) {
    if (root.has("server")) read_server(reader, root.value("server"), root.line_of("server"), config.server);
    if (root.has("auth")) read_auth(reader, root.value("auth"), root.line_of("auth"), config.auth);
    read_policies(reader, root, path, config.policy_files);
    if (root.has("engine"))
      read_engine(reader, root.value("engine"), root.line_of("engine"), path, config.engine);
    // The health defaults first: providers start from them.
    if (root.has("health")) read_health_section(reader, root.value("health"), root.line_of("health"), config.health);
    if (root.has("providers")) read_providers(reader, root, path, config.health.defaults, config.providers);
    if (root.has("supervisor"))
      read_supervisor(reader, root.value("supervisor"), root.line_of("supervisor"), config.supervisor);
  }
  if (reader.has_errors()) return fail(reader.take_errors());
  return config;
}

Result<ServerConfig, ConfigErrors> load_server_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return fail(ConfigErrors{ConfigError{path, 0, "is a directory, not a config file"}});
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ConfigErrors{ConfigError{path, 0, "cannot read the config file (missing or unreadable)"}});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(ConfigErrors{ConfigError{path, 0, "error while reading the config file"}});
  return parse_server_config(text.str(), path);
}

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Status<ConfigErrors> resolve_env(ServerConfig& config, const EnvLookup& lookup) {
  ConfigErrors errors;
  for (ProviderConfig& p : config.providers) {
    if (p.base_url_env.empty()) continue;
    const std::optional<std::string> value = lookup ? lookup(p.base_url_env) : std::nullopt;
    if (!value || value->empty()) {
      p.base_url.clear();
      continue;
    }
    // The value may carry secrets a user pasted by mistake, so the message names the variable only.
    if (auto why = base_url_problem(*value)) {
      errors.push_back(ConfigError{config.path, p.line,
                                   "provider '" + p.name + "': the value of " + p.base_url_env + " " + *why});
      continue;
    }
    p.base_url = *value;
  }
  if (!errors.empty()) return fail(std::move(errors));
  return Ok{};
}

}  // namespace sluice
