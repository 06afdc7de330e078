// The small-m GEMM kernel (gemv.h) against gemm_reference: m = 1..8 over the projection shapes of the 8B,
// 1B and 135M models (LM heads included) and small ragged ones, with and without bias, bf16 and fp32 output,
// strided A and D, accumulate, every rows-per-warp / stages instantiation, CUDA-graph capture, and the
// arguments it must refuse. Inputs are fresh random values each run (SLUICE_TEST_SEED replays one).
//
// Tolerance as gemm_test.cpp states it (DESIGN.md's relative error per output row): bf16 output ≤ 1e-2, fp32
// output ≤ 1e-3. The kernel accumulates the same exact bf16 products in fp32 in another order (per lane along
// k, then a butterfly over 32 lanes); for k = 14336 the worst-case fp32 drift is ~k·2^-24 ≈ 8.5e-4 of the sum
// of |terms|, and random signs keep the actual error orders of magnitude below that.
//
// GemvSpeed.* only measures (skipped unless SLUICE_GEMV_BENCH=1): time and bandwidth of the kernel per shape
// and launch configuration next to cuBLASLt, printed as a table.
#include "kernels/cuda/gemv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda {
namespace {

using test::DeviceBuffer;

// Output features compared for one (n, k): all of them while the reference stays cheap, else contiguous
// blocks at the start and the end (where ragged tails live) and one in the middle. Each block is [begin, end).
std::vector<std::pair<std::uint32_t, std::uint32_t>> feature_blocks(std::uint32_t n, std::uint32_t k) {
  const std::uint64_t budget = std::uint64_t{1} << 23;  // weight elements the reference reads per variant
  if (std::uint64_t{n} * k <= budget) return {{0, n}};
  const auto block = static_cast<std::uint32_t>(std::max<std::uint64_t>(64, budget / k / 3));
  return {{0, block}, {n / 2 - block / 2, n / 2 + block / 2 + 1}, {n - block, n}};
}

struct Shape {
  std::uint32_t n, k;
};

// Host and device copies of one problem: A with up to kGemvMaxRows rows of stride lda, W, bias.
struct Problem {
  std::uint32_t n, k, lda;
  std::vector<__nv_bfloat16> a, w, bias;
  DeviceBuffer<__nv_bfloat16> a_dev, w_dev, bias_dev;

  Problem(Shape s, std::uint32_t lda_pad, std::mt19937_64& rng)
      : n(s.n),
        k(s.k),
        lda(s.k + lda_pad),
        a(test::to_bf16(test::random_floats(std::size_t{kGemvMaxRows} * (s.k + lda_pad), rng))),
        w(test::to_bf16(test::random_floats(std::size_t{s.n} * s.k, rng))),
        bias(test::to_bf16(test::random_floats(s.n, rng))),
        a_dev(a),
        w_dev(w),
        bias_dev(bias) {}

  bool ok() const { return a_dev.ptr != nullptr && w_dev.ptr != nullptr && bias_dev.ptr != nullptr; }
};

// The reference for all kGemvMaxRows rows of A over the features [begin, end): row i of the result is what any
// m > i produces for row i. ldd = the block's width. `d0` (per row over [begin, end), or empty) is the
// accumulate starting value.
std::vector<float> reference_block(const Problem& pb, std::uint32_t begin, std::uint32_t end, bool bias,
                                   bool out_fp32, const std::vector<float>& d0 = {}) {
  const std::uint32_t width = end - begin;
  GemmArgs ref;
  ref.a = pb.a.data();
  ref.w = pb.w.data() + std::size_t{begin} * pb.k;
  ref.bias = bias ? pb.bias.data() + begin : nullptr;
  ref.m = kGemvMaxRows;
  ref.n = width;
  ref.k = pb.k;
  ref.lda = pb.lda;
  ref.ldd = width;
  ref.out_fp32 = out_fp32;
  ref.accumulate = !d0.empty();
  std::vector<float> out(std::size_t{kGemvMaxRows} * width, 0.0f);
  if (!d0.empty()) out = d0;
  if (out_fp32) {
    ref.d = out.data();
    gemm_reference(ref);
    return out;
  }
  std::vector<__nv_bfloat16> d = test::to_bf16(out);
  ref.d = d.data();
  gemm_reference(ref);
  return test::to_float(d);
}

// Runs launch_gemv for m rows into a D of row stride ldd (pre-filled with `fill`) and returns D as floats.
std::vector<float> run_gemv(const Problem& pb, std::uint32_t m, bool bias, bool out_fp32, std::uint32_t ldd,
                            const std::vector<float>& fill, bool accumulate, const GemvTuning& tuning,
                            cudaError_t& status) {
  GemmArgs args;
  args.a = pb.a_dev.ptr;
  args.w = pb.w_dev.ptr;
  args.bias = bias ? pb.bias_dev.ptr : nullptr;
  args.m = m;
  args.n = pb.n;
  args.k = pb.k;
  args.lda = pb.lda;
  args.ldd = ldd;
  args.out_fp32 = out_fp32;
  args.accumulate = accumulate;
  if (out_fp32) {
    DeviceBuffer<float> d(fill);
    if (d.ptr == nullptr) return (status = cudaErrorMemoryAllocation), std::vector<float>{};
    args.d = d.ptr;
    status = launch_gemv(args, nullptr, tuning);
    if (status == cudaSuccess) status = cudaDeviceSynchronize();
    return d.download();
  }
  DeviceBuffer<__nv_bfloat16> d(test::to_bf16(fill));
  if (d.ptr == nullptr) return (status = cudaErrorMemoryAllocation), std::vector<float>{};
  args.d = d.ptr;
  status = launch_gemv(args, nullptr, tuning);
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  return test::to_float(d.download());
}

// Compares rows 0..m-1 of `got` (row stride ldd, features [0, n)) with the reference blocks.
void expect_rows_match(const std::vector<float>& got, std::uint32_t m, std::uint32_t ldd,
                       const std::vector<std::pair<std::uint32_t, std::uint32_t>>& blocks,
                       const std::vector<std::vector<float>>& want, bool out_fp32) {
  const double tolerance = out_fp32 ? 1e-3 : 1e-2;
  for (std::uint32_t r = 0; r < m; ++r) {
    std::vector<float> g, w;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const auto [begin, end] = blocks[b];
      const std::uint32_t width = end - begin;
      g.insert(g.end(), got.begin() + std::size_t{r} * ldd + begin, got.begin() + std::size_t{r} * ldd + end);
      w.insert(w.end(), want[b].begin() + std::size_t{r} * width, want[b].begin() + std::size_t{r + 1} * width);
    }
    const double err = test::relative_error(g.data(), w.data(), g.size());
    ASSERT_LE(err, tolerance) << "row " << r << " of m " << m;
  }
}

// Every m = 1..8 for one shape, four variants (bias × output type), default launch configuration, dense D.
void check_shape(Shape s, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << "n " << s.n << " k " << s.k);
  const Problem pb(s, 0, rng);
  ASSERT_TRUE(pb.ok());
  const auto blocks = feature_blocks(s.n, s.k);
  for (int variant = 0; variant < 4; ++variant) {
    const bool bias = (variant & 1) != 0, out_fp32 = (variant & 2) != 0;
    SCOPED_TRACE(testing::Message() << "bias " << bias << " fp32 " << out_fp32);
    std::vector<std::vector<float>> want;
    for (auto [begin, end] : blocks) want.push_back(reference_block(pb, begin, end, bias, out_fp32));
    for (std::uint32_t m = 1; m <= kGemvMaxRows; ++m) {
      cudaError_t status = cudaSuccess;
      const std::vector<float> fill(std::size_t{m} * s.n, 0.0f);
      const std::vector<float> got = run_gemv(pb, m, bias, out_fp32, s.n, fill, false, {}, status);
      ASSERT_EQ(status, cudaSuccess) << error_text(status) << " (m " << m << ")";
      expect_rows_match(got, m, s.n, blocks, want, out_fp32);
      if (testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Gemv, MatchesReferenceOnModelShapes) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test::test_seed() + 10);
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());
  // Llama-3.1-8B (QKV, O, gate+up, down, LM head), Llama-3.2-1B, SmolLM2-135M.
  const std::vector<Shape> shapes = {{6144, 4096}, {4096, 4096},  {28672, 4096}, {4096, 14336}, {128256, 4096},
                                     {3072, 2048}, {2048, 2048},  {16384, 2048}, {2048, 8192},  {960, 576},
                                     {576, 576},   {3072, 576},   {576, 1536},   {49152, 576}};
  for (Shape s : shapes) {
    check_shape(s, rng);
    if (HasFatalFailure()) return;
  }
}

TEST(Gemv, MatchesReferenceOnSmallAndRaggedShapes) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test::test_seed() + 11);
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());
  // n not a multiple of the features per warp or of a block's warps; k shorter than one warp's chunks, or a
  // few chunks past a multiple of them.
  const std::vector<Shape> shapes = {{1, 8},     {3, 16},    {7, 24},     {33, 72},   {64, 64},  {100, 136},
                                     {129, 264}, {257, 520}, {1000, 1032}, {511, 4104}, {77, 2056}, {5, 8192}};
  for (Shape s : shapes) {
    check_shape(s, rng);
    if (HasFatalFailure()) return;
  }
}

TEST(Gemv, EveryLaunchConfigurationMatches) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test::test_seed() + 12);
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());
  const Problem pb({1003, 1160}, 0, rng);
  ASSERT_TRUE(pb.ok());
  const auto blocks = feature_blocks(pb.n, pb.k);
  for (bool out_fp32 : {false, true}) {
    std::vector<std::vector<float>> want;
    for (auto [begin, end] : blocks) want.push_back(reference_block(pb, begin, end, true, out_fp32));
    for (std::uint32_t rows : {1u, 2u, 4u})
      for (std::uint32_t stages : {3u, 5u})
        for (std::uint32_t per_sm : {1u, 4u, 16u})
          for (std::uint32_t m = 1; m <= kGemvMaxRows; ++m) {
            SCOPED_TRACE(testing::Message() << "rows/warp " << rows << " stages " << stages << " blocks/SM "
                                            << per_sm << " m " << m << " fp32 " << out_fp32);
            cudaError_t status = cudaSuccess;
            const std::vector<float> got = run_gemv(pb, m, true, out_fp32, pb.n, std::vector<float>(m * pb.n, 0.0f),
                                                    false, GemvTuning{rows, stages, per_sm}, status);
            ASSERT_EQ(status, cudaSuccess) << error_text(status);
            expect_rows_match(got, m, pb.n, blocks, want, out_fp32);
          }
  }
}

TEST(Gemv, StridedRowsAndAccumulate) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test::test_seed() + 13);
  SCOPED_TRACE(testing::Message() << "SLUICE_TEST_SEED=" << test::test_seed());
  struct Case {
    Shape s;
    std::uint32_t lda_pad, ldd_pad;
    bool bias, out_fp32, accumulate;
  };
  const std::vector<Case> cases = {{{576, 576}, 64, 3, false, false, true},   {{4096, 4096}, 8, 0, true, false, true},
                                   {{1537, 1536}, 24, 17, true, true, true},  {{960, 576}, 384, 5, true, false, false},
                                   {{4096, 14336}, 0, 11, false, true, false}, {{200, 72}, 8, 1, true, true, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "n " << c.s.n << " k " << c.s.k << " lda pad " << c.lda_pad << " ldd pad "
                                    << c.ldd_pad << " bias " << c.bias << " fp32 " << c.out_fp32 << " accumulate "
                                    << c.accumulate);
    const Problem pb(c.s, c.lda_pad, rng);
    ASSERT_TRUE(pb.ok());
    const std::uint32_t ldd = c.s.n + c.ldd_pad;
    // D starts random (the accumulate cases add to it); the padding of each row must come back untouched.
    std::vector<float> d0 = test::random_floats(std::size_t{kGemvMaxRows} * ldd, rng);
    if (!c.out_fp32) d0 = test::to_float(test::to_bf16(d0));
    const auto blocks = feature_blocks(c.s.n, c.s.k);
    for (std::uint32_t m : {1u, 2u, 5u, 8u}) {
      std::vector<std::vector<float>> want;
      for (auto [begin, end] : blocks) {
        std::vector<float> start;
        if (c.accumulate) {
          start.assign(std::size_t{kGemvMaxRows} * (end - begin), 0.0f);
          for (std::uint32_t r = 0; r < m; ++r)
            std::copy(d0.begin() + std::size_t{r} * ldd + begin, d0.begin() + std::size_t{r} * ldd + end,
                      start.begin() + std::size_t{r} * (end - begin));
        }
        want.push_back(reference_block(pb, begin, end, c.bias, c.out_fp32, start));
      }
      const std::vector<float> fill(d0.begin(), d0.begin() + static_cast<std::ptrdiff_t>(std::size_t{m} * ldd));
      cudaError_t status = cudaSuccess;
      const std::vector<float> got = run_gemv(pb, m, c.bias, c.out_fp32, ldd, fill, c.accumulate, {}, status);
      ASSERT_EQ(status, cudaSuccess) << error_text(status);
      expect_rows_match(got, m, ldd, blocks, want, c.out_fp32);
      for (std::uint32_t r = 0; r < m; ++r)
        for (std::uint32_t j = c.s.n; j < ldd; ++j)
          ASSERT_EQ(got[std::size_t{r} * ldd + j], fill[std::size_t{r} * ldd + j]) << "padding of row " << r;
    }
  }
}

TEST(Gemv, RefusesWhatItCannotLoad) {
  SLUICE_REQUIRE_GPU();
  DeviceBuffer<__nv_bfloat16> buf(64 * 64 + 16);
  ASSERT_NE(buf.ptr, nullptr);
  GemmArgs args;
  args.a = buf.ptr;
  args.w = buf.ptr;
  args.d = buf.ptr;
  args.m = 1;
  args.n = 64;
  args.k = 64;
  EXPECT_TRUE(gemv_supported(args));
  GemmArgs bad = args;
  bad.m = kGemvMaxRows + 1;
  EXPECT_FALSE(gemv_supported(bad));
  EXPECT_EQ(launch_gemv(bad, nullptr), cudaErrorInvalidValue);
  bad = args;
  bad.k = 60;  // not whole 16-byte vectors
  EXPECT_FALSE(gemv_supported(bad));
  bad = args;
  bad.lda = 68;  // rows of A not 16-byte aligned
  EXPECT_FALSE(gemv_supported(bad));
  bad = args;
  bad.a = buf.ptr + 1;
  EXPECT_FALSE(gemv_supported(bad));
  bad = args;
  bad.w = buf.ptr + 4;
  EXPECT_FALSE(gemv_supported(bad));
  bad = args;
  bad.m = 0;
  EXPECT_FALSE(gemv_supported(bad));
  EXPECT_EQ(launch_gemv(args, nullptr, GemvTuning{3, 0, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(launch_gemv(args, nullptr, GemvTuning{0, 4, 0}), cudaErrorInvalidValue);
  // Gemm::run still serves the shapes the kernel refuses (through cuBLASLt).
  std::string error;
  auto gemm = Gemm::create(std::size_t{1} << 20, &error);
  ASSERT_NE(gemm, nullptr) << error;
  DeviceBuffer<__nv_bfloat16> d(64);
  ASSERT_NE(d.ptr, nullptr);
  bad = args;
  bad.k = 60;
  bad.d = d.ptr;
  EXPECT_EQ(gemm->run(bad, nullptr), cudaSuccess) << gemm->last_error();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// Captured into a graph (as the engine does) through Gemm::run, then replayed after the inputs change: the
// replay must read the new inputs and match the reference. SLUICE_GEMV=1 makes Gemm::run use the kernel
// whatever its routing rule says about the shape.
TEST(Gemv, CapturedInAGraph) {
  SLUICE_REQUIRE_GPU();
  std::mt19937_64 rng(test::test_seed() + 14);
  std::string error;
  setenv("SLUICE_GEMV", "1", 1);
  auto gemm = Gemm::create(std::size_t{1} << 20, &error);
  unsetenv("SLUICE_GEMV");
  ASSERT_NE(gemm, nullptr) << error;
  const std::uint32_t m = 1, n = 2048, k = 2048;
  Problem pb({n, k}, 0, rng);
  ASSERT_TRUE(pb.ok());
  DeviceBuffer<float> d(std::size_t{m} * n);
  ASSERT_NE(d.ptr, nullptr);
  GemmArgs args;
  args.a = pb.a_dev.ptr;
  args.w = pb.w_dev.ptr;
  args.bias = pb.bias_dev.ptr;
  args.d = d.ptr;
  args.m = m;
  args.n = n;
  args.k = k;
  args.out_fp32 = true;
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const cudaError_t launched = gemm->run(args, stream);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(launched, cudaSuccess) << gemm->last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  // New activations, then replay.
  pb.a = test::to_bf16(test::random_floats(pb.a.size(), rng));
  ASSERT_EQ(cudaMemcpy(pb.a_dev.ptr, pb.a.data(), pb.a.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  const std::vector<float> got = d.download();
  const std::vector<float> want = reference_block(pb, 0, n, true, true);
  EXPECT_LE(test::relative_error(got.data(), want.data(), n), 1e-3);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// ---- measurement ----

struct Timer {
  cudaEvent_t start = nullptr, stop = nullptr;
  Timer() {
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

// Mean microseconds of one call of `launch(i)` over `reps` calls, after two unmeasured ones.
template <class F>
double time_us(F&& launch, int reps) {
  Timer t;
  launch(0);
  launch(1);
  cudaEventRecord(t.start);
  for (int i = 0; i < reps; ++i) launch(i + 2);
  cudaEventRecord(t.stop);
  cudaEventSynchronize(t.stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, t.start, t.stop);
  return 1000.0 * ms / reps;
}

TEST(GemvSpeed, AgainstCublasLt) {
  SLUICE_REQUIRE_GPU();
  if (const char* v = std::getenv("SLUICE_GEMV_BENCH"); v == nullptr || std::strcmp(v, "1") != 0)
    GTEST_SKIP() << "set SLUICE_GEMV_BENCH=1 to measure";
  // Weights are taken from a pool much larger than L2 (50 MiB), a different slice for every call, so each
  // call streams its weights from HBM as a decode step does.
  const std::size_t pool_elems = std::size_t{1} << 30;  // 2 GiB of bf16
  DeviceBuffer<__nv_bfloat16> pool(pool_elems);
  ASSERT_NE(pool.ptr, nullptr);
  ASSERT_EQ(cudaMemset(pool.ptr, 0x3c, pool_elems * sizeof(__nv_bfloat16)), cudaSuccess);
  DeviceBuffer<__nv_bfloat16> a(std::size_t{kGemvMaxRows} * 16384);
  DeviceBuffer<float> d(std::size_t{kGemvMaxRows} * 131072);
  ASSERT_TRUE(a.ptr != nullptr && d.ptr != nullptr);
  ASSERT_EQ(cudaMemset(a.ptr, 0x3c, a.n * sizeof(__nv_bfloat16)), cudaSuccess);

  // Copy bandwidth for scale: 1 GiB device to device, read + written bytes (bench/engine_gpu's convention)
  // and read bytes alone.
  {
    const std::size_t half = pool_elems / 2;
    const double us = time_us(
        [&](int) {
          cudaMemcpyAsync(pool.ptr + half, pool.ptr, half * sizeof(__nv_bfloat16), cudaMemcpyDeviceToDevice);
        },
        5);
    const double bytes = double(half) * sizeof(__nv_bfloat16);
    std::printf("copy 1 GiB: %.1f us, %.0f GB/s read+write, %.0f GB/s read\n", us, 2 * bytes / us / 1e3,
                bytes / us / 1e3);
  }

  std::string error;
  setenv("SLUICE_GEMV", "0", 1);
  auto cublas = Gemm::create(std::size_t{32} << 20, &error);
  unsetenv("SLUICE_GEMV");
  ASSERT_NE(cublas, nullptr) << error;
  auto routed = Gemm::create(std::size_t{32} << 20, &error);
  ASSERT_NE(routed, nullptr) << error;

  struct Named {
    const char* name;
    Shape s;
  };
  const std::vector<Named> shapes = {
      {"8b.qkv", {6144, 4096}},  {"8b.o", {4096, 4096}},      {"8b.gate_up", {28672, 4096}},
      {"8b.down", {4096, 14336}}, {"8b.lm_head", {128256, 4096}}, {"1b.qkv", {3072, 2048}},
      {"1b.o", {2048, 2048}},    {"1b.gate_up", {16384, 2048}}, {"1b.down", {2048, 8192}},
      {"135m.qkv", {960, 576}},  {"135m.o", {576, 576}},       {"135m.gate_up", {3072, 576}},
      {"135m.down", {576, 1536}}, {"135m.lm_head", {49152, 576}}};
  const std::vector<GemvTuning> tunings = [] {
    std::vector<GemvTuning> t;
    for (std::uint32_t rows : {1u, 2u, 4u})
      for (std::uint32_t stages : {3u, 5u})
        for (std::uint32_t per_sm : {2u, 4u, 8u}) t.push_back({rows, stages, per_sm});
    return t;
  }();

  // Per shape: microseconds of cuBLASLt, of the kernel with its default tuning, of Gemm::run (which picks one
  // of the two), and of the best tuning; GB/s of the kernel's default counting weight + activation bytes read.
  std::printf("%-14s %2s %9s %9s %9s %7s %9s %8s  %s\n", "shape", "m", "cublas_us", "gemv_us", "routed_us", "GB/s",
              "best_us", "best", "all tunings (rows/stages/blocks per SM: us)");
  double step_cublas[kGemvMaxRows + 1] = {}, step_gemv[kGemvMaxRows + 1] = {}, step_routed[kGemvMaxRows + 1] = {};
  for (const Named& sh : shapes) {
    const std::size_t w_elems = std::size_t{sh.s.n} * sh.s.k;
    const std::size_t slices = std::max<std::size_t>(1, (pool_elems - w_elems) / ((w_elems + 127) / 128 * 128));
    const int reps = static_cast<int>(std::clamp<std::size_t>((std::size_t{1} << 30) / w_elems, 3, 30));
    for (std::uint32_t m : {1u, 2u, 4u, 8u}) {
      GemmArgs args;
      args.a = a.ptr;
      args.d = d.ptr;
      args.m = m;
      args.n = sh.s.n;
      args.k = sh.s.k;
      args.out_fp32 = std::strstr(sh.name, "lm_head") != nullptr;
      const auto with_slice = [&](int i) {
        GemmArgs g = args;
        g.w = pool.ptr + (std::size_t(i) % slices) * ((w_elems + 127) / 128 * 128);
        return g;
      };
      const double us_cublas = time_us([&](int i) { cublas->run(with_slice(i), nullptr); }, reps);
      const double us_gemv = time_us([&](int i) { launch_gemv(with_slice(i), nullptr); }, reps);
      const double us_routed = time_us([&](int i) { routed->run(with_slice(i), nullptr); }, reps);
      std::string all;
      double best = 1e30;
      char best_name[32] = "";
      for (const GemvTuning& t : tunings) {
        const double us = time_us([&](int i) { launch_gemv(with_slice(i), nullptr, t); }, reps);
        char buf[48];
        std::snprintf(buf, sizeof buf, " %u/%u/%u:%.1f", t.rows_per_warp, t.stages, t.blocks_per_sm, us);
        all += buf;
        if (us < best) {
          best = us;
          std::snprintf(best_name, sizeof best_name, "%u/%u/%u", t.rows_per_warp, t.stages, t.blocks_per_sm);
        }
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const double bytes = double(w_elems + std::size_t{m} * sh.s.k) * sizeof(__nv_bfloat16);
      std::printf("%-14s %2u %9.1f %9.1f %9.1f %7.0f %9.1f %8s %s\n", sh.name, m, us_cublas, us_gemv, us_routed,
                  bytes / us_gemv / 1e3, best, best_name, all.c_str());
      std::fflush(stdout);
      // One 8B decode step's GEMMs: 32 layers of the four projections plus the LM head.
      if (std::strncmp(sh.name, "8b.", 3) == 0) {
        const double times = std::strcmp(sh.name, "8b.lm_head") == 0 ? 1 : 32;
        step_cublas[m] += times * us_cublas;
        step_gemv[m] += times * us_gemv;
        step_routed[m] += times * us_routed;
      }
    }
  }
  for (std::uint32_t m : {1u, 2u, 4u, 8u})
    std::printf("8B decode step GEMMs, m %u: cuBLASLt %.0f us, GEMV kernel %.0f us, routed %.0f us\n", m,
                step_cublas[m], step_gemv[m], step_routed[m]);
}

}  // namespace
}  // namespace sluice::cuda
