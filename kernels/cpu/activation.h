// Elementwise SwiGLU activation for callers that hold the gate and up projections separately (the CPU
// forward pass fuses it into swiglu_rows in matmul.h): out[i] = silu(gate[i]) * up[i],
// silu(g) = g / (1 + e^-g). `out` may alias either input.
#pragma once

#include <cstddef>

namespace sluice::kernels {

void silu_mul(const float* gate, const float* up, float* out, std::size_t n);

}  // namespace sluice::kernels
