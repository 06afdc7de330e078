// A small streaming JSON writer: every response body and error body the gateway produces is built with it,
// so escaping and number formatting are decided in one place.
//
// Contract: the caller emits a well-formed sequence (key() before each value inside an object, balanced
// begin/end); separators are inserted automatically. Strings are escaped per RFC 8259; invalid UTF-8 in
// a string is replaced by U+FFFD so the output is always valid UTF-8. Doubles are written in the shortest
// form that reads back to the same value; NaN and infinities, which JSON cannot hold, are written as null.
// Not thread-safe; one writer per body.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sluice {

class JsonWriter {
 public:
  JsonWriter() = default;

  void begin_object();
  void end_object();
  void begin_array();
  void end_array();

  void key(std::string_view k);
  void string(std::string_view s);
  void number(std::int64_t v);
  void number(std::uint64_t v);
  void number(double v);
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  void number(T v) {
    if constexpr (std::is_signed_v<T>) {
      number(static_cast<std::int64_t>(v));
    } else {
      number(static_cast<std::uint64_t>(v));
    }
  }
  void boolean(bool v);
  void null();
  // Inserts `json` verbatim as one value; the caller guarantees it is a complete, valid JSON value.
  void raw(std::string_view json);

  // The text written so far. take() moves it out and leaves the writer empty and reusable.
  const std::string& str() const { return out_; }
  std::string take();

 private:
  void before_value();

  std::string out_;
  // One entry per open container: true once it holds at least one element (a comma is then needed).
  std::vector<bool> has_elements_;
  bool after_key_ = false;
};

// Appends `s` to `out` as a JSON string literal, quotes included (the escaping JsonWriter uses).
void append_json_string(std::string& out, std::string_view s);

// `s` as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

}  // namespace sluice
