// Typed, line-aware reading of YAML for the config and policy parsers. Every problem is appended to the
// reader's error list (file, 1-based line, message) instead of stopping at the first, so a user sees all of
// them at once. Nothing here throws: yaml-cpp's exceptions end at parse().
//
// Conventions shared by every file we read:
//   - numbers and booleans must be plain scalars (`port: "80"` is a type error, not a silent conversion);
//   - durations are integers whose unit is in the key name (`*_ms`), sizes likewise (`*_bytes`);
//   - a key whose value is empty (`limits:`) reads as an empty map or list where one is expected, and is a
//     "missing value" error where a scalar is expected;
//   - keys a map does not know, and keys given twice, are errors on the key's own line.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "gateway/config/config_error.h"

namespace sluice {

class YamlReader {
 public:
  explicit YamlReader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  const ConfigErrors& errors() const { return errors_; }
  ConfigErrors take_errors() { return std::move(errors_); }
  bool has_errors() const { return !errors_.empty(); }

  void error(int line, std::string message);

  // The 1-based line of a node, 0 when yaml-cpp has no position for it.
  static int line_of(const YAML::Node& node);

  // Parses one document. A syntax error is recorded with its line and yields nullopt. An empty text is a
  // null node (a file with nothing in it).
  std::optional<YAML::Node> parse(const std::string& text);

 private:
  std::string file_;
  ConfigErrors errors_;
};

// A scalar as text, for list items and other values read outside YamlMap. `what` names the value in
// messages ("policies[2]"). Records an error and returns nullopt when the node is not a scalar.
std::optional<std::string> read_scalar_string(YamlReader& reader, const YAML::Node& node, int line,
                                              std::string_view what);

// One mapping with a fixed set of allowed keys. Construction reports a value that is not a map, keys outside
// `allowed`, keys that are not scalars and keys given twice. The read_* calls leave `out` untouched when the
// key is absent or its value is invalid (the latter records an error) and return true only when they stored
// a value.
class YamlMap {
 public:
  // `where` names the map in messages: "server.limits", "routes[0].retries"; "" for the document root.
  // `line` is used for messages about the map itself when the node carries no position (an empty value).
  YamlMap(YamlReader& reader, const YAML::Node& node, std::string where,
          std::initializer_list<std::string_view> allowed, int line = 0);

  bool is_map() const { return is_map_; }
  int line() const { return line_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  int line_of(std::string_view key) const;         // the key's line, or the map's when absent
  YAML::Node value(std::string_view key) const;    // an undefined node when absent
  std::string path(std::string_view key) const;    // "server.limits.max_body_bytes"

  // Records "missing required key" when absent; returns whether it is present.
  bool require(std::string_view key);

  bool read_string(std::string_view key, std::string& out);
  bool read_bool(std::string_view key, bool& out);
  bool read_int(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max);
  bool read_number(std::string_view key, double& out, double min, double max);
  bool read_millis(std::string_view key, std::chrono::milliseconds& out, std::int64_t min_ms,
                   std::int64_t max_ms);

  // Integer into any integral field, with the same range check.
  template <class T>
  bool read_integer(std::string_view key, T& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = 0;
    if (!read_int(key, v, min, max)) return false;
    out = static_cast<T>(v);
    return true;
  }

  // A list of scalars, each with its own line. An empty value reads as an empty list.
  struct Item {
    std::string text;
    int line = 0;
  };
  bool read_string_list(std::string_view key, std::vector<Item>& out);

 private:
  struct Entry {
    std::string key;
    int line = 0;
    YAML::Node value;
  };
  const Entry* find(std::string_view key) const;
  // The scalar text of a present key, or nullopt (with an error) when its value is not a plain scalar.
  std::optional<std::string> plain_scalar(const Entry& e, std::string_view expected);

  YamlReader& reader_;
  std::string where_;
  bool is_map_ = false;
  int line_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace sluice
