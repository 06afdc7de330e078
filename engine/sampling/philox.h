// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): a counter-based
// generator, i.e. a pure function of a 128-bit counter and a 64-bit key. Sampling keys it on the request's
// seed and counts by token index, so the random number behind a request's n-th token depends on nothing else
// (not the batch, not the step, not the device): the CUDA sampler computes the same function.
//
// Header-only and constexpr so the same text can be compiled for the device later; no state, no allocation.
#pragma once

#include <array>
#include <cstdint>

namespace sluice::philox {

using Counter = std::array<std::uint32_t, 4>;
using Key = std::array<std::uint32_t, 2>;

inline constexpr std::uint32_t kMul0 = 0xD2511F53u;
inline constexpr std::uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
inline constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
inline constexpr int kRounds = 10;

constexpr Counter mix_round(const Counter& c, const Key& k) {
  const std::uint64_t p0 = std::uint64_t{kMul0} * c[0];
  const std::uint64_t p1 = std::uint64_t{kMul1} * c[2];
  const auto hi0 = static_cast<std::uint32_t>(p0 >> 32);
  const auto lo0 = static_cast<std::uint32_t>(p0);
  const auto hi1 = static_cast<std::uint32_t>(p1 >> 32);
  const auto lo1 = static_cast<std::uint32_t>(p1);
  return Counter{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
}

// The Philox4x32-10 block function: ten rounds, the key bumped by the Weyl constants between rounds.
constexpr Counter philox4x32_10(Counter c, Key k) {
  for (int r = 0; r < kRounds; ++r) {
    if (r > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    c = mix_round(c, k);
  }
  return c;
}

// 32 random bits for (seed, token_index, lane): the key is the seed, the counter is
// {token_index, lane / 4, 0, 0} and the lane picks one of the block's four words, so four consecutive lanes
// cost one block.
constexpr std::uint32_t bits(std::uint64_t seed, std::uint32_t token_index, std::uint32_t lane) {
  const Counter out = philox4x32_10(Counter{token_index, lane / 4u, 0u, 0u},
                                    Key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  return out[lane % 4u];
}

// A float in [0, 1): the top 24 bits scaled by 2^-24, exact in float and never 1.
constexpr float uniform(std::uint64_t seed, std::uint32_t token_index, std::uint32_t lane) {
  return static_cast<float>(bits(seed, token_index, lane) >> 8) * (1.0f / 16777216.0f);
}

}  // namespace sluice::philox
