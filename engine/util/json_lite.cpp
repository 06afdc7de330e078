#include "engine/util/json_lite.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>
#include <unordered_set>
#include <utility>

namespace sluice::json {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::null:
      return "null";
    case Kind::boolean:
      return "boolean";
    case Kind::number:
      return "number";
    case Kind::string:
      return "string";
    case Kind::array:
      return "array";
    case Kind::object:
      return "object";
  }
  return "unknown";
}

std::optional<bool> Value::as_bool() const {
  if (kind_ != Kind::boolean) return std::nullopt;
  return bool_;
}

std::optional<double> Value::as_f64() const {
  if (kind_ != Kind::number) return std::nullopt;
  return number_;
}

std::optional<std::int64_t> Value::as_i64() const {
  if (kind_ != Kind::number || !integer_ || !magnitude_fits_) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!negative_) {
    if (magnitude_ > kMax) return std::nullopt;
    return static_cast<std::int64_t>(magnitude_);
  }
  if (magnitude_ > kMax + 1) return std::nullopt;
  if (magnitude_ == kMax + 1) return std::numeric_limits<std::int64_t>::min();
  return -static_cast<std::int64_t>(magnitude_);
}

std::optional<std::uint64_t> Value::as_u64() const {
  if (kind_ != Kind::number || !integer_ || !magnitude_fits_) return std::nullopt;
  if (negative_ && magnitude_ != 0) return std::nullopt;
  return magnitude_;
}

const Value* Value::find(std::string_view key) const {
  if (kind_ != Kind::object) return nullptr;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return &items_[i];
  }
  return nullptr;
}

// Recursive descent over the input; recursion depth is bounded by limits.max_depth.
class Parser {
 public:
  Parser(std::string_view text, const ParseLimits& limits) : s_(text), limits_(limits) {}

  Result<Value, JsonError> run() {
    if (s_.size() > limits_.max_bytes) {
      return fail(
          JsonError{fmt::format("byte 0: input of {} bytes exceeds the limit of {}", s_.size(), limits_.max_bytes), 0});
    }
    Value v;
    skip_ws();
    if (!parse_value(v, 0)) return fail(std::move(error_));
    skip_ws();
    if (pos_ != s_.size()) {
      error("unexpected data after the top-level value");
      return fail(std::move(error_));
    }
    return v;
  }

 private:
  bool error(std::string_view what) {
    error_ = JsonError{fmt::format("byte {}: {}", pos_, what), pos_};
    return false;
  }

  void skip_ws() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return error("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parse_value(Value& out, std::size_t depth) {
    if (pos_ >= s_.size()) return error("unexpected end of input");
    switch (s_[pos_]) {
      case '{':
        return parse_object(out, depth + 1);
      case '[':
        return parse_array(out, depth + 1);
      case '"':
        out.kind_ = Kind::string;
        return parse_string(out.text_);
      case 't':
        out.kind_ = Kind::boolean;
        out.bool_ = true;
        return literal("true");
      case 'f':
        out.kind_ = Kind::boolean;
        out.bool_ = false;
        return literal("false");
      case 'n':
        out.kind_ = Kind::null;
        return literal("null");
      default:
        return parse_number(out);
    }
  }

  bool parse_object(Value& out, std::size_t depth) {
    if (depth > limits_.max_depth) return error("nesting is deeper than the limit");
    out.kind_ = Kind::object;
    ++pos_;  // '{'
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    std::unordered_set<std::string> seen;  // filled once the object is large
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a string key");
      const std::size_t key_at = pos_;
      std::string key;
      if (!parse_string(key)) return false;
      // Duplicate keys are an error. Small objects compare linearly; large ones (a tokenizer's vocabulary has
      // 10^5 keys) go through a hash set so the check stays linear in the object's size.
      bool duplicate = false;
      if (out.keys_.size() < 32) {
        for (const auto& k : out.keys_) duplicate = duplicate || k == key;
      } else {
        if (seen.empty()) {
          for (const auto& k : out.keys_) seen.insert(k);
        }
        duplicate = !seen.insert(key).second;
      }
      if (duplicate) {
        pos_ = key_at;
        return error(fmt::format("duplicate key \"{}\"", key));
      }
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return error("expected ':'");
      ++pos_;
      skip_ws();
      Value item;
      if (!parse_value(item, depth)) return false;
      out.keys_.push_back(std::move(key));
      out.items_.push_back(std::move(item));
      skip_ws();
      if (pos_ >= s_.size()) return error("unexpected end of input in an object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return error("expected ',' or '}'");
    }
  }

  bool parse_array(Value& out, std::size_t depth) {
    if (depth > limits_.max_depth) return error("nesting is deeper than the limit");
    out.kind_ = Kind::array;
    ++pos_;  // '['
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      Value item;
      if (!parse_value(item, depth)) return false;
      out.items_.push_back(std::move(item));
      skip_ws();
      if (pos_ >= s_.size()) return error("unexpected end of input in an array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return error("expected ',' or ']'");
    }
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool read_hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) return error("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = hex_digit(s_[pos_ + i]);
      if (d < 0) return error("invalid \\u escape");
      out = out * 16 + static_cast<std::uint32_t>(d);
    }
    pos_ += 4;
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Length of the well-formed UTF-8 sequence starting at pos_ (lead byte >= 0x80), or 0 when ill-formed.
  std::size_t utf8_sequence_length() const {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s_[pos_ + i]); };
    const unsigned char b0 = byte(0);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;  // no encoded surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    if (s_.size() - pos_ < n) return 0;
    if (byte(1) < lo || byte(1) > hi) return 0;
    for (std::size_t i = 2; i < n; ++i) {
      if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
    }
    return n;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= s_.size()) return error("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return error("control character in a string");
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence_length();
        if (n == 0) return error("invalid UTF-8 in a string");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp;
          if (!read_hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return error("lone low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.size() - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
              return error("high surrogate without a low surrogate");
            }
            pos_ += 2;
            std::uint32_t low;
            if (!read_hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return error("high surrogate without a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          return error("invalid escape");
      }
    }
  }

  bool parse_number(Value& out) {
    const std::size_t start = pos_;
    const auto digit = [&](std::size_t i) { return i < s_.size() && s_[i] >= '0' && s_[i] <= '9'; };
    bool negative = false;
    if (pos_ < s_.size() && s_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    if (!digit(pos_)) return error("invalid value");
    std::uint64_t magnitude = 0;
    bool fits = true;
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit(pos_)) return error("leading zero in a number");
    } else {
      while (digit(pos_)) {
        const auto d = static_cast<std::uint64_t>(s_[pos_] - '0');
        if (magnitude > (std::numeric_limits<std::uint64_t>::max() - d) / 10) fits = false;
        if (fits) magnitude = magnitude * 10 + d;
        ++pos_;
      }
    }
    bool integer = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integer = false;
      ++pos_;
      if (!digit(pos_)) return error("digit expected after '.'");
      while (digit(pos_)) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integer = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit(pos_)) return error("digit expected in an exponent");
      while (digit(pos_)) ++pos_;
    }
    double d = 0.0;
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    const auto [ptr, ec] = std::from_chars(first, last, d);
    // Out-of-range literals (1e999) are rejected: a config value that overflows a double is not meaningful.
    if (ec != std::errc{} || ptr != last || !std::isfinite(d)) {
      pos_ = start;
      return error("number out of range");
    }
    out.kind_ = Kind::number;
    out.number_ = d;
    out.integer_ = integer;
    out.negative_ = negative;
    out.magnitude_fits_ = integer && fits;
    out.magnitude_ = magnitude;
    return true;
  }

  std::string_view s_;
  ParseLimits limits_;
  std::size_t pos_ = 0;
  JsonError error_;
};

Result<Value, JsonError> parse(std::string_view text, const ParseLimits& limits) {
  return Parser(text, limits).run();
}

}  // namespace sluice::json
