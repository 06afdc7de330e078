// Whole-string number parsing for command-line tools: the text must be exactly one number of type T (no sign
// for unsigned types, no leading spaces, nothing after it).
#pragma once

#include <charconv>
#include <string_view>
#include <system_error>

namespace sluice {

template <class T>
bool parse_number(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace sluice
