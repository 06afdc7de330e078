#include "gateway/app.h"

#include <cstdio>
#include <cstdlib>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "gateway/admin/admin_routes.h"
#include "engine/core/engine.h"
#include "gateway/core/disabled_target.h"
#include "gateway/health/health_registry.h"
#include "gateway/local/local_target.h"
#include "gateway/http/server.h"
#include "gateway/metrics/registry.h"
#include "gateway/proxy/admission.h"
#include "gateway/proxy/auth.h"
#include "gateway/proxy/dispatcher.h"
#include "gateway/proxy/target_table.h"
#include "gateway/routing/policy_store.h"
#include "gateway/supervisor/heartbeat.h"
#include "gateway/upstream/provider_target.h"

namespace sluice {

namespace asio = boost::asio;

struct App::Impl {
  ServerConfig config;
  AppOptions options;
  asio::io_context io;
  MetricsRegistry metrics;
  KeySet client_keys;
  KeySet admin_keys;
  std::shared_ptr<Engine> engine;
  TargetTable targets;
  std::unique_ptr<HealthRegistry> health;
  std::unique_ptr<PolicyStore> policies;
  std::unique_ptr<Admission> admission;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<AdminRoutes> admin;
  std::unique_ptr<HttpServer> server;
  asio::signal_set stop_signals{io, SIGTERM, SIGINT};
  asio::signal_set reload_signals{io, SIGHUP};
  asio::steady_timer watch_timer{io};
  std::unique_ptr<Heartbeat> heartbeat;

  void log_reload(const Result<Ok, ConfigErrors>& r, const char* why) {
    if (r) {
      spdlog::info("policies reloaded ({}): generation {}", why, policies->generation());
      metrics.counter("sluice_policy_reloads_total", "policy reloads", {{"result", "ok"}}).inc();
    } else {
      for (const auto& e : r.error()) spdlog::error("{}", e.to_string());
      spdlog::error("policy reload ({}) rejected; the previous policy stays in force", why);
      metrics.counter("sluice_policy_reloads_total", "policy reloads", {{"result", "error"}}).inc();
    }
  }

  void wait_reload_signal() {
    reload_signals.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      log_reload(policies->reload(), "SIGHUP");
      wait_reload_signal();
    });
  }

  void watch_files() {
    watch_timer.expires_after(std::chrono::seconds(1));
    watch_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (policies->files_changed()) log_reload(policies->reload(), "file changed");
      publish_engine_stats();
      watch_files();
    });
  }

  void publish_engine_stats() {
    if (!engine) return;
    const EngineStats st = engine->stats();
    metrics.gauge("sluice_engine_running_sequences", "sequences the engine is running").set(st.running);
    metrics.gauge("sluice_engine_waiting_sequences", "sequences waiting for the engine").set(st.waiting);
    metrics.gauge("sluice_engine_kv_cache_usage", "fraction of KV cache blocks in use").set(st.kv_usage);
    metrics.gauge("sluice_engine_step_seconds", "duration of the last engine step").set(st.last_step_seconds);
    metrics.gauge("sluice_engine_preemptions", "sequences preempted so far").set(static_cast<double>(st.preemptions));
    metrics.gauge("sluice_engine_healthy", "1 while the engine is healthy").set(st.healthy ? 1 : 0);
    if (auto* h = health->find("local"); h && !st.healthy) h->mark_unhealthy("the engine reported a device fault");
  }

  void wait_stop_signal() {
    stop_signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("signal {}: draining (grace {} ms)", sig, config.server.shutdown_grace.count());
      admin->set_draining();
      reload_signals.cancel();
      watch_timer.cancel();
      server->drain(config.server.shutdown_grace, [this] { io.stop(); });
      // A second signal stops at once.
      stop_signals.async_wait([this](const boost::system::error_code& ec2, int) {
        if (!ec2) io.stop();
      });
    });
  }
};

App::App(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
App::~App() = default;

Result<std::unique_ptr<App>, std::string> App::create(ServerConfig config, AppOptions options) {
  auto impl = std::make_unique<Impl>();
  Impl& a = *impl;
  a.config = std::move(config);
  a.options = options;
  if (auto r = resolve_env(a.config); !r) {
    std::string msg = "invalid environment for the config:";
    for (const auto& e : r.error()) msg += "\n  " + e.to_string();
    return fail(std::move(msg));
  }
  const ServerConfig& cfg = a.config;

  a.client_keys = KeySet::from_env(cfg.auth.client_keys_env);
  a.admin_keys = KeySet::from_env(cfg.auth.admin_key_env);
  if (!cfg.auth.client_keys_env.empty() && a.client_keys.empty())
    spdlog::warn("auth.client_keys_env names {} but it is unset or empty: client authentication is off",
                 cfg.auth.client_keys_env);

  // Targets: the embedded engine and the providers.
  if (cfg.engine.enabled) {
    EngineConfig ec;
    ec.model_path = cfg.engine.model_path;
    ec.served_model_name = cfg.engine.served_model_name;
    ec.chat_template = cfg.engine.chat_template;
    ec.threads = static_cast<unsigned>(cfg.engine.threads);
    ec.kv_cache_bytes = cfg.engine.kv_cache_bytes;
    ec.block_size = cfg.engine.block_size;
    ec.max_num_seqs = cfg.engine.max_num_seqs;
    ec.max_num_batched_tokens = cfg.engine.max_num_batched_tokens;
    ec.max_model_len = cfg.engine.max_model_len;
    ec.enable_chunked_prefill = cfg.engine.enable_chunked_prefill;
    ec.max_waiting = cfg.engine.max_waiting;
    auto engine = Engine::create(ec);
    if (!engine) return fail("engine: " + engine.error().message);
    a.engine = std::shared_ptr<Engine>(std::move(engine.value()));
    spdlog::info("engine: serving '{}' (context {} tokens)", a.engine->model_name(), a.engine->max_model_len());
    a.targets.add(std::make_shared<LocalTarget>(a.engine), TargetTimeouts{});
  } else {
    a.targets.add(std::make_shared<DisabledTarget>(
                      "local", "the embedded engine is disabled (engine.enabled is false in the server config)"),
                  TargetTimeouts{});
  }
  std::vector<std::string> provider_names;
  for (ProviderConfig p : cfg.providers) {
    provider_names.push_back(p.name);
    TargetTimeouts defaults{p.connect_timeout, p.first_byte_timeout, p.total_timeout};
    if (p.base_url.empty()) {
      spdlog::warn("provider '{}' has no base URL (set {}); it answers 503 until then", p.name, p.base_url_env);
      a.targets.add(std::make_shared<DisabledTarget>(
                        p.name, "provider '" + p.name + "' has no base URL: set the environment variable " +
                                    p.base_url_env),
                    defaults);
      continue;
    }
    std::string key;
    if (!p.api_key_env.empty()) {
      const char* k = std::getenv(p.api_key_env.c_str());
      if (k) key = k;
    }
    auto target = ProviderTarget::create(p, std::move(key));
    if (!target) return fail(target.error().message);
    a.targets.add(std::shared_ptr<Target>(std::move(target.value())), defaults);
  }

  a.health = std::make_unique<HealthRegistry>(&a.metrics);
  a.health->add("local", HealthConfig{});
  for (const auto& name : provider_names) a.health->add(name, HealthConfig{});

  a.policies = std::make_unique<PolicyStore>(cfg.policy_files, provider_names);
  a.admission = std::make_unique<Admission>(a.metrics);
  a.policies->on_swap([adm = a.admission.get()](const Policy& p) { adm->configure(p); });
  if (auto r = a.policies->reload(); !r) {
    std::string msg = "invalid policy files:";
    for (const auto& e : r.error()) msg += "\n  " + e.to_string();
    return fail(std::move(msg));
  }

  DispatcherOptions dopts;
  dopts.request_timeout = cfg.server.request_timeout;
  dopts.output_buffer_bytes = cfg.server.limits.output_buffer_bytes;
  a.dispatcher = std::make_unique<Dispatcher>(dopts, *a.policies, *a.admission, a.targets, *a.health, a.client_keys,
                                              a.metrics);
  a.admin = std::make_unique<AdminRoutes>(*a.policies, a.admin_keys, a.metrics, *a.health);
  if (a.engine) a.admin->set_local_model(a.engine->model_name());
  a.admin->on_metrics_scrape([impl = &a] { impl->publish_engine_stats(); });

  Handler handler = [d = a.dispatcher.get(), adm = a.admin.get()](Exchange& ex) -> asio::awaitable<void> {
    const auto& r = ex.request();
    if (r.path == "/v1/chat/completions" || r.path == "/v1/completions") {
      if (r.method != "POST") {
        co_await adm->method_not_allowed(ex, "POST");
        co_return;
      }
      co_await d->handle(ex, r.path == "/v1/chat/completions" ? Endpoint::chat_completions : Endpoint::completions);
      co_return;
    }
    co_await adm->handle(ex);
  };
  a.server = std::make_unique<HttpServer>(a.io, cfg.server.limits, std::move(handler), a.metrics);
  if (options.listen_fd >= 0) {
    if (auto r = a.server->adopt(options.listen_fd); !r) return fail(r.error());
  } else {
    const std::string host = options.host.value_or(cfg.server.host);
    const std::uint16_t port = options.port.value_or(cfg.server.port);
    if (auto r = a.server->listen(host, port); !r) return fail(r.error());
  }
  return std::unique_ptr<App>(new App(std::move(impl)));
}

int App::run() {
  Impl& a = *impl_;
  a.server->start();
  a.wait_stop_signal();
  a.wait_reload_signal();
  a.watch_files();
  a.admin->set_ready();
  const std::string host = a.options.host.value_or(a.config.server.host);
  std::printf("sluice: listening on http://%s:%u\n", host.c_str(), static_cast<unsigned>(a.server->port()));
  std::fflush(stdout);
  spdlog::info("listening on {}:{} with {} I/O threads", host, a.server->port(), a.config.server.io_threads);
  if (a.options.heartbeat_fd >= 0) {
    a.heartbeat = std::make_unique<Heartbeat>(a.io, a.options.heartbeat_fd, a.config.supervisor.heartbeat_interval);
    a.heartbeat->start();
  }

  std::vector<std::thread> threads;
  for (int i = 1; i < a.config.server.io_threads; ++i) threads.emplace_back([&a] { a.io.run(); });
  a.io.run();
  for (auto& t : threads) t.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace sluice
