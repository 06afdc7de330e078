// Chat templates: turning a conversation into the prompt text a model was trained on.
//
// The model's own template (GGUF tokenizer.chat_template, a Jinja template) is parsed once and rendered
// per request by the engine's Jinja-subset renderer, with the variables Hugging Face transformers passes:
// messages (role, content), add_generation_prompt, bos_token, eos_token, tools = none, documents = none.
// A template the renderer cannot run is refused when it is loaded, with an error that names the construct
// and the fix: set engine.chat_template to one of the built-in templates (chat_template_library.h).
//
// A ChatTemplate is immutable and cheap to copy; render_chat may run on any number of threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/gguf_reader.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/result.h"

namespace sluice {

struct ChatTurn {
  std::string role;  // "system", "user", "assistant", or whatever the template accepts
  std::string content;
};

enum class TemplateErrorKind {
  missing,      // the model has no template and none was named
  unknown,      // the named built-in template does not exist
  syntax,       // the template is not valid Jinja
  unsupported,  // the template uses Jinja this renderer does not implement
  rejected,     // the template refused the conversation (raise_exception: e.g. roles must alternate)
  render,       // the template failed while rendering (a type error, an undefined value, a size limit)
};

struct TemplateError {
  TemplateErrorKind kind = TemplateErrorKind::render;
  std::string message;
};

class ChatTemplate {
 public:
  // Parses `source`. `origin` names where it came from in messages ("model.gguf tokenizer.chat_template").
  // bos_token / eos_token are the texts templates see under those names; empty leaves them undefined.
  static Result<ChatTemplate, TemplateError> parse(std::string source, std::string origin, std::string bos_token,
                                                   std::string eos_token);
  // A built-in template by name (chatml, smollm2, qwen2, llama3, llama3.1, mistral).
  static Result<ChatTemplate, TemplateError> builtin(std::string_view name, std::string bos_token,
                                                     std::string eos_token);
  // The template for a model: the built-in `override_name` when it is not empty, else the file's
  // tokenizer.chat_template. bos_token / eos_token come from the tokenizer's BOS and EOS entries.
  static Result<ChatTemplate, TemplateError> from_gguf(const gguf::GgufFile& file, const Tokenizer& tokenizer,
                                                       std::string_view override_name = {});

  const std::string& source() const;
  const std::string& origin() const;
  // The family the template looks like: "smollm2", "chatml", "qwen2", "llama3", "llama3.1", "mistral",
  // or "" when it matches none.
  std::string_view family() const;

 private:
  struct Program;
  friend Result<std::string, TemplateError> render_chat(const ChatTemplate&, const std::vector<ChatTurn>&, bool);
  explicit ChatTemplate(std::shared_ptr<const Program> p) : p_(std::move(p)) {}
  std::shared_ptr<const Program> p_;
};

// Renders the conversation; with add_generation_prompt the text ends where the assistant's reply begins.
Result<std::string, TemplateError> render_chat(const ChatTemplate& chat_template, const std::vector<ChatTurn>& messages,
                                               bool add_generation_prompt);

// The family a template text looks like, by its markers (see ChatTemplate::family()).
std::string_view detect_template_family(std::string_view source);

}  // namespace sluice
