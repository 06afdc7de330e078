#include "engine/sampling/plan_sampling.h"

namespace sluice {

SequenceSampling plan_sampling(const SamplingParams& p, std::uint64_t seed, std::uint32_t generated,
                               std::span<const std::int32_t> eos_ids) {
  SequenceSampling s;
  s.temperature = p.temperature;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.top_k = p.top_k;
  s.seed = seed;
  s.token_index = generated;
  // min_tokens matters only while it bans something: EOS (unless ignored) or a stop token id.
  const bool min_tokens_bans =
      generated < p.min_tokens && ((!p.ignore_eos && !eos_ids.empty()) || !p.stop_token_ids.empty());
  s.host_sample = p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f || p.repetition_penalty != 1.0f ||
                  !p.logit_bias.empty() || min_tokens_bans || p.logprobs || p.top_logprobs > 0;
  return s;
}

}  // namespace sluice
