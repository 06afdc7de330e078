// Causal prefill attention over the paged KV cache, flash-attention style (online softmax), GQA, bf16 tensor
// cores with fp32 accumulation.
//
// Layouts: q[row * q_stride + h * head_dim + d] and out alike, row = token_begin[s] + k for new token k of
// sequence s; K/V pages [num_blocks][kv_heads][block_size][head_dim] (engine/backend/kv_cache.h). New token k
// sits at position start_pos[s] + k and attends positions [0, start_pos[s] + k]; the positions before
// start_pos[s] are earlier chunks of the same sequence, read from the pages like the chunk's own.
//
// Launch: grid (ceil(max_tokens_per_seq / 64), n_heads, num_seqs), 128 threads (4 warps). One CTA takes 64
// consecutive new tokens of one sequence and one query head; warp w owns query rows 16w..16w+15. Query tiles
// run in reverse grid order so the longest (latest) tiles start first. Per CTA:
//   Q tile → registers (mma A fragments, through shared memory once);
//   for each 64-position key tile up to the last position any valid row needs (causal skip):
//     K tile (cp.async, 16-byte chunks, padded rows) → S = Q·Kᵀ with mma.m16n8k16 (bf16 in, fp32 out);
//     scale to base 2, mask positions beyond each row's own, online softmax in fp32 (running max m and
//     sum l per row, the output rescaled by 2^(m_old - m_new));
//     V tile → O += P·V, P (the A operand) split into hi + lo bf16 parts so the weights keep ~16 bits,
//     V read through ldmatrix.trans.
//   out = O / l, rounded to bf16.
// Loads overlap compute: the V tile is fetched while S is computed, the next K tile while P·V runs.
// Positions past the tile's last needed key are zero-filled in shared memory (never read from the pages),
// so masked products are exact zeros rather than garbage times zero. Query rows past the sequence's count are
// computed on zero queries and not stored.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_device.cuh"
#include "kernels/cuda/pdl.cuh"

namespace sluice::cuda {

namespace {

using namespace attention_detail;

constexpr int kThreads = 128;
constexpr int kTileQ = 64;  // query rows per CTA: 16 per warp
constexpr int kTileK = 64;  // key positions per tile

struct PrefillArgs {
  const __nv_bfloat16* q;
  __nv_bfloat16* out;
  const __nv_bfloat16* k_cache;
  const __nv_bfloat16* v_cache;
  const std::int32_t* token_begin;
  const std::int32_t* token_count;
  const std::int32_t* start_pos;
  const std::int32_t* table_offset;
  const std::int32_t* block_tables;
  std::size_t q_stride;
  std::size_t out_stride;
  int kv_heads;
  int group;
  int bs_shift;
  float scale_log2;
};

template <int kHeadDim>
__global__ void __launch_bounds__(kThreads) prefill_attention_kernel(const PrefillArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  constexpr int kRow = kHeadDim + 8;       // padded shared row: ldmatrix rows land in distinct banks
  constexpr int kKChunks = kHeadDim / 16;  // k-steps of S = Q·Kᵀ
  constexpr int kDTiles = kHeadDim / 8;    // n-tiles of O
  constexpr int kKeyTiles = kTileK / 8;    // n-tiles of S
  __shared__ __align__(16) __nv_bfloat16 k_s[kTileK * kRow];
  __shared__ __align__(16) __nv_bfloat16 v_s[kTileK * kRow];
  static_assert(kTileQ == kTileK, "the Q tile is staged in the K buffer");

  const int seq = static_cast<int>(blockIdx.z);
  const int head = static_cast<int>(blockIdx.y);
  const int q_tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int count = a.token_count[seq];
  const int q0 = q_tile * kTileQ;
  if (q0 >= count) return;
  const int nq = min(kTileQ, count - q0);
  const int first_pos = a.start_pos[seq] + q0;  // position of the tile's first query row
  const int last_pos = first_pos + nq - 1;      // the furthest key any valid row attends
  const std::size_t row0 = static_cast<std::size_t>(a.token_begin[seq]) + q0;
  const int kv_head = head / a.group;
  const std::int32_t* table = a.block_tables + a.table_offset[seq];
  const std::size_t block_stride = (static_cast<std::size_t>(a.kv_heads) << a.bs_shift) * kHeadDim;
  const std::size_t head_offset = (static_cast<std::size_t>(kv_head) << a.bs_shift) * kHeadDim;
  const PageView k_view{a.k_cache, table, block_stride, head_offset, a.bs_shift};
  const PageView v_view{a.v_cache, table, block_stride, head_offset, a.bs_shift};

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane >> 2;  // fragment row (and row + 8)
  const int t = lane & 3;   // fragment column pair

  // Q tile → shared (rows past nq zeroed) → A fragments held for the whole key loop.
  {
    const __nv_bfloat16* q_base = a.q + row0 * a.q_stride + static_cast<std::size_t>(head) * kHeadDim;
    for (int e = tid; e < kTileQ * (kHeadDim / 2); e += kThreads) {
      const int r = e / (kHeadDim / 2);
      const int c = e % (kHeadDim / 2);
      std::uint32_t v = 0;
      if (r < nq) v = *reinterpret_cast<const std::uint32_t*>(q_base + r * a.q_stride + 2 * c);
      *reinterpret_cast<std::uint32_t*>(k_s + r * kRow + 2 * c) = v;
    }
  }
  __syncthreads();
  std::uint32_t qf[kKChunks][4];
#pragma unroll
  for (int kc = 0; kc < kKChunks; ++kc) {
    // Matrices: rows 0-7 / 8-15 of the warp's 16 at columns kc*16 + 0 / + 8 → a[0], a[1], a[2], a[3].
    ldmatrix_x4(qf[kc], k_s + (warp * 16 + (lane & 15)) * kRow + kc * 16 + (lane >> 4) * 8);
  }
  __syncthreads();  // every warp holds its fragments before key tile 0 overwrites the staging rows

  const int num_tiles = last_pos / kTileK + 1;
  load_kv_tile<kHeadDim, kTileK, kThreads>(k_s, k_view, 0, last_pos, tid);

  float o[kDTiles][4];
#pragma unroll
  for (int nd = 0; nd < kDTiles; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY};  // rows g and g + 8, base-2 logits
  float l_run[2] = {0.0f, 0.0f};            // this thread's share of the row sums (quad-reduced at the end)
  const int row_pos[2] = {first_pos + warp * 16 + g, first_pos + warp * 16 + g + 8};

  for (int kt = 0; kt < num_tiles; ++kt) {
    const int key0 = kt * kTileK;
    cp_async_wait_all();
    __syncthreads();  // K tile kt visible; all warps finished the previous P·V, so V's buffer is free
    load_kv_tile<kHeadDim, kTileK, kThreads>(v_s, v_view, key0, last_pos, tid);

    float s[kKeyTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < kKChunks; ++kc) {
#pragma unroll
      for (int np = 0; np < kKeyTiles / 2; ++np) {
        // Matrices: keys 16np + 0-7 at dims kc*16 + 0 / + 8, then keys 16np + 8-15 likewise
        // → b0, b1 of key tile 2np, b0, b1 of key tile 2np + 1.
        std::uint32_t b[4];
        ldmatrix_x4(b, k_s + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * kRow + kc * 16 + ((lane >> 3) & 1) * 8);
        mma_bf16_16x8x16(s[2 * np], qf[kc], b[0], b[1]);
        mma_bf16_16x8x16(s[2 * np + 1], qf[kc], b[2], b[3]);
      }
    }

    // Scale, and mask keys past each row's own position (only tiles reaching past the first row need it).
    const bool needs_mask = key0 + kTileK - 1 > first_pos;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[nt][e] * a.scale_log2;
        if (needs_mask && key0 + nt * 8 + 2 * t + (e & 1) > row_pos[e >> 1]) v = -INFINITY;
        s[nt][e] = v;
      }
    }

    // Online softmax. Key 0 is visible to every row, so after tile 0 each running max is finite and the
    // first correction factor is 2^-inf = 0.
    float mx[2] = {m_run[0], m_run[1]};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
      mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    const float corr[2] = {exp2f(m_run[0] - mx[0]), exp2f(m_run[1] - mx[1])};
    m_run[0] = mx[0];
    m_run[1] = mx[1];
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - mx[e >> 1]);
        rs[e >> 1] += s[nt][e];
      }
    }
    l_run[0] = l_run[0] * corr[0] + rs[0];
    l_run[1] = l_run[1] * corr[1] + rs[1];
#pragma unroll
    for (int nd = 0; nd < kDTiles; ++nd) {
      o[nd][0] *= corr[0];
      o[nd][1] *= corr[0];
      o[nd][2] *= corr[1];
      o[nd][3] *= corr[1];
    }

    cp_async_wait_all();
    __syncthreads();  // V tile kt visible; all warps are done reading K tile kt
    if (kt + 1 < num_tiles) load_kv_tile<kHeadDim, kTileK, kThreads>(k_s, k_view, key0 + kTileK, last_pos, tid);

#pragma unroll
    for (int kc = 0; kc < kTileK / 16; ++kc) {
      // The S accumulator of key tiles 2kc, 2kc + 1 is exactly the A fragment of P for keys 16kc..16kc+15.
      // P goes in as hi + lo bf16 parts: bf16 alone would perturb each weight by up to 2^-9, an error that,
      // on top of the output's own bf16 rounding, would leave almost no room under the 1e-2 bar.
      std::uint32_t p_hi[4], p_lo[4];
      split_bf16x2(s[2 * kc][0], s[2 * kc][1], p_hi[0], p_lo[0]);
      split_bf16x2(s[2 * kc][2], s[2 * kc][3], p_hi[1], p_lo[1]);
      split_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1], p_hi[2], p_lo[2]);
      split_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3], p_hi[3], p_lo[3]);
#pragma unroll
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        // Matrices (transposed): keys 16kc + 0-7 / + 8-15 at dims 16dp + 0-7, then at dims 16dp + 8-15
        // → b0, b1 of dim tile 2dp, b0, b1 of dim tile 2dp + 1.
        std::uint32_t b[4];
        ldmatrix_x4_trans(b, v_s + (kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * kRow + dp * 16 + (lane >> 4) * 8);
        mma_bf16_16x8x16(o[2 * dp], p_lo, b[0], b[1]);
        mma_bf16_16x8x16(o[2 * dp + 1], p_lo, b[2], b[3]);
        mma_bf16_16x8x16(o[2 * dp], p_hi, b[0], b[1]);
        mma_bf16_16x8x16(o[2 * dp + 1], p_hi, b[2], b[3]);
      }
    }
  }

  // The four threads of a quad hold disjoint columns of the same rows: sum their shares of l.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int local = warp * 16 + g + 8 * r;
    if (local >= nq) continue;
    const float inv = 1.0f / l_run[r];
    __nv_bfloat16* dst = a.out + (row0 + local) * a.out_stride + static_cast<std::size_t>(head) * kHeadDim + 2 * t;
#pragma unroll
    for (int nd = 0; nd < kDTiles; ++nd) {
      *reinterpret_cast<__nv_bfloat162*>(dst + nd * 8) =
          __floats2bfloat162_rn(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
    }
  }
}

bool aligned(const void* p, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

}  // namespace

cudaError_t launch_prefill_attention(const PrefillAttentionParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if (p.q == nullptr || p.out == nullptr || p.k_cache == nullptr || p.v_cache == nullptr || p.token_begin == nullptr ||
      p.token_count == nullptr || p.start_pos == nullptr || p.table_offset == nullptr || p.block_tables == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.head_dim != 64 && p.head_dim != 128) return cudaErrorInvalidValue;
  if (p.block_size != 16 && p.block_size != 32) return cudaErrorInvalidValue;
  if (p.n_heads == 0 || p.kv_heads == 0 || p.n_heads % p.kv_heads != 0 || p.n_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  const std::uint64_t width = std::uint64_t{p.n_heads} * p.head_dim;
  if (p.q_stride < width || p.out_stride < width) return cudaErrorInvalidValue;
  // Q is read and the output written as bf16 pairs; the pages in 16-byte chunks.
  if (!aligned(p.q, 4) || !aligned(p.out, 4) || p.q_stride % 2 != 0 || p.out_stride % 2 != 0) {
    return cudaErrorInvalidValue;
  }
  if (!aligned(p.k_cache, 16) || !aligned(p.v_cache, 16)) return cudaErrorInvalidValue;
  if (p.max_tokens_per_seq == 0 || p.max_tokens_per_seq > static_cast<std::uint32_t>(INT32_MAX) - kTileQ) {
    return cudaErrorInvalidValue;
  }
  if (p.num_seqs > 65535 || !std::isfinite(p.scale)) return cudaErrorInvalidValue;

  PrefillArgs a{};
  a.q = p.q;
  a.out = p.out;
  a.k_cache = p.k_cache;
  a.v_cache = p.v_cache;
  a.token_begin = p.token_begin;
  a.token_count = p.token_count;
  a.start_pos = p.start_pos;
  a.table_offset = p.table_offset;
  a.block_tables = p.block_tables;
  a.q_stride = p.q_stride;
  a.out_stride = p.out_stride;
  a.kv_heads = static_cast<int>(p.kv_heads);
  a.group = static_cast<int>(p.n_heads / p.kv_heads);
  a.bs_shift = p.block_size == 16 ? 4 : 5;
  a.scale_log2 = p.scale * kLog2e;

  const dim3 grid((p.max_tokens_per_seq + kTileQ - 1) / kTileQ, p.n_heads, p.num_seqs);
  if (p.head_dim == 64) return launch_pdl(prefill_attention_kernel<64>, grid, kThreads, 0, stream, a);
  return launch_pdl(prefill_attention_kernel<128>, grid, kThreads, 0, stream, a);
}

}  // namespace sluice::cuda
