// The cuBLASLt wrapper against its host reference over the shapes the engine uses (m = tokens 1..300,
// n/k = model dimensions 64..4096, including ones that are not multiples of 8 elements), with and without
// bias, bf16 and fp32 output, overwrite and accumulate.
//
// Tolerance (DESIGN.md's relative error, max|a − b| / max|b|, per output row):
//   bf16 output ≤ 1e-2: both sides multiply the same bf16 inputs exactly and accumulate in fp32, but in a
//     different order (tensor-core tiles, maybe split-K), so the fp32 sums differ by a few ulps; rounding to
//     bf16 (8 bits of mantissa, ulp 2^-8 relative) then turns that into at most one bf16 ulp of the element,
//     ≤ 0.4% of the row's largest value.
//   fp32 output ≤ 1e-3: only the summation order differs; for k ≤ 4096 products of magnitude ≤ 1 the
//     worst-case fp32 drift is ~k·2^-24·max|term| ≈ 2.4e-4 of the terms, below 1e-3 of the row maximum.
#include "kernels/cuda/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda {
namespace {

using test::DeviceBuffer;

struct Case {
  std::uint32_t m, n, k;
  bool bias, out_fp32, accumulate;
  std::uint32_t lda_pad = 0;  // extra elements per row of A (a strided view, like a slice of a wider buffer)
};

// Rows compared against the reference: all of them for small outputs, else a spread (the reference is slow).
std::vector<std::uint32_t> rows_to_check(std::uint32_t m, std::uint32_t n, std::uint32_t k) {
  std::vector<std::uint32_t> rows;
  if (std::uint64_t{m} * n * k <= (std::uint64_t{1} << 27)) {
    for (std::uint32_t r = 0; r < m; ++r) rows.push_back(r);
    return rows;
  }
  for (std::uint32_t r : {0u, 1u, m / 3, m / 2, m - 2, m - 1})
    if (r < m && std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
  return rows;
}

// Inputs of one (n, k) pair, shared by every m and variant: rows of A beyond m are simply not read.
struct Inputs {
  std::uint32_t max_m, n, k, lda;
  std::vector<__nv_bfloat16> a, w, bias;
  std::vector<float> d0;  // the accumulate cases' starting D
  DeviceBuffer<__nv_bfloat16> a_dev, w_dev, bias_dev;

  Inputs(std::uint32_t max_m_in, std::uint32_t n_in, std::uint32_t k_in, std::uint32_t lda_pad, std::mt19937_64& rng)
      : max_m(max_m_in),
        n(n_in),
        k(k_in),
        lda(k_in + lda_pad),
        a(test::to_bf16(test::random_floats(std::size_t{max_m_in} * (k_in + lda_pad), rng))),
        w(test::to_bf16(test::random_floats(std::size_t{n_in} * k_in, rng))),
        bias(test::to_bf16(test::random_floats(n_in, rng))),
        d0(test::random_floats(std::size_t{max_m_in} * n_in, rng)),
        a_dev(a),
        w_dev(w),
        bias_dev(bias) {}
};

void run_case(Gemm& gemm, const Inputs& in, const Case& c) {
  SCOPED_TRACE(testing::Message() << "m " << c.m << " n " << c.n << " k " << c.k << " bias " << c.bias << " fp32 "
                                  << c.out_fp32 << " accumulate " << c.accumulate << " lda " << in.lda);
  ASSERT_TRUE(in.a_dev.ptr != nullptr && in.w_dev.ptr != nullptr && in.bias_dev.ptr != nullptr);
  ASSERT_LE(c.m, in.max_m);
  const std::size_t d_elems = std::size_t{c.m} * c.n;
  const std::vector<float> d0(in.d0.begin(), in.d0.begin() + static_cast<std::ptrdiff_t>(d_elems));
  const std::vector<__nv_bfloat16> d0_bf16 = test::to_bf16(d0);

  GemmArgs args;
  args.a = in.a_dev.ptr;
  args.w = in.w_dev.ptr;
  args.bias = c.bias ? in.bias_dev.ptr : nullptr;
  args.m = c.m;
  args.n = c.n;
  args.k = c.k;
  args.lda = in.lda;
  args.out_fp32 = c.out_fp32;
  args.accumulate = c.accumulate;

  std::vector<float> got;
  if (c.out_fp32) {
    DeviceBuffer<float> d(d0);
    ASSERT_NE(d.ptr, nullptr);
    args.d = d.ptr;
    ASSERT_EQ(gemm.run(args, nullptr), cudaSuccess) << gemm.last_error();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    got = d.download();
  } else {
    DeviceBuffer<__nv_bfloat16> d(d0_bf16);
    ASSERT_NE(d.ptr, nullptr);
    args.d = d.ptr;
    ASSERT_EQ(gemm.run(args, nullptr), cudaSuccess) << gemm.last_error();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    got = test::to_float(d.download());
  }

  const double tolerance = c.out_fp32 ? 1e-3 : 1e-2;
  std::vector<float> want_row(c.n);
  for (std::uint32_t r : rows_to_check(c.m, c.n, c.k)) {
    GemmArgs ref = args;
    ref.m = 1;
    ref.a = in.a.data() + std::size_t{r} * in.lda;
    ref.w = in.w.data();
    ref.bias = c.bias ? in.bias.data() : nullptr;
    if (c.out_fp32) {
      std::copy(d0.begin() + std::size_t{r} * c.n, d0.begin() + std::size_t{r + 1} * c.n, want_row.begin());
      ref.d = want_row.data();
      gemm_reference(ref);
    } else {
      std::vector<__nv_bfloat16> row(d0_bf16.begin() + std::size_t{r} * c.n,
                                     d0_bf16.begin() + std::size_t{r + 1} * c.n);
      ref.d = row.data();
      gemm_reference(ref);
      want_row = test::to_float(row);
    }
    const double err = test::relative_error(got.data() + std::size_t{r} * c.n, want_row.data(), c.n);
    ASSERT_LE(err, tolerance) << "row " << r;
  }
}

TEST(Gemm, MatchesReferenceOverShapes) {
  SLUICE_REQUIRE_GPU();
  std::string error;
  auto gemm = Gemm::create(std::size_t{32} << 20, &error);
  ASSERT_NE(gemm, nullptr) << error;
  std::mt19937_64 rng(test::test_seed());
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());

  // (n, k) pairs: projections of small and 8B-class models, plus dimensions that are not multiples of 8.
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> nk = {
      {64, 64}, {576, 576}, {1536, 576}, {576, 1536}, {4096, 128}, {128, 4096}, {100, 72}, {200, 100}, {4096, 4096}};
  const std::vector<std::uint32_t> ms = {1, 2, 3, 8, 17, 64, 129, 256, 300};
  for (auto [n, k] : nk) {
    const Inputs in(ms.back(), n, k, 0, rng);
    for (std::uint32_t m : ms) {
      for (int variant = 0; variant < 4; ++variant) {
        run_case(*gemm, in, Case{m, n, k, (variant & 1) != 0, (variant & 2) != 0, false});
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(Gemm, AccumulatesAndReadsStridedRows) {
  SLUICE_REQUIRE_GPU();
  std::string error;
  auto gemm = Gemm::create(std::size_t{32} << 20, &error);
  ASSERT_NE(gemm, nullptr) << error;
  std::mt19937_64 rng(test::test_seed() + 1);
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());
  const std::vector<Case> cases = {{1, 576, 576, false, false, true},      {7, 576, 1536, true, false, true},
                                   {64, 1024, 512, false, true, true},     {300, 256, 256, true, true, true},
                                   {5, 320, 192, false, false, false, 64}, {33, 448, 576, true, false, true, 8},
                                   {1, 4096, 4096, false, false, true},    {129, 64, 4096, true, true, false, 16}};
  for (const Case& c : cases) {
    const Inputs in(c.m, c.n, c.k, c.lda_pad, rng);
    run_case(*gemm, in, c);
    if (HasFatalFailure()) return;
  }
}

TEST(Gemm, RejectsInvalidArguments) {
  SLUICE_REQUIRE_GPU();
  std::string error;
  auto gemm = Gemm::create(std::size_t{1} << 20, &error);
  ASSERT_NE(gemm, nullptr) << error;
  DeviceBuffer<__nv_bfloat16> buf(64 * 64);
  GemmArgs args;
  args.a = buf.ptr;
  args.w = buf.ptr;
  args.d = buf.ptr;
  args.m = 0;
  args.n = 64;
  args.k = 64;
  EXPECT_EQ(gemm->run(args, nullptr), cudaErrorInvalidValue);
  EXPECT_FALSE(gemm->last_error().empty());
  args.m = 1;
  args.lda = 32;  // shorter than k
  EXPECT_EQ(gemm->run(args, nullptr), cudaErrorInvalidValue);
  args.lda = 0;
  args.a = nullptr;
  EXPECT_EQ(gemm->run(args, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace sluice::cuda
