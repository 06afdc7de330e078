// Renders a parsed chat template (template_parser.h) against a context of variables, with Jinja2's
// semantics where chat templates can observe them: a fresh scope for each loop iteration (a `set` inside a
// loop does not leak out; namespace() objects carry state across), `loop.*`, break/continue, undefined
// names that print as nothing, Python operators and truthiness.
//
// Rendering is bounded: the output size and the total number of loop iterations have limits, so a template
// from an untrusted model file cannot run away; exceeding one is an ErrorKind::render error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/template_ast.h"
#include "engine/tokenizer/template_value.h"
#include "engine/util/result.h"

namespace sluice::jinja {

struct RenderLimits {
  std::size_t max_output_bytes = 16u << 20;
  std::uint64_t max_loop_iterations = 100'000;
};

// `context` holds the template's global variables (messages, add_generation_prompt, bos_token, ...).
Result<std::string, Error> render(const std::vector<Node>& program, const Dict& context, const RenderLimits& limits = {});

}  // namespace sluice::jinja
