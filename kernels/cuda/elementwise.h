// Per-token kernels of the forward pass: embedding gather, RMSNorm fused with the residual add, RoPE,
// SwiGLU, KV write into pages, row gather, and random fill (benchmarks). Conventions: device_error.h.
//
// The residual stream is fp32 [tokens][hidden]; everything a GEMM reads or writes is bf16.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace sluice::cuda {

// out[t][:] = float(table[ids[t]][:]). ids outside [0, vocab) produce zero rows (the engine validates ids).
struct EmbeddingParams {
  const __nv_bfloat16* table = nullptr;  // [vocab][hidden]
  const std::int32_t* ids = nullptr;     // [num_tokens]
  float* out = nullptr;                  // [num_tokens][hidden]
  std::uint32_t num_tokens = 0;
  std::uint32_t hidden = 0;
  std::uint32_t vocab = 0;
};
cudaError_t launch_embedding(const EmbeddingParams& p, cudaStream_t stream);
void embedding_reference(const EmbeddingParams& p);  // host pointers

// For each row r: if delta: residual[r] += float(delta[r]) (+ float(delta_bias) when given);
// then out[r] = bf16(residual[r] * rsqrt(mean(residual[r]^2) + eps) * float(weight)).
// Sum of squares in fp32.
struct RmsNormParams {
  float* residual = nullptr;                   // [rows][hidden], read and (with delta) written
  const __nv_bfloat16* delta = nullptr;        // [rows][hidden] or null
  const __nv_bfloat16* delta_bias = nullptr;   // [hidden] or null (an output-projection bias)
  const __nv_bfloat16* weight = nullptr;       // [hidden]
  __nv_bfloat16* out = nullptr;                // [rows][hidden]
  std::uint32_t rows = 0;
  std::uint32_t hidden = 0;
  float eps = 1e-5f;
};
cudaError_t launch_rmsnorm(const RmsNormParams& p, cudaStream_t stream);
void rmsnorm_reference(const RmsNormParams& p);

// RoPE in place on q and k rows of token t at positions[t]: angle_i = positions[t] * inv_freq[i] (fp32, exact
// sin/cos), i < head_dim / 2. half style (Hugging Face rotate_half): pairs (i, i + head_dim/2);
// interleaved style (GGUF llama): pairs (2i, 2i + 1). Math in fp32, rounded to bf16 once.
// Accepted shapes: head_dim a multiple of 4 up to 512; q_stride, k_stride even and q, k 4-byte aligned (each
// thread moves bf16 pairs). k may be null when kv_heads is 0.
// With `cache` set, the same launch also does kv_write (below) for the token: the rotated K heads and the V
// heads go into the pages at slot_mapping[t] (skipped for a negative or out-of-range slot), with the same bits
// as launch_rope followed by launch_kv_write, one kernel instead of two. cache->k and cache->k_stride must be
// this struct's k and k_stride; cache->kv_heads and head_dim must match; v_stride even, v and the pages 4-byte
// aligned. V is read while q and k are rotated in place, so its rows must not overlap theirs (the packed QKV
// row of the forward pass keeps them apart).
struct KvWriteParams;
struct RopeParams {
  __nv_bfloat16* q = nullptr;  // q[t * q_stride + h * head_dim + d], h < n_heads
  __nv_bfloat16* k = nullptr;  // k[t * k_stride + h * head_dim + d], h < kv_heads
  std::uint32_t q_stride = 0;
  std::uint32_t k_stride = 0;
  const std::int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;          // [head_dim / 2]
  std::uint32_t num_tokens = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  bool interleaved = false;
  const KvWriteParams* cache = nullptr;  // read on the host at launch (copied into the kernel's arguments)
};
cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream);
void rope_reference(const RopeParams& p);

// out[t][i] = bf16(silu(g) * u) with g = gate_up[t][i], u = gate_up[t][ffn + i], in fp32.
struct SwiGluParams {
  const __nv_bfloat16* gate_up = nullptr;  // [num_tokens][2 * ffn]
  __nv_bfloat16* out = nullptr;            // [num_tokens][ffn]
  std::uint32_t num_tokens = 0;
  std::uint32_t ffn = 0;
};
cudaError_t launch_swiglu(const SwiGluParams& p, cudaStream_t stream);
void swiglu_reference(const SwiGluParams& p);

// Copies token t's K and V heads into the paged cache of one layer (layout: engine/backend/kv_cache.h,
// [num_blocks][kv_heads][block_size][head_dim], bf16) at slot_mapping[t] = block * block_size + slot.
// A negative slot skips the token, and so does one at or past num_blocks * block_size (never written out of
// bounds).
struct KvWriteParams {
  const __nv_bfloat16* k = nullptr;  // k[t * k_stride + g * head_dim + d]
  const __nv_bfloat16* v = nullptr;
  std::uint32_t k_stride = 0;
  std::uint32_t v_stride = 0;
  __nv_bfloat16* k_cache = nullptr;  // this layer's pages
  __nv_bfloat16* v_cache = nullptr;
  const std::int32_t* slot_mapping = nullptr;  // [num_tokens]
  std::uint32_t num_tokens = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t block_size = 0;
  std::uint32_t num_blocks = 0;
};
cudaError_t launch_kv_write(const KvWriteParams& p, cudaStream_t stream);
void kv_write_reference(const KvWriteParams& p);

// out[r][:] = in[rows[r]][:] (bf16 rows of `width` elements; strides in elements). A negative rows[r] leaves
// out row r as it was.
struct GatherRowsParams {
  const __nv_bfloat16* in = nullptr;
  __nv_bfloat16* out = nullptr;
  const std::int32_t* rows = nullptr;  // [num_rows]
  std::uint32_t num_rows = 0;
  std::uint32_t width = 0;
  std::uint32_t in_stride = 0;
  std::uint32_t out_stride = 0;
};
cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream);
void gather_rows_reference(const GatherRowsParams& p);

// data[i] = bf16(scale * (2u - 1)) with u = philox::uniform(seed, uint32(i >> 32), uint32(i)) (engine/sampling/
// philox.h): a deterministic uniform fill in [-scale, scale) used to make random-weight models on the device
// (benchmarks). So four consecutive elements 4g..4g+3 take the four words of one Philox4x32-10 block with
// counter {hi32(4g), lo32(4g) / 4, 0, 0} and key {lo32(seed), hi32(seed)}; fp32 math, one rounding to bf16.
struct RandomFillParams {
  __nv_bfloat16* data = nullptr;
  std::uint64_t count = 0;
  std::uint64_t seed = 0;
  float scale = 1.0f;
};
cudaError_t launch_random_fill(const RandomFillParams& p, cudaStream_t stream);
void random_fill_reference(const RandomFillParams& p);

}  // namespace sluice::cuda
