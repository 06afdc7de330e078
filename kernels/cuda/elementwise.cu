// Per-token kernels of the forward pass (contract: elementwise.h). All of them are memory-bound, so the launch
// shapes aim at wide, coalesced accesses and at one pass over the data:
//  - embedding, swiglu, kv_write, gather_rows: one token (or row) per gridDim.y slot, grid-striding when there
//    are more than 65535; its elements spread over gridDim.x * blockDim.x threads. Each thread moves 8 bf16
//    (16 bytes) per access when the widths, strides and base pointers allow it — checked once on the host,
//    which then picks the vector instantiation — and one element otherwise.
//  - rmsnorm: one block per row. Each thread keeps its 8-element chunks of the (updated) residual in
//    registers between the sum of squares and the scaling, so the row is read once and written once; the
//    block is sized so that every thread holds 1, 2 or 4 chunks. Rows too wide or unaligned for that take a
//    plain two-pass kernel.
//  - rope: one block per token. The block evaluates cos/sin of the token's head_dim/2 angles once into shared
//    memory and rotates every q and k head with them, two pairs (4 bytes + 4 bytes) per thread step; with a
//    fused KV write the same thread stores its rotated k pairs into the page, and the V heads follow.
//  - random_fill: one Philox4x32-10 block (four 32-bit words) per four consecutive elements.
// No kernel allocates, synchronizes or uses atomics; every launcher validates its params first.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>

#include "engine/sampling/philox.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr std::uint32_t kMaxGridY = 65535;
constexpr std::uint32_t kMaxGridX = 1u << 20;  // grid-stride loops cover the rest

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
bool aligned4(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 4 == 0; }

std::uint32_t ceil_div(std::uint64_t a, std::uint64_t b) { return static_cast<std::uint32_t>((a + b - 1) / b); }

// Threads per block for `work` items of one row: a whole number of warps, at most `cap`.
std::uint32_t threads_for(std::uint32_t work, std::uint32_t cap) {
  return std::min<std::uint32_t>(cap, std::max<std::uint32_t>(32, (work + 31) / 32 * 32));
}

// A 2-D grid: x covers one row's `per_row` items with `threads`-wide blocks, y the rows (grid-strided).
dim3 row_grid(std::uint32_t per_row, std::uint32_t threads, std::uint32_t rows) {
  return dim3(std::min(ceil_div(per_row, threads), kMaxGridX), std::min(rows, kMaxGridY), 1);
}

// Register reinterpretation goes through memcpy (compiled to plain moves): a pointer cast between uint4 and
// bf16 pairs would break type-based alias analysis.
__device__ __forceinline__ void bf16x8_to_float(const uint4& raw, float (&f)[8]) {
  __nv_bfloat162 h[4];
  memcpy(h, &raw, sizeof(raw));
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 v = __bfloat1622float2(h[k]);
    f[2 * k] = v.x;
    f[2 * k + 1] = v.y;
  }
}

__device__ __forceinline__ uint4 float8_to_bf16(const float (&f)[8]) {
  __nv_bfloat162 h[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
  uint4 raw;
  memcpy(&raw, h, sizeof(raw));
  return raw;
}

// ---------------------------------------------------------------------------------------------- embedding

template <bool kVec>
__global__ void embedding_kernel(EmbeddingParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const std::uint32_t per_row = kVec ? p.hidden / 8 : p.hidden;
  for (std::uint32_t t = blockIdx.y; t < p.num_tokens; t += gridDim.y) {
    const std::int32_t id = p.ids[t];
    const bool valid = id >= 0 && static_cast<std::uint32_t>(id) < p.vocab;
    const __nv_bfloat16* src = p.table + static_cast<std::size_t>(valid ? id : 0) * p.hidden;
    float* dst = p.out + static_cast<std::size_t>(t) * p.hidden;
    for (std::uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < per_row; c += gridDim.x * blockDim.x) {
      if constexpr (kVec) {
        float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (valid) bf16x8_to_float(__ldg(reinterpret_cast<const uint4*>(src) + c), f);
        auto* d = reinterpret_cast<float4*>(dst) + 2 * c;
        d[0] = make_float4(f[0], f[1], f[2], f[3]);
        d[1] = make_float4(f[4], f[5], f[6], f[7]);
      } else {
        dst[c] = valid ? __bfloat162float(src[c]) : 0.0f;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ rmsnorm

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32). Every thread adds the warp partials in the same order, so
// all of them get the same bits. Called once per kernel: its shared array is not reused.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  float s = 0.0f;
  const unsigned warps = blockDim.x >> 5;
  for (unsigned w = 0; w < warps; ++w) s += partial[w];
  return s;
}

// One block per row; thread i owns chunks i, i + blockDim.x, ... (kChunks of them, 8 elements each).
template <int kChunks>
__global__ void __launch_bounds__(1024) rmsnorm_vec_kernel(RmsNormParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const std::size_t row = blockIdx.x;
  const std::uint32_t chunks = p.hidden / 8;
  float* residual = p.residual + row * p.hidden;
  const auto* delta = p.delta ? reinterpret_cast<const uint4*>(p.delta + row * p.hidden) : nullptr;
  const auto* bias = reinterpret_cast<const uint4*>(p.delta_bias);
  float x[kChunks][8];
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const std::uint32_t c = threadIdx.x + k * blockDim.x;
#pragma unroll
    for (int e = 0; e < 8; ++e) x[k][e] = 0.0f;
    if (c >= chunks) continue;
    auto* r4 = reinterpret_cast<float4*>(residual) + 2 * c;
    const float4 a = r4[0];
    const float4 b = r4[1];
    const float loaded[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) x[k][e] = loaded[e];
    if (delta != nullptr) {
      float d[8];
      bf16x8_to_float(delta[c], d);
      if (bias != nullptr) {
        float bb[8];
        bf16x8_to_float(__ldg(bias + c), bb);
#pragma unroll
        for (int e = 0; e < 8; ++e) d[e] += bb[e];
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) x[k][e] += d[e];
      r4[0] = make_float4(x[k][0], x[k][1], x[k][2], x[k][3]);
      r4[1] = make_float4(x[k][4], x[k][5], x[k][6], x[k][7]);
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) ss += x[k][e] * x[k][e];
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(p.hidden) + p.eps);
  const auto* weight = reinterpret_cast<const uint4*>(p.weight);
  auto* out = reinterpret_cast<uint4*>(p.out + row * p.hidden);
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const std::uint32_t c = threadIdx.x + k * blockDim.x;
    if (c >= chunks) continue;
    float w[8];
    bf16x8_to_float(__ldg(weight + c), w);
    float y[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) y[e] = x[k][e] * inv * w[e];
    out[c] = float8_to_bf16(y);
  }
}

// Any width and alignment: the residual is updated in a first pass and read back (by the thread that wrote
// it) in the second.
__global__ void rmsnorm_scalar_kernel(RmsNormParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const std::size_t row = blockIdx.x;
  float* residual = p.residual + row * p.hidden;
  const __nv_bfloat16* delta = p.delta ? p.delta + row * p.hidden : nullptr;
  float ss = 0.0f;
  for (std::uint32_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    float x = residual[i];
    if (delta != nullptr) {
      float d = __bfloat162float(delta[i]);
      if (p.delta_bias != nullptr) d += __bfloat162float(p.delta_bias[i]);
      x += d;
      residual[i] = x;
    }
    ss += x * x;
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(p.hidden) + p.eps);
  __nv_bfloat16* out = p.out + row * p.hidden;
  for (std::uint32_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    out[i] = __float2bfloat16(residual[i] * inv * __bfloat162float(p.weight[i]));
  }
}

// --------------------------------------------------------------------------------------------------- rope

constexpr std::uint32_t kRopeMaxHeadDim = 512;
constexpr std::uint32_t kRopeThreads = 128;

// Products through __fmul_rn so that the compiler does not contract them into FMAs: the rotation then
// rounds exactly like the host reference, and only cos/sin can differ.
__device__ __forceinline__ void rotate(float& a, float& b, float c, float s) {
  const float ra = __fmul_rn(a, c) - __fmul_rn(b, s);
  const float rb = __fmul_rn(b, c) + __fmul_rn(a, s);
  a = ra;
  b = rb;
}

// What rope_kernel needs of a fused KV write: the pages and where this launch's tokens go.
struct RopeCache {
  const __nv_bfloat16* v;
  __nv_bfloat16* k_cache;
  __nv_bfloat16* v_cache;
  const std::int32_t* slot_mapping;
  std::uint32_t v_stride;
  std::uint32_t block_size;
  std::uint64_t slots;  // num_blocks * block_size
};

// The page offset of token t's KV head 0 at dimension 0, or -1 when its slot is skipped.
__device__ __forceinline__ std::int64_t page_offset(const RopeCache& c, std::uint32_t t, std::uint32_t kv_heads,
                                                    std::uint32_t head_dim) {
  const std::int32_t slot = c.slot_mapping[t];
  if (slot < 0 || static_cast<std::uint64_t>(slot) >= c.slots) return -1;
  const std::uint32_t block = static_cast<std::uint32_t>(slot) / c.block_size;
  const std::uint32_t in_block = static_cast<std::uint32_t>(slot) - block * c.block_size;
  return (static_cast<std::int64_t>(block) * kv_heads * c.block_size + in_block) * head_dim;
}

template <bool kCache>
__global__ void __launch_bounds__(kRopeThreads) rope_kernel(RopeParams p, RopeCache c) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float cos_t[kRopeMaxHeadDim / 2];
  __shared__ float sin_t[kRopeMaxHeadDim / 2];
  const std::uint32_t t = blockIdx.x;
  // Head g of the token sits at page + g * block_size * head_dim.
  const std::int64_t page = kCache ? page_offset(c, t, p.kv_heads, p.head_dim) : -1;
  const std::size_t head_step = static_cast<std::size_t>(c.block_size) * p.head_dim;
  const std::uint32_t half = p.head_dim / 2;
  const float pos = static_cast<float>(p.positions[t]);
  for (std::uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
    // Accurate sincosf (no fast math): angles reach 1e5 radians and more at long positions.
    sincosf(pos * p.inv_freq[i], &sin_t[i], &cos_t[i]);
  }
  __syncthreads();
  const std::uint32_t quarter = p.head_dim / 4;  // thread steps per head: two pairs each
  const std::uint32_t steps = (p.n_heads + p.kv_heads) * quarter;
  for (std::uint32_t u = threadIdx.x; u < steps; u += blockDim.x) {
    const std::uint32_t h = u / quarter;
    const std::uint32_t j = u - h * quarter;
    __nv_bfloat16* head = h < p.n_heads
                              ? p.q + static_cast<std::size_t>(t) * p.q_stride + h * p.head_dim
                              : p.k + static_cast<std::size_t>(t) * p.k_stride + (h - p.n_heads) * p.head_dim;
    __nv_bfloat162* lo;
    __nv_bfloat162* hi;
    if (p.interleaved) {
      // pairs (4j, 4j+1) and (4j+2, 4j+3): frequencies 2j and 2j+1
      lo = reinterpret_cast<__nv_bfloat162*>(head + 4 * j);
      hi = lo + 1;
      float2 a = __bfloat1622float2(*lo);
      float2 b = __bfloat1622float2(*hi);
      rotate(a.x, a.y, cos_t[2 * j], sin_t[2 * j]);
      rotate(b.x, b.y, cos_t[2 * j + 1], sin_t[2 * j + 1]);
      *lo = __floats2bfloat162_rn(a.x, a.y);
      *hi = __floats2bfloat162_rn(b.x, b.y);
      if (kCache && h >= p.n_heads && page >= 0) {
        auto* dst = reinterpret_cast<__nv_bfloat162*>(c.k_cache + page + (h - p.n_heads) * head_step + 4 * j);
        dst[0] = *lo;
        dst[1] = *hi;
      }
    } else {
      // pairs (2j, 2j + half) and (2j+1, 2j+1 + half): frequencies 2j and 2j+1
      lo = reinterpret_cast<__nv_bfloat162*>(head + 2 * j);
      hi = reinterpret_cast<__nv_bfloat162*>(head + half + 2 * j);
      float2 a = __bfloat1622float2(*lo);
      float2 b = __bfloat1622float2(*hi);
      rotate(a.x, b.x, cos_t[2 * j], sin_t[2 * j]);
      rotate(a.y, b.y, cos_t[2 * j + 1], sin_t[2 * j + 1]);
      *lo = __floats2bfloat162_rn(a.x, a.y);
      *hi = __floats2bfloat162_rn(b.x, b.y);
      if (kCache && h >= p.n_heads && page >= 0) {
        __nv_bfloat16* dst = c.k_cache + page + (h - p.n_heads) * head_step;
        *reinterpret_cast<__nv_bfloat162*>(dst + 2 * j) = *lo;
        *reinterpret_cast<__nv_bfloat162*>(dst + half + 2 * j) = *hi;
      }
    }
  }
  if (!kCache || page < 0) return;
  // V heads: copied as they are, two bf16 pairs per thread step.
  const std::uint32_t v_steps = p.kv_heads * quarter;
  const __nv_bfloat16* v_row = c.v + static_cast<std::size_t>(t) * c.v_stride;
  for (std::uint32_t u = threadIdx.x; u < v_steps; u += blockDim.x) {
    const std::uint32_t g = u / quarter;
    const std::uint32_t d = (u - g * quarter) * 4;
    const auto* src = reinterpret_cast<const __nv_bfloat162*>(v_row + g * p.head_dim + d);
    auto* dst = reinterpret_cast<__nv_bfloat162*>(c.v_cache + page + g * head_step + d);
    dst[0] = src[0];
    dst[1] = src[1];
  }
}

// ------------------------------------------------------------------------------------------------- swiglu

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <bool kVec>
__global__ void swiglu_kernel(SwiGluParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const std::uint32_t per_row = kVec ? p.ffn / 8 : p.ffn;
  for (std::uint32_t t = blockIdx.y; t < p.num_tokens; t += gridDim.y) {
    const __nv_bfloat16* gate = p.gate_up + static_cast<std::size_t>(t) * 2 * p.ffn;
    const __nv_bfloat16* up = gate + p.ffn;
    __nv_bfloat16* out = p.out + static_cast<std::size_t>(t) * p.ffn;
    for (std::uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < per_row; c += gridDim.x * blockDim.x) {
      if constexpr (kVec) {
        float g[8], u[8], y[8];
        bf16x8_to_float(__ldg(reinterpret_cast<const uint4*>(gate) + c), g);
        bf16x8_to_float(__ldg(reinterpret_cast<const uint4*>(up) + c), u);
#pragma unroll
        for (int e = 0; e < 8; ++e) y[e] = silu_mul(g[e], u[e]);
        reinterpret_cast<uint4*>(out)[c] = float8_to_bf16(y);
      } else {
        out[c] = __float2bfloat16(silu_mul(__bfloat162float(gate[c]), __bfloat162float(up[c])));
      }
    }
  }
}

// ----------------------------------------------------------------------------------------------- kv write

template <bool kVec>
__global__ void kv_write_kernel(KvWriteParams p) {
  pdl_wait();
  pdl_launch_dependents();
  constexpr std::uint32_t kWidth = kVec ? 8 : 1;
  const std::uint32_t per_head = p.head_dim / kWidth;
  const std::uint32_t per_tensor = p.kv_heads * per_head;
  const std::uint64_t slots = static_cast<std::uint64_t>(p.num_blocks) * p.block_size;
  for (std::uint32_t t = blockIdx.y; t < p.num_tokens; t += gridDim.y) {
    const std::int32_t slot = p.slot_mapping[t];
    if (slot < 0 || static_cast<std::uint64_t>(slot) >= slots) continue;
    const std::uint32_t block = static_cast<std::uint32_t>(slot) / p.block_size;
    const std::uint32_t in_block = static_cast<std::uint32_t>(slot) - block * p.block_size;
    for (std::uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < 2 * per_tensor; c += gridDim.x * blockDim.x) {
      const bool is_v = c >= per_tensor;
      const std::uint32_t cc = is_v ? c - per_tensor : c;
      const std::uint32_t g = cc / per_head;
      const std::uint32_t d = (cc - g * per_head) * kWidth;
      const __nv_bfloat16* src =
          (is_v ? p.v + static_cast<std::size_t>(t) * p.v_stride : p.k + static_cast<std::size_t>(t) * p.k_stride) +
          g * p.head_dim + d;
      __nv_bfloat16* dst =
          (is_v ? p.v_cache : p.k_cache) +
          ((static_cast<std::size_t>(block) * p.kv_heads + g) * p.block_size + in_block) * p.head_dim + d;
      if constexpr (kVec) {
        *reinterpret_cast<uint4*>(dst) = __ldg(reinterpret_cast<const uint4*>(src));
      } else {
        *dst = *src;
      }
    }
  }
}

// -------------------------------------------------------------------------------------------- gather rows

template <bool kVec>
__global__ void gather_rows_kernel(GatherRowsParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const std::uint32_t per_row = kVec ? p.width / 8 : p.width;
  for (std::uint32_t r = blockIdx.y; r < p.num_rows; r += gridDim.y) {
    const std::int32_t src_row = p.rows[r];
    if (src_row < 0) continue;
    const __nv_bfloat16* src = p.in + static_cast<std::size_t>(src_row) * p.in_stride;
    __nv_bfloat16* dst = p.out + static_cast<std::size_t>(r) * p.out_stride;
    for (std::uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < per_row; c += gridDim.x * blockDim.x) {
      if constexpr (kVec) {
        reinterpret_cast<uint4*>(dst)[c] = __ldg(reinterpret_cast<const uint4*>(src) + c);
      } else {
        dst[c] = src[c];
      }
    }
  }
}

// -------------------------------------------------------------------------------------------- random fill

// Thread step g fills elements 4g .. 4g+3 from one Philox block: counter {hi32(4g), lo32(4g) / 4, 0, 0}, key
// the seed — the words philox::uniform(seed, hi32(i), lo32(i)) reads for each of the four i.
__global__ void random_fill_kernel(RandomFillParams p, bool vec) {
  const std::uint64_t groups = (p.count + 3) / 4;
  const philox::Key key{static_cast<std::uint32_t>(p.seed), static_cast<std::uint32_t>(p.seed >> 32)};
  const std::uint64_t stride = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t g = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const std::uint64_t i0 = 4 * g;
    const philox::Counter words = philox::philox4x32_10(
        philox::Counter{static_cast<std::uint32_t>(i0 >> 32), static_cast<std::uint32_t>(i0) / 4u, 0u, 0u}, key);
    __nv_bfloat16 v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float u = static_cast<float>(words[e] >> 8) * (1.0f / 16777216.0f);
      v[e] = __float2bfloat16(p.scale * (2.0f * u - 1.0f));
    }
    if (vec && i0 + 4 <= p.count) {
      uint2 raw;
      memcpy(&raw, v, sizeof(raw));
      *reinterpret_cast<uint2*>(p.data + i0) = raw;
    } else {
      for (int e = 0; e < 4 && i0 + e < p.count; ++e) p.data[i0 + e] = v[e];
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------ launchers

cudaError_t launch_embedding(const EmbeddingParams& p, cudaStream_t stream) {
  if (p.table == nullptr || p.ids == nullptr || p.out == nullptr || p.hidden == 0 || p.vocab == 0) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const bool vec = p.hidden % 8 == 0 && aligned16(p.table) && aligned16(p.out);
  const std::uint32_t per_row = vec ? p.hidden / 8 : p.hidden;
  const std::uint32_t threads = threads_for(per_row, 256);
  if (vec) return launch_pdl(embedding_kernel<true>, row_grid(per_row, threads, p.num_tokens), threads, 0, stream, p);
  return launch_pdl(embedding_kernel<false>, row_grid(per_row, threads, p.num_tokens), threads, 0, stream, p);
}

cudaError_t launch_rmsnorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.residual == nullptr || p.weight == nullptr || p.out == nullptr || p.hidden == 0 || !(p.eps >= 0.0f) ||
      p.rows > static_cast<std::uint32_t>(INT32_MAX)) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0) return cudaSuccess;
  const std::uint32_t chunks = p.hidden / 8;
  const bool vec = p.hidden % 8 == 0 && chunks <= 4096 && aligned16(p.residual) && aligned16(p.weight) &&
                   aligned16(p.out) && (p.delta == nullptr || aligned16(p.delta)) &&
                   (p.delta == nullptr || p.delta_bias == nullptr || aligned16(p.delta_bias));
  if (!vec) {
    return launch_pdl(rmsnorm_scalar_kernel, p.rows, 256, 0, stream, p);
  } else if (chunks <= 1024) {
    return launch_pdl(rmsnorm_vec_kernel<1>, p.rows, threads_for(chunks, 1024), 0, stream, p);
  } else if (chunks <= 2048) {
    return launch_pdl(rmsnorm_vec_kernel<2>, p.rows, threads_for(ceil_div(chunks, 2), 1024), 0, stream, p);
  } else {
    return launch_pdl(rmsnorm_vec_kernel<4>, p.rows, threads_for(ceil_div(chunks, 4), 1024), 0, stream, p);
  }
}

cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream) {
  const bool bad_q = p.n_heads > 0 && (p.q == nullptr || !aligned4(p.q) || p.q_stride % 2 != 0 ||
                                       p.q_stride < static_cast<std::uint64_t>(p.n_heads) * p.head_dim);
  const bool bad_k = p.kv_heads > 0 && (p.k == nullptr || !aligned4(p.k) || p.k_stride % 2 != 0 ||
                                        p.k_stride < static_cast<std::uint64_t>(p.kv_heads) * p.head_dim);
  if (bad_q || bad_k || p.positions == nullptr || p.inv_freq == nullptr || p.head_dim == 0 ||
      p.head_dim % 4 != 0 || p.head_dim > kRopeMaxHeadDim || p.num_tokens > static_cast<std::uint32_t>(INT32_MAX) ||
      static_cast<std::uint64_t>(p.n_heads) + p.kv_heads > (1u << 20)) {
    return cudaErrorInvalidValue;
  }
  RopeCache c{};
  if (p.cache != nullptr) {
    const KvWriteParams& kv = *p.cache;
    if (p.kv_heads == 0 || kv.k != p.k || kv.k_stride != p.k_stride || kv.kv_heads != p.kv_heads ||
        kv.head_dim != p.head_dim || kv.v == nullptr || !aligned4(kv.v) || kv.v_stride % 2 != 0 ||
        kv.v_stride < static_cast<std::uint64_t>(kv.kv_heads) * kv.head_dim || kv.k_cache == nullptr ||
        kv.v_cache == nullptr || !aligned4(kv.k_cache) || !aligned4(kv.v_cache) || kv.slot_mapping == nullptr ||
        kv.block_size == 0 || kv.num_blocks == 0 || kv.num_tokens != p.num_tokens) {
      return cudaErrorInvalidValue;
    }
    c = RopeCache{kv.v, kv.k_cache, kv.v_cache, kv.slot_mapping, kv.v_stride, kv.block_size,
                  static_cast<std::uint64_t>(kv.num_blocks) * kv.block_size};
  }
  if (p.num_tokens == 0 || p.n_heads + p.kv_heads == 0) return cudaSuccess;
  RopeParams args = p;
  args.cache = nullptr;
  if (p.cache != nullptr) return launch_pdl(rope_kernel<true>, p.num_tokens, kRopeThreads, 0, stream, args, c);
  return launch_pdl(rope_kernel<false>, p.num_tokens, kRopeThreads, 0, stream, args, c);
}

cudaError_t launch_swiglu(const SwiGluParams& p, cudaStream_t stream) {
  if (p.gate_up == nullptr || p.out == nullptr || p.ffn == 0 || p.ffn > (1u << 30)) return cudaErrorInvalidValue;
  if (p.num_tokens == 0) return cudaSuccess;
  const bool vec = p.ffn % 8 == 0 && aligned16(p.gate_up) && aligned16(p.out);
  const std::uint32_t per_row = vec ? p.ffn / 8 : p.ffn;
  const std::uint32_t threads = threads_for(per_row, 256);
  if (vec) return launch_pdl(swiglu_kernel<true>, row_grid(per_row, threads, p.num_tokens), threads, 0, stream, p);
  return launch_pdl(swiglu_kernel<false>, row_grid(per_row, threads, p.num_tokens), threads, 0, stream, p);
}

cudaError_t launch_kv_write(const KvWriteParams& p, cudaStream_t stream) {
  const std::uint64_t row = static_cast<std::uint64_t>(p.kv_heads) * p.head_dim;
  if (p.k == nullptr || p.v == nullptr || p.k_cache == nullptr || p.v_cache == nullptr ||
      p.slot_mapping == nullptr || p.kv_heads == 0 || p.head_dim == 0 || p.block_size == 0 || p.num_blocks == 0 ||
      p.k_stride < row || p.v_stride < row || row > (1u << 30)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const bool vec = p.head_dim % 8 == 0 && p.k_stride % 8 == 0 && p.v_stride % 8 == 0 && aligned16(p.k) &&
                   aligned16(p.v) && aligned16(p.k_cache) && aligned16(p.v_cache);
  const std::uint32_t per_token = static_cast<std::uint32_t>(2 * row / (vec ? 8 : 1));
  const std::uint32_t threads = threads_for(per_token, 256);
  if (vec) return launch_pdl(kv_write_kernel<true>, row_grid(per_token, threads, p.num_tokens), threads, 0, stream, p);
  return launch_pdl(kv_write_kernel<false>, row_grid(per_token, threads, p.num_tokens), threads, 0, stream, p);
}

cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.in == nullptr || p.out == nullptr || p.rows == nullptr || p.width == 0 || p.in_stride < p.width ||
      p.out_stride < p.width) {
    return cudaErrorInvalidValue;
  }
  if (p.num_rows == 0) return cudaSuccess;
  const bool vec = p.width % 8 == 0 && p.in_stride % 8 == 0 && p.out_stride % 8 == 0 && aligned16(p.in) &&
                   aligned16(p.out);
  const std::uint32_t per_row = vec ? p.width / 8 : p.width;
  const std::uint32_t threads = threads_for(per_row, 256);
  if (vec) return launch_pdl(gather_rows_kernel<true>, row_grid(per_row, threads, p.num_rows), threads, 0, stream, p);
  return launch_pdl(gather_rows_kernel<false>, row_grid(per_row, threads, p.num_rows), threads, 0, stream, p);
}

cudaError_t launch_random_fill(const RandomFillParams& p, cudaStream_t stream) {
  if (p.data == nullptr) return cudaErrorInvalidValue;
  if (p.count == 0) return cudaSuccess;
  const bool vec = reinterpret_cast<std::uintptr_t>(p.data) % 8 == 0;
  constexpr std::uint32_t kThreads = 256;
  const std::uint64_t groups = (p.count + 3) / 4;
  const std::uint32_t blocks = static_cast<std::uint32_t>(std::min<std::uint64_t>((groups + kThreads - 1) / kThreads,
                                                                                   kMaxGridX));
  random_fill_kernel<<<blocks, kThreads, 0, stream>>>(p, vec);
  return cudaGetLastError();
}

}  // namespace sluice::cuda
