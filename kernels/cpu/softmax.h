// Numerically stable softmax of one row in place: subtract the maximum, exponentiate, divide by the sum.
// The sum runs left to right, so a row's result depends only on its own values. An empty row is left alone;
// a row whose maximum is -inf (everything masked) becomes all zeros.
#pragma once

#include <cstddef>

namespace sluice::kernels {

// Returns the sum of exponentials before normalization (1 / it is the scale applied).
float softmax_inplace(float* x, std::size_t n);

}  // namespace sluice::kernels
