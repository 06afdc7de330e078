// `sluice serve --supervise`: the parent process. It holds the listening socket for its whole life and runs
// one worker (this same binary, exec'd without --supervise and with --listen-fd/--heartbeat-fd), so the
// kernel keeps queueing connections while a worker is being replaced: clients never see a refused connection.
//
// The worker is restarted when it dies or when its heartbeats stop (a hung I/O loop: it is killed with
// SIGKILL first), with exponential backoff, until more than crash_loop_restarts happen within
// crash_loop_window (exit 1). SIGTERM/SIGINT are forwarded and the parent waits for the worker's drain
// (exit 0 when it drained cleanly); SIGHUP is forwarded (policy reload). Under systemd (NOTIFY_SOCKET) it
// sends READY=1 once a worker is ready, WATCHDOG=1 only while heartbeats arrive, and STOPPING=1.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "gateway/config/server_config.h"

namespace sluice {

struct SupervisorOptions {
  std::vector<std::string> args;           // the command line after the program name, --supervise included
  int listen_fd = -1;                      // owned by the supervisor from here on
  SupervisorSection config;
  std::chrono::milliseconds shutdown_grace{10'000};  // the worker's drain; the parent waits a little longer
  std::string executable = "/proc/self/exe";
};

// Runs until the worker has been stopped by a signal or the crash-loop limit is hit; returns the process exit
// code. Must be called while the process has a single thread (it forks, and it blocks signals to read them
// from a signalfd).
int run_supervisor(SupervisorOptions options);

// The worker's command line: `args` without --supervise, plus --listen-fd and --heartbeat-fd.
std::vector<std::string> worker_arguments(const std::vector<std::string>& args, int listen_fd, int heartbeat_fd);

}  // namespace sluice
