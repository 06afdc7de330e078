#include "engine/tokenizer/template_support.h"

#include "engine/tokenizer/unicode_class.h"
#include "engine/tokenizer/utf8.h"

namespace sluice::jinja {

const Value* kwarg(const Kwargs& kwargs, std::string_view name) {
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Positional argument i, else keyword `name`, else nullptr.
const Value* arg(const Args& args, const Kwargs& kwargs, std::size_t i, std::string_view name) {
  if (i < args.size()) return &args[i];
  return kwarg(kwargs, name);
}

Result<std::int64_t, Error> int_arg(const Value* v, std::int64_t fallback, std::string_view what) {
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) return fail(error(std::string(what) + " must be an integer"));
  return v->as_int();
}

bool is_py_space(char32_t cp) {
  return unicode::classify(cp) == unicode::CharClass::whitespace || (cp >= 0x1C && cp <= 0x1F);
}

std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  for (std::size_t pos = 0; pos < s.size();) {
    const std::size_t len = utf8::decode(s, pos).length;
    out.push_back(s.substr(pos, len));
    pos += len;
  }
  return out;
}

bool is_space_unit(std::string_view unit) {
  const utf8::Decoded d = utf8::decode(unit, 0);
  return d.valid && is_py_space(d.code_point);
}

// str.strip / lstrip / rstrip: Python whitespace, or any code point of `chars`.
std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  const std::vector<std::string_view> units = code_points(s);
  std::vector<std::string_view> set;
  const bool use_set = chars != nullptr && chars->is_string();
  if (use_set) set = code_points(chars->str());
  auto strippable = [&](std::string_view u) {
    return use_set ? std::find(set.begin(), set.end(), u) != set.end() : is_space_unit(u);
  };
  std::size_t b = 0;
  std::size_t e = units.size();
  while (left && b < e && strippable(units[b])) ++b;
  while (right && e > b && strippable(units[e - 1])) --e;
  std::string out;
  for (std::size_t i = b; i < e; ++i) out.append(units[i]);
  return out;
}

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
std::string upper(std::string s) {
  for (char& c : s) c = ascii_upper(c);
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = ascii_lower(c);
  return s;
}
std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = ascii_upper(out[0]);
  return out;
}
bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python str.title(): a letter after a non-letter starts a word.
std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    const bool letter = is_ascii_letter(c) || static_cast<unsigned char>(c) >= 0x80;
    if (is_ascii_letter(c)) c = prev_letter ? ascii_lower(c) : ascii_upper(c);
    prev_letter = letter;
  }
  return out;
}

// Jinja's title filter: words are split at whitespace, '-', and opening brackets.
std::string jinja_title(const std::string& s) {
  std::string out = s;
  bool word_start = true;
  for (char& c : out) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' || c == '(' || c == '{' || c == '[' ||
        c == '<') {
      word_start = true;
      continue;
    }
    c = word_start ? ascii_upper(c) : ascii_lower(c);
    word_start = false;
  }
  return out;
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, std::int64_t count) {
  std::string out;
  std::size_t pos = 0;
  std::int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` around every code point.
    for (std::string_view u : code_points(s)) {
      if (count >= 0 && done >= count) {
        out.append(u);
        continue;
      }
      out += to;
      out.append(u);
      ++done;
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  while (count < 0 || done < count) {
    const std::size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

List split(const std::string& s, const Value* sep, std::int64_t maxsplit) {
  List out;
  if (sep == nullptr || sep->is_none()) {
    std::string word;
    bool in_word = false;
    std::int64_t splits = 0;
    for (std::string_view u : code_points(s)) {
      if (is_space_unit(u) && (maxsplit < 0 || splits < maxsplit || !in_word)) {
        if (in_word) {
          out.emplace_back(std::move(word));
          word.clear();
          in_word = false;
          ++splits;
        }
        continue;
      }
      word.append(u);
      in_word = true;
    }
    if (in_word) out.emplace_back(strip(word, nullptr, false, true));
    return out;
  }
  const std::string& d = sep->str();
  std::size_t pos = 0;
  std::int64_t splits = 0;
  while (maxsplit < 0 || splits < maxsplit) {
    const std::size_t at = s.find(d, pos);
    if (at == std::string::npos) break;
    out.emplace_back(s.substr(pos, at - pos));
    pos = at + d.size();
    ++splits;
  }
  out.emplace_back(s.substr(pos));
  return out;
}

// str.splitlines() for "\n", "\r\n" and "\r": no empty item after a final line break.
List splitlines(const std::string& s) {
  List out;
  std::string line;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out.emplace_back(std::move(line));
      line.clear();
    } else {
      line += s[i];
    }
  }
  if (!line.empty()) out.emplace_back(std::move(line));
  return out;
}


std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}


}  // namespace sluice::jinja
