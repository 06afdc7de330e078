#include "gateway/config/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>

namespace sluice {

namespace {

std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc{}) return "?";
  return std::string(buf, end);
}

// Shortens what a user wrote before quoting it back in a message.
std::string quote(std::string_view text) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  if (text.size() > kMax) {
    out.append(text.substr(0, kMax));
    out += "...";
  } else {
    out.append(text);
  }
  out += "'";
  return out;
}

std::string_view type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

bool is_plain(const YAML::Node& node) { return node.Tag() == "?"; }

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The allowed key a typo most likely meant: a close spelling, or one the typo is a prefix of.
std::string suggestion(std::string_view typo, std::initializer_list<std::string_view> allowed) {
  if (typo.size() > 64) return {};
  std::string_view best;
  std::size_t best_distance = std::max<std::size_t>(2, typo.size() / 3) + 1;
  for (std::string_view a : allowed) {
    const std::size_t d = a.substr(0, typo.size()) == typo && typo.size() >= 3 ? 1 : edit_distance(typo, a);
    if (d < best_distance) {
      best_distance = d;
      best = a;
    }
  }
  return best.empty() ? std::string() : " (did you mean '" + std::string(best) + "'?)";
}

}  // namespace

void YamlReader::error(int line, std::string message) {
  errors_.push_back(ConfigError{file_, line, std::move(message)});
}

int YamlReader::line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return 0;
  return mark.line + 1;
}

std::optional<YAML::Node> YamlReader::parse(const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() || e.mark.line < 0 ? 0 : e.mark.line + 1;
    error(line, "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    error(0, std::string("invalid YAML: ") + e.what());
  }
  return std::nullopt;
}

std::optional<std::string> read_scalar_string(YamlReader& reader, const YAML::Node& node, int line,
                                              std::string_view what) {
  if (node.IsScalar()) return node.Scalar();
  const int own = YamlReader::line_of(node);
  const int at = own > 0 && !node.IsNull() ? own : line;
  reader.error(at, std::string(what) + ": expected a string, got " + std::string(type_name(node)));
  return std::nullopt;
}

YamlMap::YamlMap(YamlReader& reader, const YAML::Node& node, std::string where,
                 std::initializer_list<std::string_view> allowed, int line)
    : reader_(reader), where_(std::move(where)), line_(line) {
  if (!node.IsDefined() || node.IsNull()) {
    is_map_ = true;  // an empty value is an empty map
    return;
  }
  if (const int own = YamlReader::line_of(node); own > 0) line_ = own;
  if (!node.IsMap()) {
    reader_.error(line_, (where_.empty() ? std::string("the document") : where_) + ": expected a map, got " +
                             std::string(type_name(node)));
    return;
  }
  is_map_ = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: the iterator hands out a temporary pair
    const int kline = YamlReader::line_of(k);
    if (!k.IsScalar()) {
      reader_.error(kline, "keys must be plain names" + (where_.empty() ? std::string() : " in " + where_));
      continue;
    }
    const std::string name = k.Scalar();
    bool known = false;
    for (std::string_view a : allowed) known = known || a == name;
    if (!known) {
      reader_.error(kline, "unknown key " + quote(name) +
                               (where_.empty() ? std::string(" at the top level") : " in " + where_) +
                               suggestion(name, allowed));
      continue;
    }
    if (const Entry* first = find(name)) {
      reader_.error(kline, "key " + quote(name) + (where_.empty() ? std::string() : " in " + where_) +
                               " given twice (first at line " + std::to_string(first->line) + ")");
      continue;
    }
    entries_.push_back(Entry{name, kline, it->second});
  }
}

const YamlMap::Entry* YamlMap::find(std::string_view key) const {
  for (const Entry& e : entries_)
    if (e.key == key) return &e;
  return nullptr;
}

int YamlMap::line_of(std::string_view key) const {
  const Entry* e = find(key);
  return e != nullptr ? e->line : line_;
}

YAML::Node YamlMap::value(std::string_view key) const {
  const Entry* e = find(key);
  return e != nullptr ? e->value : YAML::Node(YAML::NodeType::Undefined);
}

std::string YamlMap::path(std::string_view key) const {
  return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
}

bool YamlMap::require(std::string_view key) {
  if (has(key)) return true;
  reader_.error(line_, "missing required key " + quote(key) +
                           (where_.empty() ? std::string(" at the top level") : " in " + where_));
  return false;
}

std::optional<std::string> YamlMap::plain_scalar(const Entry& e, std::string_view expected) {
  if (e.value.IsNull()) {
    reader_.error(e.line, path(e.key) + ": missing value, expected " + std::string(expected));
    return std::nullopt;
  }
  if (!e.value.IsScalar()) {
    reader_.error(e.line, path(e.key) + ": expected " + std::string(expected) + ", got " +
                              std::string(type_name(e.value)));
    return std::nullopt;
  }
  if (!is_plain(e.value)) {
    const bool quoted = e.value.Tag() == "!";
    reader_.error(e.line, path(e.key) + ": expected " + std::string(expected) + ", got " +
                              (quoted ? "the quoted string " : "the tagged value ") + quote(e.value.Scalar()));
    return std::nullopt;
  }
  return e.value.Scalar();
}

bool YamlMap::read_string(std::string_view key, std::string& out) {
  const Entry* e = find(key);
  if (e == nullptr) return false;
  if (e->value.IsNull()) {
    reader_.error(e->line, path(key) + ": missing value, expected a string (write \"\" for an empty one)");
    return false;
  }
  if (!e->value.IsScalar()) {
    reader_.error(e->line, path(key) + ": expected a string, got " + std::string(type_name(e->value)));
    return false;
  }
  out = e->value.Scalar();
  return true;
}

bool YamlMap::read_bool(std::string_view key, bool& out) {
  const Entry* e = find(key);
  if (e == nullptr) return false;
  const auto text = plain_scalar(*e, "true or false");
  if (!text) return false;
  if (*text == "true" || *text == "True" || *text == "TRUE") {
    out = true;
    return true;
  }
  if (*text == "false" || *text == "False" || *text == "FALSE") {
    out = false;
    return true;
  }
  reader_.error(e->line, path(key) + ": expected true or false, got " + quote(*text));
  return false;
}

bool YamlMap::read_int(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max) {
  const Entry* e = find(key);
  if (e == nullptr) return false;
  const auto text = plain_scalar(*e, "an integer");
  if (!text) return false;
  std::int64_t v = 0;
  const char* first = text->data();
  const char* last = first + text->size();
  if (first != last && *first == '+') ++first;
  const auto [end, ec] = std::from_chars(first, last, v);
  if (ec == std::errc::result_out_of_range) {
    reader_.error(e->line, path(key) + ": " + *text + " is out of range (" + std::to_string(min) + ".." +
                               std::to_string(max) + ")");
    return false;
  }
  if (ec != std::errc{} || end != last || first == last) {
    reader_.error(e->line, path(key) + ": expected an integer, got " + quote(*text));
    return false;
  }
  if (v < min || v > max) {
    reader_.error(e->line, path(key) + ": " + std::to_string(v) + " is out of range (" + std::to_string(min) +
                               ".." + std::to_string(max) + ")");
    return false;
  }
  out = v;
  return true;
}

bool YamlMap::read_number(std::string_view key, double& out, double min, double max) {
  const Entry* e = find(key);
  if (e == nullptr) return false;
  const auto text = plain_scalar(*e, "a number");
  if (!text) return false;
  double v = 0;
  const char* first = text->data();
  const char* last = first + text->size();
  if (first != last && *first == '+') ++first;
  const auto [end, ec] = std::from_chars(first, last, v, std::chars_format::general);
  if (ec != std::errc{} || end != last || first == last || !std::isfinite(v)) {
    reader_.error(e->line, path(key) + ": expected a number, got " + quote(*text));
    return false;
  }
  if (v < min || v > max) {
    reader_.error(e->line, path(key) + ": " + *text + " is out of range (" + format_number(min) + ".." +
                               format_number(max) + ")");
    return false;
  }
  out = v;
  return true;
}

bool YamlMap::read_millis(std::string_view key, std::chrono::milliseconds& out, std::int64_t min_ms,
                          std::int64_t max_ms) {
  std::int64_t v = 0;
  if (!read_int(key, v, min_ms, max_ms)) return false;
  out = std::chrono::milliseconds(v);
  return true;
}

bool YamlMap::read_string_list(std::string_view key, std::vector<Item>& out) {
  const Entry* e = find(key);
  if (e == nullptr) return false;
  if (e->value.IsNull()) {
    out.clear();
    return true;
  }
  if (!e->value.IsSequence()) {
    reader_.error(e->line, path(key) + ": expected a list, got " + std::string(type_name(e->value)));
    return false;
  }
  std::vector<Item> items;
  bool ok = true;
  std::size_t index = 0;
  for (const YAML::Node& item : e->value) {
    const int line = YamlReader::line_of(item) > 0 ? YamlReader::line_of(item) : e->line;
    const std::string what = path(key) + "[" + std::to_string(index++) + "]";
    if (item.IsNull()) {
      reader_.error(line, what + ": missing value");
      ok = false;
      continue;
    }
    auto text = read_scalar_string(reader_, item, line, what);
    if (!text) {
      ok = false;
      continue;
    }
    items.push_back(Item{std::move(*text), line});
  }
  if (!ok) return false;
  out = std::move(items);
  return true;
}

}  // namespace sluice
