#include "kernels/cpu/softmax.h"

#include <cmath>
#include <limits>

namespace sluice::kernels {

float softmax_inplace(float* x, std::size_t n) {
  if (n == 0) return 0.0f;
  float m = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  if (m == -std::numeric_limits<float>::infinity()) {
    for (std::size_t i = 0; i < n; ++i) x[i] = 0.0f;
    return 0.0f;
  }
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (std::size_t i = 0; i < n; ++i) x[i] *= inv;
  return sum;
}

}  // namespace sluice::kernels
