// matmul_rows / swiglu_rows / dequantize_row against a double-precision reference built from the format
// description, on both instruction-set paths, plus the batch-invariance contract (bit-identical outputs
// whatever the token count, tile shape or row split).
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>

#include "kernels/cpu/isa.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace sluice::kernels {
namespace {

using test::random_floats;
using test::random_weights;
using test::reference_row;
using test::rel_error;

std::vector<Isa> available_isas() {
  std::vector<Isa> out{Isa::scalar};
  const Isa saved = active_isa();
  if (select_isa(Isa::avx2)) out.push_back(Isa::avx2);
  select_isa(saved);
  return out;
}

class IsaScope {
 public:
  explicit IsaScope(Isa isa) : saved_(active_isa()) { EXPECT_TRUE(select_isa(isa)); }
  ~IsaScope() { select_isa(saved_); }

 private:
  Isa saved_;
};

struct Case {
  WeightType type;
  std::uint32_t rows, cols, tokens;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (WeightType t : {WeightType::f32, WeightType::q4_0, WeightType::q4_1, WeightType::q8_0}) {
    for (std::uint32_t rows : {4u, 6u, 37u}) {
      for (std::uint32_t cols : {32u, 96u, 576u}) {
        for (std::uint32_t tokens : {1u, 2u, 5u, 9u}) out.push_back({t, rows, cols, tokens});
      }
    }
  }
  for (std::uint32_t cols : {1u, 7u, 13u, 100u, 172u}) out.push_back({WeightType::f32, 11, cols, 6});
  return out;
}

WeightView view_of(const std::vector<std::byte>& bytes, WeightType type, std::uint32_t rows, std::uint32_t cols) {
  return WeightView{type, rows, cols, bytes.data(), row_bytes_for(type, cols)};
}

TEST(Matmul, MatchesDoublePrecisionReferenceOnEveryPath) {
  std::mt19937 rng(1);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    for (const Case& c : cases()) {
      const auto bytes = random_weights(rng, c.type, c.rows, c.cols);
      const WeightView w = view_of(bytes, c.type, c.rows, c.cols);
      const std::size_t xs = c.cols + 3;  // strides wider than the rows
      const auto x = random_floats(rng, xs * c.tokens);
      const auto bias = random_floats(rng, c.rows);
      const std::size_t ys = c.rows + 2;
      std::vector<float> y(ys * c.tokens, 0.5f);
      const auto y_old = y;
      MatmulParams p{w, x.data(), xs, c.tokens, y.data(), ys, bias.data(), true};
      matmul_rows(p, 0, c.rows);
      // One vector per case: every output of every token (a lone dot product may cancel to near zero).
      std::vector<float> want, got;
      for (std::uint32_t t = 0; t < c.tokens; ++t) {
        for (std::uint32_t r = 0; r < c.rows; ++r) {
          const auto wr = reference_row(c.type, w.row(r), c.cols);
          double s = 0.0;
          for (std::uint32_t k = 0; k < c.cols; ++k) s += wr[k] * x[t * xs + k];
          want.push_back(static_cast<float>(s + bias[r] + y_old[t * ys + r]));
          got.push_back(y[t * ys + r]);
        }
      }
      ASSERT_LE(rel_error(got, want), 1e-5) << isa_name(isa) << " " << weight_type_name(c.type) << " rows=" << c.rows
                                            << " cols=" << c.cols << " tokens=" << c.tokens;
      // Padding between rows of y is untouched.
      for (std::uint32_t t = 0; t < c.tokens; ++t) {
        EXPECT_EQ(y[t * ys + c.rows], 0.5f);
        EXPECT_EQ(y[t * ys + c.rows + 1], 0.5f);
      }
    }
  }
}

TEST(Matmul, OverwritesWithoutAccumulateAndWorksWithoutBias) {
  std::mt19937 rng(2);
  const auto bytes = random_weights(rng, WeightType::q4_1, 8, 64);
  const WeightView w = view_of(bytes, WeightType::q4_1, 8, 64);
  const auto x = random_floats(rng, 64);
  std::vector<float> a(8, 123.0f), b(8, -7.0f);
  matmul_rows({w, x.data(), 64, 1, a.data(), 8, nullptr, false}, 0, 8);
  matmul_rows({w, x.data(), 64, 1, b.data(), 8, nullptr, false}, 0, 8);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * 8));
}

// The same outputs, bit for bit, however the work is cut: one call for all tokens, one call per token, and
// row ranges split at odd places (as a thread pool would).
TEST(Matmul, BatchInvariantAcrossTokenCountsTilesAndRowSplits) {
  std::mt19937 rng(3);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    for (WeightType type : {WeightType::f32, WeightType::q4_0, WeightType::q4_1, WeightType::q8_0}) {
      const std::uint32_t rows = 23, cols = 160, tokens = 71;  // > one 64-token block, odd tails everywhere
      const auto bytes = random_weights(rng, type, rows, cols);
      const WeightView w = view_of(bytes, type, rows, cols);
      const auto x = random_floats(rng, std::size_t{cols} * tokens);
      std::vector<float> all(std::size_t{rows} * tokens), split(all.size()), single(all.size());
      matmul_rows({w, x.data(), cols, tokens, all.data(), rows, nullptr, false}, 0, rows);
      for (auto [b, e] : {std::pair{0u, 3u}, {3u, 4u}, {4u, 17u}, {17u, 23u}}) {
        matmul_rows({w, x.data(), cols, tokens, split.data(), rows, nullptr, false}, b, e);
      }
      for (std::uint32_t t = 0; t < tokens; ++t) {
        matmul_rows({w, x.data() + t * cols, cols, 1, single.data() + t * rows, rows, nullptr, false}, 0, rows);
      }
      EXPECT_EQ(0, std::memcmp(all.data(), split.data(), all.size() * sizeof(float))) << weight_type_name(type);
      EXPECT_EQ(0, std::memcmp(all.data(), single.data(), all.size() * sizeof(float))) << weight_type_name(type);
    }
  }
}

TEST(Matmul, DequantizeRowMatchesReferenceAndTheMatmulsView) {
  std::mt19937 rng(4);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    for (WeightType type : {WeightType::f32, WeightType::q4_0, WeightType::q4_1, WeightType::q8_0}) {
      const std::uint32_t rows = 5, cols = 96;
      const auto bytes = random_weights(rng, type, rows, cols);
      const WeightView w = view_of(bytes, type, rows, cols);
      std::vector<float> row(cols);
      dequantize_row(w, 3, row.data());
      const auto ref = reference_row(type, w.row(3), cols);
      for (std::uint32_t c = 0; c < cols; ++c) ASSERT_NEAR(row[c], ref[c], 1e-6 * (1 + std::abs(ref[c])));
      // A one-hot activation makes the matmul return single weights exactly: the same values as the row.
      for (std::uint32_t c = 0; c < cols; ++c) {
        std::vector<float> x(cols, 0.0f);
        x[c] = 1.0f;
        std::vector<float> y(rows);
        matmul_rows({w, x.data(), cols, 1, y.data(), rows, nullptr, false}, 0, rows);
        ASSERT_EQ(y[3], row[c]) << isa_name(isa) << " " << weight_type_name(type) << " col " << c;
      }
    }
  }
}

TEST(SwiGlu, MatchesReferenceAndIsBatchInvariant) {
  std::mt19937 rng(5);
  for (Isa isa : available_isas()) {
    IsaScope scope(isa);
    for (WeightType type : {WeightType::f32, WeightType::q4_1, WeightType::q8_0}) {
      const std::uint32_t rows = 19, cols = 64, tokens = 6;
      const auto gb = random_weights(rng, type, rows, cols);
      const auto ub = random_weights(rng, type, rows, cols);
      const WeightView g = view_of(gb, type, rows, cols), u = view_of(ub, type, rows, cols);
      const auto x = random_floats(rng, std::size_t{cols} * tokens, 3.0f);
      std::vector<float> y(std::size_t{rows} * tokens), y1(y.size());
      swiglu_rows({g, u, x.data(), cols, tokens, y.data(), rows}, 0, rows);
      for (std::uint32_t t = 0; t < tokens; ++t) {
        swiglu_rows({g, u, x.data() + t * cols, cols, 1, y1.data() + t * rows, rows}, 0, 7);
        swiglu_rows({g, u, x.data() + t * cols, cols, 1, y1.data() + t * rows, rows}, 7, rows);
        std::vector<float> want(rows), got(y.begin() + t * rows, y.begin() + (t + 1) * rows);
        for (std::uint32_t r = 0; r < rows; ++r) {
          const auto gr = reference_row(type, g.row(r), cols), ur = reference_row(type, u.row(r), cols);
          double a = 0, b = 0;
          for (std::uint32_t k = 0; k < cols; ++k) {
            a += gr[k] * x[t * cols + k];
            b += ur[k] * x[t * cols + k];
          }
          want[r] = static_cast<float>(a / (1.0 + std::exp(-a)) * b);
        }
        ASSERT_LE(rel_error(got, want), 1e-5) << isa_name(isa) << " " << weight_type_name(type);
      }
      EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)));
    }
  }
}

TEST(Isa, ScalarIsAlwaysSelectable) {
  const Isa saved = active_isa();
  EXPECT_TRUE(select_isa(Isa::scalar));
  EXPECT_EQ(active_isa(), Isa::scalar);
  select_isa(saved);
  EXPECT_EQ(active_isa(), saved);
}

}  // namespace
}  // namespace sluice::kernels
