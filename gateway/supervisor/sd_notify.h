// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram per message to the unix
// socket named by NOTIFY_SOCKET ('@' at the start means the abstract namespace). The supervisor parent is the
// service's main process, so it alone talks to systemd.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "engine/util/result.h"
#include "gateway/config/server_config.h"

namespace sluice {

class SdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID through `lookup`. `self_pid` decides whether a
  // WATCHDOG_PID meant this process. Without NOTIFY_SOCKET the notifier is disabled and notify() does nothing.
  static SdNotifier from_env(const EnvLookup& lookup, long self_pid);

  SdNotifier() = default;
  SdNotifier(SdNotifier&& other) noexcept;
  SdNotifier& operator=(SdNotifier&& other) noexcept;
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;
  ~SdNotifier();

  bool enabled() const { return !socket_path_.empty(); }
  const std::string& socket_path() const { return socket_path_; }
  // How often systemd expects WATCHDOG=1 (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises); nullopt
  // when no watchdog is configured for this process.
  std::optional<std::chrono::milliseconds> watchdog_interval() const { return watchdog_interval_; }

  // Sends one message ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..."; several may be joined by '\n').
  // Errors are returned, never thrown; a disabled notifier succeeds without sending.
  Status<std::string> notify(std::string_view state);

 private:
  std::string socket_path_;
  std::optional<std::chrono::milliseconds> watchdog_interval_;
  int fd_ = -1;
};

}  // namespace sluice
