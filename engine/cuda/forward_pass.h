// The CUDA forward pass as a sequence of kernel launches, independent of the backend object: it reads only
// the buffers named in ForwardBuffers and launches through a KernelLauncher. The backend passes device memory
// and a launcher that enqueues the real kernels on its stream; tests pass host memory and a launcher that runs
// each kernel's CPU reference, which checks the pass's wiring (strides, offsets, fused layouts, attention
// split, padding rows) on any machine.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "engine/cuda/cuda_weights.h"
#include "engine/cuda/memory_plan.h"
#include "engine/cuda/step_inputs.h"
#include "engine/model/model_spec.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/sampling.h"

namespace sluice::cuda {

class KernelLauncher {
 public:
  virtual ~KernelLauncher() = default;
  virtual cudaError_t embedding(const EmbeddingParams& p) = 0;
  virtual cudaError_t rmsnorm(const RmsNormParams& p) = 0;
  virtual cudaError_t rope(const RopeParams& p) = 0;
  virtual cudaError_t decode_attention(const DecodeAttentionParams& p) = 0;
  virtual cudaError_t prefill_attention(const PrefillAttentionParams& p) = 0;
  virtual cudaError_t swiglu(const SwiGluParams& p) = 0;
  virtual cudaError_t gather_rows(const GatherRowsParams& p) = 0;
  virtual cudaError_t gemm(const GemmArgs& args) = 0;
  virtual std::string gemm_error() const = 0;  // after a failed gemm()
  virtual cudaError_t sampling(const SamplingParams& p) = 0;
};

// Launches on one stream (the backend's, or a capturing one).
class DeviceLauncher final : public KernelLauncher {
 public:
  DeviceLauncher(Gemm& gemm, cudaStream_t stream) : gemm_(gemm), stream_(stream) {}
  cudaError_t embedding(const EmbeddingParams& p) override { return launch_embedding(p, stream_); }
  cudaError_t rmsnorm(const RmsNormParams& p) override { return launch_rmsnorm(p, stream_); }
  cudaError_t rope(const RopeParams& p) override { return launch_rope(p, stream_); }
  cudaError_t decode_attention(const DecodeAttentionParams& p) override { return launch_decode_attention(p, stream_); }
  cudaError_t prefill_attention(const PrefillAttentionParams& p) override {
    return launch_prefill_attention(p, stream_);
  }
  cudaError_t swiglu(const SwiGluParams& p) override { return launch_swiglu(p, stream_); }
  cudaError_t gather_rows(const GatherRowsParams& p) override { return launch_gather_rows(p, stream_); }
  cudaError_t gemm(const GemmArgs& args) override { return gemm_.run(args, stream_); }
  std::string gemm_error() const override { return gemm_.last_error(); }
  cudaError_t sampling(const SamplingParams& p) override { return launch_sampling(p, stream_); }

 private:
  Gemm& gemm_;
  cudaStream_t stream_;
};

// Everything the pass reads or writes.
struct ForwardBuffers {
  const ModelSpec* spec = nullptr;
  const DeviceWeights* weights = nullptr;
  const Activations* act = nullptr;  // act->inputs holds the step's packed inputs
  __nv_bfloat16* k_cache = nullptr;  // [layer][block][kv_head][block_size][head_dim]
  __nv_bfloat16* v_cache = nullptr;
  std::size_t layer_elements = 0;  // one layer's K (or V) pages
  std::uint32_t num_blocks = 0;
  std::uint32_t block_size = 0;
  bool sample = true;  // false: stop after the logits (return_logits)
};

// Launches the pass for `shape`: embedding, the layers, final norm, logits rows, LM head (fp32 logits in
// act->logits, row r = logits row r) and, when `sample`, device sampling into act->sampled. On failure returns
// the error and names the failed launch in `failed`.
cudaError_t run_forward(const ForwardBuffers& b, const StepShape& shape, KernelLauncher& k, std::string& failed);

}  // namespace sluice::cuda
