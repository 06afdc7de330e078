#include "engine/tokenizer/template_lexer.h"

#include <cerrno>
#include <cstdlib>

#include "engine/tokenizer/template_support.h"
#include "engine/tokenizer/utf8.h"

namespace sluice::jinja {
namespace {

std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Length of the Python-whitespace run starting at pos.
std::size_t space_run(std::string_view s, std::size_t pos) {
  std::size_t i = pos;
  while (i < s.size()) {
    const utf8::Decoded d = utf8::decode(s, i);
    if (!d.valid || !is_py_space(d.code_point)) break;
    i += d.length;
  }
  return i - pos;
}

// s without its trailing Python whitespace.
std::string_view rstrip(std::string_view s) {
  std::size_t keep = 0;
  for (std::size_t i = 0; i < s.size();) {
    const utf8::Decoded d = utf8::decode(s, i);
    i += d.length;
    if (!d.valid || !is_py_space(d.code_point)) keep = i;
  }
  return s.substr(0, keep);
}

int count_newlines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

Token make_token(TokenKind kind, std::string text, int line) {
  Token t;
  t.kind = kind;
  t.text = std::move(text);
  t.line = line;
  return t;
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  Result<std::vector<Token>, Error> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const std::size_t at = next_tag(pos_);
      if (at == std::string::npos) {
        push_text(std::string_view(src_).substr(pos_));
        pos_ = src_.size();
        break;
      }
      std::string_view data = std::string_view(src_).substr(pos_, at - pos_);
      const char tag = src_[at + 1];
      const char sign = at + 2 < src_.size() ? src_[at + 2] : '\0';
      if (sign == '-') {
        data = rstrip(data);
      } else if (sign != '+' && tag != '{') {
        // lstrip_blocks: a block or comment tag alone on its line after spaces loses those spaces.
        const std::size_t nl = data.rfind('\n');
        const std::size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < data.size() &&
            space_run(data, l_pos) == data.size() - l_pos) {
          data = data.substr(0, l_pos);
        }
      }
      push_text(data);
      line_ += count_newlines(src_.substr(pos_, at - pos_));
      pos_ = at + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      Status<Error> s = tag == '#' ? comment(line_starting)
                                   : tag_body(tag == '{' ? TokenKind::expr_begin : TokenKind::stmt_begin,
                                              line_starting);
      if (!s) return fail(std::move(s.error()));
    }
    tokens_.push_back(make_token(TokenKind::end, "", line_));
    return std::move(tokens_);
  }

 private:
  std::size_t next_tag(std::size_t from) const {
    for (std::size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void push_text(std::string_view data) {
    if (!data.empty()) tokens_.push_back(make_token(TokenKind::text, std::string(data), line_));
  }

  Error error(std::string message) const { return Error{ErrorKind::syntax, std::move(message), line_}; }

  // The end of a block or comment: "+%}" keeps what follows, "-%}" eats all whitespace after it, "%}"
  // eats one newline (trim_blocks). Returns the end position, or npos when no end marker starts at pos.
  std::size_t match_end(std::size_t pos, char closer, bool block_like) const {
    const std::string_view rest = std::string_view(src_).substr(pos);
    const std::string marker{closer, '}'};
    if (rest.size() >= 3 && rest[0] == '+' && rest.substr(1, 2) == marker && block_like) return pos + 3;
    if (rest.size() >= 3 && rest[0] == '-' && rest.substr(1, 2) == marker) {
      return pos + 3 + space_run(src_, pos + 3);
    }
    if (rest.substr(0, 2) == marker) {
      std::size_t end = pos + 2;
      if (block_like && end < src_.size() && src_[end] == '\n') ++end;
      return end;
    }
    return std::string::npos;
  }

  Status<Error> comment(bool& line_starting) {
    for (std::size_t i = pos_; i < src_.size(); ++i) {
      const std::size_t end = match_end(i, '#', true);
      if (end == std::string::npos) continue;
      line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
      line_starting = src_[end - 1] == '\n';
      pos_ = end;
      return Ok{};
    }
    return fail(error("missing end of comment tag"));
  }

  Status<Error> tag_body(TokenKind begin, bool& line_starting) {
    const bool is_block = begin == TokenKind::stmt_begin;
    tokens_.push_back(make_token(begin, "", line_));
    int depth = 0;  // open brackets: an end marker inside them is an operator, as in Jinja
    while (true) {
      if (pos_ >= src_.size()) return fail(error(is_block ? "missing end of block tag" : "missing end of '{{'"));
      const std::size_t ws = space_run(src_, pos_);
      if (ws > 0) {
        line_ += count_newlines(std::string_view(src_).substr(pos_, ws));
        line_starting = src_[pos_ + ws - 1] == '\n';
        pos_ += ws;
        continue;
      }
      if (depth == 0) {
        const std::size_t end = match_end(pos_, is_block ? '%' : '}', is_block);
        if (end != std::string::npos) {
          line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
          line_starting = src_[end - 1] == '\n';
          tokens_.push_back(make_token(is_block ? TokenKind::stmt_end : TokenKind::expr_end, "", line_));
          pos_ = end;
          return Ok{};
        }
      }
      line_starting = false;
      const char c = src_[pos_];
      if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        std::size_t e = pos_;
        while (e < src_.size() && (is_name_start(src_[e]) || is_digit(src_[e]))) ++e;
        tokens_.push_back(make_token(TokenKind::name, src_.substr(pos_, e - pos_), line_));
        pos_ = e;
      } else if (c == '\'' || c == '"') {
        Status<Error> s = lex_string(c);
        if (!s) return s;
      } else {
        static constexpr std::string_view two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (std::string_view t : two) {
          if (std::string_view(src_).substr(pos_, 2) == t) op = std::string(t);
        }
        if (op.empty()) {
          if (std::string_view("+-/*%~[](){}=.,:|<>;").find(c) == std::string_view::npos) {
            return fail(error(std::string("unexpected character '") + c + "'"));
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        tokens_.push_back(make_token(TokenKind::op, op, line_));
        pos_ += op.size();
      }
    }
  }

  void lex_number() {
    std::string digits;
    std::size_t e = pos_;
    auto take_digits = [&] {
      while (e < src_.size() && (is_digit(src_[e]) || (src_[e] == '_' && e + 1 < src_.size() && is_digit(src_[e + 1])))) {
        if (src_[e] != '_') digits += src_[e];
        ++e;
      }
    };
    take_digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      digits += '.';
      ++e;
      take_digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      std::size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && is_digit(src_[x])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, e + 1, x - e - 1);
        e = x;
        take_digits();
      }
    }
    Token t = make_token(is_float ? TokenKind::floating : TokenKind::integer, src_.substr(pos_, e - pos_), line_);
    if (is_float) {
      t.floating = std::strtod(digits.c_str(), nullptr);
    } else {
      errno = 0;
      t.integer = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) {  // beyond 64 bits: keep the magnitude as a float rather than wrap
        t.kind = TokenKind::floating;
        t.floating = std::strtod(digits.c_str(), nullptr);
      }
    }
    tokens_.push_back(std::move(t));
    pos_ = e;
  }

  // Python string-literal escapes, as Jinja decodes them (unicode-escape).
  Status<Error> lex_string(char quote) {
    std::string value;
    std::size_t i = pos_ + 1;
    const int start_line = line_;
    while (true) {
      if (i >= src_.size()) return fail(Error{ErrorKind::syntax, "unterminated string", start_line});
      const char c = src_[i];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\' || i + 1 >= src_.size()) {
        value += c;
        ++i;
        continue;
      }
      const char e = src_[i + 1];
      i += 2;
      auto hex_escape = [&](std::size_t digits) {
        if (i + digits > src_.size()) return false;
        char32_t cp = 0;
        for (std::size_t k = 0; k < digits; ++k) {
          const char h = src_[i + k];
          const int v = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
          if (v < 0) return false;
          cp = cp * 16 + static_cast<char32_t>(v);
        }
        utf8::append_code_point(value, cp);
        i += digits;
        return true;
      };
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\n': ++line_; break;  // a backslash-newline continues the literal
        case 'x':
          if (!hex_escape(2)) return fail(error("invalid \\x escape in string"));
          break;
        case 'u':
          if (!hex_escape(4)) return fail(error("invalid \\u escape in string"));
          break;
        case 'U':
          if (!hex_escape(8)) return fail(error("invalid \\U escape in string"));
          break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i) {
              cp = cp * 8 + static_cast<char32_t>(src_[i] - '0');
            }
            utf8::append_code_point(value, cp);
          } else {
            value += '\\';  // Python keeps unknown escapes as written
            value += e;
          }
      }
    }
    tokens_.push_back(make_token(TokenKind::string, std::move(value), start_line));
    pos_ = i + 1;
    return Ok{};
  }

  std::string src_;
  std::size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>, Error> tokenize(std::string_view source) {
  Lexer lexer(normalize_newlines(source));
  return lexer.run();
}

}  // namespace sluice::jinja
