// Attention over the paged KV cache (one layer, bf16 K/V pages laid out as in engine/backend/kv_cache.h:
// [num_blocks][kv_heads][block_size][head_dim]). Grouped-query attention: query head h reads KV head
// h / (n_heads / kv_heads). head_dim 64 or 128; block_size 16 or 32. Softmax in fp32; outputs bf16.
// The K/V of every position a query reads must already be in the pages (the KV write runs first); the pages
// are read in 16-byte chunks, so k_cache and v_cache must be 16-byte aligned. Launchers return
// cudaErrorInvalidValue for params out of range and launch nothing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace sluice::cuda {

// Decode attention: each listed token attends positions [0, positions[t]] of its sequence (a negative
// position gives a zero output row). Split along the sequence in partitions of kDecodePartition positions,
// so long contexts use the whole GPU, and a small batch splits its rows finer (down to 64 positions) so that
// batch 1 does too; the partition that finishes last combines them, all in one kernel. A row within one
// partition is written directly. The grid is sized from max_context (not from the actual
// lengths), so a launch can be captured in a CUDA graph once and replayed while sequences grow up to
// max_context positions (positions past that bound are not read: the caller keeps positions[t] < max_context).
// One CTA serves up to 8 query heads of a KV group, so K/V are read once per group.
inline constexpr std::uint32_t kDecodePartition = 512;

struct DecodeAttentionParams {
  const __nv_bfloat16* q = nullptr;  // q[t * q_stride + h * head_dim + d]
  __nv_bfloat16* out = nullptr;      // out[t * out_stride + h * head_dim + d]
  std::uint32_t q_stride = 0;
  std::uint32_t out_stride = 0;
  const __nv_bfloat16* k_cache = nullptr;
  const __nv_bfloat16* v_cache = nullptr;
  const std::int32_t* tokens = nullptr;        // [num_tokens]: which rows of q/out (null: 0..num_tokens-1)
  const std::int32_t* positions = nullptr;     // per row of q (indexed by the token's row)
  const std::int32_t* block_tables = nullptr;  // page tables, concatenated
  const std::int32_t* table_offset = nullptr;  // per row of q: where its sequence's table starts
  std::uint32_t num_tokens = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t block_size = 0;
  std::uint32_t max_context = 0;  // bound on positions[t] + 1 for every listed token
  float scale = 1.0f;
  void* workspace = nullptr;  // decode_attention_workspace_bytes(...) bytes of device memory, 16-aligned
  // The max_tokens the workspace was sized for; it places the partial outputs after the arrival counters, so
  // every launch sharing a workspace must pass the same value. 0 stands for num_tokens: only for a workspace
  // that no launch with a different num_tokens uses.
  std::uint32_t workspace_tokens = 0;
};
// Workspace for launches with num_tokens <= max_tokens and a max_context up to the one given here: one arrival
// counter per (token, head), then the fp32 partial outputs and their softmax statistics; 0 when max_context
// is at most 64 (one tile, never split). Zero it once (cudaMemset) before its first launch: the last partition CTA of each
// (token, head group) to finish combines the partials and sets its counter back to zero, so every launch
// leaves the counters as it found them. One workspace serves one stream at a time.
std::size_t decode_attention_workspace_bytes(std::uint32_t max_tokens, std::uint32_t n_heads, std::uint32_t head_dim,
                                             std::uint32_t max_context);
// Partitions per row of a launch (its grid's x): max_context / kDecodePartition rounded up, or more for a
// small batch (up to 32, each at least a 64-position tile). 0 for an empty or invalid shape.
std::uint32_t decode_attention_partitions(std::uint32_t num_tokens, std::uint32_t n_heads, std::uint32_t kv_heads,
                                          std::uint32_t max_context);
cudaError_t launch_decode_attention(const DecodeAttentionParams& p, cudaStream_t stream);

// Prefill attention (flash-attention style, causal, GQA) for sequences that bring several new tokens: new
// token k of sequence s sits at position start_pos[s] + k and attends positions [0, start_pos[s] + k] — the
// earlier chunks' K/V from the pages, its own chunk's too (already written). Queries and outputs are rows
// token_begin[s] + k of q / out. q and out are read and written as bf16 pairs: 4-byte aligned, even strides.
// Tokens past max_tokens_per_seq are not computed.
struct PrefillAttentionParams {
  const __nv_bfloat16* q = nullptr;
  __nv_bfloat16* out = nullptr;
  std::uint32_t q_stride = 0;
  std::uint32_t out_stride = 0;
  const __nv_bfloat16* k_cache = nullptr;
  const __nv_bfloat16* v_cache = nullptr;
  const std::int32_t* token_begin = nullptr;   // [num_seqs]
  const std::int32_t* token_count = nullptr;   // [num_seqs]
  const std::int32_t* start_pos = nullptr;     // [num_seqs]
  const std::int32_t* table_offset = nullptr;  // [num_seqs]
  const std::int32_t* block_tables = nullptr;
  std::uint32_t num_seqs = 0;
  std::uint32_t max_tokens_per_seq = 0;  // bound on token_count[s] (sizes the grid)
  std::uint32_t n_heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t block_size = 0;
  float scale = 1.0f;
};
cudaError_t launch_prefill_attention(const PrefillAttentionParams& p, cudaStream_t stream);

// The CPU reference for both: token by token, in fp32 from the bf16 inputs, output rounded to bf16.
// Host pointers; `tokens`, `positions`, `table_offset` per query row as in DecodeAttentionParams (a prefill
// test converts its sequences to per-row positions).
void attention_reference(const DecodeAttentionParams& p);

}  // namespace sluice::cuda
