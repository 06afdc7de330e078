// The model's weights on the device, in the layout the CUDA forward pass reads: bf16 everywhere except the
// RoPE frequency table, Q/K/V fused into one [q_dim + 2 kv_dim][hidden] matrix (one GEMM) and gate/up into
// one [2 ffn][hidden] matrix (gate rows first, as SwiGLU expects). One device allocation holds them all.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda/device_memory.h"
#include "engine/model/model_spec.h"
#include "engine/model/weights.h"
#include "engine/util/result.h"

namespace sluice::cuda {

struct DeviceLayer {
  __nv_bfloat16* qkv = nullptr;        // [q_dim + 2 kv_dim][hidden]
  __nv_bfloat16* qkv_bias = nullptr;   // [q_dim + 2 kv_dim] when spec.qkv_bias
  __nv_bfloat16* wo = nullptr;         // [hidden][q_dim]
  __nv_bfloat16* bo = nullptr;         // [hidden] when spec.output_bias
  __nv_bfloat16* gate_up = nullptr;    // [2 ffn][hidden]
  __nv_bfloat16* down = nullptr;       // [hidden][ffn]
  __nv_bfloat16* attn_norm = nullptr;  // [hidden]
  __nv_bfloat16* ffn_norm = nullptr;   // [hidden]
};

struct DeviceWeights {
  DeviceAllocation arena;
  __nv_bfloat16* embedding = nullptr;  // [vocab][hidden]
  __nv_bfloat16* lm_head = nullptr;    // [vocab][hidden]; the embedding itself when tied
  __nv_bfloat16* final_norm = nullptr;
  float* inv_freq = nullptr;  // [head_dim / 2], rope_inv_freq(spec)
  std::vector<DeviceLayer> layers;
};

// Bytes of the arena for `spec` (tied: the LM head reuses the embedding).
std::uint64_t device_weight_bytes(const ModelSpec& spec, bool tied);

// True when the loaded model's LM head is its embedding matrix (no separate copy needed on the device).
bool lm_head_is_embedding(const ModelWeights& weights);

// Allocates the arena for `spec` and points every tensor into it (contents undefined).
cudaError_t allocate_device_weights(const ModelSpec& spec, bool tied, DeviceWeights& out);

// Points every tensor of `spec` into an arena of device_weight_bytes() bytes at `base` (allocate_device_weights
// does this for device memory; tests pass host memory). `out.arena` is left alone.
void place_weights(const ModelSpec& spec, bool tied, std::byte* base, DeviceWeights& out);

// Receives the weights as fp32 runs bound for addresses inside the arena, converting them to bf16 there.
class WeightSink {
 public:
  virtual ~WeightSink() = default;
  virtual Status<std::string> put(__nv_bfloat16* dst, const float* src, std::size_t count) = 0;
};

// Sends every tensor of `weights` to `sink`, dequantized row by row, in the fused layout of `layout` (placed by
// place_weights for weights.spec(), tied iff layout.lm_head == layout.embedding). The RoPE table is not sent.
Status<std::string> stream_weights(const ModelWeights& weights, const DeviceWeights& layout, WeightSink& sink);

// Uploads `weights` into an arena from allocate_device_weights(), dequantizing each matrix row by row on the host (GGUF
// Q4_0 / Q4_1 / Q8_0, fp32) into bf16 and streaming it through a pinned buffer. Synchronous: returns when the copies
// are done. The error names the step that failed.
Status<std::string> upload_weights(const ModelWeights& weights, cudaStream_t stream, DeviceWeights& out);

// Fills an arena from allocate_device_weights() on the device with deterministic uniform random values (benchmarks of
// shapes whose real weights are not at hand): matrices scaled by 1/sqrt(fan-in) so activations keep their
// size through the layers, norms of ones, small biases. Synchronous.
Status<std::string> fill_random_weights(const ModelSpec& spec, std::uint64_t seed, cudaStream_t stream,
                                        DeviceWeights& out);

}  // namespace sluice::cuda
