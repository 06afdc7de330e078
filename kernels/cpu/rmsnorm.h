// RMSNorm over rows: y = x / sqrt(mean(x^2) + eps) * weight, as Llama's RMSNorm computes it in fp32.
// Each row is reduced in the same order whatever the number of rows (8 interleaved partial sums, then a
// fixed tree, then the tail), so results do not depend on batching. `y` may alias `x`.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::kernels {

struct RmsNormParams {
  const float* x = nullptr;  // x[r * x_stride + c], c < dim
  std::size_t x_stride = 0;
  float* y = nullptr;
  std::size_t y_stride = 0;
  const float* weight = nullptr;  // dim entries
  std::uint32_t dim = 0;
  float eps = 1e-5f;
};

void rmsnorm_rows(const RmsNormParams& p, std::uint32_t row_begin, std::uint32_t row_end);

}  // namespace sluice::kernels
