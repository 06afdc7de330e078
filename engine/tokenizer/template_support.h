// Helpers shared by the renderer's filters, tests and functions (template_builtins.cpp,
// template_functions.cpp): argument access and Python's string operations. Internal to the renderer.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/template_ast.h"
#include "engine/tokenizer/template_builtins.h"
#include "engine/tokenizer/template_value.h"
#include "engine/util/result.h"

namespace sluice::jinja {

// Bounds on values templates can build, so a crafted template cannot exhaust memory.
inline constexpr std::int64_t max_built_items = 1'000'000;
inline constexpr std::size_t max_built_bytes = 64u << 20;

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

inline Error error(std::string message, ErrorKind kind = ErrorKind::render) {
  return Error{kind, std::move(message), 0};
}
inline Error undefined_error(const Value& v) { return error("'" + v.undefined_name() + "' is undefined"); }

const Value* kwarg(const Kwargs& kwargs, std::string_view name);
// Positional argument i, else keyword `name`, else nullptr.
const Value* arg(const Args& args, const Kwargs& kwargs, std::size_t i, std::string_view name);
// An integer argument; `fallback` when absent or None.
Result<std::int64_t, Error> int_arg(const Value* v, std::int64_t fallback, std::string_view what);

// Python's str.isspace() for one code point, and for one UTF-8 unit of text.
bool is_py_space(char32_t cp);
bool is_space_unit(std::string_view unit);
// The UTF-8 units (code points, or single invalid bytes) of s.
std::vector<std::string_view> code_points(std::string_view s);

// str.strip / lstrip / rstrip: Python whitespace, or any code point of `chars` when it is a string.
std::string strip(const std::string& s, const Value* chars, bool left, bool right);
char ascii_upper(char c);
char ascii_lower(char c);
bool is_ascii_letter(char c);
std::string upper(std::string s);
std::string lower(std::string s);
std::string capitalize(const std::string& s);
std::string py_title(const std::string& s);     // str.title()
std::string jinja_title(const std::string& s);  // the title filter
// str.replace; count < 0 replaces all.
std::string replace(const std::string& s, const std::string& from, const std::string& to, std::int64_t count);
// str.split(sep, maxsplit): whitespace runs when sep is null or None.
List split(const std::string& s, const Value* sep, std::int64_t maxsplit);
List splitlines(const std::string& s);
std::string html_escape(const std::string& s);

}  // namespace sluice::jinja
