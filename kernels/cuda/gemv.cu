// The small-m GEMM of gemv.h.
//
// Work split: output features are taken R at a time ("groups": features [g·R, g·R + R)); warp w of the grid
// computes groups w, w + W, w + 2W, ... (W = warps in the grid) for all m rows of A. A group is done in steps:
// in one step lane l covers 16-byte chunks l, l + 32, ..., l + 32·(U - 1) (offset by the step) of each of the
// R weight rows, so the warp reads 512 contiguous bytes per row and chunk slot. Lanes split the reduction axis
// only; a butterfly of shuffles sums them at the end of a group. No block-level synchronization: every warp is
// independent, and every lane only ever reads back the shared memory it filled itself.
//
// Bandwidth: a decode step is bound by reading the weights, so what matters is how many bytes are in flight.
// Weight chunks are copied with cp.async into a per-warp ring of S steps of shared memory, and S - 1 steps are
// requested before the first is used; the copies cost no registers and cannot be moved next to their use by
// the compiler (plain loads into registers are: ptxas sinks them next to the FMAs that consume them and
// leaves one or two 16-byte loads in flight per lane). The copies bypass L1 (each weight byte is used once)
// and ask L2 for the whole 256-byte block. The activations, at most 8 × k × 2 bytes, are read with ordinary
// loads through L1, where every warp of the SM reuses them. Measured on an H200, more warps with a shallow
// ring (S = 3, 8 blocks per SM) stream faster than fewer warps with a deep one (S = 5, 4 blocks per SM),
// with the same bytes requested per SM.
//
// Grid: sized to what is resident at once (blocks per SM × SMs), with every warp given the same number of
// groups give or take one, so no SM runs a lone tail of blocks after the others are done; the ring keeps
// streaming across a warp's consecutive groups.
//
// Rows per warp trade grid size against activation traffic: a warp reads all m·k activations for each group,
// i.e. m/R activation bytes per weight byte, but a narrow output split R rows at a time leaves few warps.
//
// Numerics: bf16 products accumulated in fp32 (each lane in k order, then the butterfly), bias added in fp32,
// one rounding to the output type. The order differs from cuBLASLt's and from gemm_reference's; gemm.h's
// tests state why that stays within their tolerance.
#include "kernels/cuda/gemv.h"

#include <cuda_bf16.h>

#include <cstddef>

#include "kernels/cuda/pdl.cuh"

namespace sluice::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kThreads = kWarpsPerBlock * 32;
// 16-byte weight chunks each lane copies per step (R rows × U chunks per row).
constexpr int kChunksPerStep = 4;
constexpr std::uint32_t kDefaultBlocksPerSm = 8;
constexpr std::uint32_t kDefaultStages = 3;

struct GemvParams {
  const __nv_bfloat16* a;
  const __nv_bfloat16* w;
  const __nv_bfloat16* bias;
  void* d;
  std::uint32_t n, k, lda, ldd;
  bool out_fp32, accumulate;
};

// Copies 16 bytes global → shared, asynchronously; `bytes` = 0 writes zeros and reads nothing.
__device__ __forceinline__ void copy_async16(void* dst, const void* src, std::uint32_t bytes) {
  const auto d = static_cast<std::uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void copy_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
}

// The two bf16 halves of a 32-bit word as floats: a bf16 is the high half of the fp32 with the same value.
__device__ __forceinline__ float lo_bf16(std::uint32_t x) { return __uint_as_float(x << 16); }
__device__ __forceinline__ float hi_bf16(std::uint32_t x) { return __uint_as_float(x & 0xffff0000u); }

__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  f[0] = lo_bf16(v.x);
  f[1] = hi_bf16(v.x);
  f[2] = lo_bf16(v.y);
  f[3] = hi_bf16(v.y);
  f[4] = lo_bf16(v.z);
  f[5] = hi_bf16(v.z);
  f[6] = lo_bf16(v.w);
  f[7] = hi_bf16(v.w);
}

template <int S>
constexpr std::size_t smem_bytes() {
  return std::size_t{kWarpsPerBlock} * S * kChunksPerStep * 32 * sizeof(uint4);
}

template <int M, int R, int S>
__global__ void __launch_bounds__(kThreads) gemv_kernel(GemvParams p) {
  constexpr int U = kChunksPerStep / R;  // chunk slots per row and step
  static_assert(U * R == kChunksPerStep, "R divides the chunks of a step");
  static_assert(R * M <= 32, "one output per lane in the epilogue");
  extern __shared__ uint4 ring_all[];

  const int lane = threadIdx.x & 31;
  const int warp_in_block = threadIdx.x / 32;
  const std::uint32_t chunks = p.k / 8;
  const std::uint32_t steps_per_group = (chunks + 32 * U - 1) / (32 * U);
  const std::uint32_t groups = (p.n + R - 1) / R;
  const std::uint32_t first = blockIdx.x * kWarpsPerBlock + warp_in_block;
  const std::uint32_t stride = gridDim.x * kWarpsPerBlock;
  if (first >= groups) return;
  const std::uint32_t total_steps = (groups - first + stride - 1) / stride * steps_per_group;

  // This warp's ring: S steps × kChunksPerStep chunk slots × 32 lanes; slot (u·R + j) of a step holds chunk
  // slot u of row j. Lane l only touches column l.
  uint4* ring = ring_all + static_cast<std::size_t>(warp_in_block) * S * kChunksPerStep * 32 + lane;

  // Issue cursor: the step whose copies go out next.
  std::uint32_t to_issue = total_steps;
  std::uint32_t issue_row0 = first * R, issue_step = 0;
  int issue_slot = 0;
  const auto issue = [&] {
    if (to_issue > 0) {
      uint4* dst = ring + issue_slot * kChunksPerStep * 32;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const std::uint32_t c = issue_step * 32 * U + u * 32 + lane;
#pragma unroll
        for (int j = 0; j < R; ++j) {
          const std::uint32_t row = issue_row0 + j;
          // Chunks past the row's end and rows past n are zero-filled without touching memory.
          const bool in = c < chunks && row < p.n;
          const __nv_bfloat16* src = p.w + (in ? static_cast<std::size_t>(row) * p.k + c * 8 : 0);
          copy_async16(dst + (u * R + j) * 32, src, in ? 16 : 0);
        }
      }
      --to_issue;
      if (++issue_step == steps_per_group) {
        issue_step = 0;
        issue_row0 += stride * R;
      }
      if (++issue_slot == S) issue_slot = 0;
    }
    // Committed even when empty, so that "step t is complete" is always "all but the last S - 1 groups".
    copy_commit();
  };

#pragma unroll
  for (int s = 0; s < S - 1; ++s) issue();
  // The weights are no earlier kernel's output: their first steps are on their way while the previous kernel
  // finishes (pdl.cuh); the activations (and an accumulated output) are read only after this.
  pdl_wait();
  pdl_launch_dependents();

  float acc[R][M];
#pragma unroll
  for (int j = 0; j < R; ++j)
#pragma unroll
    for (int i = 0; i < M; ++i) acc[j][i] = 0.0f;

  std::uint32_t row0 = first * R, step = 0;
  int slot = 0;
  for (std::uint32_t t = 0; t < total_steps; ++t) {
    issue();
    copy_wait<S - 1>();
    const uint4* src = ring + slot * kChunksPerStep * 32;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const std::uint32_t c = step * 32 * U + u * 32 + lane;
      if (c < chunks) {
        float wf[R][8];
#pragma unroll
        for (int j = 0; j < R; ++j) unpack8(src[(u * R + j) * 32], wf[j]);
#pragma unroll
        for (int i = 0; i < M; ++i) {
          float af[8];
          unpack8(__ldg(reinterpret_cast<const uint4*>(p.a + static_cast<std::size_t>(i) * p.lda) + c), af);
#pragma unroll
          for (int j = 0; j < R; ++j)
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[j][i] = fmaf(af[e], wf[j][e], acc[j][i]);
        }
      }
    }
    if (++slot == S) slot = 0;
    if (++step < steps_per_group) continue;

    // Group done: sum over the lanes, then lane v stores output v = j·M + i, so the stores go out in parallel.
    float out = 0.0f;
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
      for (int i = 0; i < M; ++i) {
        float v = acc[j][i];
#pragma unroll
        for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == j * M + i) out = v;
        acc[j][i] = 0.0f;
      }
    const std::uint32_t row = row0 + lane / M;
    if (lane < R * M && row < p.n) {
      if (p.bias != nullptr) out += __bfloat162float(p.bias[row]);
      const std::size_t at = static_cast<std::size_t>(lane % M) * p.ldd + row;
      if (p.out_fp32) {
        float* d = static_cast<float*>(p.d);
        d[at] = p.accumulate ? d[at] + out : out;
      } else {
        __nv_bfloat16* d = static_cast<__nv_bfloat16*>(p.d);
        d[at] = __float2bfloat16(p.accumulate ? __bfloat162float(d[at]) + out : out);
      }
    }
    step = 0;
    row0 += stride * R;
  }
}

int sm_count() {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms <= 0)
    return 0;
  return sms;
}

template <int M, int R, int S>
cudaError_t launch_config(const GemvParams& p, std::uint32_t blocks_per_sm, cudaStream_t stream) {
  constexpr std::size_t smem = smem_bytes<S>();
  // Resident blocks per SM for this instantiation, asked once (host-only, so safe while a graph is captured).
  static const int resident = [] {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemv_kernel<M, R, S>, kThreads, smem) != cudaSuccess)
      blocks = 0;
    return blocks;
  }();
  const int sms = sm_count();
  if (resident <= 0 || sms <= 0) return cudaErrorLaunchFailure;
  const std::uint32_t per_sm = blocks_per_sm < static_cast<std::uint32_t>(resident) ? blocks_per_sm : resident;
  const std::uint32_t max_warps = per_sm * static_cast<std::uint32_t>(sms) * kWarpsPerBlock;
  // The fewest warps that still give each the smallest possible number of groups.
  const std::uint32_t groups = (p.n + R - 1) / R;
  const std::uint32_t per_warp = (groups + max_warps - 1) / max_warps;
  const std::uint32_t warps = (groups + per_warp - 1) / per_warp;
  const std::uint32_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return launch_pdl(gemv_kernel<M, R, S>, blocks, kThreads, smem, stream, p);
}

template <int M, int R>
cudaError_t launch_rows(const GemvParams& p, std::uint32_t stages, std::uint32_t blocks_per_sm, cudaStream_t stream) {
  return stages == 3 ? launch_config<M, R, 3>(p, blocks_per_sm, stream)
                     : launch_config<M, R, 5>(p, blocks_per_sm, stream);
}

template <int M>
cudaError_t launch_m(const GemvParams& p, const GemvTuning& t, cudaStream_t stream) {
  switch (t.rows_per_warp) {
    case 1:
      return launch_rows<M, 1>(p, t.stages, t.blocks_per_sm, stream);
    case 2:
      return launch_rows<M, 2>(p, t.stages, t.blocks_per_sm, stream);
    default:
      return launch_rows<M, 4>(p, t.stages, t.blocks_per_sm, stream);
  }
}

// Features per warp from n: four for outputs of 6144 features or more, two from 2048, else one — on an H200
// the fastest or within a few percent of the fastest measured tuning for the 8B, 1B and 135M projections at
// m = 1. The same for every m: larger R would cut the activation traffic of large m, but the grid size
// matters more at the shapes Gemm::run sends here.
std::uint32_t default_rows_per_warp(std::uint32_t n) { return n >= 6144 ? 4 : (n >= 2048 ? 2 : 1); }

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

bool gemv_supported(const GemmArgs& args) {
  const std::uint32_t lda = args.lda == 0 ? args.k : args.lda;
  const std::uint32_t ldd = args.ldd == 0 ? args.n : args.ldd;
  return args.a != nullptr && args.w != nullptr && args.d != nullptr && args.m >= 1 && args.m <= kGemvMaxRows &&
         args.n >= 1 && args.k >= 8 && args.k % 8 == 0 && lda >= args.k && lda % 8 == 0 && ldd >= args.n &&
         aligned16(args.a) && aligned16(args.w);
}

cudaError_t launch_gemv(const GemmArgs& args, cudaStream_t stream, const GemvTuning& tuning) {
  if (!gemv_supported(args)) return cudaErrorInvalidValue;
  GemvTuning t = tuning;
  if (t.rows_per_warp == 0) t.rows_per_warp = default_rows_per_warp(args.n);
  if (t.stages == 0) t.stages = kDefaultStages;
  if (t.blocks_per_sm == 0) t.blocks_per_sm = kDefaultBlocksPerSm;
  if ((t.rows_per_warp != 1 && t.rows_per_warp != 2 && t.rows_per_warp != 4) || (t.stages != 3 && t.stages != 5))
    return cudaErrorInvalidValue;
  GemvParams p;
  p.a = args.a;
  p.w = args.w;
  p.bias = args.bias;
  p.d = args.d;
  p.n = args.n;
  p.k = args.k;
  p.lda = args.lda == 0 ? args.k : args.lda;
  p.ldd = args.ldd == 0 ? args.n : args.ldd;
  p.out_fp32 = args.out_fp32;
  p.accumulate = args.accumulate;
  switch (args.m) {
    case 1:
      return launch_m<1>(p, t, stream);
    case 2:
      return launch_m<2>(p, t, stream);
    case 3:
      return launch_m<3>(p, t, stream);
    case 4:
      return launch_m<4>(p, t, stream);
    case 5:
      return launch_m<5>(p, t, stream);
    case 6:
      return launch_m<6>(p, t, stream);
    case 7:
      return launch_m<7>(p, t, stream);
    default:
      return launch_m<8>(p, t, stream);
  }
}

}  // namespace sluice::cuda
