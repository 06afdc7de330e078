// CPU reference of the device sampler (sampling.h, sampling.cu). It computes the same function as the kernel
// — the host sampler's step 4 with fixed-point weights W = trunc(exp(l - max) * 2^43) and integer prefix sums —
// but the obvious way: sort the row (higher value first, lower id first among equals), cut the top_k and
// top_p prefixes by walking it, filter by min_p, and walk the survivors in id order for the draw. Only the
// exp differs from the device's (a few ulp), so the two agree on almost every row.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "engine/sampling/philox.h"
#include "kernels/cuda/sampling.h"

namespace sluice::cuda {
namespace {

using u64 = unsigned long long;

constexpr float kGreedyBelow = 1e-5f;
constexpr double kFixedOne = 8796093022208.0;  // 2^43

float sanitize_and_scale(float raw, float inv_t) {
  const float l = raw == raw ? std::min(raw, FLT_MAX) : -INFINITY;
  return std::min(l * inv_t, FLT_MAX);
}

u64 fixed_weight(float w) { return static_cast<u64>(static_cast<double>(w) * kFixedOne); }

// Lowest id of the largest value.
std::int32_t first_max(const std::vector<float>& l) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < l.size(); ++i) {
    if (l[i] > l[best]) best = i;
  }
  return static_cast<std::int32_t>(best);
}

std::int32_t sample_one(const float* logits, std::uint32_t vocab, const RowSampling& rs) {
  const bool greedy = !(rs.temperature >= kGreedyBelow);
  const float inv_t = greedy ? 1.0f : 1.0f / rs.temperature;
  std::vector<float> l(vocab);
  for (std::uint32_t i = 0; i < vocab; ++i) l[i] = sanitize_and_scale(logits[i], inv_t);
  const std::int32_t best = first_max(l);
  const float max = l[static_cast<std::size_t>(best)];
  if (greedy) return best;
  if (max == -INFINITY) return 0;
  const bool use_k = rs.top_k > 0 && static_cast<std::uint32_t>(rs.top_k) < vocab;
  const bool use_p = rs.top_p < 1.0f;
  const bool truncate = use_k || use_p;
  if (truncate && rs.min_p > 1.0f) return best;

  std::vector<float> w(vocab);
  std::vector<u64> weight(vocab);
  for (std::uint32_t i = 0; i < vocab; ++i) {
    w[i] = std::exp(l[i] - max);
    weight[i] = fixed_weight(w[i]);
  }
  std::vector<char> keep(vocab, 1);
  if (truncate) {
    // -0 and +0 compare equal, so the order below treats them as one value, like the device's keys.
    std::vector<std::int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    const auto descending = [&](std::int32_t a, std::int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
    std::size_t n = vocab;
    if (use_k) {
      n = static_cast<std::size_t>(rs.top_k);
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(), descending);
    } else {
      std::sort(order.begin(), order.end(), descending);
    }
    if (use_p) {
      u64 total = 0;
      for (std::size_t j = 0; j < n; ++j) total += weight[static_cast<std::size_t>(order[j])];
      const double target = std::max(static_cast<double>(rs.top_p) * static_cast<double>(total), 1.0);
      u64 cum = 0;
      std::size_t count = 0;
      while (count < n) {
        cum += weight[static_cast<std::size_t>(order[count])];
        ++count;
        if (static_cast<double>(cum) >= target) break;
      }
      n = count;
    }
    std::fill(keep.begin(), keep.end(), 0);
    for (std::size_t j = 0; j < n; ++j) keep[static_cast<std::size_t>(order[j])] = 1;
  }
  const bool min_p_filter = !truncate || rs.min_p > 0.0f;
  u64 total = 0;
  for (std::uint32_t i = 0; i < vocab; ++i) {
    if (keep[i] && min_p_filter && !(w[i] >= rs.min_p)) keep[i] = 0;
    if (keep[i]) total += weight[i];
  }
  if (total == 0) return 0;
  const u64 m = philox::bits(rs.seed, rs.token_index, 0) >> 8;
  const u64 goal = static_cast<u64>((static_cast<unsigned __int128>(m) * total) >> 24);
  u64 acc = 0;
  for (std::uint32_t i = 0; i < vocab; ++i) {
    if (!keep[i]) continue;
    acc += weight[i];
    if (acc > goal) return static_cast<std::int32_t>(i);
  }
  return 0;  // unreachable: goal < total
}

}  // namespace

void sampling_reference(const SamplingParams& p) {
  for (std::uint32_t r = 0; r < p.num_rows; ++r) {
    p.out[r] = sample_one(p.logits + static_cast<std::size_t>(r) * p.logits_stride, p.vocab, p.rows[r]);
  }
}

}  // namespace sluice::cuda
