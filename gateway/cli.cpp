#include "gateway/cli.h"

#include <charconv>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "gateway/app.h"
#include "gateway/config/server_config.h"
#include "gateway/routing/policy.h"

namespace sluice {

std::string cli_usage() {
  return R"(sluice — an OpenAI-compatible LLM gateway with an embedded inference engine

Usage:
  sluice serve --config FILE [--host HOST] [--port PORT] [--log-level LEVEL]
      Serve the OpenAI API as the config says. --host/--port override server.host/server.port
      (port 0 picks a free port; the chosen address is printed as "sluice: listening on http://HOST:PORT").
  sluice check-config --config FILE
      Validate the config and every policy file it names. Prints "file:line: message" for each
      problem and exits 1 if there is any.
  sluice --help | --version

Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the policy files.
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
  auto value = [&](const std::string& flag) -> Result<std::string, std::string> {
    if (i + 1 >= args.size()) return fail(flag + " needs a value");
    return args[++i];
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
  AppOptions ao;
  ao.host = opts.host;
  ao.port = opts.port;
  auto app = App::create(std::move(cfg.value()), ao);
  if (!app) {
    std::fprintf(stderr, "sluice: cannot start: %s\n", app.error().c_str());
    return 1;
  }
  return app.value()->run();
}

}  // namespace sluice
