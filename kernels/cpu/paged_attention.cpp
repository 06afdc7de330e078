#include "kernels/cpu/paged_attention.h"

#include <cmath>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/softmax.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define SLUICE_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace sluice::kernels {

namespace {

float dot_scalar(const float* a, const float* b, std::uint32_t n) {
  float s = 0.0f;
  for (std::uint32_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_scalar(float a, const float* x, float* y, std::uint32_t n) {
  for (std::uint32_t i = 0; i < n; ++i) y[i] += a * x[i];
}

#if defined(__x86_64__)
SLUICE_AVX2 float dot_avx2(const float* a, const float* b, std::uint32_t n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  std::uint32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= n) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  const __m256 s = _mm256_add_ps(acc0, acc1);
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 h = _mm_add_ps(q, _mm_movehl_ps(q, q));
  float r = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
  for (; i < n; ++i) r = std::fma(a[i], b[i], r);
  return r;
}

SLUICE_AVX2 void axpy_avx2(float a, const float* x, float* y, std::uint32_t n) {
  const __m256 av = _mm256_set1_ps(a);
  std::uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}
#endif

}  // namespace

void paged_attention_rows(const PagedAttentionParams& p, std::uint32_t item_begin, std::uint32_t item_end,
                          float* scratch) {
  float (*dot)(const float*, const float*, std::uint32_t) = &dot_scalar;
  void (*axpy)(float, const float*, float*, std::uint32_t) = &axpy_scalar;
#if defined(__x86_64__)
  if (active_isa() == Isa::avx2) {
    dot = &dot_avx2;
    axpy = &axpy_avx2;
  }
#endif
  const std::uint32_t group = p.n_heads / p.kv_heads;
  const std::size_t head_stride = static_cast<std::size_t>(p.block_size) * p.head_dim;
  const std::size_t block_stride = head_stride * p.kv_heads;
  for (std::uint32_t item = item_begin; item < item_end; ++item) {
    const std::uint32_t t = item / p.n_heads;
    const std::uint32_t h = item % p.n_heads;
    const std::uint32_t g = h / group;
    const std::int32_t pos = p.positions[t];
    std::int32_t lo = 0;
    if (p.sliding_window != 0 && pos >= static_cast<std::int32_t>(p.sliding_window)) {
      lo = pos - static_cast<std::int32_t>(p.sliding_window) + 1;
    }
    const std::int32_t* table = p.block_table + p.block_table_offset[t];
    const float* q = p.q + t * p.q_stride + h * p.head_dim;
    const std::uint32_t n = static_cast<std::uint32_t>(pos - lo + 1);
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint32_t j = static_cast<std::uint32_t>(lo) + k;
      const float* key = p.k_cache + static_cast<std::size_t>(table[j / p.block_size]) * block_stride +
                         g * head_stride + (j % p.block_size) * p.head_dim;
      scratch[k] = dot(q, key, p.head_dim) * p.scale;
    }
    softmax_inplace(scratch, n);
    float* out = p.out + t * p.out_stride + h * p.head_dim;
    for (std::uint32_t d = 0; d < p.head_dim; ++d) out[d] = 0.0f;
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint32_t j = static_cast<std::uint32_t>(lo) + k;
      const float* val = p.v_cache + static_cast<std::size_t>(table[j / p.block_size]) * block_stride +
                         g * head_stride + (j % p.block_size) * p.head_dim;
      axpy(scratch[k], val, out, p.head_dim);
    }
  }
}

}  // namespace sluice::kernels
