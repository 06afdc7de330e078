// The JSON snapshot behind GET /dashboard/data: target health, counter totals, latency and time-to-first-token
// quantiles, the engine's gauges and the recent routing events. The page computes rates and windowed
// quantiles from successive snapshots, so every number here is a running total or a current level.
//
// The endpoint is open (no key), so the snapshot carries only configured names (targets, routes, limits),
// enum names and numbers: no error messages, which may quote what an upstream or a client sent, and no keys.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

class MetricsRegistry;
struct HealthSnapshot;

// `health` in display order; `now_unix_ms` stamps the snapshot so the page can place it on a time axis.
std::string dashboard_json(const MetricsRegistry& metrics, const std::vector<HealthSnapshot>& health,
                           std::int64_t now_unix_ms);

}  // namespace sluice
