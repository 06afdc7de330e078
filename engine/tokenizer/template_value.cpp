#include "engine/tokenizer/template_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "engine/tokenizer/utf8.h"

namespace sluice::jinja {
namespace {

// Python's float repr: the shortest digits that round-trip, scientific notation when the decimal exponent
// is below -4 or at least 16, and a ".0" on integral values in fixed notation.
std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const std::size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_buf;
  }
  std::string out = sign;
  if (exponent < 0) {
    out += "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else {
    const auto int_len = static_cast<std::size_t>(exponent + 1);
    if (digits.size() <= int_len) {
      out += digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return out;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

bool json_value(const Value& v, int indent, int level, std::string& out) {
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<std::size_t>(indent * lvl), ' ');
  };
  if (v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += std::get<bool>(v.data) ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    const double f = v.as_float();
    out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f < 0 ? "-Infinity" : "Infinity") : float_repr(f);
  } else if (v.is_string()) {
    json_string(v.str(), out);
  } else if (v.is_list()) {
    const List& l = v.list();
    out += '[';
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (i > 0) out += indent >= 0 ? "," : ", ";
      if (indent >= 0) newline(level + 1);
      if (!json_value(l[i], indent, level + 1, out)) return false;
    }
    if (indent >= 0 && !l.empty()) newline(level);
    out += ']';
  } else if (v.is_dict() || v.is_namespace()) {
    if (v.is_namespace()) return false;  // json.dumps rejects a Namespace object
    const Dict& d = v.dict();
    out += '{';
    for (std::size_t i = 0; i < d.items.size(); ++i) {
      if (i > 0) out += indent >= 0 ? "," : ", ";
      if (indent >= 0) newline(level + 1);
      json_string(d.items[i].first, out);
      out += ": ";
      if (!json_value(d.items[i].second, indent, level + 1, out)) return false;
    }
    if (indent >= 0 && !d.items.empty()) newline(level);
    out += '}';
  } else {
    return false;
  }
  return true;
}

}  // namespace

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

std::int64_t Value::as_int() const {
  if (is_bool()) return std::get<bool>(data) ? 1 : 0;
  return std::get<std::int64_t>(data);
}

double Value::as_float() const {
  if (is_float()) return std::get<double>(data);
  return static_cast<double>(as_int());
}

std::string_view type_name(const Value& v) {
  switch (v.data.index()) {
    case 0: return "undefined";
    case 1: return "NoneType";
    case 2: return "bool";
    case 3: return "int";
    case 4: return "float";
    case 5: return "str";
    case 6: return "list";
    case 7: return "dict";
    case 8: return "Namespace";
    default: return "function";
  }
}

bool truthy(const Value& v) {
  if (v.is_undefined() || v.is_none()) return false;
  if (v.is_bool()) return std::get<bool>(v.data);
  if (v.is_int()) return v.as_int() != 0;
  if (v.is_float()) return v.as_float() != 0.0;
  if (v.is_string()) return !v.str().empty();
  if (v.is_list()) return !v.list().empty();
  if (v.is_dict()) return !v.dict().items.empty();
  return true;
}

std::string to_str(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_string()) return v.str();
  return repr(v);
}

std::string repr(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_none()) return "None";
  if (v.is_bool()) return std::get<bool>(v.data) ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return float_repr(v.as_float());
  if (v.is_string()) return string_repr(v.str());
  if (v.is_list()) {
    std::string out = v.tuple ? "(" : "[";
    const List& l = v.list();
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (i > 0) out += ", ";
      out += repr(l[i]);
    }
    if (v.tuple && l.size() == 1) out += ",";
    return out + (v.tuple ? ")" : "]");
  }
  if (v.is_dict()) {
    std::string out = "{";
    const Dict& d = v.dict();
    for (std::size_t i = 0; i < d.items.size(); ++i) {
      if (i > 0) out += ", ";
      out += string_repr(d.items[i].first) + ": " + repr(d.items[i].second);
    }
    return out + "}";
  }
  if (v.is_namespace()) return "<Namespace>";
  return "<function " + std::get<Callable>(v.data).name + ">";
}

bool to_json(const Value& v, int indent, std::string& out) { return json_value(v, indent, 0, out); }

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.data.index() != b.data.index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_list()) {
    if (a.tuple != b.tuple) return false;
    const List& x = a.list();
    const List& y = b.list();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!equals(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_dict()) {
    const Dict& x = a.dict();
    const Dict& y = b.dict();
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, val] : x.items) {
      const Value* other = y.find(k);
      if (other == nullptr || !equals(val, *other)) return false;
    }
    return true;
  }
  if (a.is_namespace()) return std::get<Namespace>(a.data).attrs == std::get<Namespace>(b.data).attrs;
  return false;
}

bool less_than(const Value& a, const Value& b, bool& ok) {
  ok = true;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  // UTF-8 byte order is code point order, which is how Python compares strings.
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  ok = false;
  return false;
}

std::int64_t length(const Value& v) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) {
    std::int64_t n = 0;
    const std::string& s = v.str();
    for (std::size_t pos = 0; pos < s.size(); pos += utf8::decode(s, pos).length) ++n;
    return n;
  }
  if (v.is_list()) return static_cast<std::int64_t>(v.list().size());
  if (v.is_dict()) return static_cast<std::int64_t>(v.dict().items.size());
  if (v.is_namespace()) return static_cast<std::int64_t>(std::get<Namespace>(v.data).attrs->items.size());
  return -1;
}

}  // namespace sluice::jinja
