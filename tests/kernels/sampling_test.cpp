// Device sampling (kernels/cuda/sampling.h) against its CPU reference and against the engine's own sampler
// (engine/sampling/sampler.h, sample_row) on fresh random logits each run (seed printed; replay with
// SLUICE_TEST_SEED). Greedy rows must match exactly; sampled rows must match in at least 99% of rows (the
// kernel's exp and fixed-point sums differ from the host's in the last bits, which moves a draw only when it
// falls within ~1e-7 of a boundary), and every token the device picks must be one the parameters allow.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/sampling/sampler.h"
#include "kernels/cuda/sampling.h"
#include "tests/kernels/gpu_test_util.h"

namespace sluice::cuda::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::mt19937_64 make_rng(std::uint64_t salt) { return std::mt19937_64(test_seed() ^ (salt * 0x9E3779B97F4A7C15ull)); }

#define SLUICE_SEED_TRACE() SCOPED_TRACE(::testing::Message() << "SLUICE_TEST_SEED=" << test_seed())

// Kinds of rows: 0 moderate normal, 1 peaked, 2 coarse values with many ties, 3 nearly flat and narrow (one
// radix bin holds everything), 4 with banned (-inf), NaN and +inf entries, 5 a few dominant tokens over a
// normal background (the shape of real LLM logits).
constexpr int kKinds = 6;

void fill_row(float* row, std::uint32_t vocab, int kind, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, kind == 1 ? 6.0f : 2.0f);
  for (std::uint32_t i = 0; i < vocab; ++i) {
    float v = normal(rng);
    switch (kind) {
      case 2: v = std::round(v * 2.0f) / 2.0f; break;
      case 3: v = 10.0f + std::round(v * 4.0f) * 1e-3f; break;
      case 4:
        if (rng() % 40 == 0) v = -kInf;
        if (rng() % 700 == 0) v = std::nanf("");
        if (i == vocab / 3 && rng() % 4 == 0) v = kInf;
        break;
      case 5:
        if (rng() % 997 == 0) v = 12.0f + normal(rng) * 0.5f;
        break;
      default: break;
    }
    row[i] = v;
  }
}

RowSampling random_params(std::mt19937_64& rng, std::uint32_t vocab, bool greedy) {
  static const float temps[] = {0.3f, 0.7f, 1.0f, 1.0f, 1.5f};
  const std::int32_t ks[] = {0, -1, 1, 2, 20, 50, 1000, static_cast<std::int32_t>(vocab) - 1,
                             static_cast<std::int32_t>(vocab), static_cast<std::int32_t>(vocab) + 7};
  static const float ps[] = {1.0f, 1.0f, 0.95f, 0.9f, 0.5f, 0.1f, 0.999f};
  static const float mps[] = {0.0f, 0.0f, 0.0f, 0.02f, 0.1f, 0.5f};
  RowSampling s;
  s.temperature = greedy ? (rng() % 4 == 0 ? 5e-6f : 0.0f) : temps[rng() % 5];
  s.top_k = ks[rng() % 10];
  s.top_p = ps[rng() % 7];
  s.min_p = mps[rng() % 6];
  s.seed = rng();
  s.token_index = static_cast<std::uint32_t>(rng() % 5000);
  return s;
}

std::vector<std::int32_t> run_gpu(const std::vector<float>& logits, std::uint32_t stride, std::uint32_t vocab,
                                  const std::vector<RowSampling>& rows) {
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<RowSampling> d_rows(rows);
  DeviceBuffer<std::int32_t> d_out(std::vector<std::int32_t>(rows.size(), -2));
  DeviceBuffer<unsigned char> workspace(sampling_workspace_bytes(static_cast<std::uint32_t>(rows.size()), vocab));
  SamplingParams p;
  p.logits = d_logits.ptr;
  p.logits_stride = stride;
  p.rows = d_rows.ptr;
  p.out = d_out.ptr;
  p.num_rows = static_cast<std::uint32_t>(rows.size());
  p.vocab = vocab;
  p.workspace = workspace.ptr;
  EXPECT_EQ(launch_sampling(p, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return d_out.download();
}

std::vector<std::int32_t> run_reference(const std::vector<float>& logits, std::uint32_t stride, std::uint32_t vocab,
                                        const std::vector<RowSampling>& rows) {
  std::vector<std::int32_t> out(rows.size(), -2);
  SamplingParams p;
  p.logits = logits.data();
  p.logits_stride = stride;
  p.rows = rows.data();
  p.out = out.data();
  p.num_rows = static_cast<std::uint32_t>(rows.size());
  p.vocab = vocab;
  sampling_reference(p);
  return out;
}

// The engine's host sampler on the same row, with default parameters apart from the ones the device takes.
std::int32_t run_engine_sampler(const float* row, std::uint32_t vocab, const RowSampling& rs) {
  std::vector<float> copy(row, row + vocab);
  sluice::SamplingParams sp;
  sp.temperature = rs.temperature;
  sp.top_k = rs.top_k;
  sp.top_p = rs.top_p;
  sp.min_p = rs.min_p;
  sp.seed = rs.seed;
  const sluice::TokenHistory history;
  return sluice::sample_row(std::span<float>(copy), sp, history, rs.seed, rs.token_index, {}).token;
}

// Whether the parameters allow `token` at all (independently of the draw), with a little slack for rounding:
// inside top_k (fewer than k tokens strictly more likely), inside the nucleus (the mass strictly more likely
// is below top_p of the top_k mass), above min_p, and not banned.
bool allowed(const float* raw, std::uint32_t vocab, const RowSampling& rs, std::int32_t token) {
  if (token < 0 || static_cast<std::uint32_t>(token) >= vocab) return false;
  std::vector<double> l(vocab);
  const bool greedy = !(rs.temperature >= 1e-5f);
  const float inv_t = greedy ? 1.0f : 1.0f / rs.temperature;
  for (std::uint32_t i = 0; i < vocab; ++i) {
    const float s = raw[i] == raw[i] ? std::min(raw[i], FLT_MAX) : -kInf;
    l[i] = std::min(s * inv_t, FLT_MAX);
  }
  const double max = *std::max_element(l.begin(), l.end());
  const double lt = l[static_cast<std::size_t>(token)];
  if (greedy) return lt == max;
  if (max == -kInf) return token == 0;
  if (lt == -kInf) return false;
  std::vector<double> sorted(l);
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const bool use_k = rs.top_k > 0 && static_cast<std::uint32_t>(rs.top_k) < vocab;
  const std::size_t k = use_k ? static_cast<std::size_t>(rs.top_k) : vocab;
  std::size_t above = 0;
  double mass_above = 0.0;
  for (std::uint32_t i = 0; i < vocab; ++i) {
    if (l[i] > lt) {
      ++above;
      mass_above += std::exp(l[i] - max);
    }
  }
  if (above >= k) return false;
  if (rs.top_p < 1.0f) {
    double total = 0.0;
    for (std::size_t i = 0; i < k; ++i) total += std::exp(sorted[i] - max);
    if (mass_above > static_cast<double>(rs.top_p) * total * (1.0 + 1e-6) + 1e-12) return false;
  }
  const bool truncate = use_k || rs.top_p < 1.0f;
  if ((!truncate || rs.min_p > 0.0f) && std::exp(lt - max) < static_cast<double>(rs.min_p) * (1.0 - 1e-6)) {
    return false;
  }
  return true;
}

struct Batch {
  std::uint32_t vocab = 0;
  std::uint32_t stride = 0;
  std::vector<float> logits;
  std::vector<RowSampling> rows;
  std::vector<int> kinds;
};

Batch make_batch(std::mt19937_64& rng, std::uint32_t vocab, std::uint32_t num_rows, std::uint32_t pad, bool greedy) {
  Batch b;
  b.vocab = vocab;
  b.stride = vocab + pad;
  b.logits.assign(std::size_t{num_rows} * b.stride, 1e30f);  // padding must never be read
  for (std::uint32_t r = 0; r < num_rows; ++r) {
    const int kind = static_cast<int>(r % kKinds);
    fill_row(b.logits.data() + std::size_t{r} * b.stride, vocab, kind, rng);
    b.rows.push_back(random_params(rng, vocab, greedy));
    b.kinds.push_back(kind);
  }
  return b;
}

std::string describe(const Batch& b, std::size_t r) {
  const RowSampling& s = b.rows[r];
  return ::testing::PrintToString(r) + " (kind " + std::to_string(b.kinds[r]) + ", T " +
         std::to_string(s.temperature) + ", top_k " + std::to_string(s.top_k) + ", top_p " + std::to_string(s.top_p) +
         ", min_p " + std::to_string(s.min_p) + ")";
}

struct Shape {
  std::uint32_t vocab, rows, pad;
};
// pad 0 with a vocabulary that is a multiple of 4: the vectorized kernel; otherwise the scalar one.
const Shape kShapes[] = {{1, 8, 0},       {2, 64, 1},      {50, 256, 0},    {1000, 256, 3},
                         {5003, 128, 0},  {32000, 96, 0},  {32000, 32, 5},  {151936, 64, 0}};

// ----------------------------------------------------------------------------------------------------- tests

TEST(SamplingKernel, GreedyMatchesExactly) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(11);
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(::testing::Message() << "vocab " << shape.vocab << " rows " << shape.rows);
    const Batch b = make_batch(rng, shape.vocab, shape.rows, shape.pad, /*greedy=*/true);
    const auto gpu = run_gpu(b.logits, b.stride, b.vocab, b.rows);
    const auto ref = run_reference(b.logits, b.stride, b.vocab, b.rows);
    for (std::size_t r = 0; r < b.rows.size(); ++r) {
      const float* row = b.logits.data() + r * b.stride;
      auto value = [&](std::int32_t id) {
        return id >= 0 && static_cast<std::uint32_t>(id) < b.vocab ? row[id] : std::nanf("");
      };
      EXPECT_EQ(gpu[r], ref[r]) << "row " << describe(b, r) << ": logit " << value(gpu[r]) << " (device) vs "
                                << value(ref[r]) << " (reference)";
      EXPECT_EQ(gpu[r], run_engine_sampler(row, b.vocab, b.rows[r])) << "row " << describe(b, r);
    }
  }
}

TEST(SamplingKernel, SampledRowsMatchReferenceAndEngineSampler) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(12);
  std::size_t total = 0, same_as_ref = 0, same_as_engine = 0, notes = 0;
  for (int round = 0; round < 2; ++round) {
    for (const Shape& shape : kShapes) {
      SCOPED_TRACE(::testing::Message() << "vocab " << shape.vocab << " rows " << shape.rows);
      const Batch b = make_batch(rng, shape.vocab, shape.rows, shape.pad, /*greedy=*/false);
      const auto gpu = run_gpu(b.logits, b.stride, b.vocab, b.rows);
      const auto ref = run_reference(b.logits, b.stride, b.vocab, b.rows);
      for (std::size_t r = 0; r < b.rows.size(); ++r) {
        const float* row = b.logits.data() + r * b.stride;
        const std::int32_t engine = run_engine_sampler(row, b.vocab, b.rows[r]);
        ++total;
        same_as_ref += gpu[r] == ref[r];
        same_as_engine += gpu[r] == engine;
        EXPECT_TRUE(allowed(row, b.vocab, b.rows[r], gpu[r])) << "token " << gpu[r] << " row " << describe(b, r);
        if ((gpu[r] != ref[r] || gpu[r] != engine) && ++notes <= 20) {
          std::printf("note: vocab %u row %s: gpu %d reference %d engine %d\n", b.vocab, describe(b, r).c_str(), gpu[r],
                      ref[r], engine);
        }
      }
    }
  }
  std::printf("sampled rows: %zu, same as reference: %zu, same as engine sampler: %zu\n", total, same_as_ref,
              same_as_engine);
  EXPECT_GE(static_cast<double>(same_as_ref), 0.99 * static_cast<double>(total));
  EXPECT_GE(static_cast<double>(same_as_engine), 0.99 * static_cast<double>(total));
}

TEST(SamplingKernel, DrawDoesNotDependOnTheOtherRows) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(13);
  const std::uint32_t vocab = 32000;
  const Batch b = make_batch(rng, vocab, 48, 0, false);
  const auto together = run_gpu(b.logits, b.stride, vocab, b.rows);
  // Alone, one launch per row.
  for (std::size_t r = 0; r < 12; ++r) {
    const std::vector<float> row(b.logits.begin() + static_cast<std::ptrdiff_t>(r * b.stride),
                                 b.logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * b.stride));
    EXPECT_EQ(run_gpu(row, b.stride, vocab, {b.rows[r]})[0], together[r]) << "row " << describe(b, r);
  }
  // Reversed, inside a larger batch whose other rows are new.
  const Batch other = make_batch(rng, vocab, 40, 0, false);
  std::vector<float> logits;
  std::vector<RowSampling> rows;
  for (std::size_t r = 0; r < 40; ++r) {
    logits.insert(logits.end(), other.logits.begin() + static_cast<std::ptrdiff_t>(r * vocab),
                  other.logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * vocab));
    rows.push_back(other.rows[r]);
    if (r < b.rows.size()) {
      const std::size_t src = b.rows.size() - 1 - r;
      logits.insert(logits.end(), b.logits.begin() + static_cast<std::ptrdiff_t>(src * vocab),
                    b.logits.begin() + static_cast<std::ptrdiff_t>((src + 1) * vocab));
      rows.push_back(b.rows[src]);
    }
  }
  const auto mixed = run_gpu(logits, vocab, vocab, rows);
  for (std::size_t r = 0; r < 40; ++r) {
    const std::size_t src = b.rows.size() - 1 - r;
    EXPECT_EQ(mixed[2 * r + 1], together[src]) << "row " << describe(b, src);
  }
  // And the same launch twice gives the same tokens.
  EXPECT_EQ(run_gpu(b.logits, b.stride, vocab, b.rows), together);
}

// Many draws of one small distribution (token_index varies): the frequencies follow the truncated softmax.
TEST(SamplingKernel, FrequenciesFollowTheDistribution) {
  SLUICE_REQUIRE_GPU();
  SLUICE_SEED_TRACE();
  auto rng = make_rng(14);
  const std::vector<float> base = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 1.0f, 2.0f};
  const std::uint32_t vocab = static_cast<std::uint32_t>(base.size());
  const std::uint32_t draws = 40000;
  struct Setting {
    float temperature, top_p, min_p;
    std::int32_t top_k;
  };
  for (const Setting& s : {Setting{1.0f, 1.0f, 0.0f, 0}, Setting{0.7f, 0.8f, 0.0f, 4}, Setting{1.3f, 1.0f, 0.2f, 0}}) {
    SCOPED_TRACE(::testing::Message() << "T " << s.temperature << " top_p " << s.top_p << " top_k " << s.top_k);
    std::vector<float> logits;
    std::vector<RowSampling> rows;
    const std::uint64_t seed = rng();
    for (std::uint32_t i = 0; i < draws; ++i) {
      logits.insert(logits.end(), base.begin(), base.end());
      RowSampling rs;
      rs.temperature = s.temperature;
      rs.top_p = s.top_p;
      rs.min_p = s.min_p;
      rs.top_k = s.top_k;
      rs.seed = seed;
      rs.token_index = i;
      rows.push_back(rs);
    }
    const auto gpu = run_gpu(logits, vocab, vocab, rows);
    EXPECT_EQ(gpu, run_reference(logits, vocab, vocab, rows));
    // The allowed set and its probabilities, from the definition.
    std::vector<double> p(vocab);
    double max = -1e30;
    for (float x : base) max = std::max(max, static_cast<double>(x / s.temperature));
    for (std::uint32_t i = 0; i < vocab; ++i) p[i] = std::exp(base[i] / s.temperature - max);
    std::vector<std::uint32_t> order(vocab);
    for (std::uint32_t i = 0; i < vocab; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return p[a] > p[b]; });
    const std::size_t k = s.top_k > 0 ? static_cast<std::size_t>(s.top_k) : vocab;
    double k_mass = 0.0;
    for (std::size_t j = 0; j < k; ++j) k_mass += p[order[j]];
    std::vector<double> keep(vocab, 0.0);
    double cum = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      if (j > 0 && cum >= s.top_p * k_mass) break;
      cum += p[order[j]];
      if (p[order[j]] >= s.min_p) keep[order[j]] = p[order[j]];
    }
    double kept = 0.0;
    for (double x : keep) kept += x;
    std::vector<std::uint32_t> counts(vocab, 0);
    for (std::int32_t t : gpu) ++counts[static_cast<std::size_t>(t)];
    for (std::uint32_t i = 0; i < vocab; ++i) {
      const double expect = keep[i] / kept * draws;
      if (expect == 0.0) {
        EXPECT_EQ(counts[i], 0u) << "token " << i;
      } else {
        const double sigma = std::sqrt(expect * (1.0 - keep[i] / kept));
        EXPECT_NEAR(static_cast<double>(counts[i]), expect, 5.0 * sigma + 1.0) << "token " << i;
      }
    }
  }
}

TEST(SamplingKernel, LauncherRejectsBadParams) {
  SLUICE_REQUIRE_GPU();
  DeviceBuffer<float> logits(4096);
  DeviceBuffer<RowSampling> rows(std::vector<RowSampling>(4));
  DeviceBuffer<std::int32_t> out(4);
  SamplingParams ok;
  ok.logits = logits.ptr;
  ok.logits_stride = 1024;
  ok.rows = rows.ptr;
  ok.out = out.ptr;
  ok.num_rows = 4;
  ok.vocab = 1024;
  EXPECT_EQ(launch_sampling(ok, nullptr), cudaSuccess);
  SamplingParams bad = ok;
  bad.logits = nullptr;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.rows = nullptr;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.out = nullptr;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.vocab = 0;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.logits_stride = 1000;  // narrower than a row
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.vocab = (1u << 20) + 1;
  bad.logits_stride = bad.vocab;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.num_rows = 0;
  EXPECT_EQ(launch_sampling(bad, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace sluice::cuda::test
