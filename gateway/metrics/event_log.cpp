#include "gateway/metrics/event_log.h"

namespace sluice {

void EventLog::record(std::string_view kind, std::string_view route, std::string_view target,
                      std::string_view reason) {
  record(kind, route, target, reason, std::chrono::system_clock::now());
}

void EventLog::record(std::string_view kind, std::string_view route, std::string_view target,
                      std::string_view reason, std::chrono::system_clock::time_point at) {
  Event e;
  e.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  e.kind = kind;
  e.route = route;
  e.target = target;
  e.reason = reason;
  std::lock_guard lock(mu_);
  e.seq = next_seq_++;
  if (ring_.size() == capacity_) ring_.pop_front();
  ring_.push_back(std::move(e));
}

std::vector<Event> EventLog::recent() const {
  std::lock_guard lock(mu_);
  return {ring_.begin(), ring_.end()};
}

std::uint64_t EventLog::total() const {
  std::lock_guard lock(mu_);
  return next_seq_ - 1;
}

}  // namespace sluice
