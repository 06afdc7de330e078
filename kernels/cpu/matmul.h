// Matrix times activations, y[t][r] = W[r] · x[t] (+ bias[r]) (+ the old y[t][r]), for fp32 activations and
// fp32 or block-quantized (Q4_0, Q4_1, Q8_0) weights dequantized on the fly, block by block, in registers.
//
// Batch invariance: each output element is one weight row dotted with one activation row in a fixed order
// that does not depend on how many tokens, which rows, or which thread share the call. Work is split by output
// rows ([row_begin, row_end)); the reduction axis is never split. Tiles that reuse a dequantized block across
// several tokens (prefill) or several rows (decode) run the same per-element instruction sequence as a
// single element: 8-wide chunks k = 0, 1, 2, ... of the row accumulate with fused multiply-adds into
// accumulator k % 2, the two accumulators are added, then summed horizontally in a fixed tree; an fp32 row's
// last cols % 8 elements are added one by one after that.
//
// Thread safety: calls on disjoint row ranges of the same params may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/weight_view.h"

namespace sluice::kernels {

struct MatmulParams {
  WeightView w;              // [rows][cols]
  const float* x = nullptr;  // x[t * x_stride + c], c < w.cols
  std::size_t x_stride = 0;
  std::uint32_t n_tokens = 0;
  float* y = nullptr;  // y[t * y_stride + r]
  std::size_t y_stride = 0;
  const float* bias = nullptr;  // w.rows entries, or null
  bool accumulate = false;      // y = y + (W x + b) instead of y = W x + b
};

void matmul_rows(const MatmulParams& p, std::uint32_t row_begin, std::uint32_t row_end);

// SwiGLU feed-forward input: y[t][r] = silu(gate[r] · x[t]) * (up[r] · x[t]), silu(g) = g / (1 + e^-g).
// gate and up share shape and type; each dot product follows matmul_rows's order.
struct SwiGluParams {
  WeightView gate;
  WeightView up;
  const float* x = nullptr;
  std::size_t x_stride = 0;
  std::uint32_t n_tokens = 0;
  float* y = nullptr;
  std::size_t y_stride = 0;
};

void swiglu_rows(const SwiGluParams& p, std::uint32_t row_begin, std::uint32_t row_end);

}  // namespace sluice::kernels
