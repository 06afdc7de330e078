// When the supervisor restarts a worker that died: exponential backoff between restarts, and a crash-loop
// limit after which it gives up. Pure bookkeeping over the times it is given, so tests drive it directly.
// Owned and used by the supervisor's single thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>

#include "gateway/config/server_config.h"

namespace sluice {

class RestartPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RestartPolicy(const SupervisorSection& config);

  // Asks to restart a worker that just ended at `now`. Returns the delay to wait before spawning it, or
  // nullopt when this restart would be more than crash_loop_restarts within crash_loop_window (give up).
  // Each granted restart doubles the next delay, up to restart_backoff_max.
  std::optional<std::chrono::milliseconds> next_restart(Clock::time_point now);

  // A worker has served long enough (restart_backoff_max since it became ready) to count as healthy: the
  // next crash waits only restart_backoff again. Restarts already counted stay in the crash-loop window.
  void worker_stable();

  std::size_t restarts_in_window() const { return restarts_.size(); }

 private:
  SupervisorSection config_;
  std::chrono::milliseconds next_delay_;
  std::deque<Clock::time_point> restarts_;
};

}  // namespace sluice
