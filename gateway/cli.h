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
};

Result<CliOptions, std::string> parse_cli(const std::vector<std::string>& args);
std::string cli_usage();

// Runs a parsed command; returns the process exit code.
int run_cli(const CliOptions& opts);

}  // namespace sluice
