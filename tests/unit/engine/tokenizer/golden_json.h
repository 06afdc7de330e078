// A small JSON reader for the tokenizer tests' golden files (JSON Lines written by
// scripts/make_tokenizer_golden.py). Test-only: the engine library itself never reads JSON.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tokenizer/utf8.h"

namespace sluice::test_json {

struct Json {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  double number = 0;
  bool integer = false;  // the number was written without a fraction or exponent
  std::string string;
  std::vector<Json> array;
  // Object members in file order (parallel vectors: std::pair cannot hold the incomplete Json here).
  std::vector<std::string> keys;
  std::vector<Json> values;

  const Json* get(std::string_view key) const;  // the member named key, or null
  bool is_null() const { return kind == Kind::null; }
};

inline const Json* Json::get(std::string_view key) const {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &values[i];
  }
  return nullptr;
}

class Reader {
 public:
  explicit Reader(std::string_view text) : s_(text) {}

  std::optional<Json> document() {
    auto v = value();
    skip_space();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::optional<unsigned> hex4() {
    if (pos_ + 4 > s_.size()) return std::nullopt;
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else return std::nullopt;
    }
    return v;
  }
  std::optional<std::string> string() {
    if (pos_ >= s_.size() || s_[pos_] != '"') return std::nullopt;
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return std::nullopt;
      c = s_[pos_++];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '/': out += '/'; break;
        case '\\': out += '\\'; break;
        case '"': out += '"'; break;
        case 'u': {
          auto hi = hex4();
          if (!hi) return std::nullopt;
          char32_t cp = *hi;
          if (cp >= 0xD800 && cp <= 0xDBFF && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            auto lo = hex4();
            if (!lo) return std::nullopt;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (*lo - 0xDC00);
          }
          utf8::append_code_point(out, cp);
          break;
        }
        default: return std::nullopt;
      }
    }
    if (pos_ >= s_.size()) return std::nullopt;
    ++pos_;
    return out;
  }
  std::optional<Json> value() {
    skip_space();
    if (pos_ >= s_.size()) return std::nullopt;
    Json j;
    const char c = s_[pos_];
    if (c == 'n' && literal("null")) return j;
    if (c == 't' && literal("true")) {
      j.kind = Json::Kind::boolean;
      j.boolean = true;
      return j;
    }
    if (c == 'f' && literal("false")) {
      j.kind = Json::Kind::boolean;
      return j;
    }
    if (c == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      j.kind = Json::Kind::string;
      j.string = std::move(*s);
      return j;
    }
    if (c == '[') {
      ++pos_;
      j.kind = Json::Kind::array;
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return j;
      }
      while (true) {
        auto item = value();
        if (!item) return std::nullopt;
        j.array.push_back(std::move(*item));
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return j;
        }
        return std::nullopt;
      }
    }
    if (c == '{') {
      ++pos_;
      j.kind = Json::Kind::object;
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return j;
      }
      while (true) {
        skip_space();
        auto key = string();
        skip_space();
        if (!key || pos_ >= s_.size() || s_[pos_] != ':') return std::nullopt;
        ++pos_;
        auto item = value();
        if (!item) return std::nullopt;
        j.keys.push_back(std::move(*key));
        j.values.push_back(std::move(*item));
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return j;
        }
        return std::nullopt;
      }
    }
    std::size_t end = pos_;
    while (end < s_.size() && std::string_view("+-0123456789.eE").find(s_[end]) != std::string_view::npos) ++end;
    if (end == pos_) return std::nullopt;
    j.kind = Json::Kind::number;
    const std::string token(s_.substr(pos_, end - pos_));
    j.number = std::stod(token);
    j.integer = token.find_first_of(".eE") == std::string::npos;
    pos_ = end;
    return j;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// Every line of a JSON Lines file; an unreadable file or line yields an empty result.
inline std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = Reader(line).document();
    if (!j) return {};
    out.push_back(std::move(*j));
  }
  return out;
}

inline std::string fixture_path(std::string_view name) {
  return std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + std::string(name);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace sluice::test_json
