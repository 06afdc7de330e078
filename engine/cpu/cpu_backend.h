// The CPU backend: fp32 activations and KV cache, weights as ModelWeights holds them (quantized blocks
// dequantized inside the matmul), compute split over a ThreadPool by output rows. It is the reference
// backend: results are batch-invariant (a sequence's logits are bit-identical whether it runs alone or
// batched, in one prefill or in chunks, on any number of threads) and within 1e-3 relative of Hugging Face
// transformers in fp32.
//
// One forward step, for the plan's tokens T:
//   x = embedding[token_ids]
//   per layer: xn = rmsnorm(x); q,k,v = xn·Wq/Wk/Wv (+bias); RoPE(q, k) at each token's position;
//              K/V → the sequence's pages; a = paged causal attention(q); x += a·Wo (+bias);
//              xn = rmsnorm(x); x += (silu(xn·Wg) * (xn·Wu))·Wd
//   for sequences that want logits: logits = rmsnorm(x[last token])·Wlm
//
// Threading: execute() runs on the calling thread (the engine thread) plus `threads - 1` pool workers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/kv_cache.h"
#include "engine/model/weights.h"
#include "engine/util/thread_pool.h"

namespace sluice {

struct CpuBackendOptions {
  unsigned threads = 2;                                     // compute threads, the caller included
  std::uint64_t kv_cache_bytes = std::uint64_t{256} << 20;  // K and V of all layers
  std::uint32_t block_size = 16;                            // token slots per KV block
  std::uint32_t max_batched_tokens = 2048;                  // largest plan.num_tokens() accepted
};

class CpuBackend final : public Backend {
 public:
  // Fails when the options are out of range or the KV cache does not fit in memory.
  static Result<std::unique_ptr<CpuBackend>, BackendError> create(std::shared_ptr<const ModelWeights> weights,
                                                                  const CpuBackendOptions& options);

  Result<StepOutput, BackendError> execute(const StepPlan& plan) override;

  const ModelSpec& spec() const override { return weights_->spec(); }
  std::uint32_t num_kv_blocks() const override { return layout_.num_blocks; }
  std::uint32_t block_size() const override { return layout_.block_size; }
  std::uint32_t max_batched_tokens() const override { return options_.max_batched_tokens; }
  std::string_view name() const override { return "cpu"; }
  BackendMemory memory() const override {
    return BackendMemory{0, std::uint64_t{2} * layout_.total_elements() * sizeof(float), 0};
  }
  unsigned threads() const { return pool_.size(); }

 private:
  CpuBackend(std::shared_ptr<const ModelWeights> weights, const CpuBackendOptions& options);

  Status<BackendError> validate(const StepPlan& plan) const;
  void ensure_capacity(std::uint32_t tokens, std::uint32_t rows);  // may throw std::bad_alloc
  void forward_layer(std::uint32_t layer, const StepPlan& plan, std::uint32_t n);
  void compute_logits(const StepPlan& plan);
  // Runs y = W x (+bias) (accumulating when asked) for n tokens, split over the pool by rows.
  void matmul(const kernels::WeightView& w, const float* x, std::size_t xs, std::uint32_t n, float* y, std::size_t ys,
              const float* bias, bool accumulate);

  std::shared_ptr<const ModelWeights> weights_;
  CpuBackendOptions options_;
  ThreadPool pool_;
  KvCacheLayout layout_;
  // Left uninitialized (pages are mapped on first write): attention only reads positions already written.
  std::unique_ptr<float[]> k_cache_;
  std::unique_ptr<float[]> v_cache_;
  std::vector<float> inv_freq_;

  // Step scratch, grown to the largest step seen (bounded by max_batched_tokens).
  std::uint32_t token_capacity_ = 0;
  std::vector<float> x_, xn_, q_, k_, v_, attn_, ffn_;
  std::vector<std::uint32_t> table_offset_;  // per token: its sequence's table_begin
  std::vector<float> thread_scratch_;        // per thread: attention scores, then RoPE cos/sin
  std::size_t thread_scratch_stride_ = 0;

  // Output rows.
  std::vector<float> final_x_;
  std::vector<float> logits_;
  std::vector<std::uint32_t> out_seq_index_;
  std::vector<std::uint64_t> out_seq_ids_;
  std::vector<std::uint32_t> out_token_;  // per row: index of the last token of that sequence
};

}  // namespace sluice
