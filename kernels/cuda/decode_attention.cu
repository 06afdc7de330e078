// Paged decode attention (split along the sequence, then a log-sum-exp combine), bf16 in and out.
//
// Layouts: q[t * q_stride + h * head_dim + d] and out alike; K/V pages [num_blocks][kv_heads][block_size]
// [head_dim] (engine/backend/kv_cache.h). Query head h reads KV head h / group, group = n_heads / kv_heads.
//
// One kernel, decode_partition_kernel: grid (num_parts, kv_heads * head_chunks, num_tokens), 128 threads.
// One CTA takes one partition (at most kDecodePartition positions; a small batch splits its rows finer, see
// split_for) of one listed row and up to kHeadsPerCta query heads of one KV group (all of them when
// group <= 8), so each K/V byte of the partition is read from memory once per group, not once per query
// head — decode is bandwidth-bound. The partition is walked in tiles of
// 64 positions staged in shared memory by 16-byte cp.async copies:
//   pass 1 (K): thread pairs compute the logits q·k * scale (base 2) of every position for all the CTA's heads
//               into shared memory;
//   softmax:    one warp per head takes the partition maximum m, replaces each logit by exp2(s - m) and sums
//               them into l;
//   pass 2 (V): each thread owns 8 dimensions of every head for a subset of the positions; the partial sums
//               are reduced across threads at the end.
// A row whose context fits one partition is finished by its single CTA: it divides by l and writes bf16.
// Otherwise each CTA stores its unnormalized output with (m, l) in the workspace (fp32) and counts itself in
// with an atomic on the (row, head group) counter; the CTA that arrives last combines: the global maximum M
// over the row's used partitions, L = sum_p l_p 2^(m_p - M), out = sum_p acc_p 2^(m_p - M) / L, and resets
// the counter. One kernel per layer, no separate combine launch.
//
// The grid depends only on the params (max_context, not the actual lengths), so a launch captured in a CUDA
// graph stays valid while positions grow: partitions past a row's length exit at once and the combine reads
// only the partitions the row uses. Math is fp32 throughout; K/V are exact bf16 values widened to fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_device.cuh"
#include "kernels/cuda/pdl.cuh"

namespace sluice::cuda {

namespace {

using namespace attention_detail;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTileKeys = 64;
constexpr int kPartition = static_cast<int>(kDecodePartition);
constexpr int kHeadsPerCta = 8;  // larger groups are split over several CTAs (K/V then come from L2)
static_assert(kPartition % kTileKeys == 0, "tiles must not straddle partitions");
static_assert(kThreads == 2 * kTileKeys, "pass 1 gives each position two threads");

struct DecodeArgs {
  const __nv_bfloat16* q;
  __nv_bfloat16* out;
  const __nv_bfloat16* k_cache;
  const __nv_bfloat16* v_cache;
  const std::int32_t* tokens;
  const std::int32_t* positions;
  const std::int32_t* block_tables;
  const std::int32_t* table_offset;
  unsigned* arrivals;  // [workspace tokens][n_heads]: partitions done, per (row, first head of a CTA)
  float* part_acc;     // [num_tokens][n_heads][num_parts][head_dim]
  float2* part_ml;     // [num_tokens][n_heads][num_parts]: (max, sum) of the partition, base 2
  std::size_t q_stride;
  std::size_t out_stride;
  int n_heads;
  int kv_heads;
  int group;
  int head_chunks;
  int num_parts;
  int slots;  // partitions a row is spread over when that keeps them at least a tile long (see partition_size)
  int bs_shift;
  float scale_log2;
};

template <int kHeadDim, int kHeads>
__global__ void __launch_bounds__(kThreads) decode_partition_kernel(const DecodeArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kRow = kHeadDim + 8;
  constexpr int kLanes = kThreads / kChunks;  // threads sharing one 8-dim slice in pass 2
  __shared__ __align__(16) float q_s[kHeads * kHeadDim];
  __shared__ __align__(16) float logit_s[kHeads * kPartition];
  __shared__ __align__(16) __nv_bfloat16 tile_s[kTileKeys * kRow];
  __shared__ float pair_s[kHeads * kTileKeys];
  __shared__ float2 ml_s[kHeads];
  static_assert(sizeof(float) * kWarps * kHeads * kHeadDim <= sizeof(tile_s), "final reduction reuses the tile");

  const int tid = static_cast<int>(threadIdx.x);
  const int part = static_cast<int>(blockIdx.x);
  const int kv_head = static_cast<int>(blockIdx.y) / a.head_chunks;
  const int chunk = static_cast<int>(blockIdx.y) % a.head_chunks;
  const int item = static_cast<int>(blockIdx.z);
  const int head0 = kv_head * a.group + chunk * kHeads;
  const int nh = min(kHeads, a.group - chunk * kHeads);
  const int row = a.tokens != nullptr ? a.tokens[item] : item;
  const int ctx = a.positions[row] + 1;
  // This row's partitions: `slots` of them of whole tiles, or fewer when the row is short, kPartition
  // positions at most each; a row within one partition is finished without the workspace.
  const int psize = ctx <= 0 ? kPartition
                             : min(kPartition, ((ctx + a.slots - 1) / a.slots + kTileKeys - 1) / kTileKeys * kTileKeys);
  const int begin = part * psize;
  const int used = ctx <= 0 ? 0 : min((ctx - 1) / psize + 1, a.num_parts);
  const bool direct = used <= 1;
  __nv_bfloat16* out_row = a.out + static_cast<std::size_t>(row) * a.out_stride;

  if (begin >= ctx) {
    // Past this row's length: nothing to contribute. A negative position (no context at all) gets zeros
    // from partition 0.
    if (part == 0) {
      for (int e = tid; e < nh * kHeadDim; e += kThreads) {
        out_row[static_cast<std::size_t>(head0) * kHeadDim + e] = __float2bfloat16(0.0f);
      }
    }
    return;
  }
  const int n = min(ctx - begin, psize);
  const int last = begin + n - 1;
  const std::int32_t* table = a.block_tables + a.table_offset[row];
  const std::size_t block_stride = (static_cast<std::size_t>(a.kv_heads) << a.bs_shift) * kHeadDim;
  const std::size_t head_offset = (static_cast<std::size_t>(kv_head) << a.bs_shift) * kHeadDim;
  const PageView k_view{a.k_cache, table, block_stride, head_offset, a.bs_shift};
  const PageView v_view{a.v_cache, table, block_stride, head_offset, a.bs_shift};

  // Heads beyond nh (a group that does not fill kHeads) get a zero query; their results are never stored.
  const __nv_bfloat16* q_row =
      a.q + static_cast<std::size_t>(row) * a.q_stride + static_cast<std::size_t>(head0) * kHeadDim;
  for (int e = tid; e < kHeads * kHeadDim; e += kThreads) {
    q_s[e] = e < nh * kHeadDim ? __bfloat162float(q_row[e]) : 0.0f;
  }

  // Pass 1: logits. Thread (key, half) dots one staged key with every head over half of the dimensions;
  // consecutive threads take consecutive keys so their 16-byte shared reads hit distinct banks.
  const int key = tid % kTileKeys;
  const int half = tid / kTileKeys;
  for (int t0 = 0; t0 < n; t0 += kTileKeys) {
    const int tn = min(kTileKeys, n - t0);
    // The previous tile's readers all passed the mid-tile barrier below before anyone gets here again.
    load_kv_tile<kHeadDim, kTileKeys, kThreads>(tile_s, k_view, begin + t0, last, tid);
    cp_async_wait_all();
    __syncthreads();
    float acc[kHeads];
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) acc[hh] = 0.0f;
    if (key < tn) {
      const __nv_bfloat16* k_row = tile_s + key * kRow;
#pragma unroll
      for (int c = 0; c < kChunks / 2; ++c) {
        const int dc = half * (kChunks / 2) + c;
        float kf[8];
        unpack_bf16x8(*reinterpret_cast<const uint4*>(k_row + dc * 8), kf);
#pragma unroll
        for (int hh = 0; hh < kHeads; ++hh) {
          const float4 q0 = *reinterpret_cast<const float4*>(q_s + hh * kHeadDim + dc * 8);
          const float4 q1 = *reinterpret_cast<const float4*>(q_s + hh * kHeadDim + dc * 8 + 4);
          float s = acc[hh];
          s = fmaf(q0.x, kf[0], s);
          s = fmaf(q0.y, kf[1], s);
          s = fmaf(q0.z, kf[2], s);
          s = fmaf(q0.w, kf[3], s);
          s = fmaf(q1.x, kf[4], s);
          s = fmaf(q1.y, kf[5], s);
          s = fmaf(q1.z, kf[6], s);
          s = fmaf(q1.w, kf[7], s);
          acc[hh] = s;
        }
      }
    }
    if (half == 1) {
#pragma unroll
      for (int hh = 0; hh < kHeads; ++hh) pair_s[hh * kTileKeys + key] = acc[hh];
    }
    __syncthreads();
    if (half == 0 && key < tn) {
#pragma unroll
      for (int hh = 0; hh < kHeads; ++hh) {
        logit_s[hh * kPartition + t0 + key] = (acc[hh] + pair_s[hh * kTileKeys + key]) * a.scale_log2;
      }
    }
  }
  __syncthreads();

  // Softmax over the partition, exact (all logits are at hand): one warp per head.
  const int warp = tid / 32;
  const int lane = tid % 32;
  for (int hh = warp; hh < kHeads; hh += kWarps) {
    float* lg = logit_s + hh * kPartition;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, lg[j]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j < n; j += 32) {
      const float e = exp2f(lg[j] - mx);
      lg[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) ml_s[hh] = make_float2(mx, sum);
  }

  // Pass 2: weighted values. Thread (slice, lane) accumulates dims [8 slice, 8 slice + 8) of every head over
  // positions lane, lane + kLanes, ...; a warp reads whole 16-byte-chunked rows, conflict-free.
  const int slice = tid % kChunks;
  const int klane = tid / kChunks;
  float o[kHeads][8];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
#pragma unroll
    for (int e = 0; e < 8; ++e) o[hh][e] = 0.0f;
  }
  for (int t0 = 0; t0 < n; t0 += kTileKeys) {
    const int tn = min(kTileKeys, n - t0);
    __syncthreads();  // the previous tile (or, first time, the logits written above) is fully consumed
    load_kv_tile<kHeadDim, kTileKeys, kThreads>(tile_s, v_view, begin + t0, last, tid);
    cp_async_wait_all();
    __syncthreads();
    for (int j = klane; j < tn; j += kLanes) {
      float vf[8];
      unpack_bf16x8(*reinterpret_cast<const uint4*>(tile_s + j * kRow + slice * 8), vf);
#pragma unroll
      for (int hh = 0; hh < kHeads; ++hh) {
        const float p = logit_s[hh * kPartition + t0 + j];
#pragma unroll
        for (int e = 0; e < 8; ++e) o[hh][e] = fmaf(p, vf[e], o[hh][e]);
      }
    }
  }

  // Reduce over the lanes of a warp that share a slice (they differ in the bits >= log2(kChunks)), then over
  // the warps through shared memory (the tile buffer, free once everyone is past the barrier).
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
#pragma unroll
      for (int off = kChunks; off < 32; off <<= 1) o[hh][e] += __shfl_xor_sync(0xffffffffu, o[hh][e], off);
    }
  }
  __syncthreads();
  float* red = reinterpret_cast<float*>(tile_s);  // [kWarps][kHeads][kHeadDim]
  if (lane < kChunks) {
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) {
      float* dst = red + (warp * kHeads + hh) * kHeadDim + lane * 8;
      *reinterpret_cast<float4*>(dst) = make_float4(o[hh][0], o[hh][1], o[hh][2], o[hh][3]);
      *reinterpret_cast<float4*>(dst + 4) = make_float4(o[hh][4], o[hh][5], o[hh][6], o[hh][7]);
    }
  }
  __syncthreads();

  for (int e = tid; e < nh * kHeadDim; e += kThreads) {
    const int hh = e / kHeadDim;
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += red[(w * kHeads) * kHeadDim + e];
    if (direct) {
      out_row[static_cast<std::size_t>(head0) * kHeadDim + e] = __float2bfloat16(s / ml_s[hh].y);
    } else {
      const std::size_t rec = (static_cast<std::size_t>(item) * a.n_heads + head0 + hh) * a.num_parts + part;
      a.part_acc[rec * kHeadDim + (e % kHeadDim)] = s;
    }
  }
  if (direct) return;
  if (tid < nh) {
    const std::size_t rec = (static_cast<std::size_t>(item) * a.n_heads + head0 + tid) * a.num_parts + part;
    a.part_ml[rec] = ml_s[tid];
  }

  // Count this partition in; the last one to arrive combines (the threadfence-reduction pattern: stores,
  // fence, atomic; the last CTA fences again and reads the others' stores from L2).
  __shared__ bool last_s;
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    unsigned* counter = a.arrivals + static_cast<std::size_t>(item) * a.n_heads + head0;
    last_s = atomicAdd(counter, 1u) == static_cast<unsigned>(used - 1);
    if (last_s) *counter = 0;  // every partition of this launch has arrived: ready for the next launch
  }
  __syncthreads();
  if (!last_s) return;
  __threadfence();
  for (int hh = warp; hh < nh; hh += kWarps) {
    const std::size_t rec = (static_cast<std::size_t>(item) * a.n_heads + head0 + hh) * a.num_parts;
    const float2* ml = a.part_ml + rec;
    float mx = -INFINITY;
    for (int p = lane; p < used; p += 32) mx = fmaxf(mx, __ldcg(&ml[p].x));
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int p = lane; p < used; p += 32) {
      const float2 v = __ldcg(ml + p);
      sum += v.y * exp2f(v.x - mx);
    }
    sum = warp_sum(sum);
    const float inv = 1.0f / sum;
    const float* acc = a.part_acc + rec * kHeadDim;
    __nv_bfloat16* dst = out_row + static_cast<std::size_t>(head0 + hh) * kHeadDim;
    for (int d = lane; d < kHeadDim; d += 32) {
      float o = 0.0f;
      for (int p = 0; p < used; ++p) o = fmaf(exp2f(__ldcg(&ml[p].x) - mx), __ldcg(acc + p * kHeadDim + d), o);
      dst[d] = __float2bfloat16(o * inv);
    }
  }
}

// The arrival counters, rounded up so that the partial outputs after them stay 16-byte aligned.
std::size_t arrivals_bytes(std::size_t tokens, std::size_t n_heads) {
  return (tokens * n_heads * sizeof(unsigned) + 15) / 16 * 16;
}

std::uint32_t partitions_for(std::uint32_t max_context) {
  return (max_context + kDecodePartition - 1) / kDecodePartition;
}

// A small batch would leave most SMs idle with one CTA per (row, KV head group): its rows are split into up to
// kMaxSlots partitions (of whole tiles) so that the launch has about kTargetCtas CTAs. Large batches keep
// kDecodePartition-long partitions (slots = 1).
constexpr std::uint32_t kTargetCtas = 256;  // about two per SM of an H200
constexpr std::uint32_t kMaxSlots = 32;

struct Split {
  std::uint32_t slots;  // partitions a short row is spread over
  std::uint32_t parts;  // the grid's x: enough for max_context in kDecodePartition pieces, and for the slots
};

// ctas_per_slot: CTAs one partition index gives the launch (rows × KV heads × head chunks).
Split split_for(std::uint64_t ctas_per_slot, std::uint32_t max_context) {
  const std::uint64_t wanted = (kTargetCtas + ctas_per_slot - 1) / std::max<std::uint64_t>(ctas_per_slot, 1);
  const std::uint32_t tiles = (max_context + kTileKeys - 1) / kTileKeys;
  const std::uint32_t slots =
      std::max<std::uint32_t>(1, std::min<std::uint32_t>({static_cast<std::uint32_t>(wanted), kMaxSlots, tiles}));
  return {slots, std::max(partitions_for(max_context), slots)};
}

std::uint32_t heads_per_cta_for(std::uint32_t group) {
  const std::uint32_t capped = std::min<std::uint32_t>(group, kHeadsPerCta);
  return capped <= 1 ? 1 : capped <= 2 ? 2 : capped <= 4 ? 4 : 8;
}

bool aligned(const void* p, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

template <int kHeadDim>
cudaError_t launch_partitions(const DecodeArgs& a, int heads_per_cta, dim3 grid, cudaStream_t stream) {
  switch (heads_per_cta) {
    case 1:
      return launch_pdl(decode_partition_kernel<kHeadDim, 1>, grid, kThreads, 0, stream, a);
    case 2:
      return launch_pdl(decode_partition_kernel<kHeadDim, 2>, grid, kThreads, 0, stream, a);
    case 4:
      return launch_pdl(decode_partition_kernel<kHeadDim, 4>, grid, kThreads, 0, stream, a);
    default:
      return launch_pdl(decode_partition_kernel<kHeadDim, 8>, grid, kThreads, 0, stream, a);
  }
}

}  // namespace

std::size_t decode_attention_workspace_bytes(std::uint32_t max_tokens, std::uint32_t n_heads, std::uint32_t head_dim,
                                             std::uint32_t max_context) {
  // One tile's worth of context is never split: a single partition writes the output directly.
  if (max_context <= static_cast<std::uint32_t>(kTileKeys)) return 0;
  // A launch of t rows has max(partitions_for, slots) partitions per row, and t * slots <= kTargetCtas + t
  // (split_for rounds kTargetCtas / (t * CTAs per row) up), so t rows take at most this many records per head:
  const std::size_t records = std::size_t{max_tokens} * (partitions_for(max_context) + 1) + kTargetCtas;
  return arrivals_bytes(max_tokens, n_heads) + records * n_heads * (std::size_t{head_dim} + 2) * sizeof(float);
}

std::uint32_t decode_attention_partitions(std::uint32_t num_tokens, std::uint32_t n_heads, std::uint32_t kv_heads,
                                          std::uint32_t max_context) {
  if (num_tokens == 0 || kv_heads == 0 || n_heads % kv_heads != 0 || max_context == 0) return 0;
  const std::uint32_t group = n_heads / kv_heads;
  const std::uint32_t per_cta = heads_per_cta_for(group);
  const std::uint32_t head_chunks = (group + per_cta - 1) / per_cta;
  return split_for(std::uint64_t{num_tokens} * kv_heads * head_chunks, max_context).parts;
}

cudaError_t launch_decode_attention(const DecodeAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.q == nullptr || p.out == nullptr || p.k_cache == nullptr || p.v_cache == nullptr || p.positions == nullptr ||
      p.block_tables == nullptr || p.table_offset == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.head_dim != 64 && p.head_dim != 128) return cudaErrorInvalidValue;
  if (p.block_size != 16 && p.block_size != 32) return cudaErrorInvalidValue;
  if (p.n_heads == 0 || p.kv_heads == 0 || p.n_heads % p.kv_heads != 0) return cudaErrorInvalidValue;
  const std::uint64_t width = std::uint64_t{p.n_heads} * p.head_dim;
  if (p.q_stride < width || p.out_stride < width) return cudaErrorInvalidValue;
  if (!aligned(p.k_cache, 16) || !aligned(p.v_cache, 16)) return cudaErrorInvalidValue;
  if (p.max_context == 0 || p.max_context > static_cast<std::uint32_t>(INT32_MAX) - kDecodePartition) {
    return cudaErrorInvalidValue;
  }
  if (!std::isfinite(p.scale)) return cudaErrorInvalidValue;

  const std::uint32_t group = p.n_heads / p.kv_heads;
  const int heads_per_cta = static_cast<int>(heads_per_cta_for(group));
  const std::uint32_t head_chunks = (group + heads_per_cta - 1) / heads_per_cta;
  if (std::uint64_t{p.kv_heads} * head_chunks > 65535 || p.num_tokens > 65535) return cudaErrorInvalidValue;
  const Split split = split_for(std::uint64_t{p.num_tokens} * p.kv_heads * head_chunks, p.max_context);
  const std::uint32_t slots = split.slots, parts = split.parts;
  if (parts > 1 && (p.workspace == nullptr || !aligned(p.workspace, 16))) return cudaErrorInvalidValue;

  DecodeArgs a{};
  a.q = p.q;
  a.out = p.out;
  a.k_cache = p.k_cache;
  a.v_cache = p.v_cache;
  a.tokens = p.tokens;
  a.positions = p.positions;
  a.block_tables = p.block_tables;
  a.table_offset = p.table_offset;
  const std::uint32_t ws_tokens = p.workspace_tokens == 0 ? p.num_tokens : p.workspace_tokens;
  if (ws_tokens < p.num_tokens) return cudaErrorInvalidValue;
  if (parts > 1) {
    a.arrivals = static_cast<unsigned*>(p.workspace);
    a.part_acc = reinterpret_cast<float*>(static_cast<unsigned char*>(p.workspace) +
                                          arrivals_bytes(ws_tokens, p.n_heads));
    a.part_ml = reinterpret_cast<float2*>(a.part_acc + std::size_t{p.num_tokens} * p.n_heads * parts * p.head_dim);
  }
  a.q_stride = p.q_stride;
  a.out_stride = p.out_stride;
  a.n_heads = static_cast<int>(p.n_heads);
  a.kv_heads = static_cast<int>(p.kv_heads);
  a.group = static_cast<int>(group);
  a.head_chunks = static_cast<int>(head_chunks);
  a.num_parts = static_cast<int>(parts);
  a.slots = static_cast<int>(slots);
  a.bs_shift = p.block_size == 16 ? 4 : 5;
  a.scale_log2 = p.scale * kLog2e;

  const dim3 grid(parts, p.kv_heads * head_chunks, p.num_tokens);
  return p.head_dim == 64 ? launch_partitions<64>(a, heads_per_cta, grid, stream)
                          : launch_partitions<128>(a, heads_per_cta, grid, stream);
}

}  // namespace sluice::cuda
