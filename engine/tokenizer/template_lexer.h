// Lexer of the chat-template renderer: splits template source into text and tag tokens with Jinja2's
// whitespace rules as Hugging Face transformers configures them (trim_blocks and lstrip_blocks on, the
// "-" and "+" tag modifiers, "\r\n" and "\r" read as "\n", one trailing newline of the source dropped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/template_ast.h"
#include "engine/util/result.h"

namespace sluice::jinja {

enum class TokenKind {
  text,         // template data between tags (already whitespace-trimmed)
  expr_begin,   // {{
  expr_end,     // }}
  stmt_begin,   // {%
  stmt_end,     // %}
  name,
  string,       // text holds the unescaped value
  integer,
  floating,
  op,           // operators and punctuation
  end,          // end of input
};

struct Token {
  TokenKind kind = TokenKind::end;
  std::string text;
  int line = 1;
  std::int64_t integer = 0;
  double floating = 0.0;
};

Result<std::vector<Token>, Error> tokenize(std::string_view source);

}  // namespace sluice::jinja
