#include "gateway/app.h"

#include <algorithm>
#include <chrono>
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
#include "gateway/upstream/probe_loop.h"
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

// The exit code of a supervised worker that stopped because of a device fault (EX_SOFTWARE): non-zero, so
// the supervisor starts a fresh one.
constexpr int kDeviceFaultExit = 70;

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
  asio::steady_timer engine_watch_timer{io};
  std::unique_ptr<Heartbeat> heartbeat;
  std::vector<std::shared_ptr<ProviderTarget>> providers;  // for probes and pool gauges
  std::vector<std::shared_ptr<ProbeLoop>> probes;
  std::shared_ptr<LocalTarget> local;  // null when the engine is disabled
  bool watchdog_tripped = false;  // `local` is unhealthy because of the watchdog (it clears what it set)
  bool device_fault = false;      // the engine reported a device fault: `local` stays unhealthy
  std::uint64_t preemptions_seen = 0;
  int exit_code = 0;

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
      publish_stats();
      watch_files();
    });
  }

  void publish_stats() {
    for (const auto& p : providers) {
      metrics.gauge("sluice_upstream_connections", "connections to a provider by state",
                    {{"target", p->name()}, {"state", "open"}})
          .set(static_cast<double>(p->open_connections()));
      metrics.gauge("sluice_upstream_connections", "connections to a provider by state",
                    {{"target", p->name()}, {"state", "idle"}})
          .set(static_cast<double>(p->idle_connections()));
    }
    if (!engine) return;
    const EngineStats st = engine->stats();
    metrics.gauge("sluice_engine_running_sequences", "sequences the engine is running").set(st.running);
    metrics.gauge("sluice_engine_waiting_sequences", "sequences waiting for the engine").set(st.waiting);
    metrics.gauge("sluice_engine_kv_cache_usage", "fraction of KV cache blocks in use").set(st.kv_usage);
    metrics.gauge("sluice_engine_step_seconds", "duration of the last engine step").set(st.last_step_seconds);
    auto& preempted = metrics.counter("sluice_engine_preemptions_total", "sequences preempted (recomputed later)");
    if (st.preemptions > preemptions_seen) {
      preempted.inc(st.preemptions - preemptions_seen);
      preemptions_seen = st.preemptions;
    }
    metrics.gauge("sluice_engine_memory_bytes", "device memory the engine holds, by use", {{"use", "weights"}})
        .set(static_cast<double>(st.weight_bytes));
    metrics.gauge("sluice_engine_memory_bytes", "device memory the engine holds, by use", {{"use", "kv_cache"}})
        .set(static_cast<double>(st.kv_cache_bytes));
    metrics.gauge("sluice_engine_memory_bytes", "device memory the engine holds, by use", {{"use", "other"}})
        .set(static_cast<double>(st.other_bytes));
    metrics.gauge("sluice_engine_healthy", "1 while the engine is healthy").set(st.healthy ? 1 : 0);
    if (!st.healthy && !device_fault) on_device_fault();
  }

  // A device fault leaves the device in an unknown state: `local` is taken out of routing for good (its
  // traffic falls back per policy). Under the supervisor the worker then drains and exits non-zero, so a
  // fresh process (and a fresh device context) replaces it.
  void on_device_fault() {
    device_fault = true;
    if (auto* h = health->find("local")) h->mark_unhealthy("the engine reported a device fault");
    if (local) local->abandon_unstarted("the engine had a device fault");
    spdlog::error("engine: device fault; the local target is out of routing until the process restarts");
    if (options.heartbeat_fd >= 0 && !admin->draining()) {
      spdlog::error("engine: device fault under the supervisor: draining, then exiting for a restart");
      exit_code = kDeviceFaultExit;
      begin_drain();
    }
  }

  // The engine watchdog: a step running longer than health.engine_watchdog_ms marks `local` unhealthy until
  // the engine finishes a step again.
  void watch_engine() {
    const auto limit = config.health.engine_watchdog;
    const auto period = std::clamp(limit / 5, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
    engine_watch_timer.expires_after(period);
    engine_watch_timer.async_wait([this, limit](const boost::system::error_code& ec) {
      if (ec) return;
      const double running = engine->current_step_seconds();
      auto* h = health->find("local");
      if (h != nullptr && !device_fault) {
        if (!watchdog_tripped && running * 1000.0 > static_cast<double>(limit.count())) {
          watchdog_tripped = true;
          h->mark_unhealthy("an engine step has run for over " + std::to_string(limit.count()) +
                            " ms (health.engine_watchdog_ms)");
          metrics.counter("sluice_engine_watchdog_trips_total", "engine steps that outran the watchdog").inc();
          const std::size_t moved =
              local ? local->abandon_unstarted("the engine is stuck in a step (health.engine_watchdog_ms)") : 0;
          spdlog::error("engine watchdog: a step has run for {:.1f} s; local traffic falls back ({} waiting "
                        "requests moved on)", running, moved);
        } else if (watchdog_tripped && running * 1000.0 <= static_cast<double>(limit.count())) {
          watchdog_tripped = false;
          h->mark_healthy();
          spdlog::info("engine watchdog: the engine completes steps again; local is back in routing");
        }
      }
      watch_engine();
    });
  }

  // Readiness beyond "started": every catch-all route (model "*", the one unknown names reach) must have a
  // target that is configured (not disabled) and routable now. "" when so, else the first route that has none.
  std::string unready_reason() const {
    const auto policy = policies->current();
    if (!policy) return "no routing policy is loaded";
    const auto now = std::chrono::steady_clock::now();
    for (const Route& r : policy->routes) {
      if (!r.is_glob || r.model != "*") continue;
      const bool any = std::any_of(r.targets.begin(), r.targets.end(), [&](const PolicyTarget& t) {
        Target* target = targets.find(t.provider);
        return target != nullptr && dynamic_cast<DisabledTarget*>(target) == nullptr &&
               health->routable(t.provider, now);
      });
      if (!any) return "route '" + r.name + "' has no available target";
    }
    return {};
  }

  void begin_drain() {
    admin->set_draining();
    reload_signals.cancel();
    watch_timer.cancel();
    engine_watch_timer.cancel();
    for (auto& p : probes) p->stop();
    server->drain(config.server.shutdown_grace, [this] { io.stop(); });
  }

  void wait_stop_signal() {
    stop_signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("signal {}: draining (grace {} ms)", sig, config.server.shutdown_grace.count());
      if (!admin->draining()) begin_drain();
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
    // The config reader accepted only these names.
    ec.device = parse_engine_device(cfg.engine.device).value_or(EngineDevice::automatic);
    ec.gpu_memory_utilization = cfg.engine.gpu_memory_utilization;
    ec.enforce_eager = cfg.engine.enforce_eager;
    auto engine = Engine::create(ec);
    if (!engine) return fail("engine: " + engine.error().message);
    a.engine = std::shared_ptr<Engine>(std::move(engine.value()));
    spdlog::info("engine: serving '{}' (context {} tokens) on {}", a.engine->model_name(), a.engine->max_model_len(),
                 a.engine->backend_name());
    spdlog::info("engine: {}", a.engine->backend_note());
    a.local = std::make_shared<LocalTarget>(a.engine);
    a.targets.add(a.local, TargetTimeouts{});
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
    std::shared_ptr<ProviderTarget> shared(std::move(target.value()));
    a.providers.push_back(shared);
    a.targets.add(std::move(shared), defaults);
  }

  a.health = std::make_unique<HealthRegistry>(&a.metrics);
  a.health->add("local", cfg.health.defaults);
  for (const ProviderConfig& p : cfg.providers) a.health->add(p.name, p.health);
  for (const auto& p : a.providers) {
    TargetHealth* h = a.health->find(p->name());
    if (h != nullptr && h->config().probe.enabled)
      a.probes.push_back(std::make_shared<ProbeLoop>(a.io, p, *h, a.metrics));
  }

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
  a.admin->on_metrics_scrape([impl = &a] { impl->publish_stats(); });
  a.admin->set_readiness_check([impl = &a] { return impl->unready_reason(); });

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
  if (a.engine && a.config.health.engine_watchdog.count() > 0) a.watch_engine();
  for (auto& p : a.probes) p->start();
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
  return a.exit_code;
}

}  // namespace sluice
