#include "engine/tokenizer/chat_template.h"

#include "engine/tokenizer/chat_template_library.h"
#include "engine/tokenizer/template_parser.h"
#include "engine/tokenizer/template_renderer.h"

namespace sluice {
namespace {

std::string builtin_list() {
  std::string out;
  for (std::string_view n : builtin_template_names()) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

// What to tell the operator when a model's template cannot be used.
std::string fix_hint(std::string_view family) {
  std::string hint = "set engine.chat_template in the server config to one of: " + builtin_list();
  if (!family.empty()) hint += " (this template looks like '" + std::string(family) + "')";
  return hint;
}

TemplateErrorKind kind_of(jinja::ErrorKind k) {
  switch (k) {
    case jinja::ErrorKind::syntax: return TemplateErrorKind::syntax;
    case jinja::ErrorKind::unsupported: return TemplateErrorKind::unsupported;
    case jinja::ErrorKind::raised: return TemplateErrorKind::rejected;
    case jinja::ErrorKind::render: return TemplateErrorKind::render;
  }
  return TemplateErrorKind::render;
}

bool has(std::string_view text, std::string_view marker) { return text.find(marker) != std::string_view::npos; }

}  // namespace

struct ChatTemplate::Program {
  std::string source;
  std::string origin;
  std::string family;
  std::string bos_token;
  std::string eos_token;
  std::vector<jinja::Node> nodes;
};

std::string_view detect_template_family(std::string_view source) {
  if (has(source, "<|start_header_id|>")) {
    return has(source, "Cutting Knowledge Date") ? "llama3.1" : "llama3";
  }
  if (has(source, "<|im_start|>")) {
    if (has(source, "SmolLM")) return "smollm2";
    if (has(source, "You are a helpful assistant.")) return "qwen2";
    return "chatml";
  }
  if (has(source, "[INST]")) return "mistral";
  return "";
}

Result<ChatTemplate, TemplateError> ChatTemplate::parse(std::string source, std::string origin, std::string bos_token,
                                                        std::string eos_token) {
  auto program = std::make_shared<Program>();
  program->family = std::string(detect_template_family(source));
  auto nodes = jinja::parse_template(source);
  if (!nodes) {
    const jinja::Error& e = nodes.error();
    std::string message = origin + ": line " + std::to_string(e.line) + ": " + e.message;
    if (e.kind == jinja::ErrorKind::unsupported) {
      message += " by the built-in template renderer; " + fix_hint(program->family);
    } else {
      message += "; " + fix_hint(program->family);
    }
    return fail(TemplateError{kind_of(e.kind), std::move(message)});
  }
  program->nodes = std::move(*nodes);
  program->source = std::move(source);
  program->origin = std::move(origin);
  program->bos_token = std::move(bos_token);
  program->eos_token = std::move(eos_token);
  return ChatTemplate(std::move(program));
}

Result<ChatTemplate, TemplateError> ChatTemplate::builtin(std::string_view name, std::string bos_token,
                                                          std::string eos_token) {
  const auto source = builtin_template_source(name);
  if (!source) {
    return fail(TemplateError{TemplateErrorKind::unknown, "engine.chat_template: unknown template '" + std::string(name) +
                                                              "'; built-in templates: " + builtin_list()});
  }
  return parse(std::string(*source), "built-in template '" + std::string(name) + "'", std::move(bos_token),
               std::move(eos_token));
}

Result<ChatTemplate, TemplateError> ChatTemplate::from_gguf(const gguf::GgufFile& file, const Tokenizer& tokenizer,
                                                            std::string_view override_name) {
  std::string bos = tokenizer.bos_id() >= 0 ? std::string(tokenizer.token_text(tokenizer.bos_id())) : std::string();
  std::string eos = tokenizer.eos_id() >= 0 ? std::string(tokenizer.token_text(tokenizer.eos_id())) : std::string();
  if (!override_name.empty()) return builtin(override_name, std::move(bos), std::move(eos));
  if (!file.contains("tokenizer.chat_template")) {
    return fail(TemplateError{TemplateErrorKind::missing,
                              file.path() + " has no tokenizer.chat_template; " + fix_hint("")});
  }
  auto source = file.get_string("tokenizer.chat_template");
  if (!source) return fail(TemplateError{TemplateErrorKind::syntax, source.error().message + "; " + fix_hint("")});
  return parse(std::string(*source), file.path() + " tokenizer.chat_template", std::move(bos), std::move(eos));
}

const std::string& ChatTemplate::source() const { return p_->source; }
const std::string& ChatTemplate::origin() const { return p_->origin; }
std::string_view ChatTemplate::family() const { return p_->family; }

Result<std::string, TemplateError> render_chat(const ChatTemplate& chat_template, const std::vector<ChatTurn>& messages,
                                               bool add_generation_prompt) {
  const ChatTemplate::Program& p = *chat_template.p_;
  jinja::List turns;
  turns.reserve(messages.size());
  for (const ChatTurn& m : messages) {
    jinja::Dict d;
    d.set("role", jinja::Value(m.role));
    d.set("content", jinja::Value(m.content));
    turns.emplace_back(std::move(d));
  }
  jinja::Dict context;
  context.set("messages", jinja::Value(std::move(turns)));
  context.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  context.set("tools", jinja::Value(jinja::None{}));
  context.set("documents", jinja::Value(jinja::None{}));
  if (!p.bos_token.empty()) context.set("bos_token", jinja::Value(p.bos_token));
  if (!p.eos_token.empty()) context.set("eos_token", jinja::Value(p.eos_token));
  auto text = jinja::render(p.nodes, context);
  if (!text) {
    const jinja::Error& e = text.error();
    if (e.kind == jinja::ErrorKind::raised) return fail(TemplateError{TemplateErrorKind::rejected, e.message});
    std::string message = p.origin + ": line " + std::to_string(e.line) + ": " + e.message;
    if (e.kind == jinja::ErrorKind::unsupported) message += " by the built-in template renderer; " + fix_hint(p.family);
    return fail(TemplateError{kind_of(e.kind), std::move(message)});
  }
  return std::move(*text);
}

}  // namespace sluice
