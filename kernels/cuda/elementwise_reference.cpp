// CPU references of the per-token kernels (elementwise.h): plain loops over host arrays, written from the
// contract rather than from the kernels, in fp32 with the same single rounding to bf16 at the end.
#include <cuda_bf16.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "engine/sampling/philox.h"
#include "kernels/cuda/elementwise.h"

namespace sluice::cuda {
namespace {

float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__nv_bfloat16 to_bf(float v) { return __float2bfloat16(v); }

}  // namespace

void embedding_reference(const EmbeddingParams& p) {
  for (std::uint32_t t = 0; t < p.num_tokens; ++t) {
    const std::int32_t id = p.ids[t];
    float* out = p.out + static_cast<std::size_t>(t) * p.hidden;
    const bool valid = id >= 0 && static_cast<std::uint32_t>(id) < p.vocab;
    for (std::uint32_t c = 0; c < p.hidden; ++c) {
      out[c] = valid ? to_f(p.table[static_cast<std::size_t>(id) * p.hidden + c]) : 0.0f;
    }
  }
}

void rmsnorm_reference(const RmsNormParams& p) {
  for (std::uint32_t r = 0; r < p.rows; ++r) {
    float* x = p.residual + static_cast<std::size_t>(r) * p.hidden;
    if (p.delta != nullptr) {
      const __nv_bfloat16* d = p.delta + static_cast<std::size_t>(r) * p.hidden;
      for (std::uint32_t c = 0; c < p.hidden; ++c) {
        const float add = p.delta_bias != nullptr ? to_f(d[c]) + to_f(p.delta_bias[c]) : to_f(d[c]);
        x[c] += add;
      }
    }
    float ss = 0.0f;
    for (std::uint32_t c = 0; c < p.hidden; ++c) ss += x[c] * x[c];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(p.hidden) + p.eps);
    __nv_bfloat16* out = p.out + static_cast<std::size_t>(r) * p.hidden;
    for (std::uint32_t c = 0; c < p.hidden; ++c) out[c] = to_bf(x[c] * inv * to_f(p.weight[c]));
  }
}

void rope_reference(const RopeParams& p) {
  const std::uint32_t half = p.head_dim / 2;
  for (std::uint32_t t = 0; t < p.num_tokens; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (std::uint32_t h = 0; h < p.n_heads + p.kv_heads; ++h) {
      __nv_bfloat16* v = h < p.n_heads ? p.q + static_cast<std::size_t>(t) * p.q_stride + h * p.head_dim
                                       : p.k + static_cast<std::size_t>(t) * p.k_stride + (h - p.n_heads) * p.head_dim;
      for (std::uint32_t i = 0; i < half; ++i) {
        const float angle = pos * p.inv_freq[i];
        const float c = std::cos(angle);
        const float s = std::sin(angle);
        const std::uint32_t ia = p.interleaved ? 2 * i : i;
        const std::uint32_t ib = p.interleaved ? 2 * i + 1 : i + half;
        const float a = to_f(v[ia]);
        const float b = to_f(v[ib]);
        v[ia] = to_bf(a * c - b * s);
        v[ib] = to_bf(b * c + a * s);
      }
    }
  }
  if (p.cache != nullptr) kv_write_reference(*p.cache);
}

void swiglu_reference(const SwiGluParams& p) {
  for (std::uint32_t t = 0; t < p.num_tokens; ++t) {
    const __nv_bfloat16* gu = p.gate_up + static_cast<std::size_t>(t) * 2 * p.ffn;
    __nv_bfloat16* out = p.out + static_cast<std::size_t>(t) * p.ffn;
    for (std::uint32_t i = 0; i < p.ffn; ++i) {
      const float g = to_f(gu[i]);
      const float u = to_f(gu[p.ffn + i]);
      out[i] = to_bf(g / (1.0f + std::exp(-g)) * u);
    }
  }
}

void kv_write_reference(const KvWriteParams& p) {
  const std::int64_t slots = static_cast<std::int64_t>(p.num_blocks) * p.block_size;
  for (std::uint32_t t = 0; t < p.num_tokens; ++t) {
    const std::int32_t slot = p.slot_mapping[t];
    if (slot < 0 || slot >= slots) continue;
    const std::size_t block = static_cast<std::size_t>(slot) / p.block_size;
    const std::size_t in_block = static_cast<std::size_t>(slot) % p.block_size;
    for (std::uint32_t g = 0; g < p.kv_heads; ++g) {
      const std::size_t dst = ((block * p.kv_heads + g) * p.block_size + in_block) * p.head_dim;
      for (std::uint32_t d = 0; d < p.head_dim; ++d) {
        p.k_cache[dst + d] = p.k[static_cast<std::size_t>(t) * p.k_stride + g * p.head_dim + d];
        p.v_cache[dst + d] = p.v[static_cast<std::size_t>(t) * p.v_stride + g * p.head_dim + d];
      }
    }
  }
}

void gather_rows_reference(const GatherRowsParams& p) {
  for (std::uint32_t r = 0; r < p.num_rows; ++r) {
    if (p.rows[r] < 0) continue;
    for (std::uint32_t c = 0; c < p.width; ++c) {
      p.out[static_cast<std::size_t>(r) * p.out_stride + c] =
          p.in[static_cast<std::size_t>(p.rows[r]) * p.in_stride + c];
    }
  }
}

void random_fill_reference(const RandomFillParams& p) {
  for (std::uint64_t i = 0; i < p.count; ++i) {
    const float u = philox::uniform(p.seed, static_cast<std::uint32_t>(i >> 32), static_cast<std::uint32_t>(i));
    p.data[i] = to_bf(p.scale * (2.0f * u - 1.0f));
  }
}

}  // namespace sluice::cuda
