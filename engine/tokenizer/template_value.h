// Values of the chat-template renderer (a Jinja subset; see template_renderer.h). They follow Python's and
// Jinja's semantics where templates can observe them: truthiness, str() and repr() output, equality across
// int/float/bool, insertion-ordered dicts, undefined names that print as nothing but fail when used.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::jinja {

struct Value;
using List = std::vector<Value>;

// String-keyed, insertion-ordered mapping (chat messages and namespaces are small; lookups are linear).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

struct Undefined {
  std::string name;  // what was looked up, for error messages
};
struct None {};
// A function the renderer knows by name; `self` is the receiver of a bound method (string or dict).
struct Callable {
  std::string name;
  std::shared_ptr<const Value> self;
};
// namespace(): the one mutable object templates can create.
struct Namespace {
  std::shared_ptr<Dict> attrs;
};

struct Value {
  using Storage = std::variant<Undefined, None, bool, std::int64_t, double, std::string,
                               std::shared_ptr<const List>, std::shared_ptr<const Dict>, Namespace, Callable>;
  Storage data;
  bool tuple = false;  // a list that Python would hold as a tuple: prints as (a, b), never equals a list

  Value() : data(Undefined{}) {}
  Value(None) : data(None{}) {}                 // NOLINT: implicit by design
  Value(bool b) : data(b) {}                    // NOLINT
  Value(std::int64_t i) : data(i) {}            // NOLINT
  Value(int i) : data(std::int64_t{i}) {}       // NOLINT
  Value(double f) : data(f) {}                  // NOLINT
  Value(std::string s) : data(std::move(s)) {}  // NOLINT
  Value(const char* s) : data(std::string(s)) {}  // NOLINT
  Value(List l) : data(std::make_shared<const List>(std::move(l))) {}  // NOLINT
  Value(Dict d) : data(std::make_shared<const Dict>(std::move(d))) {}  // NOLINT
  Value(Namespace n) : data(std::move(n)) {}    // NOLINT
  Value(Callable c) : data(std::move(c)) {}     // NOLINT
  static Value tuple_of(List l) {
    Value v(std::move(l));
    v.tuple = true;
    return v;
  }
  static Value undefined(std::string name) {
    Value v;
    v.data = Undefined{std::move(name)};
    return v;
  }

  bool is_undefined() const { return std::holds_alternative<Undefined>(data); }
  bool is_none() const { return std::holds_alternative<None>(data); }
  bool is_bool() const { return std::holds_alternative<bool>(data); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(data); }
  bool is_float() const { return std::holds_alternative<double>(data); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(data); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<const List>>(data); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<const Dict>>(data); }
  bool is_namespace() const { return std::holds_alternative<Namespace>(data); }
  bool is_callable() const { return std::holds_alternative<Callable>(data); }

  // Accessors; call only after the matching is_*().
  const std::string& str() const { return std::get<std::string>(data); }
  const List& list() const { return *std::get<std::shared_ptr<const List>>(data); }
  const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(data); }
  std::int64_t as_int() const;  // int or bool
  double as_float() const;      // int, bool or float
  const std::string& undefined_name() const { return std::get<Undefined>(data).name; }
};

// Python's type name ("str", "int", "list", "dict", "NoneType", ...), for error messages.
std::string_view type_name(const Value& v);
bool truthy(const Value& v);
// Python str(): strings as they are, None → "None", True → "True", floats in repr form, containers as repr;
// undefined → "".
std::string to_str(const Value& v);
// Python repr().
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent) with indent < 0 meaning None; fails on values JSON has
// no form for (undefined, callables), reporting false.
bool to_json(const Value& v, int indent, std::string& out);
// Python ==.
bool equals(const Value& a, const Value& b);
// Python <, for numbers with numbers and strings with strings (code point order); false in `ok` otherwise.
bool less_than(const Value& a, const Value& b, bool& ok);
// Number of items: code points of a string, elements of a list, keys of a dict; -1 for values without one.
std::int64_t length(const Value& v);

}  // namespace sluice::jinja
