// The CUDA backend: bf16 weights and KV cache on one GPU, cuBLASLt GEMMs and the project's kernels
// (kernels/cuda/), sampling on the device so only token ids cross back to the host.
//
// One forward step, for the plan's tokens (same meaning as the CPU backend, engine/cpu/cpu_backend.h):
//   x = embedding[token_ids]                                   (fp32 residual stream)
//   per layer: xn = rmsnorm(x += delta)                        (delta: the previous layer's MLP output)
//              qkv = xn·Wqkv (+bias); RoPE(q, k); K/V → pages by slot mapping
//              a = attention(q): decode kernel for sequences with one new token, prefill kernel for the rest
//              delta = a·Wo; xn = rmsnorm(x += delta (+bo)); delta = swiglu(xn·Wgate_up)·Wdown
//   xn = rmsnorm(x += delta); rows that want logits gathered; logits = rows·Wlm (fp32)
//   token ids = device sampling(logits) → host; logits of rows marked host_sample → host
//
// Per step: the host packs every input (token ids, positions, slot mapping, page tables, attention lists,
// logits rows, sampling parameters) into one pinned staging buffer, one cudaMemcpyAsync moves it to a
// persistent device mirror, the kernels run on one stream, and one synchronization waits for the results.
// Pure decode steps replay a CUDA graph captured per batch-size bucket (the batch padded with rows whose KV
// slot is -1); other steps run eagerly.
//
// Errors: a CUDA or cuBLASLt failure becomes BackendError::device_fault and the backend refuses every later
// step (the context may be unusable); creation failures are invalid_config or out_of_memory with a message
// that says what to change. Nothing aborts the process.
//
// Threading: created on any thread, then used by one thread at a time (the engine thread); execute() binds
// the device to the calling thread.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/cuda/cuda_weights.h"
#include "engine/cuda/device_memory.h"
#include "engine/cuda/memory_plan.h"
#include "engine/cuda/step_inputs.h"
#include "engine/model/weights.h"

namespace sluice {

namespace cuda {
class Gemm;
}

struct CudaBackendOptions {
  int device = 0;
  double gpu_memory_utilization = 0.90;  // fraction of the device's total memory this backend may use
  std::uint32_t max_model_len = 0;       // 0: the model's context length
  std::uint32_t max_num_seqs = 256;
  std::uint32_t max_batched_tokens = 8192;
  std::uint32_t block_size = 16;
  bool enforce_eager = false;  // true: never capture CUDA graphs
  bool return_logits = false;  // tests: StepOutput carries fp32 logits (copied to host), no ids
  // Test hook: the step with this ordinal (1 = the first execute()) launches a kernel that makes an illegal
  // memory access, so the device-fault path runs for real. 0: off. Only the backend's tests set it; the
  // engine never does (its own fault injection is engine/core/fault_hooks.h, installed by test binaries).
  std::uint64_t test_fault_at_step = 0;
};

Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend(std::shared_ptr<const ModelWeights> weights,
                                                                   const CudaBackendOptions& options);
// Random bf16 weights generated on the device (benchmarks of 8B shapes whose weights never exist on the host).
Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend_random(const ModelSpec& spec, std::uint64_t seed,
                                                                          const CudaBackendOptions& options);

class CudaBackend final : public Backend {
 public:
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Result<StepOutput, BackendError> execute(const StepPlan& plan) override;

  const ModelSpec& spec() const override { return spec_; }
  std::uint32_t num_kv_blocks() const override { return num_blocks_; }
  std::uint32_t block_size() const override { return limits_.block_size; }
  std::uint32_t max_batched_tokens() const override { return limits_.max_tokens; }
  std::string_view name() const override { return "cuda"; }

  // Introspection for tests, logs and benchmarks.
  std::uint32_t max_model_len() const { return limits_.max_model_len; }
  BackendMemory memory() const override { return {weights_.arena.bytes(), kv_arena_.bytes(), other_bytes_}; }
  const cuda::MemoryBudget& memory_budget() const { return memory_; }
  std::size_t graphs_captured() const;
  std::uint64_t graph_replays() const { return graph_replays_; }
  // Why graphs were turned off after a failed capture ("" while they work or when enforce_eager).
  const std::string& graph_disabled_reason() const { return graph_disabled_reason_; }

 private:
  friend Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend(std::shared_ptr<const ModelWeights>,
                                                                            const CudaBackendOptions&);
  friend Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend_random(const ModelSpec&, std::uint64_t,
                                                                                   const CudaBackendOptions&);
  // Both factories: `weights` null means random weights from `seed`.
  static Result<std::unique_ptr<Backend>, BackendError> build(std::shared_ptr<const ModelWeights> weights,
                                                              const ModelSpec& spec, std::uint64_t seed,
                                                              const CudaBackendOptions& options);

  using ForwardShape = cuda::StepShape;

  CudaBackend(const ModelSpec& spec, const CudaBackendOptions& options, const cuda::BackendLimits& limits);

  Status<BackendError> validate(const StepPlan& plan) const;
  // Enqueues the whole forward pass (and sampling unless return_logits) on stream_ (forward_pass.h). No sync.
  cudaError_t enqueue_forward(const ForwardShape& shape);
  // Runs a padded decode step through the bucket's graph, capturing it on first use.
  cudaError_t run_graph(const ForwardShape& shape, std::size_t bucket_index);
  // Captures the forward pass of `shape` into graphs_[bucket_index]; on failure turns graphs off (the step's
  // results already came from an eager run) and records why.
  void capture_graph(const ForwardShape& shape, std::size_t bucket_index);
  Failure<BackendError> device_fault(const std::string& what, cudaError_t err);
  cudaError_t ensure_host_logits(std::size_t rows);

  ModelSpec spec_;
  CudaBackendOptions options_;
  cuda::BackendLimits limits_;
  std::uint32_t num_blocks_ = 0;
  cuda::MemoryBudget memory_;
  std::uint64_t other_bytes_ = 0;  // activations and library workspaces
  std::vector<std::uint32_t> buckets_;

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  cuda::DeviceWeights weights_;
  cuda::DeviceAllocation activation_arena_;
  cuda::Activations act_;
  cuda::DeviceAllocation kv_arena_;
  __nv_bfloat16* k_cache_ = nullptr;  // [layer][block][kv_head][block_size][head_dim]
  __nv_bfloat16* v_cache_ = nullptr;
  std::size_t layer_elements_ = 0;  // one layer's K (or V) pages
  cuda::PinnedAllocation staging_;
  cuda::PinnedAllocation host_ids_;  // [max_seqs] int32
  cuda::PinnedAllocation host_logits_;
  std::size_t host_logits_rows_ = 0;

  std::vector<cudaGraphExec_t> graphs_;  // per bucket index; null until captured
  std::uint64_t graph_replays_ = 0;
  std::string graph_disabled_reason_;
  bool graphs_enabled_ = true;

  bool faulted_ = false;
  std::string fault_message_;
  std::uint64_t steps_ = 0;
  std::thread::id bound_thread_{};
  std::string forward_error_;  // which launch of enqueue_forward failed

  // Step scratch on the host (sized at creation).
  std::vector<std::uint32_t> out_seq_index_;
  std::vector<std::uint64_t> out_seq_ids_;
  std::vector<std::int32_t> out_ids_;
  std::vector<std::int32_t> out_logits_row_;
  std::vector<std::uint32_t> out_device_row_;  // per output row: its row in the device logits
};

}  // namespace sluice
