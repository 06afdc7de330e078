#include "gateway/supervisor/restart_policy.h"

#include <algorithm>

namespace sluice {

RestartPolicy::RestartPolicy(const SupervisorSection& config)
    : config_(config), next_delay_(config.restart_backoff) {}

std::optional<std::chrono::milliseconds> RestartPolicy::next_restart(Clock::time_point now) {
  while (!restarts_.empty() && now - restarts_.front() >= config_.crash_loop_window) restarts_.pop_front();
  if (restarts_.size() >= static_cast<std::size_t>(config_.crash_loop_restarts)) return std::nullopt;
  restarts_.push_back(now);
  const std::chrono::milliseconds delay = next_delay_;
  next_delay_ = std::min(config_.restart_backoff_max,
                         std::max(next_delay_ * 2, std::chrono::milliseconds(1)));
  return delay;
}

void RestartPolicy::worker_stable() { next_delay_ = config_.restart_backoff; }

}  // namespace sluice
