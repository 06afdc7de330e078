// Syntax tree of the chat-template renderer's Jinja subset, and the error type its stages share.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/template_value.h"

namespace sluice::jinja {

enum class ErrorKind {
  syntax,       // the template text is not valid Jinja
  unsupported,  // valid Jinja that this renderer does not implement (a statement, filter or test)
  raised,       // the template called raise_exception(): the conversation does not fit the template
  render,       // a run-time failure: a type error, an undefined value used, a limit exceeded
};

struct Error {
  ErrorKind kind = ErrorKind::render;
  std::string message;
  int line = 0;  // 1-based line in the template; 0 when not known
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  literal,      // value
  name,         // name
  list,         // args
  dict,         // entries
  attribute,    // args[0] . name
  subscript,    // args[0] [ args[1] ]
  slice,        // args[0] [ args[1] : args[2] : args[3] ]  (null where omitted)
  call,         // args[0] ( args[1..], kwargs )
  filter,       // args[0] | name ( args[1..], kwargs )
  test,         // args[0] is [not] name ( args[1..] )
  negate,       // - args[0]
  plus,         // + args[0]
  logical_not,  // not args[0]
  binary,       // args[0] op args[1]: + - * / // % ** ~
  compare,      // args[0] ops[0] args[1] ops[1] args[2] ... (chained, like Python)
  logical_and,  // args[0] and args[1]
  logical_or,   // args[0] or args[1]
  conditional,  // args[1] if args[0] else args[2] (args[2] null when there is no else)
};

struct Expr {
  ExprKind kind = ExprKind::literal;
  int line = 0;
  Value value;                     // literal
  std::string name;                // name, attribute, filter, test; binary operator
  std::vector<std::string> ops;    // compare: "==", "!=", "<", "<=", ">", ">=", "in", "not in"
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;  // dict literal
  bool negated = false;            // test: "is not"
  bool tuple = false;              // list: written as a tuple, (a, b)
  int depth = 1;                   // height of this subtree; the parser bounds it
};

enum class NodeKind {
  text,       // text
  output,     // {{ expr }}
  if_chain,   // branches: (condition, body) ..., a final (null, body) for else
  for_loop,   // for targets in expr [if condition] body [else else_body]
  set,        // set targets[0] = expr, or set targets[0].attribute = expr
  set_block,  // set targets[0] %} body {% endset
  loop_break,
  loop_continue,
  block,      // a body rendered in place (transformers' {% generation %} marker)
};

struct Node {
  NodeKind kind = NodeKind::text;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<std::string> targets;
  std::string attribute;
  std::vector<Node> body;
  std::vector<Node> else_body;
  std::vector<std::pair<ExprPtr, std::vector<Node>>> branches;
};

}  // namespace sluice::jinja
