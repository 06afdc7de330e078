// ModelSpec: the shapes and options of a Llama-family decoder (Llama 2/3, SmolLM2, Mistral, Qwen2), read
// from a GGUF file's metadata or from a Hugging Face config.json, and validated once so that backends can
// size buffers from it without further checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/util/result.h"

namespace sluice::gguf {
class GgufFile;
}

namespace sluice {

// How RoPE pairs the dimensions of a head.
//  interleaved: pairs (2i, 2i+1) — GGUF files of llama-architecture models, whose converter permuted the
//               rows of attn_q/attn_k so that this pairing reproduces the original rotate-half model.
//  half:        pairs (i, i + head_dim/2) — Hugging Face checkpoints (rotate_half), and GGUF qwen2 files.
enum class RopeStyle : std::uint8_t { interleaved, half };

enum class RopeScaling : std::uint8_t {
  none,
  linear,  // positions divided by `factor`
  llama3,  // Llama 3.1 frequency-dependent scaling (factor, low/high frequency factors, original length)
};

struct RopeConfig {
  float theta = 10000.0f;
  RopeStyle style = RopeStyle::half;
  RopeScaling scaling = RopeScaling::none;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  std::uint32_t original_max_position = 8192;
  // Per-pair divisors of the frequencies (GGUF `rope_freqs.weight`, written by converters of Llama 3.1
  // models instead of the scaling keys); empty when absent, else head_dim / 2 entries.
  std::vector<float> freq_factors;
};

struct ModelSpec {
  std::string architecture;  // "llama", "mistral", "qwen2"
  std::string name;          // for logs; may be empty
  std::uint32_t vocab = 0;
  std::uint32_t hidden = 0;
  std::uint32_t layers = 0;
  std::uint32_t heads = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t ffn = 0;
  float rms_eps = 1e-5f;
  RopeConfig rope;
  std::uint32_t max_position = 0;
  std::uint32_t sliding_window = 0;  // 0: full causal attention
  bool tied_embeddings = false;
  bool qkv_bias = false;        // biases on q/k/v projections (Qwen2; Llama with attention_bias)
  bool output_bias = false;     // bias on the attention output projection (Llama with attention_bias)
  std::int64_t bos_token = -1;  // -1 when the model defines none
  std::vector<std::int64_t> eos_tokens;

  std::uint32_t q_dim() const { return heads * head_dim; }
  std::uint32_t kv_dim() const { return kv_heads * head_dim; }
};

struct ModelError {
  std::string message;  // names the file and the key or tensor at fault
};

// Checks shapes and options for consistency and for limits the backends rely on (all dimensions non-zero,
// heads divisible by kv_heads, even head_dim, finite positive eps/theta, sizes that fit 32-bit indexing).
// `source` names the file in messages.
Status<ModelError> validate(const ModelSpec& spec, const std::string& source);

// Reads `<arch>.*` keys of a GGUF file (general.architecture "llama" or "qwen2") and the tensor layout it
// implies (tied embeddings, biases, rope_freqs). Validated.
Result<ModelSpec, ModelError> spec_from_gguf(const gguf::GgufFile& file);

// Inverse frequencies of the RoPE pairs, head_dim / 2 entries, with scaling applied. Position p rotates pair
// i by the angle (p / linear_factor) * inv_freq[i] (the linear factor is folded into the table).
std::vector<float> rope_inv_freq(const ModelSpec& spec);

}  // namespace sluice
