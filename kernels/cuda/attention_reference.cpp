// CPU reference of the paged attention kernels (decode_attention.cu, prefill_attention.cu): the textbook
// softmax(q·Kᵀ * scale)·V per (row, query head), in position order, fp32 math on the bf16 inputs widened to
// fp32, one bf16 rounding of each output element. Host pointers throughout.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cuda/attention.h"

namespace sluice::cuda {

void attention_reference(const DecodeAttentionParams& p) {
  if (p.num_tokens == 0 || p.n_heads == 0 || p.kv_heads == 0 || p.head_dim == 0 || p.block_size == 0) return;
  const std::uint32_t group = p.n_heads / p.kv_heads;
  const std::size_t D = p.head_dim;
  const std::size_t head_stride = std::size_t{p.block_size} * D;
  const std::size_t block_stride = head_stride * p.kv_heads;
  std::vector<float> q(D), acc(D), weights;

  for (std::uint32_t i = 0; i < p.num_tokens; ++i) {
    const std::size_t row = p.tokens != nullptr ? static_cast<std::size_t>(p.tokens[i]) : i;
    __nv_bfloat16* out_row = p.out + row * p.out_stride;
    const std::int32_t pos = p.positions[row];
    if (pos < 0) {  // no position to attend: the kernels define the output as zero
      std::fill(out_row, out_row + std::size_t{p.n_heads} * D, __float2bfloat16(0.0f));
      continue;
    }
    const std::size_t n = static_cast<std::size_t>(pos) + 1;
    const std::int32_t* table = p.block_tables + p.table_offset[row];
    weights.resize(n);
    for (std::uint32_t h = 0; h < p.n_heads; ++h) {
      const std::size_t head_off = std::size_t{h / group} * head_stride;
      const __nv_bfloat16* q_src = p.q + row * p.q_stride + h * D;
      for (std::size_t d = 0; d < D; ++d) q[d] = __bfloat162float(q_src[d]);

      float mx = -INFINITY;
      for (std::size_t j = 0; j < n; ++j) {
        const __nv_bfloat16* k = p.k_cache + static_cast<std::size_t>(table[j / p.block_size]) * block_stride +
                                 head_off + (j % p.block_size) * D;
        float s = 0.0f;
        for (std::size_t d = 0; d < D; ++d) s += q[d] * __bfloat162float(k[d]);
        weights[j] = s * p.scale;
        mx = std::max(mx, weights[j]);
      }
      float sum = 0.0f;
      for (std::size_t j = 0; j < n; ++j) {
        weights[j] = std::exp(weights[j] - mx);
        sum += weights[j];
      }

      std::fill(acc.begin(), acc.end(), 0.0f);
      for (std::size_t j = 0; j < n; ++j) {
        const __nv_bfloat16* v = p.v_cache + static_cast<std::size_t>(table[j / p.block_size]) * block_stride +
                                 head_off + (j % p.block_size) * D;
        const float w = weights[j] / sum;
        for (std::size_t d = 0; d < D; ++d) acc[d] += w * __bfloat162float(v[d]);
      }
      for (std::size_t d = 0; d < D; ++d) out_row[h * D + d] = __float2bfloat16(acc[d]);
    }
  }
}

}  // namespace sluice::cuda
