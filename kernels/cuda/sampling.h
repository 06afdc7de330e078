// Sampling on the device: one row of fp32 logits per sequence in, one token id out, so nothing of
// vocabulary size crosses to the host. Mirrors step 4 of the CPU sampler (engine/sampling/sampler.h):
//   temperature < 1e-5: argmax, lowest id on ties;
//   otherwise logits / temperature, then top_k (k > 0), top_p (< 1: the smallest most-likely set whose
//   mass reaches top_p), min_p (> 0: drop tokens whose probability is below min_p times the largest), and
//   one draw by inverse CDF over the survivors in ascending id order with u = philox::uniform(seed,
//   token_index, 0).
// Penalties, logit_bias, min_tokens and logprobs are the host sampler's business: the engine asks for
// logits of rows that need them.
// Greedy rows match the host exactly. Sampled rows use the same definitions (ties, order, thresholds), but
// the device's expf and its fixed-point sums (2^-43 units) differ from the host's in the last bits, so a
// draw can differ only when u lands within ~1e-7 of a token boundary. A row's draw never depends on the
// other rows of the launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace sluice::cuda {

struct RowSampling {
  float temperature = 0.0f;
  float top_p = 1.0f;
  float min_p = 0.0f;
  std::int32_t top_k = 0;  // 0 or negative: off
  std::uint64_t seed = 0;
  std::uint32_t token_index = 0;
};

struct SamplingParams {
  const float* logits = nullptr;      // logits[r * logits_stride + v], v < vocab
  std::uint32_t logits_stride = 0;
  const RowSampling* rows = nullptr;  // [num_rows], device memory
  std::int32_t* out = nullptr;        // [num_rows]
  std::uint32_t num_rows = 0;
  std::uint32_t vocab = 0;
  void* workspace = nullptr;          // sampling_workspace_bytes(num_rows, vocab) bytes of device memory
};
// Today 0: each row's state lives in the shared memory of its block, so `workspace` may be null. Callers
// still size it with this function, so that a later kernel may ask for memory without an interface change.
std::size_t sampling_workspace_bytes(std::uint32_t max_rows, std::uint32_t vocab);
// Accepts vocab in [1, 2^20] and logits_stride >= vocab; greedy rows cost one pass over their logits.
cudaError_t launch_sampling(const SamplingParams& p, cudaStream_t stream);
// Host pointers throughout (workspace unused).
void sampling_reference(const SamplingParams& p);

}  // namespace sluice::cuda
