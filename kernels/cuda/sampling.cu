// Device sampling (contract: sampling.h; semantics: step 4 of engine/sampling/sampler.h).
//
// One block of kThreads threads per row; the block never leaves its row, so a row's draw cannot depend on
// the other rows of the launch. Nothing of vocabulary size is sorted or written: every step is a pass over
// the row (values recomputed from the logits each time) plus block reductions in shared memory.
//
//  1. One pass: l = min(sanitize(logit) * inv_t, FLT_MAX) with inv_t = 1 / temperature (1 for greedy rows),
//     exactly the host sampler's arithmetic, and the block-wide argmax (lowest id on ties). Greedy rows end
//     here. With top_k, the same pass histograms the first radix digit of the keys.
//  2. Weights are fixed point: W = trunc(expf(l - max) * 2^43), so every sum is an exact, order-independent
//     integer (at most 2^20 * 2^43 < 2^64): bin sums, prefix sums and totals agree bit for bit however the
//     threads were scheduled, and the steps below are consistent with each other.
//  3. top_k: radix select over 32-bit order-preserving keys of l (digits of 11, 11 and 10 bits) finds the
//     k-th largest key K; the set is key > K plus the first (k - #(key > K)) ids with key == K — the host's
//     order (higher logit first, lower id first among equals).
//  4. top_p: the same select, weighted by W over the top_k set (or all tokens), finds the largest key K* whose
//     mass of keys >= K* reaches max(top_p * total, 1); then the fewest ids with key == K* that reach it.
//     That is the host's "smallest most-likely prefix whose mass reaches top_p".
//  5. min_p: a token survives when expf(l - max) >= min_p (the host's test).
//  6. The draw: u = philox::uniform(seed, token_index, 0) = m / 2^24, T = floor(m * total / 2^24), and the
//     token is the first id (ascending) whose inclusive prefix of surviving W exceeds T.
// Ties at a top_k/top_p boundary and the draw need an id-ordered prefix ("ordered select"): one pass writes
// the sum of each 512-id segment to shared memory, a block scan finds the segment holding the crossing, and
// one warp scans that segment. Once a radix digit leaves at most kCap candidates, they are gathered into
// shared memory and the remaining digits run there instead of over the row.
// Passes over the row: greedy 1; temperature only 2; top_k 3; top_p 4; top_k + top_p 4 — when the tokens left
// after a radix digit fit the candidate buffer (each digit that leaves more costs a pass), plus one per tie
// straddling a top_k/top_p boundary, which real logits rarely have.
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "engine/sampling/philox.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/pdl.cuh"

namespace sluice::cuda {
namespace {

using u64 = unsigned long long;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;                  // groups in flight per thread in a row pass
constexpr std::uint32_t kBins = 2048;       // 11-bit radix digits
constexpr std::uint32_t kBinsPerThread = kBins / kThreads;
constexpr std::uint32_t kCap = 2048;        // candidates gathered into shared memory
constexpr std::uint32_t kSegment = 512;     // ids per segment of the ordered select
constexpr std::uint32_t kMaxVocab = 1u << 20;
constexpr std::uint32_t kMaxSegments = kMaxVocab / kSegment;
constexpr std::uint32_t kNone = 0xffffffffu;
constexpr float kGreedyBelow = 1e-5f;       // the host sampler's threshold
constexpr float kFixedOne = 8796093022208.0f;  // 2^43
static_assert(kBins % kThreads == 0 && kMaxSegments <= 2 * kThreads);

// Radix digits over the 32-bit key, most significant first: bits 31..21, 20..10 and 9..0.
constexpr int kDigits = 3;
__device__ __forceinline__ int digit_shift(int d) { return d == 0 ? 21 : (d == 1 ? 10 : 0); }
__device__ __forceinline__ std::uint32_t digit_mask(int d) { return d == 2 ? 0x3ffu : 0x7ffu; }

struct Shared {
  union {
    struct {
      std::uint32_t count[kBins];
      u64 weight[kBins];
    } hist;
    u64 segment[kMaxSegments];
  };
  std::uint32_t cand_key[kCap];
  std::uint32_t cand_id[kCap];
  std::uint32_t cand_n;
  u64 warp_u64[kWarps];
  float warp_f[kWarps];
  std::uint32_t warp_i[kWarps];
  // Results of a selection step, written by the one thread that finds them.
  std::uint32_t sel_bin;
  u64 sel_above;
  std::uint32_t sel_segment;
  u64 sel_rest;
  std::uint32_t sel_id;
};

// ------------------------------------------------------------------------------------------- value helpers

// The host sampler's value of a logit: NaN -> -inf, +inf -> FLT_MAX, then times 1 / temperature, capped at
// FLT_MAX — written like its std::min calls. The product (and the division giving inv_t) are explicit
// round-to-nearest IEEE operations, so the bits are the host's even if fast-math flags are ever turned on.
__device__ __forceinline__ float scaled(float raw, float inv_t) {
  const float l = raw == raw ? (FLT_MAX < raw ? FLT_MAX : raw) : -INFINITY;
  const float x = __fmul_rn(l, inv_t);
  return FLT_MAX < x ? FLT_MAX : x;
}

// Order-preserving key: larger float -> larger key; -0 and +0 share one key.
__device__ __forceinline__ std::uint32_t order_key(float l) {
  const std::uint32_t b = __float_as_uint(l == 0.0f ? 0.0f : l);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(std::uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__device__ __forceinline__ u64 fixed_weight(float w) { return static_cast<u64>(w * kFixedOne); }

__device__ __forceinline__ bool better(float v, std::uint32_t i, float bv, std::uint32_t bi) {
  return v > bv || (v == bv && i < bi);
}

// ----------------------------------------------------------------------------------------- block helpers

__device__ __forceinline__ unsigned lane_id() { return threadIdx.x & 31u; }
__device__ __forceinline__ unsigned warp_id() { return threadIdx.x >> 5; }

__device__ __forceinline__ u64 warp_sum(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ u64 warp_inclusive_scan(u64 v) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 n = __shfl_up_sync(kFullMask, v, o);
    if (lane_id() >= static_cast<unsigned>(o)) v += n;
  }
  return v;
}

// Exclusive prefix of v over threads 0..kThreads-1 and the block total. Starts and ends with a barrier, so
// shared results written before the call are visible after it, and its scratch is free again on return.
__device__ u64 block_exclusive_scan(u64 v, u64& total, Shared& sh) {
  const u64 incl = warp_inclusive_scan(v);
  __syncthreads();
  if (lane_id() == 31) sh.warp_u64[warp_id()] = incl;
  __syncthreads();
  u64 before = 0;
  u64 sum = 0;
  for (unsigned w = 0; w < kWarps; ++w) {
    const u64 x = sh.warp_u64[w];
    before += w < warp_id() ? x : 0;
    sum += x;
  }
  total = sum;
  __syncthreads();
  return before + incl - v;
}

// Block argmax under `better`; every thread returns the same pair.
__device__ void block_argmax(float& v, std::uint32_t& i, Shared& sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFullMask, v, o);
    const std::uint32_t oi = __shfl_xor_sync(kFullMask, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
  if (lane_id() == 0) {
    sh.warp_f[warp_id()] = v;
    sh.warp_i[warp_id()] = i;
  }
  __syncthreads();
  v = sh.warp_f[0];
  i = sh.warp_i[0];
  for (unsigned w = 1; w < kWarps; ++w) {
    if (better(sh.warp_f[w], sh.warp_i[w], v, i)) v = sh.warp_f[w], i = sh.warp_i[w];
  }
  __syncthreads();
}

// Adds 1 to hist[bin] for every lane that has a bin (kNone: none), one atomic per distinct bin of the warp.
// All 32 lanes must call it together.
__device__ __forceinline__ void count_into(std::uint32_t* hist, std::uint32_t bin) {
  const unsigned peers = __match_any_sync(kFullMask, bin);
  if (bin != kNone && lane_id() == static_cast<unsigned>(__ffs(peers) - 1)) atomicAdd(&hist[bin], __popc(peers));
}

// ---------------------------------------------------------------------------------------------- row passes

// Loads group g (ids g*G .. g*G+G-1) of the row; ids past the vocabulary read as 0 and must be ignored.
template <int G>
__device__ __forceinline__ void load_group(const float* __restrict__ row, std::uint32_t vocab, std::uint32_t g,
                                           float (&v)[G]) {
  const std::uint32_t id0 = g * G;
  if constexpr (G == 4) {
    if (id0 + 4 <= vocab) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(row) + g);
      v[0] = q.x;
      v[1] = q.y;
      v[2] = q.z;
      v[3] = q.w;
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < G; ++e) v[e] = id0 + e < vocab ? __ldg(row + id0 + e) : 0.0f;
}

// Calls f(id, raw, valid) for every id of the row, thread-strided, kUnroll groups loaded ahead. The trip
// count is the same for every thread, so f may use warp-synchronous intrinsics.
template <int G, typename F>
__device__ __forceinline__ void row_pass(const float* __restrict__ row, std::uint32_t vocab, F&& f) {
  const std::uint32_t groups = (vocab + G - 1) / G;
  for (std::uint32_t base = 0; base < groups; base += kUnroll * kThreads) {
    float v[kUnroll][G];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) load_group<G>(row, vocab, base + u * kThreads + threadIdx.x, v[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int e = 0; e < G; ++e) {
        const std::uint32_t id = (base + u * kThreads + threadIdx.x) * G + e;
        f(id, v[u][e], id < vocab);
      }
    }
  }
}

struct Row {
  const float* logits;
  std::uint32_t vocab;
  float inv_t;
  float max;  // largest scaled logit
};

// The first id (ascending) at which the inclusive prefix of weight(id, raw, valid) exceeds target(total),
// where total is the row's sum of weights; kNone when total <= target. Weights must be a pure function of
// their arguments: they are evaluated twice (segment sums, then the walk through one segment).
template <int G, typename Weight, typename Target>
__device__ std::uint32_t ordered_select(const Row& row, Weight weight, Target target, Shared& sh) {
  constexpr std::uint32_t kGroupsPerSegment = kSegment / G;
  constexpr std::uint32_t kSteps = kGroupsPerSegment / 32;
  const std::uint32_t segments = (row.vocab + kSegment - 1) / kSegment;
  __syncthreads();  // the union's histograms may still be read by a previous step
  for (std::uint32_t s = warp_id(); s < segments; s += kWarps) {
    float v[kSteps][G];
#pragma unroll
    for (std::uint32_t j = 0; j < kSteps; ++j) {
      load_group<G>(row.logits, row.vocab, s * kGroupsPerSegment + j * 32 + lane_id(), v[j]);
    }
    u64 sum = 0;
#pragma unroll
    for (std::uint32_t j = 0; j < kSteps; ++j) {
#pragma unroll
      for (int e = 0; e < G; ++e) {
        const std::uint32_t id = (s * kGroupsPerSegment + j * 32 + lane_id()) * G + e;
        sum += weight(id, v[j][e], id < row.vocab);
      }
    }
    sum = warp_sum(sum);
    if (lane_id() == 0) sh.segment[s] = sum;
  }
  if (threadIdx.x == 0) {
    sh.sel_segment = kNone;
    sh.sel_id = kNone;
  }
  __syncthreads();
  // Thread t owns segments 2t and 2t+1.
  const std::uint32_t first = 2 * threadIdx.x;
  const u64 s0 = first < segments ? sh.segment[first] : 0;
  const u64 s1 = first + 1 < segments ? sh.segment[first + 1] : 0;
  u64 total = 0;
  const u64 before = block_exclusive_scan(s0 + s1, total, sh);
  const u64 goal = target(total);
  if (total <= goal) return kNone;  // uniform: every thread has the same total
  if (before <= goal && goal < before + s0) {
    sh.sel_segment = first;
    sh.sel_rest = goal - before;
  } else if (before + s0 <= goal && goal < before + s0 + s1) {
    sh.sel_segment = first + 1;
    sh.sel_rest = goal - before - s0;
  }
  __syncthreads();
  const std::uint32_t seg = sh.sel_segment;
  const u64 rest = sh.sel_rest;
  if (warp_id() == 0 && seg != kNone) {
    u64 acc = 0;  // weight of the segment's ids before this step
    for (std::uint32_t j = 0; j < kSteps; ++j) {
      const std::uint32_t g = seg * kGroupsPerSegment + j * 32 + lane_id();
      float v[G];
      load_group<G>(row.logits, row.vocab, g, v);
      u64 w[G];
      u64 lane_sum = 0;
#pragma unroll
      for (int e = 0; e < G; ++e) {
        w[e] = weight(g * G + e, v[e], g * G + e < row.vocab);
        lane_sum += w[e];
      }
      const u64 incl = warp_inclusive_scan(lane_sum);
      const unsigned hits = __ballot_sync(kFullMask, acc + incl > rest);
      if (hits != 0) {
        if (lane_id() == static_cast<unsigned>(__ffs(hits) - 1)) {
          u64 run = acc + incl - lane_sum;
          for (int e = 0; e < G; ++e) {
            run += w[e];
            if (run > rest) {
              sh.sel_id = g * G + e;
              break;
            }
          }
        }
        break;
      }
      acc += __shfl_sync(kFullMask, incl, 31);
    }
  }
  __syncthreads();
  return sh.sel_id;
}

struct Selection {
  std::uint32_t key = 0;     // the boundary key K
  u64 above = 0;             // mass (count or weight) of the members with key > K
  std::uint32_t at = 0;      // members with key == K
  double target = 0.0;       // the mass the selection had to reach
};

// The largest key K whose mass over members with key >= K reaches the target: `target` itself when counting
// (the rank k), max(target * total, 1) when weighted by W (target = top_p). `known` bounds the members (it
// decides when they fit the candidate buffer); `first_ready` says that the caller already histogrammed the
// first digit (counts, all tokens). Member(id, key) must be a pure function.
template <int G, bool kWeighted, typename Member>
__device__ Selection radix_select(const Row& row, Member member, double target, std::uint32_t known, bool first_ready,
                                  Shared& sh) {
  std::uint32_t prefix = 0;
  std::uint32_t prefix_mask = 0;
  u64 above = 0;
  bool from_candidates = false;
  Selection result;
  for (int d = 0; d < kDigits; ++d) {
    const int shift = digit_shift(d);
    const std::uint32_t mask = digit_mask(d);
    const bool pass = !(d == 0 && first_ready);
    const bool gather = pass && !from_candidates && known <= kCap;
    if (pass) {
      __syncthreads();  // earlier readers of the histograms and the candidate count are done
      for (std::uint32_t b = threadIdx.x; b < kBins; b += kThreads) {
        sh.hist.count[b] = 0;
        if (kWeighted) sh.hist.weight[b] = 0;
      }
      if (gather && threadIdx.x == 0) sh.cand_n = 0;
      __syncthreads();
      const auto visit = [&](std::uint32_t id, std::uint32_t key, float l, bool valid) {
        const bool in = valid && (key & prefix_mask) == prefix && member(id, key);
        const std::uint32_t bin = in ? (key >> shift) & mask : kNone;
        count_into(sh.hist.count, bin);
        if (kWeighted && in) {
          const u64 w = fixed_weight(expf(l - row.max));
          if (w != 0) atomicAdd(&sh.hist.weight[bin], w);
        }
        if (gather) {
          const unsigned want = __ballot_sync(kFullMask, in);
          if (want != 0) {
            const unsigned leader = __ffs(want) - 1;
            std::uint32_t slot = 0;
            if (lane_id() == leader) slot = atomicAdd(&sh.cand_n, static_cast<std::uint32_t>(__popc(want)));
            slot = __shfl_sync(kFullMask, slot, leader) + __popc(want & ((1u << lane_id()) - 1u));
            if (in && slot < kCap) {
              sh.cand_key[slot] = key;
              sh.cand_id[slot] = id;
            }
          }
        }
      };
      if (from_candidates) {
        const std::uint32_t n = sh.cand_n;
        for (std::uint32_t base = 0; base < n; base += kThreads) {
          const std::uint32_t i = base + threadIdx.x;
          const bool valid = i < n;
          const std::uint32_t key = valid ? sh.cand_key[i] : 0;
          visit(valid ? sh.cand_id[i] : 0, key, key_value(key), valid);
        }
      } else {
        row_pass<G>(row.logits, row.vocab, [&](std::uint32_t id, float raw, bool valid) {
          const float l = scaled(raw, row.inv_t);
          visit(id, order_key(l), l, valid);
        });
      }
      if (gather) from_candidates = true;
    }
    if (threadIdx.x == 0) {
      sh.sel_bin = kNone;
      sh.sel_above = above;
    }
    __syncthreads();
    // Thread t owns bins hi = kBins-1 - kBinsPerThread*t downwards, so the block scan runs from the top bin.
    const std::uint32_t top = kBins - 1 - kBinsPerThread * threadIdx.x;
    u64 mass[kBinsPerThread];
    u64 local = 0;
#pragma unroll
    for (std::uint32_t k = 0; k < kBinsPerThread; ++k) {
      mass[k] = kWeighted ? sh.hist.weight[top - k] : sh.hist.count[top - k];
      local += mass[k];
    }
    u64 total = 0;
    const u64 higher = block_exclusive_scan(local, total, sh);
    if (d == 0 && kWeighted) target = fmax(target * static_cast<double>(total), 1.0);
    u64 a = above + higher;  // mass above bin `top - k`
#pragma unroll
    for (std::uint32_t k = 0; k < kBinsPerThread; ++k) {
      if (static_cast<double>(a) < target && static_cast<double>(a + mass[k]) >= target) {
        sh.sel_bin = top - k;
        sh.sel_above = a;
      }
      a += mass[k];
    }
    __syncthreads();
    const std::uint32_t bin = sh.sel_bin == kNone ? 0 : sh.sel_bin;  // kNone only if the invariant broke
    above = sh.sel_above;
    known = sh.hist.count[bin];
    prefix |= bin << shift;
    prefix_mask |= mask << shift;
  }
  result.key = prefix;
  result.above = above;
  result.at = known;
  result.target = target;
  return result;
}

// ------------------------------------------------------------------------------------------------- kernel

template <int G>
__global__ void __launch_bounds__(kThreads, 1) sampling_kernel(SamplingParams p) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ Shared sh;
  const RowSampling rs = p.rows[blockIdx.x];
  const bool greedy = !(rs.temperature >= kGreedyBelow);
  Row row{p.logits + static_cast<std::size_t>(blockIdx.x) * p.logits_stride, p.vocab,
          greedy ? 1.0f : __fdiv_rn(1.0f, rs.temperature), 0.0f};
  const bool use_k = !greedy && rs.top_k > 0 && static_cast<std::uint32_t>(rs.top_k) < p.vocab;
  const bool use_p = !greedy && rs.top_p < 1.0f;

  // 1. argmax, and the first top_k digit.
  if (use_k) {
    for (std::uint32_t b = threadIdx.x; b < kBins; b += kThreads) sh.hist.count[b] = 0;
    __syncthreads();
  }
  float best = -INFINITY;
  std::uint32_t best_id = kNone;
  row_pass<G>(row.logits, row.vocab, [&](std::uint32_t id, float raw, bool valid) {
    const float l = scaled(raw, row.inv_t);
    if (valid && better(l, id, best, best_id)) best = l, best_id = id;
    if (use_k) count_into(sh.hist.count, valid ? order_key(l) >> digit_shift(0) : kNone);
  });
  block_argmax(best, best_id, sh);
  const bool truncate = use_k || use_p;
  if (greedy || best == -INFINITY || (truncate && rs.min_p > 1.0f)) {
    // Greedy; every token banned (the host answers 0); or a min_p no token but the best can meet, where the
    // host keeps exactly the first token of its order.
    if (threadIdx.x == 0) p.out[blockIdx.x] = (greedy || best != -INFINITY) ? static_cast<std::int32_t>(best_id) : 0;
    return;
  }
  row.max = best;

  // 3. top_k: the set is key > k_key, or key == k_key and id < k_end.
  std::uint32_t k_key = 0;
  std::uint32_t k_end = p.vocab;
  if (use_k) {
    const auto all = [](std::uint32_t, std::uint32_t) { return true; };
    const Selection s = radix_select<G, false>(row, all, static_cast<double>(rs.top_k), p.vocab, true, sh);
    k_key = s.key;
    const std::uint32_t need = static_cast<std::uint32_t>(rs.top_k) - static_cast<std::uint32_t>(s.above);
    if (need < s.at) {
      const std::uint32_t id = ordered_select<G>(
          row,
          [&](std::uint32_t, float raw, bool valid) -> u64 {
            return valid && order_key(scaled(raw, row.inv_t)) == k_key ? 1 : 0;
          },
          [&](u64) -> u64 { return need - 1; }, sh);
      k_end = id == kNone ? p.vocab : id + 1;
    }
  }
  const auto in_top_k = [&](std::uint32_t id, std::uint32_t key) {
    return !use_k || key > k_key || (key == k_key && id < k_end);
  };

  // 4. top_p over the top_k set: key > p_key, or key == p_key and id < p_end.
  std::uint32_t p_key = 0;
  std::uint32_t p_end = p.vocab;
  if (use_p) {
    const std::uint32_t known = use_k ? static_cast<std::uint32_t>(rs.top_k) : p.vocab;
    const Selection s =
        radix_select<G, true>(row, in_top_k, static_cast<double>(rs.top_p), known, false, sh);
    p_key = s.key;
    const u64 w_at = fixed_weight(expf(key_value(p_key) - row.max));
    // The fewest equal-key tokens that bring the mass to the target (1 <= n <= s.at).
    u64 n = s.at;
    if (w_at > 0) {
      const double missing = s.target - static_cast<double>(s.above);
      n = missing > 0.0 ? static_cast<u64>(ceil(missing / static_cast<double>(w_at))) : 1;
      n = n < 1 ? 1 : (n > s.at ? s.at : n);
      while (n > 1 && static_cast<double>(s.above + (n - 1) * w_at) >= s.target) --n;
      while (n < s.at && static_cast<double>(s.above + n * w_at) < s.target) ++n;
    }
    if (n < s.at) {
      const std::uint32_t id = ordered_select<G>(
          row,
          [&](std::uint32_t id, float raw, bool valid) -> u64 {
            if (!valid) return 0;
            const std::uint32_t key = order_key(scaled(raw, row.inv_t));
            return key == p_key && in_top_k(id, key) ? 1 : 0;
          },
          [&](u64) -> u64 { return n - 1; }, sh);
      p_end = id == kNone ? p.vocab : id + 1;
    }
  }

  // 5./6. min_p and the draw by inverse CDF in id order.
  const u64 m = philox::bits(rs.seed, rs.token_index, 0) >> 8;
  const float min_p = rs.min_p;
  // The host tests min_p on every token when nothing else truncates, and only a positive one otherwise.
  const bool min_p_filter = !truncate || rs.min_p > 0.0f;
  const std::uint32_t token = ordered_select<G>(
      row,
      [&](std::uint32_t id, float raw, bool valid) -> u64 {
        if (!valid) return 0;
        const float l = scaled(raw, row.inv_t);
        const float w = expf(l - row.max);
        if (min_p_filter && !(w >= min_p)) return 0;
        const std::uint32_t key = order_key(l);
        if (!in_top_k(id, key)) return 0;
        if (use_p && !(key > p_key || (key == p_key && id < p_end))) return 0;
        return fixed_weight(w);
      },
      [&](u64 total) -> u64 { return (__umul64hi(m, total) << 40) | ((m * total) >> 24); }, sh);
  if (threadIdx.x == 0) p.out[blockIdx.x] = token == kNone ? 0 : static_cast<std::int32_t>(token);
}

}  // namespace

std::size_t sampling_workspace_bytes(std::uint32_t, std::uint32_t) { return 0; }

cudaError_t launch_sampling(const SamplingParams& p, cudaStream_t stream) {
  if (p.logits == nullptr || p.rows == nullptr || p.out == nullptr || p.vocab == 0 || p.vocab > kMaxVocab ||
      p.logits_stride < p.vocab || p.num_rows > static_cast<std::uint32_t>(INT32_MAX)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_rows == 0) return cudaSuccess;
  // Scalar loads only: the 16-byte-load variant (sampling_kernel<4>) missed part of the row in its argmax on
  // the H200 for vocabularies needing several passes per thread (SamplingKernel.GreedyMatchesExactly), while
  // the scalar variant matched the host on every row. Coalesced 4-byte loads cost little here: the kernel
  // is one launch per step over num_rows x vocab floats.
  return launch_pdl(sampling_kernel<1>, p.num_rows, kThreads, 0, stream, p);
}

}  // namespace sluice::cuda
