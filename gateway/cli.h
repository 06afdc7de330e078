// Command-line parsing for the `sluice` binary: subcommands serve and check-config.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/util/result.h"

namespace sluice {

struct CliOptions {
  enum class Command { help, version, serve, check_config } command = Command::help;
  std::string config_path;
  std::optional<std::string> host;
  std::optional<std::uint16_t> port;
  std::string log_level = "info";
  bool supervise = false;          // serve: run as the supervisor parent of a worker process
  int listen_fd = -1;              // internal (supervised worker): the inherited listening socket
  int heartbeat_fd = -1;           // internal (supervised worker): where to send heartbeats
  std::vector<std::string> args;   // the command line after the program name, as given
};

Result<CliOptions, std::string> parse_cli(const std::vector<std::string>& args);
std::string cli_usage();

// Runs a parsed command; returns the process exit code.
int run_cli(const CliOptions& opts);

}  // namespace sluice
