#include "gateway/cli.h"

#include <charconv>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "gateway/app.h"
#include "gateway/config/server_config.h"
#include "gateway/routing/policy.h"
#include "gateway/supervisor/listen_socket.h"
#include "gateway/supervisor/supervisor.h"

namespace sluice {

std::string cli_usage() {
  return R"(sluice — an OpenAI-compatible LLM gateway with an embedded inference engine

Usage:
  sluice serve --config FILE [--host HOST] [--port PORT] [--log-level LEVEL] [--supervise]
      Serve the OpenAI API as the config says. --host/--port override server.host/server.port
      (port 0 picks a free port; the chosen address is printed as "sluice: listening on http://HOST:PORT").
      --supervise runs a parent process that holds the listening socket and restarts the serving worker
      when it crashes or stops sending heartbeats (see the `supervisor` section of the config); SIGTERM
      and SIGHUP sent to the parent are forwarded to the worker. Under systemd (NOTIFY_SOCKET set) it
      reports READY=1, WATCHDOG=1 and STOPPING=1.
      Internal, set by --supervise for its worker: --listen-fd N (serve on this inherited listening
      socket instead of binding one) and --heartbeat-fd N (report readiness and heartbeats there).
  sluice check-config --config FILE
      Validate the config and every policy file it names. Prints "file:line: message" for each
      problem and exits 1 if there is any.
  sluice --help | --version

Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the policy files.
Exit codes: 0 after a clean stop, 1 on a start-up error (or, supervised, a crash loop), 2 on bad flags.
Log levels: trace, debug, info, warn, error, off.
)";
}

Result<CliOptions, std::string> parse_cli(const std::vector<std::string>& args) {
  CliOptions o;
  if (args.empty()) return o;
  std::size_t i = 0;
  const std::string& cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") return o;
  if (cmd == "--version") {
    o.command = CliOptions::Command::version;
    return o;
  }
  if (cmd == "serve") o.command = CliOptions::Command::serve;
  else if (cmd == "check-config") o.command = CliOptions::Command::check_config;
  else return fail("unknown command '" + cmd + "' (try --help)");
  ++i;
  o.args = args;
  auto value = [&](const std::string& flag) -> Result<std::string, std::string> {
    if (i + 1 >= args.size()) return fail(flag + " needs a value");
    return args[++i];
  };
  auto descriptor = [&](const std::string& flag, int& out) -> Result<Ok, std::string> {
    auto v = value(flag);
    if (!v) return fail(v.error());
    int fd = -1;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), fd);
    if (ec != std::errc() || p != v->data() + v->size() || fd < 0)
      return fail(flag + " must be a file descriptor number, got '" + *v + "'");
    out = fd;
    return Ok{};
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      o.command = CliOptions::Command::help;
      return o;
    }
    if (a == "--config") {
      auto v = value(a);
      if (!v) return fail(v.error());
      o.config_path = *v;
    } else if (a == "--host" && o.command == CliOptions::Command::serve) {
      auto v = value(a);
      if (!v) return fail(v.error());
      o.host = *v;
    } else if (a == "--port" && o.command == CliOptions::Command::serve) {
      auto v = value(a);
      if (!v) return fail(v.error());
      unsigned port = 0;
      auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), port);
      if (ec != std::errc() || p != v->data() + v->size() || port > 65535)
        return fail("--port must be a number from 0 to 65535, got '" + *v + "'");
      o.port = static_cast<std::uint16_t>(port);
    } else if (a == "--supervise" && o.command == CliOptions::Command::serve) {
      o.supervise = true;
    } else if (a == "--listen-fd" && o.command == CliOptions::Command::serve) {
      if (auto r = descriptor(a, o.listen_fd); !r) return fail(r.error());
    } else if (a == "--heartbeat-fd" && o.command == CliOptions::Command::serve) {
      if (auto r = descriptor(a, o.heartbeat_fd); !r) return fail(r.error());
    } else if (a == "--log-level") {
      auto v = value(a);
      if (!v) return fail(v.error());
      if (spdlog::level::from_str(*v) == spdlog::level::off && *v != "off")
        return fail("unknown log level '" + *v + "'");
      o.log_level = *v;
    } else {
      return fail("unknown option '" + a + "' for " + cmd + " (try --help)");
    }
  }
  if (o.config_path.empty()) return fail(cmd + " needs --config FILE");
  if (o.supervise && (o.listen_fd >= 0 || o.heartbeat_fd >= 0))
    return fail(std::string("--listen-fd and --heartbeat-fd are for the worker that --supervise starts; not both"));
  return o;
}

int run_cli(const CliOptions& opts) {
  switch (opts.command) {
    case CliOptions::Command::help:
      std::fputs(cli_usage().c_str(), stdout);
      return 0;
    case CliOptions::Command::version:
      std::puts("sluice 0.1.0");
      return 0;
    case CliOptions::Command::check_config:
    case CliOptions::Command::serve:
      break;
  }
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  auto cfg = load_server_config(opts.config_path);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  if (opts.command == CliOptions::Command::check_config) {
    std::vector<std::string> providers;
    for (const auto& p : cfg->providers) providers.push_back(p.name);
    auto policy = load_policy(cfg->policy_files, providers);
    if (!policy) {
      for (const auto& e : policy.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
      return 1;
    }
    std::printf("%s: ok (%zu providers, %zu policy files, %zu routes)\n", opts.config_path.c_str(),
                cfg->providers.size(), cfg->policy_files.size(), policy.value()->routes.size());
    return 0;
  }
  if (opts.supervise) {
    const std::string host = opts.host.value_or(cfg->server.host);
    const std::uint16_t port = opts.port.value_or(cfg->server.port);
    auto fd = open_listen_socket(host, port);
    if (!fd) {
      std::fprintf(stderr, "sluice: cannot start: %s\n", fd.error().c_str());
      return 1;
    }
    spdlog::info("supervisor: listening socket {}:{} open; starting the worker", host, listen_socket_port(*fd));
    SupervisorOptions so;
    so.args = opts.args;
    so.listen_fd = *fd;
    so.config = cfg->supervisor;
    so.shutdown_grace = cfg->server.shutdown_grace;
    return run_supervisor(std::move(so));
  }
  AppOptions ao;
  ao.host = opts.host;
  ao.port = opts.port;
  ao.listen_fd = opts.listen_fd;
  ao.heartbeat_fd = opts.heartbeat_fd;
  auto app = App::create(std::move(cfg.value()), ao);
  if (!app) {
    std::fprintf(stderr, "sluice: cannot start: %s\n", app.error().c_str());
    return 1;
  }
  return app.value()->run();
}

}  // namespace sluice
