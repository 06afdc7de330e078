// Parser of the chat-template renderer's Jinja subset: statements if/elif/else, for (with tuple targets, an
// `if` filter, else, loop.*), set (plain, namespace attribute, block), break/continue, and transformers'
// {% generation %}; the full Jinja expression grammar with its precedence (conditional, or, and, not,
// chained comparisons and `in`, arithmetic, `~`, filters and `is` tests binding tighter than operators,
// attribute, subscript, slice, call with keyword arguments, list and dict literals).
//
// Anything else (macro, call, block, include, import, raw, with, filter blocks, recursive loops, unknown
// filters or tests) is an ErrorKind::unsupported error naming the construct and its line, so a model whose
// template needs more is refused at load time rather than rendered wrong.
#pragma once

#include <string_view>
#include <vector>

#include "engine/tokenizer/template_ast.h"
#include "engine/util/result.h"

namespace sluice::jinja {

Result<std::vector<Node>, Error> parse_template(std::string_view source);

}  // namespace sluice::jinja
