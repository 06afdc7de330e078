// A small, strict JSON reader for the few JSON files the engine reads itself: a model's config.json, a
// safetensors header and a sharded checkpoint's index. (Request bodies are parsed by the gateway with
// simdjson; the engine library does not link it.)
//
// Strict RFC 8259: one value with optional surrounding whitespace, no comments, no trailing commas, no
// NaN/Infinity, no duplicate object keys, strings must be valid UTF-8 with escapes decoded (surrogate pairs
// joined, lone surrogates rejected). Every read is bounds-checked; nesting depth and input size are capped, so
// hostile input yields a JsonError naming the byte offset, never a crash, exception or unbounded allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/util/result.h"

namespace sluice::json {

enum class Kind : std::uint8_t { null, boolean, number, string, array, object };

std::string_view kind_name(Kind kind);

class Value {
 public:
  Value() = default;

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_object() const { return kind_ == Kind::object; }
  bool is_array() const { return kind_ == Kind::array; }

  std::optional<bool> as_bool() const;
  // Any number, rounded to the nearest double.
  std::optional<double> as_f64() const;
  // A number written as an integer literal (no fraction or exponent) whose value fits the result type.
  std::optional<std::int64_t> as_i64() const;
  std::optional<std::uint64_t> as_u64() const;
  const std::string* as_string() const { return kind_ == Kind::string ? &text_ : nullptr; }

  // Elements of an array, or values of an object's members (in document order); empty for other kinds.
  const std::vector<Value>& items() const { return items_; }
  // Keys of an object's members, parallel to items(); empty for other kinds.
  const std::vector<std::string>& keys() const { return keys_; }
  std::size_t size() const { return items_.size(); }

  // The member named `key` of an object; nullptr when absent or when this is not an object.
  const Value* find(std::string_view key) const;

 private:
  friend class Parser;

  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool integer_ = false;         // number written without fraction or exponent
  bool negative_ = false;        // integer literal with a minus sign
  bool magnitude_fits_ = false;  // magnitude_ holds the literal's exact absolute value
  std::uint64_t magnitude_ = 0;
  double number_ = 0.0;
  std::string text_;  // string contents
  std::vector<std::string> keys_;
  std::vector<Value> items_;
};

struct JsonError {
  std::string message;  // "byte <offset>: <what was wrong>"
  std::size_t offset = 0;
};

struct ParseLimits {
  std::size_t max_bytes = std::size_t{256} << 20;
  std::size_t max_depth = 64;
};

Result<Value, JsonError> parse(std::string_view text, const ParseLimits& limits = {});

}  // namespace sluice::json
