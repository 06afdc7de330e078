#include "gateway/health/health_registry.h"

#include <algorithm>
#include <mutex>

#include "gateway/api/json_writer.h"

namespace sluice {

TargetHealth& HealthRegistry::add(const std::string& name, const HealthConfig& config) {
  std::unique_lock lock(mu_);
  auto it = targets_.find(name);
  if (it == targets_.end())
    it = targets_.emplace(name, std::make_unique<TargetHealth>(name, config, metrics_)).first;
  return *it->second;
}

TargetHealth* HealthRegistry::find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = targets_.find(name);
  return it == targets_.end() ? nullptr : it->second.get();
}

bool HealthRegistry::routable(std::string_view name, TimePoint now) const {
  const TargetHealth* h = find(name);
  return h == nullptr || h->routable(now);
}

std::vector<std::string> HealthRegistry::names() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(targets_.size());
  for (const auto& [name, h] : targets_) out.push_back(name);
  return out;
}

void HealthRegistry::tick(TimePoint now) {
  std::shared_lock lock(mu_);
  for (const auto& [name, h] : targets_) h->tick(now);
}

std::vector<HealthSnapshot> HealthRegistry::snapshot(TimePoint now) {
  std::shared_lock lock(mu_);
  std::vector<HealthSnapshot> out;
  out.reserve(targets_.size());
  for (const auto& [name, h] : targets_) out.push_back(h->snapshot(now));
  return out;
}

std::string HealthRegistry::snapshot_json(TimePoint now) { return health_json(snapshot(now), now); }

namespace {

std::int64_t ms_between(HealthRegistry::TimePoint from, HealthRegistry::TimePoint to) {
  const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
  return std::max<std::int64_t>(0, d);
}

void ms_ago_or_null(JsonWriter& w, std::string_view key, const std::optional<HealthRegistry::TimePoint>& t,
                    HealthRegistry::TimePoint now) {
  w.key(key);
  if (t) {
    w.number(ms_between(*t, now));
  } else {
    w.null();
  }
}

}  // namespace

std::string health_json(const std::vector<HealthSnapshot>& snapshots, HealthRegistry::TimePoint now) {
  JsonWriter w;
  w.begin_object();
  w.key("targets");
  w.begin_array();
  for (const HealthSnapshot& s : snapshots) {
    w.begin_object();
    w.key("target");
    w.string(s.target);
    w.key("state");
    w.string(to_string(s.state));
    w.key("routable");
    w.boolean(s.routable);
    w.key("consecutive_failures");
    w.number(s.consecutive_failures);

    w.key("last_error");
    if (s.last_error_kind) {
      w.begin_object();
      w.key("kind");
      w.string(to_string(*s.last_error_kind));
      w.key("message");
      w.string(s.last_error_message);
      ms_ago_or_null(w, "ms_ago", s.last_error_at, now);
      w.end_object();
    } else {
      w.null();
    }

    ms_ago_or_null(w, "opened_ms_ago", s.opened_at, now);
    w.key("next_attempt_in_ms");
    if (s.next_attempt_at) {
      w.number(ms_between(now, *s.next_attempt_at));
    } else {
      w.null();
    }
    w.key("open_duration_ms");
    w.number(static_cast<std::int64_t>(s.current_open_duration.count()));
    w.key("open_streak");
    w.number(s.open_streak);
    w.key("trials_in_flight");
    w.number(s.trials_in_flight);
    w.key("half_open_max_probes");
    w.number(s.half_open_max_probes);

    w.key("window");
    w.begin_object();
    w.key("outcomes");
    w.number(s.window_outcomes);
    w.key("failures");
    w.number(s.window_failures);
    w.end_object();

    w.key("probe");
    w.begin_object();
    w.key("enabled");
    w.boolean(s.probe_enabled);
    w.key("status");
    w.string(to_string(s.probe_status));
    w.key("consecutive_successes");
    w.number(s.probe_consecutive_successes);
    w.key("consecutive_failures");
    w.number(s.probe_consecutive_failures);
    w.key("last_error");
    w.string(s.probe_last_error);
    ms_ago_or_null(w, "last_ms_ago", s.probe_last_at, now);
    w.end_object();

    w.key("engine");
    w.begin_object();
    w.key("healthy");
    w.boolean(s.engine_healthy);
    w.key("reason");
    w.string(s.engine_reason);
    w.end_object();

    w.key("counters");
    w.begin_object();
    w.key("successes");
    w.number(s.successes);
    w.key("failures");
    w.number(s.failures);
    w.key("neutral");
    w.number(s.neutral);
    w.key("ejections");
    w.number(s.ejections);
    w.end_object();

    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

}  // namespace sluice
