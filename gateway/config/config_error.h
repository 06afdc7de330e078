// A problem found in a config or policy file, reported as `file:line: message`.
#pragma once

#include <string>
#include <vector>

namespace sluice {

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when the problem is not tied to a line
  std::string message;

  std::string to_string() const;  // "file:line: message"
};

using ConfigErrors = std::vector<ConfigError>;

}  // namespace sluice
