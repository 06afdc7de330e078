// Every target's TargetHealth by name, the JSON of /admin/health, and the health gauges in MetricsRegistry.
//
// Targets are added at start-up (one per configured provider, and `local`); a TargetHealth then lives as long
// as the registry, so the pointers find() returns may be kept. Thread: any. find() and routable() take a
// shared lock only to look the name up; the state itself is read lock-free (TargetHealth::routable).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/health/target_health.h"

namespace sluice {

class MetricsRegistry;

class HealthRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // `metrics`, when given, must outlive the registry.
  explicit HealthRegistry(MetricsRegistry* metrics = nullptr) : metrics_(metrics) {}

  // The health of `name`, created with `config` on first use. A second add() of the same name returns the
  // existing one and leaves its config as it was.
  TargetHealth& add(const std::string& name, const HealthConfig& config);

  TargetHealth* find(std::string_view name) const;  // nullptr when not added
  // A name without health state is routable: whether it exists at all is the target table's question.
  bool routable(std::string_view name, TimePoint now) const;

  std::vector<std::string> names() const;  // sorted

  // Applies time-based transitions on every target (for a periodic timer, so gauges move without traffic).
  void tick(TimePoint now);

  std::vector<HealthSnapshot> snapshot(TimePoint now);  // sorted by target name
  std::string snapshot_json(TimePoint now);

 private:
  MetricsRegistry* metrics_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<TargetHealth>, std::less<>> targets_;
};

// The /admin/health body for `snapshots`: {"targets":[...]} in the given order. Steady-clock instants are
// written relative to `now` (`*_ms_ago`, `next_attempt_in_ms`), since they have no wall-clock meaning; values
// that do not apply are null.
std::string health_json(const std::vector<HealthSnapshot>& snapshots, HealthRegistry::TimePoint now);

}  // namespace sluice
