// Shared helpers of the CPU kernel tests: random data, GGML block builders, an independent dequantizer and
// the relative error the project uses (max|a - b| / max|b|).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/weight_view.h"

namespace sluice::kernels::test {

inline double rel_error(const float* a, const float* b, std::size_t n) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return den == 0.0 ? num : num / den;
}

inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  return rel_error(a.data(), b.data(), std::min(a.size(), b.size()));
}

inline std::vector<float> random_floats(std::mt19937& rng, std::size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// float -> IEEE half, round to nearest even (normal range only; the tests use moderate scales).
inline std::uint16_t to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  std::uint32_t mant = x & 0x7FFFFFu;
  if (exp <= 0) return static_cast<std::uint16_t>(sign);
  std::uint32_t h = sign | (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
  const std::uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<std::uint16_t>(h);
}

inline double half_value(std::uint16_t h) {
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  const double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -v : v;
}

// Random rows of `type` with realistic scales; bytes laid out as GGUF stores them.
inline std::vector<std::byte> random_weights(std::mt19937& rng, WeightType type, std::uint32_t rows,
                                             std::uint32_t cols) {
  const std::size_t rb = row_bytes_for(type, cols);
  std::vector<std::byte> out(rb * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  if (type == WeightType::f32) {
    for (std::size_t i = 0; i < std::size_t{rows} * cols; ++i) {
      const float v = normal(rng);
      std::memcpy(out.data() + 4 * i, &v, 4);
    }
    return out;
  }
  const std::size_t bb = block_bytes(type);
  for (std::size_t b = 0; b < out.size() / bb; ++b) {
    std::byte* p = out.data() + b * bb;
    const std::uint16_t d = to_half(scale(rng));
    std::memcpy(p, &d, 2);
    std::size_t q = 2;
    if (type == WeightType::q4_1) {
      const std::uint16_t m = to_half(-8.0f * scale(rng));
      std::memcpy(p + 2, &m, 2);
      q = 4;
    }
    for (std::size_t i = q; i < bb; ++i) p[i] = static_cast<std::byte>(byte(rng));
  }
  return out;
}

// Independent dequantization in double precision, straight from the format description.
inline std::vector<double> reference_row(WeightType type, const std::byte* row, std::uint32_t cols) {
  std::vector<double> w(cols);
  if (type == WeightType::f32) {
    for (std::uint32_t c = 0; c < cols; ++c) {
      float v;
      std::memcpy(&v, row + 4 * c, 4);
      w[c] = v;
    }
    return w;
  }
  const std::size_t bb = block_bytes(type);
  for (std::uint32_t b = 0; b < cols / 32; ++b) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(row + b * bb);
    std::uint16_t dh, mh = 0;
    std::memcpy(&dh, p, 2);
    const double d = half_value(dh);
    if (type == WeightType::q8_0) {
      for (int j = 0; j < 32; ++j) w[b * 32 + j] = static_cast<std::int8_t>(p[2 + j]) * d;
      continue;
    }
    const std::uint8_t* qs = p + (type == WeightType::q4_1 ? 4 : 2);
    double m = 0.0;
    if (type == WeightType::q4_1) {
      std::memcpy(&mh, p + 2, 2);
      m = half_value(mh);
    }
    for (int j = 0; j < 16; ++j) {
      const int lo = qs[j] & 0xF, hi = qs[j] >> 4;
      if (type == WeightType::q4_0) {
        w[b * 32 + j] = (lo - 8) * d;
        w[b * 32 + j + 16] = (hi - 8) * d;
      } else {
        w[b * 32 + j] = lo * d + m;
        w[b * 32 + j + 16] = hi * d + m;
      }
    }
  }
  return w;
}

}  // namespace sluice::kernels::test
