// The tokenizer and chat template of a Hugging Face model directory: tokenizer.json, tokenizer_config.json
// and, where transformers 5 put it, chat_template.jinja.
//
// tokenizer.json must describe a byte-level BPE (model.type "BPE", vocab, merges as "left right" strings or
// [left, right] arrays; no byte_fallback, dropout, subword prefix or word suffix). added_tokens become
// control tokens when "special" is true and user-defined tokens otherwise (user-defined ones are matched in
// any text, as tokenizers does). The pre_tokenizer is recognised by its structure and mapped to a family the
// Tokenizer implements:
//   ByteLevel(use_regex)                                   gpt2
//   Sequence[Digits(individual_digits), ByteLevel(use_regex)]  smollm (SmolLM2, StarCoder)
//   Sequence[Split(<Llama 3 regex>), ByteLevel(no regex)]  llama-bpe
//   Sequence[Split(<Qwen2 regex>), ByteLevel(no regex)]    qwen2
// (a Split with GPT-2's own regex followed by ByteLevel without regex counts as ByteLevel with it). Any other
// model type, pre-tokenizer, normalizer, decoder or added-token option is refused with an error naming the
// construct, never approximated -- with one exception: a normalizer "NFC" (Qwen2) is accepted but not applied,
// as the GGUF converter also drops it, so only text not already in NFC can encode differently.
//
// tokenizer_config.json (optional) names bos_token, eos_token, pad_token and unk_token (a string, an
// {"content": ...} object, or null; each must be in the vocabulary), add_bos_token / add_eos_token (absent:
// whatever tokenizer.json's TemplateProcessing post-processor adds), and chat_template (a string, or a list
// of {"name", "template"} of which "default" is used). chat_template.jinja, when present, takes precedence
// over tokenizer_config.json's chat_template, as in transformers.
//
// Every function here takes untrusted files: malformed input yields an error value, never a crash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/result.h"

namespace sluice {

// The keys of tokenizer_config.json the engine uses.
struct HfTokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::string chat_template;  // "" when none is given
};

// `source` names the file in messages.
Result<HfTokenizerConfig, TokenizerError> parse_hf_tokenizer_config(std::string_view json_text,
                                                                    const std::string& source);

// The TokenizerSpec of a tokenizer.json, with special tokens and BOS/EOS flags from `config`.
Result<TokenizerSpec, TokenizerError> tokenizer_spec_from_hf(std::string_view tokenizer_json,
                                                             const HfTokenizerConfig& config,
                                                             const std::string& source);

// What a model directory holds for text.
struct HfTokenizerFiles {
  Tokenizer tokenizer;
  std::string chat_template;         // "" when the directory has none
  std::string chat_template_origin;  // where chat_template came from, for messages
};

// Reads <dir>/tokenizer.json (required), <dir>/tokenizer_config.json and <dir>/chat_template.jinja (both
// optional).
Result<HfTokenizerFiles, TokenizerError> load_hf_tokenizer(const std::string& dir);

// The chat template for a model directory: the built-in `override_name` when not empty, else the
// directory's own. Templates see the tokenizer's BOS and EOS texts as bos_token / eos_token.
Result<ChatTemplate, TemplateError> hf_chat_template(const HfTokenizerFiles& files, std::string_view override_name);

}  // namespace sluice
