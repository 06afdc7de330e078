// Tensor type table and block conversion, checked on synthetic blocks against a reference written from the
// format description (ggml-common.h block layouts), independent of the engine's code paths.
#include "engine/model/tensor_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace sluice::gguf {
namespace {

// Reference half decoding straight from IEEE 754 binary16's definition.
double ref_half(std::uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  double v;
  if (exponent == 0) {
    v = std::ldexp(mantissa / 1024.0, -14);
  } else if (exponent == 31) {
    v = mantissa == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  }
  return sign ? -v : v;
}

void put_u16(std::vector<std::byte>& b, std::uint16_t v) {
  b.push_back(static_cast<std::byte>(v & 0xFF));
  b.push_back(static_cast<std::byte>(v >> 8));
}

// A finite, normal half in a plausible scale range (exponents 2^-10 .. 2^1), random sign.
std::uint16_t random_scale(std::mt19937& rng) {
  const std::uint16_t sign = (rng() & 1) ? 0x8000 : 0;
  const std::uint16_t exponent = static_cast<std::uint16_t>(5 + rng() % 12);
  return static_cast<std::uint16_t>(sign | (exponent << 10) | (rng() & 0x3FF));
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-6 * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

TEST(TensorTypes, TableMatchesGgml) {
  struct Row {
    std::uint32_t id;
    const char* name;
    std::uint32_t block, bytes;
  };
  // ggml's ids and block geometry (ggml.h, ggml-common.h).
  const Row rows[] = {{0, "F32", 1, 4},       {1, "F16", 1, 2},     {2, "Q4_0", 32, 18},
                      {3, "Q4_1", 32, 20},    {8, "Q8_0", 32, 34},  {12, "Q4_K", 256, 144},
                      {14, "Q6_K", 256, 210}, {30, "BF16", 1, 2},   {23, "IQ4_XS", 256, 136},
                      {28, "F64", 1, 8},      {39, "MXFP4", 32, 17}};
  for (const auto& r : rows) {
    const TensorTypeTraits* t = find_tensor_type(r.id);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->name, r.name);
    EXPECT_EQ(t->block_size, r.block);
    EXPECT_EQ(t->block_bytes, r.bytes);
    EXPECT_EQ(static_cast<std::uint32_t>(t->type), r.id);
  }
  // Removed or never-defined ids.
  for (std::uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 42u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_EQ(find_tensor_type(id), nullptr) << id;
  }
  EXPECT_EQ(tensor_type_name(TensorType::Q4_1), "Q4_1");
  EXPECT_TRUE(tensor_type_traits(TensorType::BF16).dequantizable);
  EXPECT_FALSE(tensor_type_traits(TensorType::Q6_K).dequantizable);
}

TEST(TensorTypes, HalfConversionMatchesDefinitionForEveryPattern) {
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float got = f16_to_f32(static_cast<std::uint16_t>(h));
    const double want = ref_half(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << "half bits " << h;
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << h;
    }
  }
}

TEST(TensorTypes, Bfloat16IsTheTopHalfOfAFloat) {
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x0000), 0.0f);
  EXPECT_TRUE(std::isinf(bf16_to_f32(0x7F80)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
  EXPECT_EQ(bf16_to_f32(0x3E20), 0.15625f);  // 0x3E200000
}

TEST(TensorTypes, Q4_0BlocksMatchReference) {
  std::mt19937 rng(7);
  const int n_blocks = 5;
  std::vector<std::byte> src;
  std::vector<double> want(n_blocks * 32);
  for (int b = 0; b < n_blocks; ++b) {
    const std::uint16_t d = random_scale(rng);
    put_u16(src, d);
    std::uint8_t qs[16];
    for (auto& q : qs) q = static_cast<std::uint8_t>(rng());
    for (int j = 0; j < 16; ++j) src.push_back(static_cast<std::byte>(qs[j]));
    for (int e = 0; e < 32; ++e) {
      const int q = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
      want[b * 32 + e] = (q - 8) * ref_half(d);
    }
  }
  ASSERT_EQ(src.size(), 18u * n_blocks);
  std::vector<float> out(want.size());
  ASSERT_TRUE(dequantize(TensorType::Q4_0, src, out));
  expect_close(out, want);
}

TEST(TensorTypes, Q4_1BlocksMatchReference) {
  std::mt19937 rng(11);
  const int n_blocks = 6;
  std::vector<std::byte> src;
  std::vector<double> want(n_blocks * 32);
  for (int b = 0; b < n_blocks; ++b) {
    const std::uint16_t d = random_scale(rng);
    const std::uint16_t m = random_scale(rng);
    put_u16(src, d);
    put_u16(src, m);
    std::uint8_t qs[16];
    for (auto& q : qs) q = static_cast<std::uint8_t>(rng());
    for (int j = 0; j < 16; ++j) src.push_back(static_cast<std::byte>(qs[j]));
    for (int e = 0; e < 32; ++e) {
      const int q = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
      want[b * 32 + e] = q * ref_half(d) + ref_half(m);
    }
  }
  ASSERT_EQ(src.size(), 20u * n_blocks);
  std::vector<float> out(want.size());
  ASSERT_TRUE(dequantize(TensorType::Q4_1, src, out));
  expect_close(out, want);
}

TEST(TensorTypes, Q8_0BlocksMatchReference) {
  std::mt19937 rng(13);
  const int n_blocks = 4;
  std::vector<std::byte> src;
  std::vector<double> want(n_blocks * 32);
  for (int b = 0; b < n_blocks; ++b) {
    const std::uint16_t d = random_scale(rng);
    put_u16(src, d);
    for (int e = 0; e < 32; ++e) {
      // Cover the extremes -128 and 127 in the first block.
      const auto q = static_cast<std::int8_t>(b == 0 && e == 0 ? -128 : b == 0 && e == 1 ? 127 : rng());
      src.push_back(static_cast<std::byte>(q));
      want[b * 32 + e] = q * ref_half(d);
    }
  }
  ASSERT_EQ(src.size(), 34u * n_blocks);
  std::vector<float> out(want.size());
  ASSERT_TRUE(dequantize(TensorType::Q8_0, src, out));
  expect_close(out, want);
}

TEST(TensorTypes, F16Bf16F32RowsMatchReference) {
  std::mt19937 rng(17);
  const std::size_t n = 37;  // unblocked types take any length
  std::vector<std::byte> f16, bf16, f32;
  std::vector<double> want16(n), want_bf(n), want32(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto h = random_scale(rng);
    put_u16(f16, h);
    want16[i] = ref_half(h);
    // bf16: sign, 8-bit exponent, 7-bit mantissa; reference from its fields.
    const std::uint16_t sign = rng() & 1, exponent = 100 + rng() % 50, mantissa = rng() & 0x7F;
    put_u16(bf16, static_cast<std::uint16_t>((sign << 15) | (exponent << 7) | mantissa));
    want_bf[i] = (sign ? -1.0 : 1.0) * std::ldexp(1.0 + mantissa / 128.0, exponent - 127);
    const float x = static_cast<float>(rng()) / 1e6f - 2000.0f;
    const auto* p = reinterpret_cast<const std::byte*>(&x);
    f32.insert(f32.end(), p, p + 4);
    want32[i] = x;
  }
  std::vector<float> out(n);
  ASSERT_TRUE(dequantize(TensorType::F16, f16, out));
  expect_close(out, want16);
  ASSERT_TRUE(dequantize(TensorType::BF16, bf16, out));
  expect_close(out, want_bf);
  ASSERT_TRUE(dequantize(TensorType::F32, f32, out));
  expect_close(out, want32);
}

TEST(TensorTypes, RejectsMismatchedSizesAndUnsupportedTypes) {
  std::vector<std::byte> src(18 * 2);
  std::vector<float> out(64, -1.0f);
  EXPECT_FALSE(dequantize(TensorType::Q4_0, std::span(src).first(35), out));  // short by one byte
  EXPECT_FALSE(dequantize(TensorType::Q4_0, src, std::span(out).first(40)));  // not whole blocks
  EXPECT_FALSE(dequantize(TensorType::Q4_1, src, out));                       // Q4_1 needs 40 bytes
  EXPECT_FALSE(dequantize(TensorType::Q6_K, src, out));                       // no converter
  EXPECT_FALSE(dequantize(static_cast<TensorType>(4), src, out));             // removed id
  for (float v : out) EXPECT_EQ(v, -1.0f);                                    // nothing written on failure
  EXPECT_TRUE(dequantize(TensorType::Q4_0, {}, {}));
}

}  // namespace
}  // namespace sluice::gguf
