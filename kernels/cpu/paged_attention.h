// Causal multi-head attention with grouped KV heads over a paged KV cache (one layer).
//
// Cache layout (one layer, K and V alike): [num_blocks][kv_heads][block_size][head_dim] fp32, so the keys of
// one head inside a block are contiguous. Token t of the batch sits at positions[t] of its sequence and
// attends to positions [lo, positions[t]] of the same sequence (lo = 0, or positions[t] - sliding_window + 1
// with a window), whose K/V must already be in the cache: position j lives in block
// block_table[block_table_offset[t] + j / block_size], slot j % block_size.
//
// Algorithm per work item (t, h), h using KV head h / (n_heads / kv_heads): scores s_j = scale · q·k_j in
// position order, softmax (max, exponentials, left-to-right sum, normalize), out = Σ_j p_j v_j in position
// order. Items are independent and each is computed start to finish by one caller, so splitting items across
// threads or batching sequences together never changes a result.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::kernels {

struct PagedAttentionParams {
  const float* q = nullptr;  // q[t * q_stride + h * head_dim + d]
  std::size_t q_stride = 0;
  float* out = nullptr;  // out[t * out_stride + h * head_dim + d]
  std::size_t out_stride = 0;
  const float* k_cache = nullptr;
  const float* v_cache = nullptr;
  std::uint32_t n_heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t block_size = 0;
  const std::int32_t* positions = nullptr;            // per token
  const std::int32_t* block_table = nullptr;          // block ids, all sequences concatenated
  const std::uint32_t* block_table_offset = nullptr;  // per token: where its sequence's table starts
  std::uint32_t sliding_window = 0;                   // 0: unlimited
  float scale = 1.0f;
};

// Items [item_begin, item_end), item = t * n_heads + h. `scratch` holds max(positions[t]) + 1 floats.
void paged_attention_rows(const PagedAttentionParams& p, std::uint32_t item_begin, std::uint32_t item_end,
                          float* scratch);

}  // namespace sluice::kernels
