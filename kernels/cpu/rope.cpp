#include "kernels/cpu/rope.h"

#include <cmath>

namespace sluice::kernels {

void rope_rows(const RopeParams& p, std::uint32_t row_begin, std::uint32_t row_end, float* scratch) {
  const std::uint32_t half = p.head_dim / 2;
  float* cos_t = scratch;
  float* sin_t = scratch + half;
  for (std::uint32_t t = row_begin; t < row_end; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (std::uint32_t i = 0; i < half; ++i) {
      const float angle = pos * p.inv_freq[i];
      cos_t[i] = std::cos(angle);
      sin_t[i] = std::sin(angle);
    }
    float* row = p.x + t * p.stride;
    for (std::uint32_t h = 0; h < p.n_heads; ++h) {
      float* v = row + h * p.head_dim;
      if (p.layout == RopeLayout::half) {
        for (std::uint32_t i = 0; i < half; ++i) {
          const float a = v[i];
          const float b = v[i + half];
          v[i] = a * cos_t[i] - b * sin_t[i];
          v[i + half] = b * cos_t[i] + a * sin_t[i];
        }
      } else {
        for (std::uint32_t i = 0; i < half; ++i) {
          const float a = v[2 * i];
          const float b = v[2 * i + 1];
          v[2 * i] = a * cos_t[i] - b * sin_t[i];
          v[2 * i + 1] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  }
}

}  // namespace sluice::kernels
