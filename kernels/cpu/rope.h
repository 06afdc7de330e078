// Rotary position embedding applied in place to rows of packed heads: row t holds n_heads heads of head_dim
// values and is rotated by the angle positions[t] * inv_freq[i] for pair i (i < head_dim / 2).
//   interleaved: pairs (2i, 2i + 1) — GGUF llama-architecture weights (rows permuted by the converter);
//   half:        pairs (i, i + head_dim / 2) — Hugging Face's rotate_half.
// The angle is the fp32 product of the position and the frequency (as Hugging Face computes it); cos and sin
// are taken in fp32. Each row depends only on its own position, never on the batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::kernels {

enum class RopeLayout : std::uint8_t { interleaved, half };

struct RopeParams {
  float* x = nullptr;  // x[t * stride + h * head_dim + d]
  std::size_t stride = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t head_dim = 0;
  const std::int32_t* positions = nullptr;  // one per row
  const float* inv_freq = nullptr;          // head_dim / 2 entries
  RopeLayout layout = RopeLayout::half;
};

// Rotates rows [row_begin, row_end). `scratch` holds head_dim floats (cos and sin of the row's angles).
void rope_rows(const RopeParams& p, std::uint32_t row_begin, std::uint32_t row_end, float* scratch);

}  // namespace sluice::kernels
