// rmsnorm_rows, rope_rows, softmax_inplace and silu_mul against naive double-precision references, and the
// RoPE identity the GGUF path relies on.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace sluice::kernels {
namespace {

using test::random_floats;
using test::rel_error;

TEST(RmsNorm, MatchesReferenceForManyWidths) {
  std::mt19937 rng(10);
  for (std::uint32_t dim : {1u, 7u, 8u, 64u, 576u, 1001u}) {
    const std::uint32_t rows = 5;
    const auto x = random_floats(rng, std::size_t{rows} * (dim + 1), 2.0f);
    const auto w = random_floats(rng, dim);
    std::vector<float> y(std::size_t{rows} * dim);
    rmsnorm_rows({x.data(), dim + 1, y.data(), dim, w.data(), dim, 1e-5f}, 0, rows);
    std::vector<float> want(y.size());
    for (std::uint32_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (std::uint32_t c = 0; c < dim; ++c) ss += double(x[r * (dim + 1) + c]) * x[r * (dim + 1) + c];
      const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
      for (std::uint32_t c = 0; c < dim; ++c) want[r * dim + c] = static_cast<float>(w[c] * x[r * (dim + 1) + c] * inv);
    }
    EXPECT_LE(rel_error(y, want), 1e-5) << "dim " << dim;
  }
}

TEST(RmsNorm, InPlaceEqualsOutOfPlace) {
  std::mt19937 rng(11);
  auto x = random_floats(rng, 3 * 96);
  const auto w = random_floats(rng, 96);
  std::vector<float> y(x.size());
  rmsnorm_rows({x.data(), 96, y.data(), 96, w.data(), 96, 1e-6f}, 0, 3);
  rmsnorm_rows({x.data(), 96, x.data(), 96, w.data(), 96, 1e-6f}, 0, 3);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
}

std::vector<float> inv_freq(std::uint32_t head_dim, float theta) {
  std::vector<float> f(head_dim / 2);
  for (std::uint32_t i = 0; i < head_dim / 2; ++i) f[i] = 1.0f / std::pow(theta, 2.0f * i / head_dim);
  return f;
}

TEST(Rope, BothLayoutsMatchReference) {
  std::mt19937 rng(12);
  const std::uint32_t heads = 3, hd = 16, rows = 4;
  const auto freq = inv_freq(hd, 10000.0f);
  const std::int32_t pos[rows] = {0, 1, 17, 4095};
  for (RopeLayout layout : {RopeLayout::half, RopeLayout::interleaved}) {
    auto x = random_floats(rng, rows * heads * hd);
    const auto orig = x;
    std::vector<float> scratch(hd);
    rope_rows({x.data(), heads * hd, heads, hd, pos, freq.data(), layout}, 0, rows, scratch.data());
    std::vector<float> want(x.size());
    for (std::uint32_t t = 0; t < rows; ++t) {
      for (std::uint32_t h = 0; h < heads; ++h) {
        const float* v = orig.data() + (t * heads + h) * hd;
        float* o = want.data() + (t * heads + h) * hd;
        for (std::uint32_t i = 0; i < hd / 2; ++i) {
          const double a = double(float(pos[t]) * freq[i]);
          const std::uint32_t i0 = layout == RopeLayout::half ? i : 2 * i;
          const std::uint32_t i1 = layout == RopeLayout::half ? i + hd / 2 : 2 * i + 1;
          o[i0] = static_cast<float>(v[i0] * std::cos(a) - v[i1] * std::sin(a));
          o[i1] = static_cast<float>(v[i1] * std::cos(a) + v[i0] * std::sin(a));
        }
      }
    }
    EXPECT_LE(rel_error(x, want), 1e-5);
  }
}

// GGUF converters reorder each head's rows of attn_q / attn_k: row 2i + j of the file is row j * d/2 + i of
// the original. Interleaved RoPE on the reordered vector must equal the reordered rotate-half result — the
// reason the engine can run GGUF weights as they are with interleaved pairs.
TEST(Rope, InterleavedOnConverterPermutedRowsEqualsRotateHalf) {
  std::mt19937 rng(13);
  const std::uint32_t heads = 2, hd = 64;
  const auto freq = inv_freq(hd, 100000.0f);
  const std::int32_t pos[1] = {123};
  const auto orig = random_floats(rng, heads * hd);
  std::vector<float> permuted(orig.size());
  for (std::uint32_t h = 0; h < heads; ++h) {
    for (std::uint32_t i = 0; i < hd / 2; ++i) {
      for (std::uint32_t j = 0; j < 2; ++j) permuted[h * hd + 2 * i + j] = orig[h * hd + j * hd / 2 + i];
    }
  }
  std::vector<float> half = orig, inter = permuted, scratch(hd);
  rope_rows({half.data(), heads * hd, heads, hd, pos, freq.data(), RopeLayout::half}, 0, 1, scratch.data());
  rope_rows({inter.data(), heads * hd, heads, hd, pos, freq.data(), RopeLayout::interleaved}, 0, 1, scratch.data());
  for (std::uint32_t h = 0; h < heads; ++h) {
    for (std::uint32_t i = 0; i < hd / 2; ++i) {
      for (std::uint32_t j = 0; j < 2; ++j) {
        EXPECT_EQ(inter[h * hd + 2 * i + j], half[h * hd + j * hd / 2 + i]);
      }
    }
  }
}

TEST(Softmax, MatchesReferenceAndHandlesEdges) {
  std::mt19937 rng(14);
  for (std::size_t n : {1u, 5u, 300u}) {
    auto x = random_floats(rng, n, 4.0f);
    std::vector<float> want(n);
    double m = -1e300, sum = 0;
    for (float v : x) m = std::max<double>(m, v);
    for (std::size_t i = 0; i < n; ++i) sum += std::exp(x[i] - m);
    for (std::size_t i = 0; i < n; ++i) want[i] = static_cast<float>(std::exp(x[i] - m) / sum);
    softmax_inplace(x.data(), n);
    EXPECT_LE(rel_error(x, want), 1e-5);
  }
  std::vector<float> masked(4, -std::numeric_limits<float>::infinity());
  softmax_inplace(masked.data(), masked.size());
  for (float v : masked) EXPECT_EQ(v, 0.0f);
  std::vector<float> big = {1000.0f, 1000.0f};
  softmax_inplace(big.data(), 2);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
}

TEST(SiluMul, MatchesReference) {
  std::mt19937 rng(15);
  const auto g = random_floats(rng, 257, 5.0f), u = random_floats(rng, 257);
  std::vector<float> out(257), want(257);
  silu_mul(g.data(), u.data(), out.data(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    want[i] = static_cast<float>(g[i] / (1.0 + std::exp(-double(g[i]))) * u[i]);
  EXPECT_LE(rel_error(out, want), 1e-6);
  std::vector<float> inplace = g;
  silu_mul(inplace.data(), u.data(), inplace.data(), inplace.size());
  EXPECT_EQ(0, std::memcmp(inplace.data(), out.data(), out.size() * sizeof(float)));
}

}  // namespace
}  // namespace sluice::kernels
