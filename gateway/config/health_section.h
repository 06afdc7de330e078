// The `health:` maps of the server config: the top-level one (defaults for every target, plus the engine
// watchdog) and each provider's own (overrides of those defaults, plus its active probe).
#pragma once

#include <string>

#include <yaml-cpp/node/node.h>

#include "gateway/config/server_config.h"
#include "gateway/config/yaml_reader.h"

namespace sluice {

// Reads the top-level `health:` map into `out` (starting from what `out` holds).
void read_health_section(YamlReader& reader, const YAML::Node& node, int line, HealthSection& out);

// Reads a provider's `health:` map into `out`, which starts as a copy of the top-level defaults.
void read_provider_health(YamlReader& reader, const YAML::Node& node, int line, const std::string& where,
                          HealthConfig& out);

}  // namespace sluice
