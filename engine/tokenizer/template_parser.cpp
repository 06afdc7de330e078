#include "engine/tokenizer/template_parser.h"

#include <algorithm>
#include <array>

#include "engine/tokenizer/template_builtins.h"
#include "engine/tokenizer/template_lexer.h"

namespace sluice::jinja {
namespace {

Node make_node(NodeKind kind, int line, std::string text = {}) {
  Node n;
  n.kind = kind;
  n.line = line;
  n.text = std::move(text);
  return n;
}

// Nesting beyond these is refused, so a crafted template cannot exhaust the stack while parsing, rendering
// or freeing the tree: blocks and parser recursion, and the height of one expression's tree (long
// operator chains build deep trees without deep parser recursion).
constexpr int max_depth = 128;
constexpr int max_expr_height = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::vector<Node>, Error> run() {
    std::vector<Node> body;
    std::string end;
    if (!parse_body({}, body, end)) return fail(std::move(error_));
    return body;
  }

 private:
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(std::size_t ahead = 1) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  void advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const { return cur().kind == TokenKind::op && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().kind == TokenKind::name && cur().text == name; }

  bool set_error(ErrorKind kind, std::string message, int line) {
    if (error_.message.empty()) error_ = Error{kind, std::move(message), line};
    return false;
  }
  bool syntax(std::string message) { return set_error(ErrorKind::syntax, std::move(message), cur().line); }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TokenKind::end: return "end of template";
      case TokenKind::expr_end: return "'}}'";
      case TokenKind::stmt_end: return "'%}'";
      case TokenKind::text: return "template text";
      default: return "'" + t.text + "'";
    }
  }
  bool expect_op(std::string_view op) {
    if (!is_op(op)) return syntax("expected '" + std::string(op) + "', found " + describe(cur()));
    advance();
    return true;
  }
  bool expect_stmt_end() {
    if (cur().kind != TokenKind::stmt_end) return syntax("expected '%}', found " + describe(cur()));
    advance();
    return true;
  }

  // Parses nodes until `{% <one of end_names>`; leaves the position after that name and stores it in
  // `end`. With no end names, parses to the end of the template.
  bool parse_body(std::initializer_list<std::string_view> end_names, std::vector<Node>& out, std::string& end) {
    if (++depth_ > max_depth) return set_error(ErrorKind::unsupported, "blocks nested too deeply", cur().line);
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::end) {
        if (end_names.size() == 0) break;
        return syntax("unexpected end of template; expected '{% " + std::string(*(end_names.end() - 1)) + " %}'");
      }
      if (t.kind == TokenKind::text) {
        out.push_back(make_node(NodeKind::text, t.line, t.text));
        advance();
        continue;
      }
      if (t.kind == TokenKind::expr_begin) {
        Node n = make_node(NodeKind::output, t.line);
        advance();
        n.expr = parse_tuple();
        if (!n.expr) return false;
        if (cur().kind != TokenKind::expr_end) return syntax("expected '}}', found " + describe(cur()));
        advance();
        out.push_back(std::move(n));
        continue;
      }
      if (t.kind != TokenKind::stmt_begin) return syntax("unexpected " + describe(t));
      advance();
      if (cur().kind != TokenKind::name) return syntax("expected a statement name, found " + describe(cur()));
      const std::string name = cur().text;
      const int line = cur().line;
      if (std::find(end_names.begin(), end_names.end(), name) != end_names.end()) {
        advance();
        end = name;
        --depth_;
        return true;
      }
      advance();
      bool ok = false;
      if (name == "if") {
        ok = parse_if(line, out);
      } else if (name == "for") {
        ok = parse_for(line, out);
      } else if (name == "set") {
        ok = parse_set(line, out);
      } else if (name == "break" || name == "continue") {
        out.push_back(make_node(name == "break" ? NodeKind::loop_break : NodeKind::loop_continue, line));
        ok = expect_stmt_end();
      } else if (name == "generation") {
        Node n = make_node(NodeKind::block, line);
        std::string e;
        ok = expect_stmt_end() && parse_body({"endgeneration"}, n.body, e) && expect_stmt_end();
        out.push_back(std::move(n));
      } else {
        return set_error(ErrorKind::unsupported, "the statement '{% " + name + " %}' is not supported", line);
      }
      if (!ok) return false;
    }
    --depth_;
    return true;
  }

  bool parse_if(int line, std::vector<Node>& out) {
    Node n = make_node(NodeKind::if_chain, line);
    std::string end = "elif";
    while (end == "elif") {
      ExprPtr cond = parse_expression();
      if (!cond || !expect_stmt_end()) return false;
      std::vector<Node> body;
      if (!parse_body({"elif", "else", "endif"}, body, end)) return false;
      n.branches.emplace_back(std::move(cond), std::move(body));
    }
    if (end == "else") {
      std::vector<Node> body;
      if (!expect_stmt_end() || !parse_body({"endif"}, body, end)) return false;
      n.branches.emplace_back(nullptr, std::move(body));
    }
    out.push_back(std::move(n));
    return expect_stmt_end();
  }

  bool parse_targets(std::vector<std::string>& targets) {
    const bool parens = is_op("(");
    if (parens) advance();
    while (true) {
      if (cur().kind != TokenKind::name) return syntax("expected a loop variable name, found " + describe(cur()));
      targets.push_back(cur().text);
      advance();
      if (!is_op(",")) break;
      advance();
    }
    return !parens || expect_op(")");
  }

  bool parse_for(int line, std::vector<Node>& out) {
    Node n = make_node(NodeKind::for_loop, line);
    if (!parse_targets(n.targets)) return false;
    if (!is_name("in")) return syntax("expected 'in', found " + describe(cur()));
    advance();
    n.expr = parse_or();
    if (!n.expr) return false;
    if (is_name("if")) {
      advance();
      n.condition = parse_expression();
      if (!n.condition) return false;
    }
    if (is_name("recursive")) return set_error(ErrorKind::unsupported, "recursive loops are not supported", line);
    std::string end;
    if (!expect_stmt_end() || !parse_body({"else", "endfor"}, n.body, end)) return false;
    if (end == "else" && (!expect_stmt_end() || !parse_body({"endfor"}, n.else_body, end))) return false;
    out.push_back(std::move(n));
    return expect_stmt_end();
  }

  bool parse_set(int line, std::vector<Node>& out) {
    Node n = make_node(NodeKind::set, line);
    if (cur().kind != TokenKind::name) return syntax("expected a variable name, found " + describe(cur()));
    n.targets.push_back(cur().text);
    advance();
    if (is_op(".")) {
      advance();
      if (cur().kind != TokenKind::name) return syntax("expected an attribute name, found " + describe(cur()));
      n.attribute = cur().text;
      advance();
    } else if (is_op(",")) {
      return set_error(ErrorKind::unsupported, "assigning to several variables in one set is not supported", line);
    }
    if (is_op("=")) {
      advance();
      n.expr = parse_tuple();
      if (!n.expr) return false;
      out.push_back(std::move(n));
      return expect_stmt_end();
    }
    if (!n.attribute.empty()) return syntax("expected '=' after the namespace attribute");
    n.kind = NodeKind::set_block;
    std::string end;
    if (!expect_stmt_end() || !parse_body({"endset"}, n.body, end)) return false;
    out.push_back(std::move(n));
    return expect_stmt_end();
  }

  // ---- expressions ----

  ExprPtr make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  // Records the height of a finished node; null (with the error set) when it is too tall.
  ExprPtr finish(ExprPtr e) {
    int h = 0;
    for (const auto& a : e->args) h = a ? std::max(h, a->depth) : h;
    for (const auto& [k, v] : e->kwargs) h = std::max(h, v->depth);
    for (const auto& [k, v] : e->entries) h = std::max({h, k->depth, v->depth});
    e->depth = h + 1;
    if (e->depth > max_expr_height) {
      set_error(ErrorKind::unsupported, "expression nested too deeply", e->line);
      return nullptr;
    }
    return e;
  }
  ExprPtr unary(ExprKind kind, int line, ExprPtr operand) {
    ExprPtr e = make(kind, line);
    e->args.push_back(std::move(operand));
    return finish(std::move(e));
  }
  ExprPtr binary(ExprKind kind, std::string op, int line, ExprPtr a, ExprPtr b) {
    ExprPtr e = make(kind, line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return finish(std::move(e));
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : d_(d) { ++d_; }
    ~DepthGuard() { --d_; }
    int& d_;
  };

  // An expression, or several separated by commas (a tuple, represented as a list).
  ExprPtr parse_tuple() {
    const int line = cur().line;
    ExprPtr first = parse_expression();
    if (!first || !is_op(",")) return first;
    ExprPtr list = make(ExprKind::list, line);
    list->tuple = true;
    list->args.push_back(std::move(first));
    while (is_op(",")) {
      advance();
      if (cur().kind == TokenKind::expr_end || cur().kind == TokenKind::stmt_end || is_op(")")) break;
      ExprPtr item = parse_expression();
      if (!item) return nullptr;
      list->args.push_back(std::move(item));
    }
    return finish(std::move(list));
  }

  ExprPtr parse_expression() {
    DepthGuard guard(depth_);
    if (depth_ > max_depth) {
      set_error(ErrorKind::unsupported, "expression nested too deeply", cur().line);
      return nullptr;
    }
    ExprPtr value = parse_or();
    while (value && is_name("if")) {
      const int line = cur().line;
      advance();
      ExprPtr cond = parse_or();
      if (!cond) return nullptr;
      ExprPtr otherwise;
      if (is_name("else")) {
        advance();
        otherwise = parse_expression();
        if (!otherwise) return nullptr;
      }
      ExprPtr e = make(ExprKind::conditional, line);
      e->args.push_back(std::move(cond));
      e->args.push_back(std::move(value));
      e->args.push_back(std::move(otherwise));
      value = finish(std::move(e));
    }
    return value;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (left && is_name("or")) {
      const int line = cur().line;
      advance();
      ExprPtr right = parse_and();
      if (!right) return nullptr;
      left = binary(ExprKind::logical_or, "or", line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (left && is_name("and")) {
      const int line = cur().line;
      advance();
      ExprPtr right = parse_not();
      if (!right) return nullptr;
      left = binary(ExprKind::logical_and, "and", line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const int line = cur().line;
      advance();
      DepthGuard guard(depth_);
      if (depth_ > max_depth) {
        set_error(ErrorKind::unsupported, "expression nested too deeply", line);
        return nullptr;
      }
      ExprPtr operand = parse_not();
      return operand ? unary(ExprKind::logical_not, line, std::move(operand)) : nullptr;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    if (!first) return nullptr;
    ExprPtr cmp;
    static constexpr std::array<std::string_view, 6> ops{"==", "!=", "<", "<=", ">", ">="};
    while (true) {
      std::string op;
      if (cur().kind == TokenKind::op && std::find(ops.begin(), ops.end(), cur().text) != ops.end()) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().kind == TokenKind::name && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      ExprPtr operand = parse_math1();
      if (!operand) return nullptr;
      if (!cmp) {
        cmp = make(ExprKind::compare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(operand));
    }
    return cmp ? finish(std::move(cmp)) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (left && (is_op("+") || is_op("-"))) {
      const std::string op = cur().text;
      const int line = cur().line;
      advance();
      ExprPtr right = parse_concat();
      if (!right) return nullptr;
      left = binary(ExprKind::binary, op, line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (left && is_op("~")) {
      const int line = cur().line;
      advance();
      ExprPtr right = parse_math2();
      if (!right) return nullptr;
      left = binary(ExprKind::binary, "~", line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (left && (is_op("*") || is_op("/") || is_op("//") || is_op("%"))) {
      const std::string op = cur().text;
      const int line = cur().line;
      advance();
      ExprPtr right = parse_pow();
      if (!right) return nullptr;
      left = binary(ExprKind::binary, op, line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (left && is_op("**")) {
      const int line = cur().line;
      advance();
      ExprPtr right = parse_unary(true);
      if (!right) return nullptr;
      left = binary(ExprKind::binary, "**", line, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    if (depth_ > max_depth) {
      set_error(ErrorKind::unsupported, "expression nested too deeply", cur().line);
      return nullptr;
    }
    const int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const ExprKind kind = is_op("-") ? ExprKind::negate : ExprKind::plus;
      advance();
      ExprPtr operand = parse_unary(false);
      if (!operand) return nullptr;
      node = unary(kind, line, std::move(operand));
    } else {
      node = parse_primary();
    }
    if (node) node = parse_postfix(std::move(node));
    if (node && with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    ExprPtr e = make(ExprKind::literal, t.line);
    switch (t.kind) {
      case TokenKind::name:
        if (t.text == "true" || t.text == "True") {
          e->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value(None{});
        } else {
          e->kind = ExprKind::name;
          e->name = t.text;
        }
        advance();
        return e;
      case TokenKind::string: {
        std::string s;
        while (cur().kind == TokenKind::string) {  // adjacent literals join, as in Python
          s += cur().text;
          advance();
        }
        e->value = Value(std::move(s));
        return e;
      }
      case TokenKind::integer:
        e->value = Value(t.integer);
        advance();
        return e;
      case TokenKind::floating:
        e->value = Value(t.floating);
        advance();
        return e;
      default:
        break;
    }
    if (is_op("(")) {
      advance();
      if (is_op(")")) {
        advance();
        e->kind = ExprKind::list;
        e->tuple = true;
        return e;
      }
      ExprPtr inner = parse_tuple();
      if (!inner || !expect_op(")")) return nullptr;
      return inner;
    }
    if (is_op("[")) {
      advance();
      e->kind = ExprKind::list;
      while (!is_op("]")) {
        ExprPtr item = parse_expression();
        if (!item) return nullptr;
        e->args.push_back(std::move(item));
        if (!is_op(",")) break;
        advance();
      }
      return expect_op("]") ? finish(std::move(e)) : nullptr;
    }
    if (is_op("{")) {
      advance();
      e->kind = ExprKind::dict;
      while (!is_op("}")) {
        ExprPtr key = parse_expression();
        if (!key || !expect_op(":")) return nullptr;
        ExprPtr value = parse_expression();
        if (!value) return nullptr;
        e->entries.emplace_back(std::move(key), std::move(value));
        if (!is_op(",")) break;
        advance();
      }
      return expect_op("}") ? finish(std::move(e)) : nullptr;
    }
    syntax("unexpected " + describe(t));
    return nullptr;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (node) {
      if (is_op(".")) {
        const int line = cur().line;
        advance();
        if (cur().kind == TokenKind::name) {
          ExprPtr e = make(ExprKind::attribute, line);
          e->name = cur().text;
          e->args.push_back(std::move(node));
          node = finish(std::move(e));
        } else if (cur().kind == TokenKind::integer) {
          ExprPtr index = make(ExprKind::literal, line);
          index->value = Value(cur().integer);
          node = binary(ExprKind::subscript, "", line, std::move(node), std::move(index));
        } else {
          syntax("expected an attribute name after '.', found " + describe(cur()));
          return nullptr;
        }
        advance();
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const int line = cur().line;
    advance();  // [
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression();
      if (!start) return nullptr;
      if (is_op("]")) {
        advance();
        return binary(ExprKind::subscript, "", line, std::move(node), std::move(start));
      }
    }
    if (!expect_op(":")) return nullptr;
    ExprPtr stop;
    ExprPtr step;
    if (!is_op("]") && !is_op(":")) {
      stop = parse_expression();
      if (!stop) return nullptr;
    }
    if (is_op(":")) {
      advance();
      if (!is_op("]")) {
        step = parse_expression();
        if (!step) return nullptr;
      }
    }
    if (!expect_op("]")) return nullptr;
    ExprPtr e = make(ExprKind::slice, line);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(start));
    e->args.push_back(std::move(stop));
    e->args.push_back(std::move(step));
    return finish(std::move(e));
  }

  // Parses "(args, name=value)" into e's args (after any already there) and kwargs.
  bool parse_arguments(Expr& e) {
    advance();  // (
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) {
        return set_error(ErrorKind::unsupported, "argument unpacking (*args, **kwargs) is not supported", cur().line);
      }
      if (cur().kind == TokenKind::name && peek().kind == TokenKind::op && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        ExprPtr value = parse_expression();
        if (!value) return false;
        e.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e.kwargs.empty()) return syntax("a positional argument follows a keyword argument");
        ExprPtr value = parse_expression();
        if (!value) return false;
        e.args.push_back(std::move(value));
      }
      if (!is_op(",")) break;
      advance();
    }
    return expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    ExprPtr e = make(ExprKind::call, cur().line);
    e->args.push_back(std::move(node));
    return parse_arguments(*e) ? finish(std::move(e)) : nullptr;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (node) {
      if (is_op("|")) {
        const int line = cur().line;
        advance();
        if (cur().kind != TokenKind::name) {
          syntax("expected a filter name after '|', found " + describe(cur()));
          return nullptr;
        }
        ExprPtr e = make(ExprKind::filter, line);
        e->name = cur().text;
        if (!is_known_filter(e->name)) {
          set_error(ErrorKind::unsupported, "the filter '" + e->name + "' is not supported", line);
          return nullptr;
        }
        advance();
        e->args.push_back(std::move(node));
        if (is_op("(") && !parse_arguments(*e)) return nullptr;
        node = finish(std::move(e));
      } else if (is_name("is")) {
        const int line = cur().line;
        advance();
        ExprPtr e = make(ExprKind::test, line);
        if (is_name("not")) {
          e->negated = true;
          advance();
        }
        if (cur().kind != TokenKind::name) {
          syntax("expected a test name after 'is', found " + describe(cur()));
          return nullptr;
        }
        e->name = cur().text;
        if (!is_known_test(e->name)) {
          set_error(ErrorKind::unsupported, "the test '" + e->name + "' is not supported", line);
          return nullptr;
        }
        advance();
        e->args.push_back(std::move(node));
        if (is_op("(")) {
          if (!parse_arguments(*e)) return nullptr;
        } else if ((cur().kind == TokenKind::name || cur().kind == TokenKind::string ||
                    cur().kind == TokenKind::integer || cur().kind == TokenKind::floating || is_op("[") ||
                    is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("is")) {
          ExprPtr arg = parse_primary();
          if (arg) arg = parse_postfix(std::move(arg));
          if (!arg) return nullptr;
          e->args.push_back(std::move(arg));
        }
        node = finish(std::move(e));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  Error error_;
};

}  // namespace

Result<std::vector<Node>, Error> parse_template(std::string_view source) {
  auto tokens = tokenize(source);
  if (!tokens) return fail(std::move(tokens.error()));
  Parser parser(std::move(*tokens));
  return parser.run();
}

}  // namespace sluice::jinja
