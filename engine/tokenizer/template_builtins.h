// The filters, tests, methods and global functions chat templates may call, with Jinja's and Python's
// semantics as transformers exposes them (its tojson: ensure_ascii off; raise_exception; strftime_now;
// namespace). Case mappings (upper, lower, title, capitalize) change ASCII letters only.
//
// Errors returned here carry no line; the renderer adds the line of the calling expression.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tokenizer/template_ast.h"
#include "engine/tokenizer/template_value.h"
#include "engine/util/result.h"

namespace sluice::jinja {

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

Result<Value, Error> apply_filter(std::string_view name, const Value& input, const Args& args, const Kwargs& kwargs);
Result<bool, Error> apply_test(std::string_view name, const Value& input, const Args& args);

// obj.name: dict keys (or the dict methods items, keys, values, get), namespace attributes, string methods.
// Undefined when there is no such attribute. `obj` must not be undefined (the renderer reports that).
Value get_attribute(const Value& obj, std::string_view name);
// obj[key]: dict keys, list and string indexes (negative from the end), namespace attributes; falls back to
// get_attribute for string keys, as Jinja does. Undefined when absent.
Value get_item(const Value& obj, const Value& key);

// Calls a global function (callee.self empty) or a bound method.
Result<Value, Error> call(const Callable& callee, const Args& args, const Kwargs& kwargs);

// The global functions templates see: raise_exception, namespace, range, strftime_now, dict.
bool is_global_function(std::string_view name);

// A list's, dict's (its keys) or string's (its code points) items; false for values that cannot be iterated.
// Undefined iterates as empty.
bool iterate(const Value& v, List& items);

}  // namespace sluice::jinja
