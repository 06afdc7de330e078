// config/sluice.yaml as typed structs: the process's own settings (listen address, threads, limits, auth,
// providers, engine, the policy files). Read once at start; a change needs a restart.
// Every key is documented in config/README.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/util/result.h"
#include "gateway/config/config_error.h"
#include "gateway/health/target_health.h"

namespace sluice {

using Millis = std::chrono::milliseconds;

struct HttpLimits {
  std::size_t max_header_bytes = 16 * 1024;        // 431 beyond
  std::size_t max_body_bytes = 4 * 1024 * 1024;    // 413 beyond
  Millis read_timeout{30'000};                     // to read one whole request; 408 beyond
  Millis idle_timeout{60'000};                     // keep-alive connection with no request
  Millis write_timeout{30'000};                    // a client that accepts no bytes for this long is cut
  std::size_t output_buffer_bytes = 1024 * 1024;   // per-request response buffer (backpressure)
};

struct ServerSection {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int io_threads = 2;
  HttpLimits limits;
  Millis shutdown_grace{10'000};                   // SIGTERM: in-flight work may finish for this long
  Millis request_timeout{300'000};                 // the deadline of one request, all attempts included
};

struct AuthSection {
  std::string client_keys_env;                     // env var with comma-separated client keys; "" = no auth
  std::string admin_key_env;                       // env var with the admin key; "" = admin endpoints off
};

enum class ProviderFlavor : std::uint8_t { openai, vllm };

struct ProviderConfig {
  std::string name;
  std::string base_url;          // https://host[:port][/prefix]; resolved from base_url_env when given
  std::string base_url_env;      // name of an env var holding base_url (for configs shared across sites)
  std::string api_key_env;       // name of the env var holding the API key; "" = no Authorization header
  ProviderFlavor flavor = ProviderFlavor::openai;
  std::size_t pool_size = 16;    // idle keep-alive connections kept per provider
  bool tls_verify = true;
  std::string ca_file;           // PEM bundle; "" = the system's trust store
  HealthConfig health;           // circuit breaker (top-level `health:` defaults + own overrides) and probe
  Millis connect_timeout{5'000};
  Millis first_byte_timeout{30'000};
  Millis total_timeout{300'000};
  int line = 0;                  // where it was declared, for messages
};

struct EngineSection {
  bool enabled = false;          // false: `local` answers 503 unavailable
  std::string model_path;        // GGUF file or Hugging Face model directory
  std::string served_model_name; // the name clients ask for; "" = derived from the file
  std::string chat_template;     // built-in template name overriding the model's own; "" = the model's
  int threads = 2;               // compute threads
  std::uint64_t kv_cache_bytes = std::uint64_t{256} << 20;
  std::uint32_t block_size = 16;
  std::uint32_t max_num_seqs = 32;
  std::uint32_t max_num_batched_tokens = 512;
  std::uint32_t max_model_len = 0;   // 0 = the model's context length
  bool enable_chunked_prefill = true;
  std::uint32_t max_waiting = 256;   // queued requests beyond which the engine reports overloaded
  std::string device = "auto";       // "auto" | "cpu" | "cuda" (validated when read)
  double gpu_memory_utilization = 0.90;  // cuda: fraction of the GPU's total memory the engine may use
  bool enforce_eager = false;        // cuda: never capture CUDA graphs
};

// `sluice serve --supervise`: how the parent watches and restarts its worker process.
struct SupervisorSection {
  Millis heartbeat_interval{500};      // the worker's I/O loop reports alive this often
  Millis heartbeat_timeout{5'000};     // no heartbeat for this long: the worker is hung and is killed
  Millis startup_timeout{300'000};     // from spawn to the worker's first heartbeat (model loading included)
  Millis restart_backoff{100};         // delay before the first restart; doubles on each further restart
  Millis restart_backoff_max{5'000};   // the doubling stops here
  int crash_loop_restarts = 5;         // more restarts than this within crash_loop_window: give up (exit 1)
  Millis crash_loop_window{60'000};
};

// `health:` at the top level: circuit-breaker defaults of every target, and the engine watchdog.
struct HealthSection {
  HealthConfig defaults;
  Millis engine_watchdog{10'000};  // a local engine step running longer marks `local` unhealthy; 0 = off
};

struct ServerConfig {
  std::string path;              // the file it was read from
  ServerSection server;
  AuthSection auth;
  SupervisorSection supervisor;
  HealthSection health;
  std::vector<std::string> policy_files;   // resolved against the config file's directory
  std::vector<ProviderConfig> providers;
  EngineSection engine;
};

// Reads and validates a config file. Unknown keys, wrong types and out-of-range values are errors naming the
// file, line and key. Environment variables named by *_env keys are not read here (see resolve_env).
Result<ServerConfig, ConfigErrors> load_server_config(const std::string& path);
Result<ServerConfig, ConfigErrors> parse_server_config(const std::string& yaml_text, const std::string& path);

// Looks up one environment variable; nullopt when unset. Injectable so tests need not touch the process.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (std::getenv).
std::optional<std::string> process_env(const std::string& name);

// Fills what *_env keys name that belongs in the config: each provider's base_url from its base_url_env.
// An unset or empty variable leaves base_url "" (that provider answers `unavailable` until it is set); a value
// that is not a valid http(s) base URL is an error naming the provider and the variable, never the value's
// secrets. API keys are not read here: they stay in the environment and are read where they are used.
Status<ConfigErrors> resolve_env(ServerConfig& config, const EnvLookup& lookup = process_env);

// Why `url` is not usable as a provider base URL (scheme http/https, a host, an optional port and path; no
// credentials, query or fragment), or nullopt when it is.
std::optional<std::string> base_url_problem(std::string_view url);

}  // namespace sluice
