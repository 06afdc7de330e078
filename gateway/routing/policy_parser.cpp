// policies/*.yaml → Policy. Each file is read on its own (its errors carry its name and lines); then the
// routes of all files are checked against each other (unique names, unique model patterns).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "gateway/config/yaml_reader.h"
#include "gateway/routing/policy.h"

namespace sluice {

namespace {

constexpr std::int64_t kMaxTier = 99;
constexpr std::int64_t kMaxCount = 1'000'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kDayMs = 24 * kHourMs;

// Errors that may appear in retry_on / fallback_on: every kind a target reports, except the two that are
// never the target's fault (the client left; a bug).
std::optional<ErrorKind> trigger_from_string(std::string_view name) {
  const auto kind = error_kind_from_string(name);
  if (!kind || *kind == ErrorKind::cancelled || *kind == ErrorKind::internal) return std::nullopt;
  return kind;
}

std::string trigger_names() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(ErrorKind::internal); ++i) {
    const auto kind = static_cast<ErrorKind>(i);
    if (kind == ErrorKind::cancelled || kind == ErrorKind::internal) continue;
    if (!out.empty()) out += ", ";
    out += to_string(kind);
  }
  return out;
}

std::set<ErrorKind> default_fallback_on() {
  return {ErrorKind::connect_error, ErrorKind::timeout,          ErrorKind::upstream_5xx,
          ErrorKind::rate_limited,  ErrorKind::overloaded,       ErrorKind::context_too_long,
          ErrorKind::unsupported,   ErrorKind::unavailable};
}

bool is_route_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Why `model` is not a usable model name (or, when `glob` is allowed, pattern); nullopt when it is.
std::optional<std::string> model_problem(std::string_view model, bool glob) {
  if (model.empty()) return std::string("must not be empty");
  if (model.size() > 256) return std::string("is longer than 256 characters");
  for (char c : model) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return std::string("must not contain spaces or control characters");
    if (c == '[' || c == ']' || c == '{' || c == '}')
      return std::string("uses unsupported glob syntax (only * and ? are supported)");
    if (!glob && (c == '*' || c == '?')) return std::string("must be a plain model name, not a pattern");
  }
  return std::nullopt;
}

std::string location(const std::string& file, int line) { return file + ":" + std::to_string(line); }

struct Context {
  YamlReader& reader;
  const std::vector<std::string>& known;  // sorted, "local" last
  std::string known_list;
};

void read_bucket_keys(Context& cx, YamlMap& m, BucketLimits& out) {
  m.read_number("requests_per_second", out.requests_per_second, 0, 1e6);
  const bool has_burst = m.read_number("burst", out.burst, 0, 1e9);
  m.read_number("tokens_per_minute", out.tokens_per_minute, 0, 1e12);
  if (!has_burst) {
    out.burst = out.requests_per_second;
  } else if (out.requests_per_second > 0 && out.burst < 1) {
    cx.reader.error(m.line_of("burst"), m.path("burst") + ": must be at least 1 when requests_per_second is set");
  } else if (out.requests_per_second == 0 && out.burst > 0) {
    cx.reader.error(m.line_of("burst"), m.path("burst") + ": has no effect without requests_per_second");
  }
}

void read_client_limits(Context& cx, const YAML::Node& node, int line, BucketLimits& out) {
  YamlMap m(cx.reader, node, "client_limits", {"requests_per_second", "burst", "tokens_per_minute"}, line);
  if (m.is_map()) read_bucket_keys(cx, m, out);
}

void read_route_limits(Context& cx, const YAML::Node& node, int line, const std::string& where,
                       RouteLimits& out) {
  YamlMap m(cx.reader, node, where,
            {"requests_per_second", "burst", "tokens_per_minute", "max_concurrency", "max_queue",
             "queue_timeout_ms"},
            line);
  if (!m.is_map()) return;
  read_bucket_keys(cx, m, out.bucket);
  m.read_integer("max_concurrency", out.max_concurrency, 0, kMaxCount);
  m.read_integer("max_queue", out.max_queue, 0, kMaxCount);
  m.read_millis("queue_timeout_ms", out.queue_timeout, 1, kHourMs);
}

bool read_kinds(Context& cx, YamlMap& m, std::string_view key, std::set<ErrorKind>& out) {
  std::vector<YamlMap::Item> items;
  if (!m.read_string_list(key, items)) return false;
  std::set<ErrorKind> kinds;
  bool ok = true;
  for (const YamlMap::Item& item : items) {
    const auto kind = trigger_from_string(item.text);
    if (!kind) {
      cx.reader.error(item.line, m.path(key) + ": '" + item.text + "' is not an error kind (one of: " +
                                     trigger_names() + ")");
      ok = false;
    } else if (!kinds.insert(*kind).second) {
      cx.reader.error(item.line, m.path(key) + ": '" + item.text + "' is listed twice");
      ok = false;
    }
  }
  if (!ok) return false;
  out = std::move(kinds);
  return true;
}

void read_retries(Context& cx, const YAML::Node& node, int line, const std::string& where, RetryPolicy& out) {
  YamlMap m(cx.reader, node, where, {"max_attempts", "backoff_base_ms", "backoff_max_ms", "retry_on"}, line);
  if (!m.is_map()) return;
  m.read_integer("max_attempts", out.max_attempts, 1, 10);
  m.read_millis("backoff_base_ms", out.backoff_base, 0, 60'000);
  m.read_millis("backoff_max_ms", out.backoff_max, 0, 600'000);
  if (out.backoff_max < out.backoff_base)
    cx.reader.error(m.has("backoff_max_ms") ? m.line_of("backoff_max_ms") : m.line_of("backoff_base_ms"),
                    where + ": backoff_max_ms (" + std::to_string(out.backoff_max.count()) +
                        ") must not be less than backoff_base_ms (" + std::to_string(out.backoff_base.count()) +
                        ")");
  read_kinds(cx, m, "retry_on", out.retry_on);
}

void read_target_timeouts(Context& cx, const YAML::Node& node, int line, const std::string& where,
                          PolicyTarget& out) {
  YamlMap m(cx.reader, node, where, {"connect_ms", "first_byte_ms", "total_ms"}, line);
  if (!m.is_map()) return;
  std::chrono::milliseconds v{0};
  if (m.read_millis("connect_ms", v, 1, 600'000)) out.connect_timeout = v;
  if (m.read_millis("first_byte_ms", v, 1, kDayMs)) out.first_byte_timeout = v;
  if (m.read_millis("total_ms", v, 1, kDayMs)) out.total_timeout = v;
}

void read_target(Context& cx, const YAML::Node& node, int line, const std::string& where, PolicyTarget& out) {
  YamlMap m(cx.reader, node, where, {"provider", "model", "tier", "weight", "max_concurrency", "timeouts"},
            line);
  if (!m.is_map()) return;
  if (m.require("provider") && m.read_string("provider", out.provider)) {
    if (std::find(cx.known.begin(), cx.known.end(), out.provider) == cx.known.end())
      cx.reader.error(m.line_of("provider"),
                      where + ": unknown provider '" + out.provider + "' (known: " + cx.known_list + ")");
  }
  std::string model;
  if (m.read_string("model", model)) {
    if (auto why = model_problem(model, false))
      cx.reader.error(m.line_of("model"), where + ".model: '" + model + "' " + *why +
                                              (model.empty() ? " (omit the key to use the requested name)" : ""));
    else
      out.model = std::move(model);
  }
  m.read_integer("tier", out.tier, 0, kMaxTier);
  if (m.read_number("weight", out.weight, 0, 1e6) && out.weight <= 0)
    cx.reader.error(m.line_of("weight"), where + ".weight: must be greater than 0");
  m.read_integer("max_concurrency", out.max_concurrency, 0, kMaxCount);
  if (m.has("timeouts")) read_target_timeouts(cx, m.value("timeouts"), m.line_of("timeouts"), where + ".timeouts", out);
}

void read_targets(Context& cx, YamlMap& m, const std::string& where, Route& route) {
  const YAML::Node list = m.value("targets");
  if (!list.IsSequence() || list.size() == 0) {
    cx.reader.error(m.line_of("targets"), where + ".targets: expected a non-empty list of targets");
    return;
  }
  std::size_t index = 0;
  for (const YAML::Node& item : list) {
    const std::string at = where + ".targets[" + std::to_string(index) + "]";
    const int line = YamlReader::line_of(item) > 0 ? YamlReader::line_of(item) : m.line_of("targets");
    PolicyTarget target;
    read_target(cx, item, line, at, target);
    target.key = route.name + "/" + target.provider + "/" + target.model + "/" + std::to_string(index);
    route.targets.push_back(std::move(target));
    ++index;
  }
  std::stable_sort(route.targets.begin(), route.targets.end(),
                   [](const PolicyTarget& a, const PolicyTarget& b) { return a.tier < b.tier; });
}

// One route; nullopt when anything in it was wrong (the errors are recorded).
std::optional<Route> read_route(Context& cx, const YAML::Node& node, int line, const std::string& where) {
  YamlMap m(cx.reader, node, where,
            {"name", "model", "default_max_tokens", "limits", "retries", "fallback_on", "targets"}, line);
  if (!m.is_map()) return std::nullopt;
  const std::size_t errors_before = cx.reader.errors().size();
  Route route;
  route.file = cx.reader.file();
  route.line = m.line();
  route.fallback_on = default_fallback_on();

  if (m.require("name") && m.read_string("name", route.name) && !is_route_name(route.name))
    cx.reader.error(m.line_of("name"), where + ".name: '" + route.name +
                                           "' must be 1-64 characters of letters, digits, '_', '-' and '.'");
  if (m.require("model") && m.read_string("model", route.model)) {
    if (auto why = model_problem(route.model, true))
      cx.reader.error(m.line_of("model"), where + ".model: '" + route.model + "' " + *why);
    route.is_glob = route.model.find_first_of("*?") != std::string::npos;
  }
  m.read_integer("default_max_tokens", route.default_max_tokens, 1, 10'000'000);
  if (m.has("limits")) read_route_limits(cx, m.value("limits"), m.line_of("limits"), where + ".limits", route.limits);
  if (m.has("retries")) read_retries(cx, m.value("retries"), m.line_of("retries"), where + ".retries", route.retry);
  if (m.has("fallback_on")) read_kinds(cx, m, "fallback_on", route.fallback_on);
  if (m.require("targets")) read_targets(cx, m, where, route);

  if (cx.reader.errors().size() != errors_before) return std::nullopt;
  return route;
}

struct Seen {
  std::string route;
  std::string file;
  int line = 0;
};

class PolicyBuilder {
 public:
  explicit PolicyBuilder(const std::vector<std::string>& known_providers) {
    known_ = known_providers;
    std::sort(known_.begin(), known_.end());
    known_.erase(std::unique(known_.begin(), known_.end()), known_.end());
    known_.erase(std::remove(known_.begin(), known_.end(), "local"), known_.end());
    for (const std::string& k : known_) known_list_ += k + ", ";
    known_list_ += "local";
    known_.push_back("local");
  }

  void add_file(const std::string& file, const std::string& text) {
    YamlReader reader(file);
    policy_.files.push_back(file);
    const auto doc = reader.parse(text);
    if (doc) read_document(reader, *doc);
    for (ConfigError& e : reader.take_errors()) errors_.push_back(std::move(e));
  }

  void add_error(ConfigError e) { errors_.push_back(std::move(e)); }

  Result<std::shared_ptr<const Policy>, ConfigErrors> finish() {
    if (errors_.empty() && policy_.routes.empty())
      errors_.push_back(ConfigError{policy_.files.empty() ? std::string() : policy_.files.front(), 0,
                                    "no routes defined in any policy file"});
    if (!errors_.empty()) return fail(std::move(errors_));
    return std::shared_ptr<const Policy>(std::make_shared<Policy>(std::move(policy_)));
  }

 private:
  void read_document(YamlReader& reader, const YAML::Node& doc) {
    Context cx{reader, known_, known_list_};
    YamlMap root(reader, doc, "", {"client_limits", "routes"}, 1);
    if (!root.is_map()) return;
    if (root.has("client_limits")) {
      const int line = root.line_of("client_limits");
      if (client_limits_at_) {
        reader.error(line, "client_limits is already set in " + *client_limits_at_ +
                               "; give it in one policy file only");
      } else {
        client_limits_at_ = location(reader.file(), line);
        read_client_limits(cx, root.value("client_limits"), line, policy_.client_limits);
      }
    }
    if (!root.has("routes")) return;
    const YAML::Node list = root.value("routes");
    if (list.IsNull()) return;
    if (!list.IsSequence()) {
      reader.error(root.line_of("routes"), "routes: expected a list of routes");
      return;
    }
    std::size_t index = 0;
    for (const YAML::Node& item : list) {
      const std::string where = "routes[" + std::to_string(index++) + "]";
      const int line = YamlReader::line_of(item) > 0 ? YamlReader::line_of(item) : root.line_of("routes");
      auto route = read_route(cx, item, line, where);
      if (route) add_route(reader, std::move(*route));
    }
  }

  void add_route(YamlReader& reader, Route route) {
    bool ok = true;
    if (auto it = names_.find(route.name); it != names_.end()) {
      reader.error(route.line, "duplicate route name '" + route.name + "' (first defined at " +
                                   location(it->second.file, it->second.line) + ")");
      ok = false;
    }
    if (auto it = models_.find(route.model); it != models_.end()) {
      reader.error(route.line, std::string(route.is_glob ? "model pattern '" : "model '") + route.model +
                                   "' of route '" + route.name + "' is already routed by route '" +
                                   it->second.route + "' at " + location(it->second.file, it->second.line));
      ok = false;
    }
    if (!ok) return;
    names_.emplace(route.name, Seen{route.name, route.file, route.line});
    models_.emplace(route.model, Seen{route.name, route.file, route.line});
    policy_.routes.push_back(std::move(route));
  }

  std::vector<std::string> known_;
  std::string known_list_;
  Policy policy_;
  ConfigErrors errors_;
  std::optional<std::string> client_limits_at_;
  std::map<std::string, Seen, std::less<>> names_;
  std::map<std::string, Seen, std::less<>> models_;
};

// File-name order decides which glob wins, so it must not depend on the order a directory listing or a
// config happened to give.
std::vector<std::size_t> file_name_order(const std::vector<std::string>& paths) {
  std::vector<std::size_t> order(paths.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const std::string na = std::filesystem::path(paths[a]).filename().string();
    const std::string nb = std::filesystem::path(paths[b]).filename().string();
    if (na != nb) return na < nb;
    return paths[a] < paths[b];
  });
  return order;
}

}  // namespace

Result<std::shared_ptr<const Policy>, ConfigErrors> parse_policy_texts(
    const std::vector<std::pair<std::string, std::string>>& file_and_text,
    const std::vector<std::string>& known_providers) {
  std::vector<std::string> paths;
  for (const auto& [file, text] : file_and_text) paths.push_back(file);
  PolicyBuilder builder(known_providers);
  for (std::size_t i : file_name_order(paths)) builder.add_file(file_and_text[i].first, file_and_text[i].second);
  return builder.finish();
}

Result<std::shared_ptr<const Policy>, ConfigErrors> load_policy(const std::vector<std::string>& files,
                                                                const std::vector<std::string>& known_providers) {
  if (files.empty()) return fail(ConfigErrors{ConfigError{"", 0, "no policy files given"}});
  PolicyBuilder builder(known_providers);
  for (std::size_t i : file_name_order(files)) {
    const std::string& file = files[i];
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
      builder.add_error(ConfigError{file, 0, "is a directory, not a policy file"});
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      builder.add_error(ConfigError{file, 0, "cannot read the policy file (missing or unreadable)"});
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
      builder.add_error(ConfigError{file, 0, "error while reading the policy file"});
      continue;
    }
    builder.add_file(file, text.str());
  }
  return builder.finish();
}

}  // namespace sluice
