// paged_attention_rows against dense attention in double precision over the same keys and values gathered
// from shuffled pages: GQA, head sizes with and without an 8-wide tail, sliding windows, both ISA paths.
#include "kernels/cpu/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/cpu/isa.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace sluice::kernels {
namespace {

using test::random_floats;
using test::rel_error;

struct Shape {
  std::uint32_t heads, kv_heads, head_dim, block_size, window;
};

void run_case(const Shape& s, std::mt19937& rng) {
  const std::uint32_t num_blocks = 40;
  const std::size_t block_elems = std::size_t{s.kv_heads} * s.block_size * s.head_dim;
  const auto k_cache = random_floats(rng, block_elems * num_blocks);
  const auto v_cache = random_floats(rng, block_elems * num_blocks);
  // Two sequences with shuffled page tables; tokens: a prefill chunk of seq 0, a decode token of seq 1.
  std::vector<std::int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<std::int32_t> table(blocks.begin(), blocks.begin() + 30);  // seq 0: 0..14, seq 1: 15..29
  const std::uint32_t seq_off[2] = {0, 15};
  std::vector<std::int32_t> positions = {3, 4, 5, 6, 40, 0, 100, 101};
  std::vector<std::uint32_t> seq_of = {0, 0, 0, 0, 0, 1, 1, 1};
  const std::uint32_t n = static_cast<std::uint32_t>(positions.size());
  std::vector<std::uint32_t> table_offset(n);
  for (std::uint32_t t = 0; t < n; ++t) table_offset[t] = seq_off[seq_of[t]];
  const std::size_t qs = std::size_t{s.heads} * s.head_dim + 5;
  const auto q = random_floats(rng, qs * n);
  std::vector<float> out(qs * n, 7.0f);

  PagedAttentionParams p;
  p.q = q.data();
  p.q_stride = qs;
  p.out = out.data();
  p.out_stride = qs;
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.n_heads = s.heads;
  p.kv_heads = s.kv_heads;
  p.head_dim = s.head_dim;
  p.block_size = s.block_size;
  p.positions = positions.data();
  p.block_table = table.data();
  p.block_table_offset = table_offset.data();
  p.sliding_window = s.window;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  std::vector<float> scratch(256);
  paged_attention_rows(p, 0, 5, scratch.data());  // split items unevenly, as a pool would
  paged_attention_rows(p, 5, n * s.heads, scratch.data());

  std::vector<float> got, want;
  for (std::uint32_t t = 0; t < n; ++t) {
    for (std::uint32_t h = 0; h < s.heads; ++h) {
      const std::uint32_t g = h / (s.heads / s.kv_heads);
      const std::int32_t pos = positions[t];
      const std::int32_t lo =
          s.window == 0 ? 0 : std::max<std::int32_t>(0, pos - static_cast<std::int32_t>(s.window) + 1);
      std::vector<double> scores;
      const auto at = [&](const std::vector<float>& cache, std::int32_t j) {
        const std::int32_t b = table[seq_off[seq_of[t]] + j / s.block_size];
        return cache.data() + b * block_elems + (std::size_t{g} * s.block_size + j % s.block_size) * s.head_dim;
      };
      for (std::int32_t j = lo; j <= pos; ++j) {
        double d = 0;
        for (std::uint32_t c = 0; c < s.head_dim; ++c) d += double(q[t * qs + h * s.head_dim + c]) * at(k_cache, j)[c];
        scores.push_back(d * p.scale);
      }
      const double m = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (double& x : scores) sum += (x = std::exp(x - m));
      for (std::uint32_t c = 0; c < s.head_dim; ++c) {
        double o = 0;
        for (std::int32_t j = lo; j <= pos; ++j) o += scores[j - lo] / sum * at(v_cache, j)[c];
        want.push_back(static_cast<float>(o));
        got.push_back(out[t * qs + h * s.head_dim + c]);
      }
    }
    for (std::size_t c = std::size_t{s.heads} * s.head_dim; c < qs; ++c) EXPECT_EQ(out[t * qs + c], 7.0f);
  }
  EXPECT_LE(rel_error(got, want), 1e-5) << "heads " << s.heads << "/" << s.kv_heads << " dim " << s.head_dim
                                        << " block " << s.block_size << " window " << s.window;
}

TEST(PagedAttention, MatchesDenseReference) {
  std::mt19937 rng(20);
  const Isa saved = active_isa();
  for (Isa isa : {Isa::scalar, Isa::avx2}) {
    if (!select_isa(isa)) continue;
    for (const Shape& s : {Shape{6, 2, 64, 16, 0}, Shape{3, 1, 12, 8, 0}, Shape{4, 4, 16, 16, 0}, Shape{6, 3, 24, 7, 5},
                           Shape{2, 1, 8, 16, 1}}) {
      run_case(s, rng);
    }
  }
  select_isa(saved);
}

}  // namespace
}  // namespace sluice::kernels
