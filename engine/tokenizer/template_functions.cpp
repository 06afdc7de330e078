// The parts of template_builtins.h that reach into values: attribute and item access, iteration, and calls
// of global functions and of string and dict methods.
#include <algorithm>
#include <array>
#include <ctime>

#include "engine/tokenizer/template_builtins.h"
#include "engine/tokenizer/template_support.h"

namespace sluice::jinja {
namespace {

constexpr std::array<std::string_view, 5> global_names{"raise_exception", "namespace", "range", "strftime_now",
                                                       "dict"};
constexpr std::array<std::string_view, 4> dict_methods{"items", "keys", "values", "get"};
constexpr std::array<std::string_view, 16> string_methods{
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
    "lower", "title",  "capitalize", "replace", "find", "count", "splitlines", "join"};

}  // namespace

bool is_global_function(std::string_view name) { return contains(global_names, name); }

bool iterate(const Value& v, List& items) {
  items.clear();
  if (v.is_undefined()) return true;
  if (v.is_list()) {
    items = v.list();
    return true;
  }
  if (v.is_dict()) {
    for (const auto& [k, val] : v.dict().items) items.emplace_back(k);
    return true;
  }
  if (v.is_string()) {
    for (std::string_view u : code_points(v.str())) items.emplace_back(std::string(u));
    return true;
  }
  return false;
}

Value get_attribute(const Value& obj, std::string_view name) {
  if (obj.is_dict()) {
    if (contains(dict_methods, name)) return Value(Callable{std::string(name), std::make_shared<const Value>(obj)});
    if (const Value* v = obj.dict().find(name)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = std::get<Namespace>(obj.data).attrs->find(name)) return *v;
  } else if (obj.is_string()) {
    if (contains(string_methods, name)) return Value(Callable{std::string(name), std::make_shared<const Value>(obj)});
  }
  return Value::undefined(std::string(type_name(obj)) + " object has no attribute '" + std::string(name) + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    std::int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto n = static_cast<std::int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[static_cast<std::size_t>(i)];
    } else {
      const std::vector<std::string_view> units = code_points(obj.str());
      const auto n = static_cast<std::int64_t>(units.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(std::string(units[static_cast<std::size_t>(i)]));
    }
    return Value::undefined("index " + std::to_string(key.as_int()) + " out of range");
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      if (const Value* v = obj.dict().find(key.str())) return *v;
    }
    return get_attribute(obj, key.str());
  }
  return Value::undefined(std::string(type_name(obj)) + " object has no item " + repr(key));
}


Result<Value, Error> call(const Callable& callee, const Args& args, const Kwargs& kwargs) {
  const std::string& name = callee.name;
  if (!callee.self) {
    if (name == "raise_exception") {
      return fail(error(args.empty() ? std::string("raise_exception() called") : to_str(args[0]), ErrorKind::raised));
    }
    if (name == "namespace" || name == "dict") {
      Dict d;
      if (!args.empty() && args[0].is_dict()) d = args[0].dict();
      for (const auto& [k, v] : kwargs) d.set(k, v);
      if (name == "dict") return Value(std::move(d));
      return Value(Namespace{std::make_shared<Dict>(std::move(d))});
    }
    if (name == "range") {
      std::int64_t start = 0;
      std::int64_t stop = 0;
      std::int64_t step = 1;
      for (const Value& a : args) {
        if (!a.is_int() && !a.is_bool()) return fail(error("range() needs integers"));
      }
      if (args.size() == 1) {
        stop = args[0].as_int();
      } else if (args.size() == 2 || args.size() == 3) {
        start = args[0].as_int();
        stop = args[1].as_int();
        if (args.size() == 3) step = args[2].as_int();
      } else {
        return fail(error("range() takes 1 to 3 arguments"));
      }
      if (step == 0) return fail(error("range() step must not be zero"));
      List out;
      for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (static_cast<std::int64_t>(out.size()) >= max_built_items) return fail(error("range() too large"));
        out.emplace_back(i);
      }
      return Value(std::move(out));
    }
    if (name == "strftime_now") {
      if (args.empty() || !args[0].is_string()) return fail(error("strftime_now() needs a format string"));
      const std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[512];
      const std::size_t n = std::strftime(buf, sizeof(buf), args[0].str().c_str(), &local);
      return Value(std::string(buf, n));
    }
    return fail(error("the function '" + name + "' is not supported", ErrorKind::unsupported));
  }
  const Value& self = *callee.self;
  if (self.is_dict()) {
    const Dict& d = self.dict();
    List out;
    if (name == "items") {
      for (const auto& [k, v] : d.items) out.emplace_back(Value::tuple_of(List{Value(k), v}));
    } else if (name == "keys") {
      for (const auto& [k, v] : d.items) out.emplace_back(k);
    } else if (name == "values") {
      for (const auto& [k, v] : d.items) out.push_back(v);
    } else {  // get
      if (args.empty()) return fail(error("get() needs a key"));
      const Value* v = args[0].is_string() ? d.find(args[0].str()) : nullptr;
      if (v != nullptr) return *v;
      return args.size() > 1 ? args[1] : Value(None{});
    }
    return Value(std::move(out));
  }
  const std::string& s = self.str();
  const Value* a0 = args.empty() ? nullptr : &args[0];
  if (name == "strip") return Value(strip(s, a0, true, true));
  if (name == "lstrip") return Value(strip(s, a0, true, false));
  if (name == "rstrip") return Value(strip(s, a0, false, true));
  if (name == "upper") return Value(upper(s));
  if (name == "lower") return Value(lower(s));
  if (name == "title") return Value(py_title(s));
  if (name == "capitalize") return Value(capitalize(s));
  if (name == "split" || name == "rsplit") {
    auto maxsplit = int_arg(arg(args, kwargs, 1, "maxsplit"), -1, "maxsplit");
    if (!maxsplit) return fail(std::move(maxsplit.error()));
    const Value* sep = arg(args, kwargs, 0, "sep");
    if (sep != nullptr && !sep->is_none() && (!sep->is_string() || sep->str().empty())) {
      return fail(error("split() needs a non-empty string separator"));
    }
    if (name == "rsplit" && *maxsplit >= 0) return fail(error("rsplit() with maxsplit is not supported", ErrorKind::unsupported));
    return Value(split(s, sep, *maxsplit));
  }
  if (name == "splitlines") return Value(splitlines(s));
  if (name == "startswith" || name == "endswith") {
    if (a0 == nullptr) return fail(error(name + "() needs an argument"));
    List options;
    if (a0->is_list()) {
      options = a0->list();
    } else {
      options.push_back(*a0);
    }
    for (const Value& o : options) {
      if (!o.is_string()) return fail(error(name + "() needs strings"));
      const std::string& p = o.str();
      if (p.size() > s.size()) continue;
      if (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0) {
        return Value(true);
      }
    }
    return Value(false);
  }
  if (name == "replace") {
    if (args.size() < 2 || !args[0].is_string() || !args[1].is_string()) return fail(error("replace() needs two strings"));
    auto count = int_arg(args.size() > 2 ? &args[2] : nullptr, -1, "replace's count");
    if (!count) return fail(std::move(count.error()));
    return Value(replace(s, args[0].str(), args[1].str(), *count));
  }
  if (name == "find" || name == "count") {
    if (a0 == nullptr || !a0->is_string()) return fail(error(name + "() needs a string"));
    if (name == "count") {
      std::int64_t n = 0;
      if (a0->str().empty()) return Value(length(self) + 1);
      for (std::size_t p = s.find(a0->str()); p != std::string::npos; p = s.find(a0->str(), p + a0->str().size())) ++n;
      return Value(n);
    }
    const std::size_t at = s.find(a0->str());
    if (at == std::string::npos) return Value(-1);
    return Value(length(Value(s.substr(0, at))));
  }
  // join
  List items;
  if (a0 == nullptr || !iterate(*a0, items)) return fail(error("join() needs an iterable"));
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string()) return fail(error("join() needs strings"));
    if (i > 0) out += s;
    out += items[i].str();
  }
  return Value(std::move(out));
}


}  // namespace sluice::jinja
