// SamplingParams: how one request turns logits into tokens and when its stream ends. The names and
// semantics follow vLLM's SamplingParams, which is what users of the engine settings already know.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/util/result.h"

namespace sluice {

struct SamplingParams {
  float temperature = 1.0f;         // 0 (or below 1e-5): greedy
  std::int32_t top_k = -1;          // -1 or 0: off; otherwise keep the k most likely tokens
  float top_p = 1.0f;               // (0, 1]; 1: off
  float min_p = 0.0f;               // [0, 1]; keep tokens with p >= min_p * p(most likely); 0: off
  std::optional<std::uint64_t> seed;  // absent: the engine draws one per request

  float presence_penalty = 0.0f;    // subtracted once from every token generated so far
  float frequency_penalty = 0.0f;   // subtracted once per occurrence in the generated tokens
  float repetition_penalty = 1.0f;  // > 0; tokens of prompt or output: positive logits / r, negative * r
  std::vector<std::pair<std::int32_t, float>> logit_bias;  // token id -> added to its logit

  std::uint32_t min_tokens = 0;                // EOS and stop_token_ids banned until this many are generated
  std::optional<std::uint32_t> max_tokens;     // absent: up to the model's context length
  std::vector<std::string> stop;               // stop strings, matched on the detokenized text
  std::vector<std::int32_t> stop_token_ids;    // tokens that end the stream like EOS does
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;                     // EOS neither ends the stream nor is banned by min_tokens

  bool logprobs = false;            // return the chosen token's log-probability
  std::uint32_t top_logprobs = 0;   // and this many most likely alternatives (needs logprobs)
};

// Upper bounds the engine accepts; the gateway's own validation is stricter where OpenAI's is.
inline constexpr std::uint32_t kMaxTopLogprobs = 20;
inline constexpr std::size_t kMaxStopStrings = 16;
inline constexpr std::size_t kMaxStopStringBytes = 256;

struct SamplingParamsError {
  std::string field;    // the parameter's name, as the API spells it
  std::string message;  // says which values are allowed
};

// Checks ranges and consistency; `vocab` bounds logit_bias and stop_token_ids. Never throws.
Status<SamplingParamsError> validate_sampling_params(const SamplingParams& params, std::uint32_t vocab);

}  // namespace sluice
