// The CPU sampler: one row of logits in, one token id out, in vLLM's order of processing:
//   1. logit_bias added;
//   2. min_tokens: while fewer than min_tokens tokens were generated, EOS (unless ignore_eos) and
//      stop_token_ids are banned (-inf);
//   3. repetition_penalty over prompt and generated ids (positive logits divided, negative multiplied),
//      then frequency_penalty (times the count) and presence_penalty (once) over generated ids;
//   4. temperature 0 (below 1e-5): argmax, the lowest id on ties. Otherwise logits / temperature, then
//      top_k, top_p (the smallest most-likely set whose mass reaches top_p), min_p (relative to the most
//      likely token), and one draw by inverse CDF over the surviving tokens in ascending id order, with the
//      uniform philox::uniform(seed, token_index, 0).
// The draw therefore depends only on the logits, the parameters, the seed and the token index — not on the
// batch or on which device ran the model.
//
// Log-probabilities are the log-softmax of the logits after steps 1–3 and temperature (before top_k, top_p
// and min_p cut the candidates), so they are finite for every token that was not banned.
//
// Cost: O(V) for the processing and the plain draw; top_k adds one O(V log k) pass with a bounded heap
// (nearly O(V): most logits lose one comparison against the heap's worst); top_p alone histograms the
// weights in one pass and sorts only the tokens down to the bucket where the mass is reached, so it sorts
// about the nucleus, never the whole vocabulary unless the nucleus is the whole vocabulary.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/sampling/sampling_params.h"
#include "engine/sampling/token_history.h"

namespace sluice {

struct TokenLogprob {
  std::int32_t id = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  std::int32_t token = -1;                 // -1 only for an empty row
  float logprob = 0.0f;                    // filled when params.logprobs
  std::vector<TokenLogprob> top_logprobs;  // params.top_logprobs entries, most likely first (ties: lower id)
};

// Scratch buffers, grown to the vocabulary once and reused; one per thread that samples.
struct SamplerWorkspace {
  std::vector<std::int32_t> order;
  std::vector<float> weights;
};

// Steps 1–3 in place; then NaN logits become -inf and +inf the largest float. Ids out of range in logit_bias, stop_token_ids or
// `eos_ids` are ignored.
void process_logits(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                    std::span<const std::int32_t> eos_ids);

// Samples the token at `token_index` (0 for a request's first generated token) from `logits`, which it uses as
// scratch. `seed` is the request's seed (params.seed or the one the engine drew for it).
SampleResult sample_row(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                        std::uint64_t seed, std::uint32_t token_index, std::span<const std::int32_t> eos_ids,
                        SamplerWorkspace& workspace);

// The same with a workspace private to the calling thread.
SampleResult sample_row(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                        std::uint64_t seed, std::uint32_t token_index, std::span<const std::int32_t> eos_ids);

}  // namespace sluice
