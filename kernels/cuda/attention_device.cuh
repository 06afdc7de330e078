// Device helpers shared by the paged attention kernels (decode_attention.cu, prefill_attention.cu): page
// addressing, asynchronous 16-byte tile loads, bf16 unpacking, warp reductions and the bf16 tensor-core
// primitives. Device code only; include from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::cuda::attention_detail {

// Logits are kept in base 2 (scale * log2(e) folded into the scale) so every exponential is one exp2f.
inline constexpr float kLog2e = 1.4426950408889634f;

// Where one KV head of one layer lives in the pages ([num_blocks][kv_heads][block_size][head_dim], bf16):
// position p sits in block table[p >> bs_shift], slot p & (block_size - 1).
struct PageView {
  const __nv_bfloat16* cache;  // this layer's K or V pages
  const std::int32_t* table;   // the sequence's block table
  std::size_t block_stride;    // elements per block (all KV heads)
  std::size_t head_offset;     // elements from a block's start to this KV head's slots
  int bs_shift;                // log2(block_size)
};

__device__ __forceinline__ const __nv_bfloat16* page_row(const PageView& v, int pos, int head_dim) {
  const std::size_t block = static_cast<std::size_t>(v.table[pos >> v.bs_shift]);
  const std::size_t slot = static_cast<std::size_t>(pos & ((1 << v.bs_shift) - 1));
  return v.cache + block * v.block_stride + v.head_offset + slot * head_dim;
}

// cp.async of 16 bytes global → shared; with valid == false nothing is read and the 16 bytes are zeroed
// (the source operand must still be a valid address, hence the fallback pointer the callers pass).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const auto dst = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// Stages kKeys consecutive positions [first, first + kKeys) of one KV head into shared memory rows of
// head_dim + 8 elements (the 16-byte pad spreads consecutive rows over different banks, for both the
// row-per-thread reads of the decode kernel and ldmatrix). Positions after `last` are zero-filled and never
// touch the block table. Issues the copies and commits them as one group; the caller waits.
template <int kHeadDim, int kKeys, int kThreads>
__device__ __forceinline__ void load_kv_tile(__nv_bfloat16* dst, const PageView& view, int first, int last, int tid) {
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  constexpr int kRow = kHeadDim + 8;
  static_assert((kKeys * kChunks) % kThreads == 0, "tile must split evenly over the threads");
#pragma unroll
  for (int it = 0; it < kKeys * kChunks / kThreads; ++it) {
    const int c = tid + it * kThreads;
    const int key = c / kChunks;
    const int part = c % kChunks;
    const int pos = first + key;
    const bool valid = pos <= last;
    const __nv_bfloat16* src = valid ? page_row(view, pos, kHeadDim) + part * 8 : view.cache;
    cp_async16(dst + key * kRow + part * 8, src, valid);
  }
  cp_async_commit();
}

// Eight bf16 (one 16-byte load, lowest address first) to fp32: a bf16 is the top half of an fp32.
__device__ __forceinline__ void unpack_bf16x8(const uint4& u, float (&f)[8]) {
  const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ std::uint32_t bf16x2_bits(__nv_bfloat162 v) {
  std::uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}

// Two floats to a bf16x2 register, the first in the low half (the lower column of an mma fragment).
__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  return bf16x2_bits(__floats2bfloat162_rn(lo, hi));
}

// x0, x1 as hi + lo, both bf16x2: hi = bf16(x), lo = bf16(x - hi) (the difference is exact in fp32), so
// hi + lo carries about 16 significant bits instead of bf16's 8.
__device__ __forceinline__ void split_bf16x2(float x0, float x1, std::uint32_t& hi, std::uint32_t& lo) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
  const float2 hf = __bfloat1622float2(h);
  hi = bf16x2_bits(h);
  lo = pack_bf16x2(x0 - hf.x, x1 - hf.y);
}

// Four 8x8 b16 matrices from shared memory; lanes 8i..8i+7 give the row addresses of matrix i. Without
// .trans lane l receives row l/4, columns 2(l%4) and 2(l%4)+1 of each matrix; with .trans the transpose.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const __nv_bfloat16* smem_row) {
  const auto addr = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const __nv_bfloat16* smem_row) {
  const auto addr = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c (16x8 fp32) += a (16x16 bf16, row-major fragment) * b (16x8 bf16, column fragment), fp32 accumulation.
// Fragments (g = lane / 4, t = lane % 4): a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..],
// a[3] = A[g+8][2t+8..]; b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]; c[0..1] = C[g][2t..2t+1],
// c[2..3] = C[g+8][2t..2t+1].
__device__ __forceinline__ void mma_bf16_16x8x16(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                 std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace sluice::cuda::attention_detail
