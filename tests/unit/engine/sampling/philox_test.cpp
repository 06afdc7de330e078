#include "engine/sampling/philox.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

namespace sluice {
namespace {

// Random123's published known-answer vectors for Philox4x32-10 (tests/kat_vectors: counter, key, output).
TEST(Philox, KnownAnswerVectors) {
  EXPECT_EQ(philox::philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u}),
            (philox::Counter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox::philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (philox::Counter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox::philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (philox::Counter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, EvaluatesAtCompileTime) {
  constexpr philox::Counter out = philox::philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u});
  static_assert(out[0] == 0x6627e8d5u);
  constexpr float u = philox::uniform(42, 7, 0);
  static_assert(u >= 0.0f && u < 1.0f);
}

TEST(Philox, LanesMapToBlockWords) {
  // Lanes 0..3 are the four words of counter {index, 0, 0, 0}; lane 4 starts the next block.
  const std::uint64_t seed = 0x0123456789abcdefull;
  const philox::Counter block0 = philox::philox4x32_10({9u, 0u, 0u, 0u}, {0x89abcdefu, 0x01234567u});
  const philox::Counter block1 = philox::philox4x32_10({9u, 1u, 0u, 0u}, {0x89abcdefu, 0x01234567u});
  for (std::uint32_t lane = 0; lane < 4; ++lane) EXPECT_EQ(philox::bits(seed, 9, lane), block0[lane]);
  EXPECT_EQ(philox::bits(seed, 9, 4), block1[0]);
}

TEST(Philox, UniformIsDeterministicInRangeAndSpread) {
  EXPECT_EQ(philox::uniform(5, 100, 0), philox::uniform(5, 100, 0));
  EXPECT_NE(philox::uniform(5, 100, 0), philox::uniform(5, 101, 0));
  EXPECT_NE(philox::uniform(5, 100, 0), philox::uniform(6, 100, 0));

  // Moments and a coarse histogram of 100k draws over consecutive token indices.
  constexpr int kDraws = 100000;
  constexpr int kBins = 10;
  std::vector<int> bins(kBins, 0);
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const float u = philox::uniform(1234, static_cast<std::uint32_t>(i), 0);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sum_sq += static_cast<double>(u) * u;
    ++bins[static_cast<int>(u * kBins)];
  }
  EXPECT_NEAR(sum / kDraws, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / kDraws - (sum / kDraws) * (sum / kDraws), 1.0 / 12.0, 0.002);
  double chi2 = 0.0;
  for (int b : bins) chi2 += (b - kDraws / kBins) * (b - kDraws / kBins) / double(kDraws / kBins);
  EXPECT_LT(chi2, 27.9);  // 9 degrees of freedom, p = 0.001
}

TEST(Philox, LargestOutputStaysBelowOne) {
  // The top 24 bits all set is the largest value uniform() can return.
  EXPECT_LT(static_cast<float>(0xffffffffu >> 8) * (1.0f / 16777216.0f), 1.0f);
}

}  // namespace
}  // namespace sluice
