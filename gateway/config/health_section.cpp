#include "gateway/config/health_section.h"

#include <cstdint>

namespace sluice {

namespace {

constexpr std::int64_t kHourMs = 3'600'000;

// The circuit-breaker keys shared by both maps.
void read_circuit_keys(YamlMap& m, HealthConfig& out) {
  m.read_integer("failure_threshold", out.failure_threshold, 0, 1'000'000);
  m.read_number("failure_ratio", out.failure_ratio, 0.0, 1.0);
  m.read_integer("window", out.window, 1, 10'000);
  m.read_integer("min_requests", out.min_requests, 1, 10'000);
  m.read_millis("open_ms", out.open_duration, 1, 24 * kHourMs);
  m.read_millis("max_open_ms", out.max_open_duration, 1, 24 * kHourMs);
  m.read_integer("half_open_max_probes", out.half_open_max_probes, 1, 10'000);
}

void check(YamlReader& reader, YamlMap& m, const std::string& where, const HealthConfig& c) {
  if (c.max_open_duration < c.open_duration)
    reader.error(m.line_of(m.has("max_open_ms") ? "max_open_ms" : "open_ms"),
                 where + ".max_open_ms (" + std::to_string(c.max_open_duration.count()) +
                     ") must not be below " + where + ".open_ms (" + std::to_string(c.open_duration.count()) + ")");
  if (c.min_requests > c.window)
    reader.error(m.line_of(m.has("min_requests") ? "min_requests" : "window"),
                 where + ".min_requests (" + std::to_string(c.min_requests) + ") must not exceed " + where +
                     ".window (" + std::to_string(c.window) + ")");
}

void read_probe(YamlReader& reader, const YAML::Node& node, int line, const std::string& where, ProbeConfig& out) {
  YamlMap m(reader, node, where,
            {"enabled", "path", "interval_ms", "timeout_ms", "healthy_threshold", "unhealthy_threshold"}, line);
  if (!m.is_map()) return;
  // Naming a probe map turns probing on unless it says otherwise.
  out.enabled = true;
  m.read_bool("enabled", out.enabled);
  std::string path;
  if (m.read_string("path", path)) {
    if (path.empty() || path.front() != '/' || path.find_first_of(" \t\r\n?#") != std::string::npos)
      reader.error(m.line_of("path"), where + ".path: '" + path +
                                          "' must start with '/' and contain no spaces, query or fragment");
    else
      out.path = std::move(path);
  }
  m.read_millis("interval_ms", out.interval, 100, 24 * kHourMs);
  m.read_millis("timeout_ms", out.timeout, 10, kHourMs);
  m.read_integer("healthy_threshold", out.healthy_threshold, 1, 1000);
  m.read_integer("unhealthy_threshold", out.unhealthy_threshold, 1, 1000);
}

}  // namespace

void read_health_section(YamlReader& reader, const YAML::Node& node, int line, HealthSection& out) {
  YamlMap m(reader, node, "health",
            {"failure_threshold", "failure_ratio", "window", "min_requests", "open_ms", "max_open_ms",
             "half_open_max_probes", "engine_watchdog_ms"},
            line);
  if (!m.is_map()) return;
  read_circuit_keys(m, out.defaults);
  m.read_millis("engine_watchdog_ms", out.engine_watchdog, 0, 24 * kHourMs);
  check(reader, m, "health", out.defaults);
}

void read_provider_health(YamlReader& reader, const YAML::Node& node, int line, const std::string& where,
                          HealthConfig& out) {
  YamlMap m(reader, node, where,
            {"failure_threshold", "failure_ratio", "window", "min_requests", "open_ms", "max_open_ms",
             "half_open_max_probes", "probe"},
            line);
  if (!m.is_map()) return;
  read_circuit_keys(m, out);
  if (m.has("probe")) read_probe(reader, m.value("probe"), m.line_of("probe"), where + ".probe", out.probe);
  check(reader, m, where, out);
}

}  // namespace sluice
