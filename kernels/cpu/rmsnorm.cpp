#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace sluice::kernels {

namespace {

// Eight interleaved partial sums, combined pairwise: vectorizable without reassociation and independent of
// the row's position in the batch.
float sum_of_squares(const float* x, std::uint32_t n) {
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::uint32_t c = 0;
  for (; c + 8 <= n; c += 8) {
    for (int k = 0; k < 8; ++k) part[k] += x[c + k] * x[c + k];
  }
  float s = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
  for (; c < n; ++c) s += x[c] * x[c];
  return s;
}

}  // namespace

void rmsnorm_rows(const RmsNormParams& p, std::uint32_t row_begin, std::uint32_t row_end) {
  for (std::uint32_t r = row_begin; r < row_end; ++r) {
    const float* x = p.x + r * p.x_stride;
    float* y = p.y + r * p.y_stride;
    const float mean = sum_of_squares(x, p.dim) / static_cast<float>(p.dim);
    const float inv = 1.0f / std::sqrt(mean + p.eps);
    for (std::uint32_t c = 0; c < p.dim; ++c) y[c] = p.weight[c] * (x[c] * inv);
  }
}

}  // namespace sluice::kernels
