// A weight matrix as the CPU kernels read it: `rows` rows of `cols` elements, row r starting at
// data + r * row_bytes, each row either fp32 or a run of GGML quantization blocks of 32 elements
// (cols % 32 == 0 for the block types; low nibbles hold elements 0..15 of a block, high nibbles 16..31):
//   q4_0: 18 bytes = f16 d, 16 nibble bytes;          w = (q - 8) * d
//   q4_1: 20 bytes = f16 d, f16 m, 16 nibble bytes;   w = q * d + m
//   q8_0: 34 bytes = f16 d, 32 int8;                  w = q * d
// Blocks need no alignment. The view does not own the bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::kernels {

enum class WeightType : std::uint8_t { f32, q4_0, q4_1, q8_0 };

constexpr std::uint32_t kQuantBlock = 32;

constexpr std::size_t block_bytes(WeightType t) {
  switch (t) {
    case WeightType::q4_0:
      return 18;
    case WeightType::q4_1:
      return 20;
    case WeightType::q8_0:
      return 34;
    case WeightType::f32:
      return 4;
  }
  return 0;
}

// Bytes one row of `cols` elements occupies; 0 when cols is not a whole number of blocks.
constexpr std::size_t row_bytes_for(WeightType t, std::size_t cols) {
  if (t == WeightType::f32) return cols * sizeof(float);
  if (cols % kQuantBlock != 0) return 0;
  return cols / kQuantBlock * block_bytes(t);
}

const char* weight_type_name(WeightType t);

struct WeightView {
  WeightType type = WeightType::f32;
  std::uint32_t rows = 0;
  std::uint32_t cols = 0;
  const std::byte* data = nullptr;
  std::size_t row_bytes = 0;

  const std::byte* row(std::uint32_t r) const { return data + static_cast<std::size_t>(r) * row_bytes; }
};

// IEEE half to float, exact (subnormals, infinities and NaN included).
float half_to_float(std::uint16_t bits);

// Converts row `r` of `w` to `w.cols` floats in `out` (embedding lookup). Same values the matmul uses.
void dequantize_row(const WeightView& w, std::uint32_t r, float* out);

}  // namespace sluice::kernels
