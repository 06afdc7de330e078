// GGML tensor element types as GGUF files store them: ids, block geometry, names, and the conversion of
// blocks of the common types (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to float.
//
// The ids are ggml's `enum ggml_type`; gaps are ids ggml has removed (Q4_2, Q4_3, the Q4_0_x_y and
// IQ4_NL_x_y repacked layouts), which a file must not use. Every known type has a block geometry even when
// this engine cannot convert it, so a file's sizes can be checked before anything reads the data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::gguf {

enum class TensorType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

// Storage geometry of one type: `block_size` consecutive elements (along dims[0]) occupy `block_bytes`.
struct TensorTypeTraits {
  TensorType type;
  std::string_view name;
  std::uint32_t block_size;
  std::uint32_t block_bytes;
  bool dequantizable;  // dequantize() below converts it
};

// nullptr for an id ggml does not define (or has removed).
const TensorTypeTraits* find_tensor_type(std::uint32_t id);

// Traits of a valid enumerator; never null for the enumerators above.
const TensorTypeTraits& tensor_type_traits(TensorType type);

std::string_view tensor_type_name(TensorType type);

float f16_to_f32(std::uint16_t bits);
float bf16_to_f32(std::uint16_t bits);

// Converts whole blocks of `type` to float. `out.size()` is the element count; it must be a multiple of the
// block size and `src.size()` must be exactly the bytes those blocks occupy. Returns false, writing nothing,
// when the type is not dequantizable or the sizes disagree. `src` needs no particular alignment.
bool dequantize(TensorType type, std::span<const std::byte> src, std::span<float> out);

}  // namespace sluice::gguf
