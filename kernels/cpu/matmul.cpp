// Tiled dot products of weight rows with activation rows; see matmul.h for the fixed per-element order.
//
// Loop nest: token blocks of kTokenBlock (so their activations stay in L2) → rows → tiles. A tile is R rows
// × T tokens held in 2·R·T AVX2 accumulators: decode (one token) uses 4 × 1 tiles to keep several
// independent FMA chains in flight; several tokens use 1 × 4 tiles so each dequantized weight block feeds
// four tokens. Tails use 1 × 1 tiles. All tile shapes execute the same operations per element.
#include "kernels/cpu/matmul.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/isa.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define SLUICE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define SLUICE_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline
#endif

namespace sluice::kernels {

namespace {

constexpr std::uint32_t kTokenBlock = 64;

// ---- scalar path: one element at a time, blocks dequantized exactly as weight_view.cpp does ----

float dot_scalar(const WeightView& w, std::uint32_t r, const float* x) {
  const std::byte* row = w.row(r);
  float s = 0.0f;
  if (w.type == WeightType::f32) {
    const auto* wr = reinterpret_cast<const float*>(row);
    for (std::uint32_t c = 0; c < w.cols; ++c) {
      float v;
      std::memcpy(&v, wr + c, sizeof v);
      s += v * x[c];
    }
    return s;
  }
  float block[kQuantBlock];
  WeightView one = w;
  one.data = row;
  one.rows = 1;
  one.cols = kQuantBlock;
  const std::size_t bb = block_bytes(w.type);
  for (std::uint32_t b = 0; b < w.cols / kQuantBlock; ++b) {
    one.data = row + b * bb;
    dequantize_row(one, 0, block);
    for (std::uint32_t j = 0; j < kQuantBlock; ++j) s += block[j] * x[b * kQuantBlock + j];
  }
  return s;
}

void tile_scalar(const WeightView& w, std::uint32_t r0, int R, const float* x, std::size_t xs, int T, float* out) {
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) out[i * T + j] = dot_scalar(w, r0 + i, x + j * xs);
  }
}

#if defined(__x86_64__)

SLUICE_AVX2_INLINE float hsum(__m256 a0, __m256 a1) {
  const __m256 s = _mm256_add_ps(a0, a1);
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
}

SLUICE_AVX2_INLINE __m256 load_half_broadcast(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return _mm256_set1_ps(_cvtsh_ss(v));
}

// Scales of one block, and chunk c (elements 8c..8c+7) of it as floats.
struct BlockScales {
  __m256 d;
  __m256 m;
};

template <WeightType WT>
SLUICE_AVX2_INLINE BlockScales block_scales(const std::byte* blk) {
  BlockScales s;
  s.d = load_half_broadcast(blk);
  if constexpr (WT == WeightType::q4_1) {
    s.m = load_half_broadcast(blk + 2);
  } else {
    s.m = _mm256_setzero_ps();
  }
  return s;
}

template <WeightType WT, int C>
SLUICE_AVX2_INLINE __m256 block_chunk(const std::byte* blk, const BlockScales& s) {
  if constexpr (WT == WeightType::q8_0) {
    const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * C));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), s.d);
  } else {
    constexpr int kQs = WT == WeightType::q4_1 ? 4 : 2;
    const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + kQs + 8 * (C & 1)));
    __m256i q = _mm256_cvtepu8_epi32(b8);
    q = C < 2 ? _mm256_and_si256(q, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(q, 4);
    if constexpr (WT == WeightType::q4_0) {
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(8))), s.d);
    } else {
      return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), s.d, s.m);
    }
  }
}

template <WeightType WT, int R, int T, int C>
SLUICE_AVX2_INLINE void block_step(const std::byte* const* blk, const BlockScales* sc, const float* x, std::size_t xs,
                                   std::uint32_t col, __m256 (&acc)[R][T][2]) {
  for (int i = 0; i < R; ++i) {
    const __m256 wv = block_chunk<WT, C>(blk[i], sc[i]);
    for (int j = 0; j < T; ++j) {
      const __m256 xv = _mm256_loadu_ps(x + j * xs + col + 8 * C);
      acc[i][j][C & 1] = _mm256_fmadd_ps(wv, xv, acc[i][j][C & 1]);
    }
  }
}

template <WeightType WT, int R, int T>
SLUICE_AVX2 void tile_avx2(const WeightView& w, std::uint32_t r0, const float* x, std::size_t xs, float* out) {
  __m256 acc[R][T][2];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
  }
  if constexpr (WT == WeightType::f32) {
    const float* rows[R];
    for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const float*>(w.row(r0 + i));
    const std::uint32_t n8 = w.cols / 8;
    std::uint32_t k = 0;
    for (; k + 2 <= n8; k += 2) {
      for (int h = 0; h < 2; ++h) {
        for (int i = 0; i < R; ++i) {
          const __m256 wv = _mm256_loadu_ps(rows[i] + 8 * (k + h));
          for (int j = 0; j < T; ++j) {
            acc[i][j][h] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + j * xs + 8 * (k + h)), acc[i][j][h]);
          }
        }
      }
    }
    if (k < n8) {
      for (int i = 0; i < R; ++i) {
        const __m256 wv = _mm256_loadu_ps(rows[i] + 8 * k);
        for (int j = 0; j < T; ++j) {
          acc[i][j][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + j * xs + 8 * k), acc[i][j][0]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        float s = hsum(acc[i][j][0], acc[i][j][1]);
        for (std::uint32_t c = n8 * 8; c < w.cols; ++c) {
          float wc;
          std::memcpy(&wc, rows[i] + c, sizeof wc);
          s = std::fma(wc, x[j * xs + c], s);
        }
        out[i * T + j] = s;
      }
    }
  } else {
    constexpr std::size_t bb = block_bytes(WT);
    const std::uint32_t nb = w.cols / kQuantBlock;
    const std::byte* blk[R];
    for (int i = 0; i < R; ++i) blk[i] = w.row(r0 + i);
    for (std::uint32_t b = 0; b < nb; ++b) {
      BlockScales sc[R];
      for (int i = 0; i < R; ++i) sc[i] = block_scales<WT>(blk[i]);
      const std::uint32_t col = b * kQuantBlock;
      block_step<WT, R, T, 0>(blk, sc, x, xs, col, acc);
      block_step<WT, R, T, 1>(blk, sc, x, xs, col, acc);
      block_step<WT, R, T, 2>(blk, sc, x, xs, col, acc);
      block_step<WT, R, T, 3>(blk, sc, x, xs, col, acc);
      for (int i = 0; i < R; ++i) blk[i] += bb;
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) out[i * T + j] = hsum(acc[i][j][0], acc[i][j][1]);
    }
  }
}

using TileFn = void (*)(const WeightView&, std::uint32_t, const float*, std::size_t, float*);

struct TileSet {
  TileFn r4t1;
  TileFn r1t4;
  TileFn r1t1;
};

template <WeightType WT>
constexpr TileSet tiles_for() {
  return {&tile_avx2<WT, 4, 1>, &tile_avx2<WT, 1, 4>, &tile_avx2<WT, 1, 1>};
}

const TileSet& avx2_tiles(WeightType t) {
  static constexpr TileSet kF32 = tiles_for<WeightType::f32>();
  static constexpr TileSet kQ40 = tiles_for<WeightType::q4_0>();
  static constexpr TileSet kQ41 = tiles_for<WeightType::q4_1>();
  static constexpr TileSet kQ80 = tiles_for<WeightType::q8_0>();
  switch (t) {
    case WeightType::q4_0:
      return kQ40;
    case WeightType::q4_1:
      return kQ41;
    case WeightType::q8_0:
      return kQ80;
    case WeightType::f32:
      break;
  }
  return kF32;
}

#endif  // __x86_64__

// dots[i * T + j] = W[r0 + i] · x[j * xs] for an R × T tile of a shape for_each_tile produces.
void compute_tile(const WeightView& w, std::uint32_t r0, int R, const float* x, std::size_t xs, int T, float* dots) {
#if defined(__x86_64__)
  if (active_isa() == Isa::avx2) {
    const TileSet& ts = avx2_tiles(w.type);
    if (R == 4 && T == 1) {
      ts.r4t1(w, r0, x, xs, dots);
    } else if (R == 1 && T == 4) {
      ts.r1t4(w, r0, x, xs, dots);
    } else {
      for (int i = 0; i < R; ++i) {
        for (int j = 0; j < T; ++j) ts.r1t1(w, r0 + static_cast<std::uint32_t>(i), x + j * xs, xs, dots + i * T + j);
      }
    }
    return;
  }
#endif
  tile_scalar(w, r0, R, x, xs, T, dots);
}

// Calls visit(r0, R, t0, T) for tiles covering rows [row_begin, row_end) × tokens [0, n_tokens), in the
// loop nest described at the top of this file. R * T <= 4.
template <class Visit>
void for_each_tile(std::uint32_t n_tokens, std::uint32_t row_begin, std::uint32_t row_end, Visit&& visit) {
  if (n_tokens == 1) {
    std::uint32_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) visit(r, 4, 0u, 1);
    for (; r < row_end; ++r) visit(r, 1, 0u, 1);
    return;
  }
  for (std::uint32_t tb = 0; tb < n_tokens; tb += kTokenBlock) {
    const std::uint32_t te = n_tokens - tb < kTokenBlock ? n_tokens : tb + kTokenBlock;
    for (std::uint32_t r = row_begin; r < row_end; ++r) {
      std::uint32_t t = tb;
      for (; t + 4 <= te; t += 4) visit(r, 1, t, 4);
      for (; t < te; ++t) visit(r, 1, t, 1);
    }
  }
}

}  // namespace

void matmul_rows(const MatmulParams& p, std::uint32_t row_begin, std::uint32_t row_end) {
  float dots[4];
  for_each_tile(p.n_tokens, row_begin, row_end, [&](std::uint32_t r0, int R, std::uint32_t t0, int T) {
    compute_tile(p.w, r0, R, p.x + t0 * p.x_stride, p.x_stride, T, dots);
    for (int i = 0; i < R; ++i) {
      const std::uint32_t r = r0 + static_cast<std::uint32_t>(i);
      for (int j = 0; j < T; ++j) {
        float v = dots[i * T + j];
        if (p.bias != nullptr) v = v + p.bias[r];
        float& y = p.y[(t0 + static_cast<std::uint32_t>(j)) * p.y_stride + r];
        y = p.accumulate ? y + v : v;
      }
    }
  });
}

void swiglu_rows(const SwiGluParams& p, std::uint32_t row_begin, std::uint32_t row_end) {
  float gate[4];
  float up[4];
  for_each_tile(p.n_tokens, row_begin, row_end, [&](std::uint32_t r0, int R, std::uint32_t t0, int T) {
    const float* x = p.x + t0 * p.x_stride;
    compute_tile(p.gate, r0, R, x, p.x_stride, T, gate);
    compute_tile(p.up, r0, R, x, p.x_stride, T, up);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        const float g = gate[i * T + j];
        const float silu = g / (1.0f + std::exp(-g));
        p.y[(t0 + static_cast<std::uint32_t>(j)) * p.y_stride + r0 + static_cast<std::uint32_t>(i)] =
            silu * up[i * T + j];
      }
    }
  });
}

}  // namespace sluice::kernels
