// Reads a Hugging Face `config.json` of a Llama-family causal LM (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM) into a validated ModelSpec. Hugging Face checkpoints use rotate-half RoPE, so the spec's
// rope style is RopeStyle::half. Options the engine does not implement (other activations, MLP biases,
// YaRN/dynamic RoPE scaling, Qwen2's per-layer sliding window) are rejected with a message naming the key.
#pragma once

#include <string>
#include <string_view>

#include "engine/model/model_spec.h"
#include "engine/util/result.h"

namespace sluice {

// `source` names the file in messages.
Result<ModelSpec, ModelError> spec_from_hf_config(std::string_view json_text, const std::string& source);

// Reads `<dir>/config.json` (at most 16 MiB) and parses it.
Result<ModelSpec, ModelError> load_hf_config(const std::string& dir);

}  // namespace sluice
