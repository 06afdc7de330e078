// App wires one gateway process: config → metrics, keys, targets, policies, admission, dispatcher, HTTP server,
// signals (SIGTERM/SIGINT drain, SIGHUP reload) and the policy file watcher. main.cpp only parses flags.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/util/result.h"
#include "gateway/config/server_config.h"

namespace sluice {

struct AppOptions {
  std::optional<std::string> host;    // overrides server.host
  std::optional<std::uint16_t> port;  // overrides server.port
  int listen_fd = -1;                 // an inherited listening socket (supervised mode)
  int heartbeat_fd = -1;              // supervised mode: where the I/O loop reports ready and alive
};

class App {
 public:
  static Result<std::unique_ptr<App>, std::string> create(ServerConfig config, AppOptions options);
  ~App();
  // Serves until SIGTERM/SIGINT and the drain that follows; returns the process exit code.
  int run();

 private:
  struct Impl;
  explicit App(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
