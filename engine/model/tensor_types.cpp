#include "engine/model/tensor_types.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

namespace sluice::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF blocks are read as little-endian");

namespace {

// Geometry as ggml defines it (ggml-common.h); Q8_1 is ggml's 36-byte layout (two halves + 32 quants).
constexpr std::array<TensorTypeTraits, 34> kTraits{{
    {TensorType::F32, "F32", 1, 4, true},
    {TensorType::F16, "F16", 1, 2, true},
    {TensorType::Q4_0, "Q4_0", 32, 18, true},
    {TensorType::Q4_1, "Q4_1", 32, 20, true},
    {TensorType::Q5_0, "Q5_0", 32, 22, false},
    {TensorType::Q5_1, "Q5_1", 32, 24, false},
    {TensorType::Q8_0, "Q8_0", 32, 34, true},
    {TensorType::Q8_1, "Q8_1", 32, 36, false},
    {TensorType::Q2_K, "Q2_K", 256, 84, false},
    {TensorType::Q3_K, "Q3_K", 256, 110, false},
    {TensorType::Q4_K, "Q4_K", 256, 144, false},
    {TensorType::Q5_K, "Q5_K", 256, 176, false},
    {TensorType::Q6_K, "Q6_K", 256, 210, false},
    {TensorType::Q8_K, "Q8_K", 256, 292, false},
    {TensorType::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    {TensorType::IQ2_XS, "IQ2_XS", 256, 74, false},
    {TensorType::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    {TensorType::IQ1_S, "IQ1_S", 256, 50, false},
    {TensorType::IQ4_NL, "IQ4_NL", 32, 18, false},
    {TensorType::IQ3_S, "IQ3_S", 256, 110, false},
    {TensorType::IQ2_S, "IQ2_S", 256, 82, false},
    {TensorType::IQ4_XS, "IQ4_XS", 256, 136, false},
    {TensorType::I8, "I8", 1, 1, false},
    {TensorType::I16, "I16", 1, 2, false},
    {TensorType::I32, "I32", 1, 4, false},
    {TensorType::I64, "I64", 1, 8, false},
    {TensorType::F64, "F64", 1, 8, false},
    {TensorType::IQ1_M, "IQ1_M", 256, 56, false},
    {TensorType::BF16, "BF16", 1, 2, true},
    {TensorType::TQ1_0, "TQ1_0", 256, 54, false},
    {TensorType::TQ2_0, "TQ2_0", 256, 66, false},
    {TensorType::MXFP4, "MXFP4", 32, 17, false},
    {TensorType::NVFP4, "NVFP4", 64, 36, false},
    {TensorType::Q1_0, "Q1_0", 128, 18, false},
}};

std::uint16_t load_u16(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void convert_f32(const std::byte* src, std::size_t n, float* out) {
  std::memcpy(out, src, n * sizeof(float));
}

void convert_f16(const std::byte* src, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
}

void convert_bf16(const std::byte* src, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(src + 2 * i));
}

// Q4_0 block: f16 scale d, then 16 bytes whose low nibbles are elements 0..15 and high nibbles 16..31;
// element = (nibble - 8) * d.
void convert_q4_0(const std::byte* src, std::size_t n_blocks, float* out) {
  for (std::size_t b = 0; b < n_blocks; ++b, src += 18, out += 32) {
    const float d = f16_to_f32(load_u16(src));
    const auto* qs = reinterpret_cast<const std::uint8_t*>(src + 2);
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8) * d;
      out[j + 16] = static_cast<float>(static_cast<int>(qs[j] >> 4) - 8) * d;
    }
  }
}

// Q4_1 block: f16 scale d, f16 minimum m, 16 bytes of nibbles laid out as in Q4_0; element = nibble * d + m.
void convert_q4_1(const std::byte* src, std::size_t n_blocks, float* out) {
  for (std::size_t b = 0; b < n_blocks; ++b, src += 20, out += 32) {
    const float d = f16_to_f32(load_u16(src));
    const float m = f16_to_f32(load_u16(src + 2));
    const auto* qs = reinterpret_cast<const std::uint8_t*>(src + 4);
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
      out[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// Q8_0 block: f16 scale d, then 32 signed bytes; element = q * d.
void convert_q8_0(const std::byte* src, std::size_t n_blocks, float* out) {
  for (std::size_t b = 0; b < n_blocks; ++b, src += 34, out += 32) {
    const float d = f16_to_f32(load_u16(src));
    const auto* qs = reinterpret_cast<const std::int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(qs[j]) * d;
  }
}

}  // namespace

const TensorTypeTraits* find_tensor_type(std::uint32_t id) {
  for (const auto& t : kTraits) {
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

const TensorTypeTraits& tensor_type_traits(TensorType type) {
  const TensorTypeTraits* t = find_tensor_type(static_cast<std::uint32_t>(type));
  // Only reachable with a value cast from an unchecked integer; F32's traits keep the caller memory-safe.
  return t != nullptr ? *t : kTraits[0];
}

std::string_view tensor_type_name(TensorType type) {
  const TensorTypeTraits* t = find_tensor_type(static_cast<std::uint32_t>(type));
  return t != nullptr ? t->name : std::string_view("unknown");
}

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  std::uint32_t out;
  if (exponent == 0) {
    if (mantissa == 0) {
      out = sign;
    } else {
      // Subnormal half: mantissa * 2^-24, exactly representable as a normal float.
      const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
      return sign != 0 ? -magnitude : magnitude;
    }
  } else if (exponent == 0x1F) {
    out = sign | 0x7F800000u | (mantissa << 13);  // infinity or NaN (payload kept)
  } else {
    out = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

float bf16_to_f32(std::uint16_t bits) {
  const std::uint32_t out = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

bool dequantize(TensorType type, std::span<const std::byte> src, std::span<float> out) {
  const TensorTypeTraits* t = find_tensor_type(static_cast<std::uint32_t>(type));
  if (t == nullptr || !t->dequantizable) return false;
  if (out.size() % t->block_size != 0) return false;
  const std::size_t n_blocks = out.size() / t->block_size;
  // n_blocks * block_bytes cannot wrap: out.size() floats already exist in memory.
  if (src.size() != n_blocks * t->block_bytes) return false;
  if (n_blocks == 0) return true;
  switch (type) {
    case TensorType::F32:
      convert_f32(src.data(), out.size(), out.data());
      return true;
    case TensorType::F16:
      convert_f16(src.data(), out.size(), out.data());
      return true;
    case TensorType::BF16:
      convert_bf16(src.data(), out.size(), out.data());
      return true;
    case TensorType::Q4_0:
      convert_q4_0(src.data(), n_blocks, out.data());
      return true;
    case TensorType::Q4_1:
      convert_q4_1(src.data(), n_blocks, out.data());
      return true;
    case TensorType::Q8_0:
      convert_q8_0(src.data(), n_blocks, out.data());
      return true;
    default:
      return false;
  }
}

}  // namespace sluice::gguf
