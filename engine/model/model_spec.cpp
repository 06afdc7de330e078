#include "engine/model/model_spec.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <numbers>

#include "engine/model/gguf_reader.h"

namespace sluice {

// Propagates the error of a Status/Result expression.
#define SLUICE_TRY(expr)                           \
  do {                                             \
    auto st_ = (expr);                             \
    if (!st_) return fail(std::move(st_.error())); \
  } while (0)

namespace {

constexpr std::uint64_t kMaxDim = std::uint64_t{1} << 20;  // any single dimension; keeps products in 64 bits

ModelError spec_error(const std::string& source, std::string_view what) {
  return ModelError{fmt::format("{}: {}", source, what)};
}

}  // namespace

Status<ModelError> validate(const ModelSpec& s, const std::string& source) {
  const auto bad = [&](std::string_view what) { return fail(spec_error(source, what)); };
  const std::pair<const char*, std::uint32_t> dims[] = {
      {"vocab", s.vocab},       {"hidden", s.hidden},     {"layers", s.layers}, {"heads", s.heads},
      {"kv_heads", s.kv_heads}, {"head_dim", s.head_dim}, {"ffn", s.ffn}};
  for (const auto& [name, v] : dims) {
    if (v == 0) return bad(fmt::format("{} must be positive", name));
    if (v > kMaxDim) return bad(fmt::format("{} = {} exceeds the supported maximum of {}", name, v, kMaxDim));
  }
  if (s.heads % s.kv_heads != 0) {
    return bad(fmt::format("heads ({}) is not a multiple of kv_heads ({})", s.heads, s.kv_heads));
  }
  if (s.head_dim % 2 != 0) return bad(fmt::format("head_dim ({}) must be even for RoPE", s.head_dim));
  if (std::uint64_t{s.heads} * s.head_dim > kMaxDim) return bad("heads * head_dim is too large");
  if (std::uint64_t{s.vocab} * s.hidden > std::numeric_limits<std::uint32_t>::max()) {
    return bad("vocab * hidden exceeds 2^32 elements");
  }
  if (!(s.rms_eps > 0.0f) || !std::isfinite(s.rms_eps)) return bad("rms_eps must be finite and positive");
  if (!(s.rope.theta > 0.0f) || !std::isfinite(s.rope.theta)) return bad("rope theta must be finite and positive");
  if (s.max_position == 0) return bad("max_position must be positive");
  if (s.rope.scaling != RopeScaling::none) {
    if (!(s.rope.factor >= 1.0f) || !std::isfinite(s.rope.factor)) {
      return bad("rope scaling factor must be finite and >= 1");
    }
  }
  if (s.rope.scaling == RopeScaling::llama3) {
    if (!(s.rope.high_freq_factor > s.rope.low_freq_factor) || !(s.rope.low_freq_factor > 0.0f) ||
        !std::isfinite(s.rope.high_freq_factor)) {
      return bad("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor");
    }
    if (s.rope.original_max_position == 0) return bad("llama3 rope scaling needs original_max_position");
  }
  if (!s.rope.freq_factors.empty()) {
    if (s.rope.freq_factors.size() != s.head_dim / 2) {
      return bad(fmt::format("rope frequency factors have {} entries, expected head_dim / 2 = {}",
                             s.rope.freq_factors.size(), s.head_dim / 2));
    }
    for (float f : s.rope.freq_factors) {
      if (!(f > 0.0f) || !std::isfinite(f)) return bad("rope frequency factors must be finite and positive");
    }
  }
  if (s.bos_token >= static_cast<std::int64_t>(s.vocab)) return bad("bos token id is outside the vocabulary");
  for (std::int64_t e : s.eos_tokens) {
    if (e < 0 || e >= static_cast<std::int64_t>(s.vocab)) return bad("eos token id is outside the vocabulary");
  }
  return Ok{};
}

Result<ModelSpec, ModelError> spec_from_gguf(const gguf::GgufFile& file) {
  const std::string& src = file.path();
  auto arch = file.get_string("general.architecture");
  if (!arch) return fail(ModelError{arch.error().message});
  ModelSpec s;
  s.architecture = std::string(*arch);
  if (s.architecture != "llama" && s.architecture != "qwen2") {
    return fail(
        spec_error(src, fmt::format("architecture \"{}\" is not supported (llama, qwen2 are)", s.architecture)));
  }
  const std::string p = s.architecture + ".";
  if (auto name = file.get_string("general.name")) s.name = std::string(*name);

  const auto u32 = [&](const std::string& key, std::uint32_t& out) -> Status<ModelError> {
    auto v = file.get_u32(key);
    if (!v) return fail(ModelError{v.error().message});
    out = *v;
    return Ok{};
  };
  const auto u32_or = [&](const std::string& key, std::uint32_t& out, std::uint32_t dflt) -> Status<ModelError> {
    if (!file.contains(key)) {
      out = dflt;
      return Ok{};
    }
    return u32(key, out);
  };
  const auto f32_or = [&](const std::string& key, float& out, float dflt) -> Status<ModelError> {
    if (!file.contains(key)) {
      out = dflt;
      return Ok{};
    }
    auto v = file.get_f32(key);
    if (!v) return fail(ModelError{v.error().message});
    out = *v;
    return Ok{};
  };
  SLUICE_TRY(u32(p + "embedding_length", s.hidden));
  SLUICE_TRY(u32(p + "block_count", s.layers));
  SLUICE_TRY(u32(p + "feed_forward_length", s.ffn));
  SLUICE_TRY(u32(p + "attention.head_count", s.heads));
  SLUICE_TRY(u32_or(p + "attention.head_count_kv", s.kv_heads, s.heads));
  SLUICE_TRY(u32(p + "context_length", s.max_position));
  SLUICE_TRY(f32_or(p + "attention.layer_norm_rms_epsilon", s.rms_eps, 1e-5f));
  SLUICE_TRY(f32_or(p + "rope.freq_base", s.rope.theta, 10000.0f));
  if (s.heads == 0) return fail(spec_error(src, "attention.head_count must be positive"));
  SLUICE_TRY(u32_or(p + "attention.key_length", s.head_dim, s.hidden / s.heads));
  std::uint32_t value_length = 0;
  SLUICE_TRY(u32_or(p + "attention.value_length", value_length, s.head_dim));
  if (value_length != s.head_dim) return fail(spec_error(src, "key and value head sizes differ"));
  std::uint32_t rope_dims = 0;
  SLUICE_TRY(u32_or(p + "rope.dimension_count", rope_dims, s.head_dim));
  if (rope_dims != s.head_dim) {
    return fail(spec_error(
        src, fmt::format("partial rotary embeddings ({} of {} dimensions) are not supported", rope_dims, s.head_dim)));
  }
  SLUICE_TRY(u32_or(p + "attention.sliding_window", s.sliding_window, 0));

  const gguf::TensorInfo* embd = file.tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return fail(spec_error(src, "tensor token_embd.weight is missing or not 2-D"));
  }
  if (file.contains(p + "vocab_size")) {
    SLUICE_TRY(u32(p + "vocab_size", s.vocab));
  } else if (embd->dims[1] <= kMaxDim) {
    s.vocab = static_cast<std::uint32_t>(embd->dims[1]);
  }

  s.rope.style = s.architecture == "llama" ? RopeStyle::interleaved : RopeStyle::half;
  if (file.contains(p + "rope.scaling.type")) {
    auto type = file.get_string(p + "rope.scaling.type");
    if (!type) return fail(ModelError{type.error().message});
    if (*type == "linear") {
      s.rope.scaling = RopeScaling::linear;
      SLUICE_TRY(f32_or(p + "rope.scaling.factor", s.rope.factor, 1.0f));
    } else if (*type != "none") {
      return fail(spec_error(src, fmt::format("rope scaling \"{}\" is not supported", *type)));
    }
  }
  if (const gguf::TensorInfo* rf = file.tensor("rope_freqs.weight")) {
    if (rf->n_elements != s.head_dim / 2) {
      return fail(spec_error(src, "rope_freqs.weight does not have head_dim / 2 elements"));
    }
    s.rope.freq_factors.resize(s.head_dim / 2);
    auto st = gguf::dequantize_row(*rf, 0, rf->n_elements, s.rope.freq_factors.data());
    if (!st) return fail(ModelError{st.error().message});
  }

  s.tied_embeddings = file.tensor("output.weight") == nullptr;
  s.qkv_bias = file.tensor("blk.0.attn_q.bias") != nullptr;
  s.output_bias = file.tensor("blk.0.attn_output.bias") != nullptr;

  if (auto bos = file.get_i64("tokenizer.ggml.bos_token_id")) s.bos_token = *bos;
  if (auto eos = file.get_i64("tokenizer.ggml.eos_token_id")) s.eos_tokens.push_back(*eos);
  if (auto eot = file.get_i64("tokenizer.ggml.eot_token_id")) {
    if (s.eos_tokens.empty() || s.eos_tokens.front() != *eot) s.eos_tokens.push_back(*eot);
  }
  auto ok = validate(s, src);
  if (!ok) return fail(std::move(ok.error()));
  return s;
}

#undef SLUICE_TRY

std::vector<float> rope_inv_freq(const ModelSpec& spec) {
  const std::uint32_t half = spec.head_dim / 2;
  std::vector<float> inv(half);
  const auto& r = spec.rope;
  for (std::uint32_t i = 0; i < half; ++i) {
    // As Hugging Face computes it: theta ** (2i / d) in float32, then its reciprocal.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(spec.head_dim);
    inv[i] = 1.0f / std::pow(r.theta, exponent);
  }
  if (r.scaling == RopeScaling::linear) {
    for (float& f : inv) f /= r.factor;
  } else if (r.scaling == RopeScaling::llama3) {
    const double low_wavelen = r.original_max_position / r.low_freq_factor;
    const double high_wavelen = r.original_max_position / r.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;  // high frequencies keep their value
      if (wavelen > low_wavelen) {
        f = f / r.factor;
        continue;
      }
      const double smooth =
          (r.original_max_position / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      f = static_cast<float>((1.0 - smooth) * f / r.factor + smooth * f);
    }
  }
  if (!r.freq_factors.empty()) {
    for (std::uint32_t i = 0; i < half; ++i) inv[i] /= r.freq_factors[i];
  }
  return inv;
}

}  // namespace sluice
