#include "kernels/cpu/weight_view.h"

#include <cmath>
#include <cstring>

namespace sluice::kernels {

const char* weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::f32:
      return "f32";
    case WeightType::q4_0:
      return "q4_0";
    case WeightType::q4_1:
      return "q4_1";
    case WeightType::q8_0:
      return "q8_0";
  }
  return "unknown";
}

float half_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  std::uint32_t out;
  if (exponent == 0) {
    if (mantissa == 0) {
      out = sign;
    } else {
      const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
      return sign != 0 ? -magnitude : magnitude;
    }
  } else if (exponent == 0x1F) {
    out = sign | 0x7F800000u | (mantissa << 13);
  } else {
    out = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

namespace {

float load_half(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return half_to_float(v);
}

}  // namespace

// The fused multiply-adds mirror the matmul's dequantization exactly (std::fma is correctly rounded on
// every path), so an embedding row equals the tied output head's view of the same row.
void dequantize_row(const WeightView& w, std::uint32_t r, float* out) {
  const std::byte* src = w.row(r);
  const std::uint32_t blocks = w.cols / kQuantBlock;
  switch (w.type) {
    case WeightType::f32:
      std::memcpy(out, src, static_cast<std::size_t>(w.cols) * sizeof(float));
      return;
    case WeightType::q4_0:
      for (std::uint32_t b = 0; b < blocks; ++b, src += 18, out += 32) {
        const float d = load_half(src);
        const auto* qs = reinterpret_cast<const std::uint8_t*>(src + 2);
        for (int j = 0; j < 16; ++j) {
          out[j] = static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8) * d;
          out[j + 16] = static_cast<float>(static_cast<int>(qs[j] >> 4) - 8) * d;
        }
      }
      return;
    case WeightType::q4_1:
      for (std::uint32_t b = 0; b < blocks; ++b, src += 20, out += 32) {
        const float d = load_half(src);
        const float m = load_half(src + 2);
        const auto* qs = reinterpret_cast<const std::uint8_t*>(src + 4);
        for (int j = 0; j < 16; ++j) {
          out[j] = std::fma(static_cast<float>(qs[j] & 0x0F), d, m);
          out[j + 16] = std::fma(static_cast<float>(qs[j] >> 4), d, m);
        }
      }
      return;
    case WeightType::q8_0:
      for (std::uint32_t b = 0; b < blocks; ++b, src += 34, out += 32) {
        const float d = load_half(src);
        const auto* qs = reinterpret_cast<const std::int8_t*>(src + 2);
        for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(qs[j]) * d;
      }
      return;
  }
}

}  // namespace sluice::kernels
