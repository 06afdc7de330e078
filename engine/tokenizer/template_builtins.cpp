#include "engine/tokenizer/template_builtins.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "engine/tokenizer/template_support.h"

namespace sluice::jinja {
namespace {

constexpr std::array<std::string_view, 37> filter_names{
    "abs",   "capitalize", "count",    "d",       "default", "dictsort", "e",       "escape",
    "first", "float",      "indent",   "int",     "items",   "join",     "last",    "length",
    "list",  "lower",      "map",      "max",     "min",     "reject",   "rejectattr", "replace",
    "reverse", "round",    "safe",     "select",  "selectattr", "sort",  "string",  "sum",
    "title", "tojson",     "trim",     "unique",  "upper"};

constexpr std::array<std::string_view, 33> test_names{
    "defined", "undefined", "none",   "boolean",   "false",   "true",     "integer", "float", "number",
    "string",  "mapping",   "iterable", "sequence", "callable", "odd",    "even",    "divisibleby",
    "eq",      "equalto",   "ne",     "lt",        "lessthan", "le",      "gt",      "greaterthan",
    "ge",      "in",        "lower",  "upper",     "sameas",  "escaped",  "filter",  "test"};

// Resolves "a.b.0" against v, as Jinja's attribute arguments do.
Value resolve_path(const Value& v, const std::string& path) {
  Value cur = v;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is_undefined()) return cur;
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = numeric ? get_item(cur, Value(static_cast<std::int64_t>(std::strtoll(part.c_str(), nullptr, 10))))
                  : get_item(cur, Value(part));
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

bool sort_less(const Value& a, const Value& b, bool case_sensitive, bool& ok) {
  if (!case_sensitive && a.is_string() && b.is_string()) return less_than(Value(lower(a.str())), Value(lower(b.str())), ok);
  return less_than(a, b, ok);
}

Result<Value, Error> sort_items(List items, bool reverse, bool case_sensitive, const Value* attribute) {
  bool ok = true;
  auto key = [&](const Value& v) { return attribute != nullptr && attribute->is_string() ? resolve_path(v, attribute->str()) : v; };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    bool step_ok = true;
    const bool r = reverse ? sort_less(key(b), key(a), case_sensitive, step_ok) : sort_less(key(a), key(b), case_sensitive, step_ok);
    ok = ok && step_ok;
    return r;
  });
  if (!ok) return fail(error("cannot sort values of different types"));
  return Value(std::move(items));
}

Result<Value, Error> select_items(std::string_view filter, const Value& input, const Args& args) {
  List items;
  if (!iterate(input, items)) return fail(error("'" + std::string(type_name(input)) + "' object is not iterable"));
  const bool by_attr = filter == "selectattr" || filter == "rejectattr";
  const bool keep_when = filter == "select" || filter == "selectattr";
  std::size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.empty() || !args[0].is_string()) return fail(error(std::string(filter) + " needs an attribute name"));
    attr = args[0].str();
    next = 1;
  }
  std::string test;
  if (next < args.size()) {
    if (!args[next].is_string()) return fail(error(std::string(filter) + " needs a test name"));
    test = args[next].str();
    ++next;
  }
  const Args test_args(args.begin() + static_cast<std::ptrdiff_t>(std::min(next, args.size())), args.end());
  List out;
  for (const Value& item : items) {
    const Value subject = by_attr ? resolve_path(item, attr) : item;
    bool pass = false;
    if (test.empty()) {
      pass = truthy(subject);
    } else {
      auto r = apply_test(test, subject, test_args);
      if (!r) return fail(std::move(r.error()));
      pass = *r;
    }
    if (pass == keep_when) out.push_back(item);
  }
  return Value(std::move(out));
}


Result<Value, Error> to_int(const Value& v, const Value* fallback) {
  const Value def = fallback != nullptr ? *fallback : Value(0);
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    const double f = v.as_float();
    if (!std::isfinite(f) || std::fabs(f) > 9.2e18) return def;
    return Value(static_cast<std::int64_t>(f));
  }
  if (v.is_string()) {
    const std::string s = strip(v.str(), nullptr, true, true);
    std::string digits;
    for (char c : s) {
      if (c != '_') digits += c;
    }
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(digits.c_str(), &end, 10);
    if (!digits.empty() && end == digits.c_str() + digits.size() && errno == 0) return Value(static_cast<std::int64_t>(i));
    const double f = std::strtod(digits.c_str(), &end);
    if (!digits.empty() && end == digits.c_str() + digits.size() && std::isfinite(f) && std::fabs(f) < 9.2e18) {
      return Value(static_cast<std::int64_t>(f));
    }
  }
  return def;
}

}  // namespace

bool is_known_filter(std::string_view name) { return contains(filter_names, name); }
bool is_known_test(std::string_view name) { return contains(test_names, name); }

Result<bool, Error> apply_test(std::string_view name, const Value& v, const Args& args) {
  const Value* a = args.empty() ? nullptr : &args[0];
  auto need_arg = [&]() -> Result<bool, Error> { return fail(error("the test '" + std::string(name) + "' needs an argument")); };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !std::get<bool>(v.data);
  if (name == "true") return v.is_bool() && std::get<bool>(v.data);
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  // Jinja's Undefined supports iteration and len(), so it passes these two.
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "filter") return v.is_string() && is_known_filter(v.str());
  if (name == "test") return v.is_string() && is_known_test(v.str());
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) return fail(error("the test '" + std::string(name) + "' needs an integer"));
    if (name == "odd") return v.as_int() % 2 != 0;
    if (name == "even") return v.as_int() % 2 == 0;
    if (a == nullptr) return need_arg();
    if (!a->is_int() || a->as_int() == 0) return fail(error("divisibleby needs a non-zero integer"));
    return v.as_int() % a->as_int() == 0;
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    const std::string& s = v.str();
    const bool any_cased = std::any_of(s.begin(), s.end(), is_ascii_letter);
    return any_cased && (name == "lower" ? s == lower(s) : s == upper(s));
  }
  if (a == nullptr) return need_arg();
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, *a);
  if (name == "ne" || name == "!=") return !equals(v, *a);
  if (name == "sameas") {
    if (v.is_none() || a->is_none() || v.is_bool() || a->is_bool()) return v.data.index() == a->data.index() && equals(v, *a);
    return false;
  }
  if (name == "in") {
    if (a->is_string()) return v.is_string() && a->str().find(v.str()) != std::string::npos;
    List items;
    if (!iterate(*a, items)) return fail(error("argument of type '" + std::string(type_name(*a)) + "' is not iterable"));
    return std::any_of(items.begin(), items.end(), [&](const Value& x) { return equals(x, v); });
  }
  bool ok = true;
  bool r = false;
  if (name == "lt" || name == "lessthan" || name == "<") r = less_than(v, *a, ok);
  else if (name == "gt" || name == "greaterthan" || name == ">") r = less_than(*a, v, ok);
  else if (name == "le" || name == "<=") r = !less_than(*a, v, ok);
  else if (name == "ge" || name == ">=") r = !less_than(v, *a, ok);
  else return fail(error("the test '" + std::string(name) + "' is not supported", ErrorKind::unsupported));
  if (!ok) return fail(error("cannot compare '" + std::string(type_name(v)) + "' with '" + std::string(type_name(*a)) + "'"));
  return r;
}

Result<Value, Error> apply_filter(std::string_view name, const Value& input, const Args& args, const Kwargs& kwargs) {
  if (name == "default" || name == "d") {
    const Value* def = arg(args, kwargs, 0, "default_value");
    const Value* boolean = arg(args, kwargs, 1, "boolean");
    const bool use_default = input.is_undefined() || (boolean != nullptr && truthy(*boolean) && !truthy(input));
    return use_default ? (def != nullptr ? *def : Value(std::string())) : input;
  }
  if (name == "safe") return input;
  if (name == "string") return Value(to_str(input));
  if (name == "length" || name == "count") {
    const std::int64_t n = length(input);
    if (n < 0) return fail(error("object of type '" + std::string(type_name(input)) + "' has no len()"));
    return Value(n);
  }
  if (name == "int") return to_int(input, arg(args, kwargs, 0, "default"));
  if (name == "float") {
    if (input.is_number()) return Value(input.as_float());
    if (input.is_string()) {
      const std::string s = strip(input.str(), nullptr, true, true);
      char* end = nullptr;
      const double f = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size()) return Value(f);
    }
    const Value* def = arg(args, kwargs, 0, "default");
    return def != nullptr ? *def : Value(0.0);
  }
  if (name == "tojson") {
    const Value* indent = arg(args, kwargs, 0, "indent");
    auto width = int_arg(indent, -1, "tojson's indent");
    if (!width) return fail(std::move(width.error()));
    std::string out;
    if (!to_json(input, static_cast<int>(std::clamp<std::int64_t>(*width, -1, 64)), out)) {
      return fail(error("object of type '" + std::string(type_name(input)) + "' is not JSON serializable"));
    }
    return Value(std::move(out));
  }
  if (input.is_undefined() && name != "list" && name != "join" && name != "items" && name != "first" &&
      name != "last" && name != "trim" && name != "upper" && name != "lower" && name != "escape" && name != "e") {
    return fail(undefined_error(input));
  }
  if (name == "trim" || name == "upper" || name == "lower" || name == "capitalize" || name == "title" ||
      name == "escape" || name == "e" || name == "indent" || name == "replace") {
    const std::string s = to_str(input);
    if (name == "trim") return Value(strip(s, arg(args, kwargs, 0, "chars"), true, true));
    if (name == "upper") return Value(upper(s));
    if (name == "lower") return Value(lower(s));
    if (name == "capitalize") return Value(capitalize(s));
    if (name == "title") return Value(jinja_title(s));
    if (name == "escape" || name == "e") return Value(html_escape(s));
    if (name == "replace") {
      const Value* from = arg(args, kwargs, 0, "old");
      const Value* to = arg(args, kwargs, 1, "new");
      if (from == nullptr || to == nullptr || !from->is_string() || !to->is_string()) {
        return fail(error("replace needs two strings"));
      }
      auto count = int_arg(arg(args, kwargs, 2, "count"), -1, "replace's count");
      if (!count) return fail(std::move(count.error()));
      std::string out = replace(s, from->str(), to->str(), *count);
      if (out.size() > max_built_bytes) return fail(error("replace result too large"));
      return Value(std::move(out));
    }
    // indent(width=4, first=False, blank=False)
    const Value* width_v = arg(args, kwargs, 0, "width");
    std::string pad = "    ";
    if (width_v != nullptr && width_v->is_string()) {
      pad = width_v->str();
    } else if (width_v != nullptr) {
      auto w = int_arg(width_v, 4, "indent's width");
      if (!w) return fail(std::move(w.error()));
      pad.assign(static_cast<std::size_t>(std::clamp<std::int64_t>(*w, 0, 256)), ' ');
    }
    // Jinja's do_indent: lines of s + "\n"; blank lines stay bare unless `blank`; `first` pads the first.
    const Value* first = arg(args, kwargs, 1, "first");
    const Value* blank = arg(args, kwargs, 2, "blank");
    const List lines = splitlines(s + "\n");
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i].str();
      if (i > 0) {
        out += '\n';
        if (!line.empty() || (blank != nullptr && truthy(*blank))) out += pad;
      }
      out += line;
    }
    if (first != nullptr && truthy(*first)) out = pad + out;
    return Value(std::move(out));
  }
  if (name == "abs") {
    if (input.is_float()) return Value(std::fabs(input.as_float()));
    if (input.is_int() || input.is_bool()) return Value(static_cast<std::int64_t>(std::llabs(input.as_int())));
    return fail(error("bad operand type for abs(): '" + std::string(type_name(input)) + "'"));
  }
  if (name == "round") {
    if (!input.is_number()) return fail(error("round needs a number"));
    auto precision = int_arg(arg(args, kwargs, 0, "precision"), 0, "round's precision");
    if (!precision) return fail(std::move(precision.error()));
    const Value* method = arg(args, kwargs, 1, "method");
    const std::string how = method != nullptr && method->is_string() ? method->str() : "common";
    const double scale = std::pow(10.0, static_cast<double>(std::clamp<std::int64_t>(*precision, -300, 300)));
    const double x = input.as_float() * scale;
    const double r = how == "ceil" ? std::ceil(x) : how == "floor" ? std::floor(x) : std::nearbyint(x);
    return Value(r / scale);
  }
  if (name == "items") {
    List out;
    if (input.is_dict()) {
      for (const auto& [k, v] : input.dict().items) out.emplace_back(Value::tuple_of(List{Value(k), v}));
    } else if (!input.is_undefined()) {
      return fail(error("items needs a mapping, got '" + std::string(type_name(input)) + "'"));
    }
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    if (!input.is_dict()) return fail(error("dictsort needs a mapping"));
    List pairs;
    for (const auto& [k, v] : input.dict().items) pairs.emplace_back(Value::tuple_of(List{Value(k), v}));
    const Value* cs = arg(args, kwargs, 0, "case_sensitive");
    const Value* rev = arg(args, kwargs, 2, "reverse");
    const Value key_path("0");
    return sort_items(std::move(pairs), rev != nullptr && truthy(*rev), cs != nullptr && truthy(*cs), &key_path);
  }
  List items;
  if (!iterate(input, items)) return fail(error("'" + std::string(type_name(input)) + "' object is not iterable"));
  if (name == "list") return Value(std::move(items));
  if (name == "first") return items.empty() ? Value::undefined("first item of an empty sequence") : items.front();
  if (name == "last") return items.empty() ? Value::undefined("last item of an empty sequence") : items.back();
  if (name == "reverse") {
    if (input.is_string()) {
      std::string out;
      for (auto it = items.rbegin(); it != items.rend(); ++it) out += it->str();
      return Value(std::move(out));
    }
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "join") {
    const Value* sep = arg(args, kwargs, 0, "d");
    const Value* attribute = arg(args, kwargs, 1, "attribute");
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0 && sep != nullptr) out += to_str(*sep);
      out += to_str(attribute != nullptr && attribute->is_string() ? resolve_path(items[i], attribute->str()) : items[i]);
      if (out.size() > max_built_bytes) return fail(error("join result too large"));
    }
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return select_items(name, input, args);
  }
  if (name == "map") {
    List out;
    const Value* attribute = kwarg(kwargs, "attribute");
    for (const Value& item : items) {
      if (attribute != nullptr && attribute->is_string()) {
        Value v = resolve_path(item, attribute->str());
        const Value* def = kwarg(kwargs, "default");
        out.push_back(v.is_undefined() && def != nullptr ? *def : v);
      } else if (!args.empty() && args[0].is_string()) {
        if (!is_known_filter(args[0].str()) || args[0].str() == "map") {
          return fail(error("map cannot apply the filter '" + args[0].str() + "'", ErrorKind::unsupported));
        }
        auto r = apply_filter(args[0].str(), item, Args(args.begin() + 1, args.end()), {});
        if (!r) return fail(std::move(r.error()));
        out.push_back(std::move(*r));
      } else {
        return fail(error("map needs a filter name or attribute="));
      }
    }
    return Value(std::move(out));
  }
  if (name == "sort") {
    const Value* rev = arg(args, kwargs, 0, "reverse");
    const Value* cs = arg(args, kwargs, 1, "case_sensitive");
    return sort_items(std::move(items), rev != nullptr && truthy(*rev), cs != nullptr && truthy(*cs),
                      arg(args, kwargs, 2, "attribute"));
  }
  if (name == "unique") {
    const Value* cs = arg(args, kwargs, 0, "case_sensitive");
    const bool sensitive = cs != nullptr && truthy(*cs);
    List out;
    List keys;
    for (const Value& item : items) {
      const Value key = !sensitive && item.is_string() ? Value(lower(item.str())) : item;
      if (std::none_of(keys.begin(), keys.end(), [&](const Value& k) { return equals(k, key); })) {
        keys.push_back(key);
        out.push_back(item);
      }
    }
    return Value(std::move(out));
  }
  if (name == "max" || name == "min") {
    if (items.empty()) return Value::undefined("no items");
    auto sorted = sort_items(std::move(items), false, false, arg(args, kwargs, 1, "attribute"));
    if (!sorted) return fail(std::move(sorted.error()));
    return name == "min" ? sorted->list().front() : sorted->list().back();
  }
  if (name == "sum") {
    const Value* attribute = arg(args, kwargs, 0, "attribute");
    const Value* start = arg(args, kwargs, 1, "start");
    Value total = start != nullptr ? *start : Value(0);
    for (const Value& item : items) {
      const Value v = attribute != nullptr && attribute->is_string() ? resolve_path(item, attribute->str()) : item;
      if (!v.is_number() || !total.is_number()) return fail(error("sum needs numbers"));
      if (v.is_float() || total.is_float()) {
        total = Value(total.as_float() + v.as_float());
      } else {
        std::int64_t r = 0;
        if (__builtin_add_overflow(total.as_int(), v.as_int(), &r)) return fail(error("integer overflow in sum"));
        total = Value(r);
      }
    }
    return total;
  }
  return fail(error("the filter '" + std::string(name) + "' is not supported", ErrorKind::unsupported));
}


}  // namespace sluice::jinja
