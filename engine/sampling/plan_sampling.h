// What a StepPlan carries about a request's next token for a backend that samples on the device: the
// temperature / top_k / top_p / min_p draw with the request's seed and token index, or host_sample when the
// request needs what only the host sampler does (engine/sampling/sampler.h steps 1-3 and logprobs).
#pragma once

#include <cstdint>
#include <span>

#include "engine/backend/step_plan.h"
#include "engine/sampling/sampling_params.h"

namespace sluice {

// `generated`: tokens the request has generated so far (the index of the token drawn now). `eos_ids`: the
// model's end tokens, which min_tokens bans unless ignore_eos.
SequenceSampling plan_sampling(const SamplingParams& params, std::uint64_t seed, std::uint32_t generated,
                               std::span<const std::int32_t> eos_ids);

}  // namespace sluice
