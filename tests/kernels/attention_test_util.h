// Helpers of the paged attention tests: one layer's KV pages filled with random bf16 values, block tables
// that scatter each sequence over random blocks, and per-(row, head) comparison against the reference.
#pragma once

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"
#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda::test {

struct HeadShape {
  std::uint32_t n_heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t block_size = 0;
};

inline std::string describe(const HeadShape& s) {
  return "n_heads=" + std::to_string(s.n_heads) + " kv_heads=" + std::to_string(s.kv_heads) +
         " head_dim=" + std::to_string(s.head_dim) + " block_size=" + std::to_string(s.block_size);
}

// The head shapes the sweeps cover: GQA ratios 1, 2, 3, 4, 6, 8 and 16 (the last splits a group over two
// CTAs in decode), both head sizes, both block sizes.
inline std::vector<HeadShape> sweep_shapes() {
  return {{8, 8, 64, 16},  {32, 8, 128, 16}, {9, 3, 64, 32},  {16, 2, 128, 32}, {32, 8, 64, 32},
          {8, 8, 128, 32}, {16, 1, 128, 16}, {12, 2, 64, 16}, {4, 2, 128, 16}};
}

// One layer's K and V pages ([num_blocks][kv_heads][block_size][head_dim]) on the host, and the block tables
// of a set of sequences. Each sequence's blocks are distinct and drawn at random from the whole cache;
// different sequences may share blocks (the kernels only read them).
struct PagedKv {
  HeadShape shape;
  std::uint32_t num_blocks = 0;
  std::vector<__nv_bfloat16> k;
  std::vector<__nv_bfloat16> v;
  std::vector<std::int32_t> tables;        // concatenated
  std::vector<std::int32_t> table_offset;  // per sequence
};

// `capacity[s]`: how many positions sequence s must be able to hold.
inline PagedKv make_paged_kv(const HeadShape& shape, const std::vector<std::uint32_t>& capacity, std::mt19937_64& rng) {
  PagedKv kv;
  kv.shape = shape;
  std::uint32_t most = 1;
  for (const std::uint32_t c : capacity) most = std::max(most, (c + shape.block_size - 1) / shape.block_size);
  kv.num_blocks = most + 13;  // spare blocks so a table is a scattered subset, never the identity
  std::vector<std::int32_t> pool(kv.num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  for (const std::uint32_t c : capacity) {
    const std::uint32_t blocks = (c + shape.block_size - 1) / shape.block_size;
    std::shuffle(pool.begin(), pool.end(), rng);
    kv.table_offset.push_back(static_cast<std::int32_t>(kv.tables.size()));
    kv.tables.insert(kv.tables.end(), pool.begin(), pool.begin() + blocks);
  }
  const std::size_t elements = std::size_t{kv.num_blocks} * shape.kv_heads * shape.block_size * shape.head_dim;
  kv.k = to_bf16(random_floats(elements, rng));
  kv.v = to_bf16(random_floats(elements, rng));
  return kv;
}

// Queries with logits q·k / sqrt(head_dim) of standard deviation about 1.7 against keys in [-1, 1]: softmaxes
// that are clearly not uniform, yet spread over many positions.
inline std::vector<__nv_bfloat16> random_queries(std::size_t n, std::mt19937_64& rng) {
  return to_bf16(random_floats(n, rng, -5.0f, 5.0f));
}

// The bar of DESIGN.md for bf16 outputs, applied to every (row, head) output vector on its own.
inline constexpr double kBf16Tolerance = 1e-2;

// Checks rows `rows` of got against want, head by head; rows listed in `untouched` must still hold `sentinel`
// in got. Returns the worst relative error seen.
inline double expect_rows_match(const std::vector<__nv_bfloat16>& got, const std::vector<__nv_bfloat16>& want,
                                const std::vector<std::int32_t>& rows, const std::vector<std::int32_t>& untouched,
                                std::size_t stride, const HeadShape& shape, __nv_bfloat16 sentinel) {
  double worst = 0.0;
  const std::size_t D = shape.head_dim;
  std::vector<float> a(D), b(D);
  for (const std::int32_t r : rows) {
    for (std::uint32_t h = 0; h < shape.n_heads; ++h) {
      bool finite = true;
      for (std::size_t d = 0; d < D; ++d) {
        a[d] = __bfloat162float(got[r * stride + h * D + d]);
        b[d] = __bfloat162float(want[r * stride + h * D + d]);
        finite = finite && std::isfinite(a[d]);
      }
      // relative_error's max() would skip a NaN, so non-finite outputs are caught here.
      if (!finite) {
        ADD_FAILURE() << "row " << r << " head " << h << ": non-finite output";
        return 1.0;
      }
      const double err = relative_error(a.data(), b.data(), D);
      worst = std::max(worst, err);
      if (!(err <= kBf16Tolerance)) {
        ADD_FAILURE() << "row " << r << " head " << h << ": relative error " << err << " > " << kBf16Tolerance
                      << " (first element got " << a[0] << ", want " << b[0] << ")";
        return worst;
      }
    }
  }
  const float s = __bfloat162float(sentinel);
  for (const std::int32_t r : untouched) {
    for (std::size_t e = 0; e < shape.n_heads * D; ++e) {
      if (__bfloat162float(got[r * stride + e]) != s) {
        ADD_FAILURE() << "row " << r << " was not listed but element " << e << " changed";
        return worst;
      }
    }
  }
  return worst;
}

}  // namespace sluice::cuda::test
