// The GGUF path without the large model file: the tiny Llama fixture is converted in memory the way
// llama.cpp's converter writes GGUF files — attn_q / attn_k rows permuted per head so that interleaved-pair
// RoPE reproduces rotate-half, Llama 3 scaling as a rope_freqs tensor — and must reproduce transformers'
// logits (tests/fixtures/logits/tiny_llama.*) through ModelWeights::from_gguf with RopeStyle::interleaved.
// A control without the permutation must disagree, so the test is sensitive to the RoPE pairing.
#include <gtest/gtest.h>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/gguf_reader.h"
#include "engine/model/safetensors.h"
#include "engine/model/weights.h"
#include "tests/unit/engine/cpu/test_support.h"
#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice {
namespace {

using gguf::testing::f32_payload;
using gguf::testing::GgufBuilder;
using gguf::testing::TensorSpec;

constexpr std::uint32_t kF32 = 0;

std::vector<float> read(const safetensors::Checkpoint& ckpt, const std::string& name) {
  const safetensors::TensorView* t = ckpt.tensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> v(t->n_elements);
  EXPECT_TRUE(safetensors::to_f32(*t, v).ok());
  return v;
}

// llama.cpp's permute(): within each head, file row 2i + j holds original row j * head_dim / 2 + i.
std::vector<float> permute_rows(const std::vector<float>& w, std::uint32_t heads, std::uint32_t head_dim,
                                std::uint32_t cols) {
  std::vector<float> out(w.size());
  for (std::uint32_t h = 0; h < heads; ++h) {
    for (std::uint32_t i = 0; i < head_dim / 2; ++i) {
      for (std::uint32_t j = 0; j < 2; ++j) {
        const std::size_t dst = std::size_t{h} * head_dim + 2 * i + j;
        const std::size_t src = std::size_t{h} * head_dim + j * head_dim / 2 + i;
        std::copy_n(w.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  return out;
}

Result<std::unique_ptr<ModelWeights>, ModelError> convert_tiny_llama(bool permute) {
  const std::string dir = test::fixtures_dir() + "/models/tiny_llama";
  auto spec_or = ModelWeights::load_hf_dir(dir);
  if (!spec_or) return fail(std::move(spec_or.error()));
  const ModelSpec s = (*spec_or)->spec();
  auto ckpt = safetensors::Checkpoint::open_dir(dir);
  EXPECT_TRUE(ckpt.ok());
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.context_length", s.max_position);
  b.kv_u32("llama.embedding_length", s.hidden);
  b.kv_u32("llama.block_count", s.layers);
  b.kv_u32("llama.feed_forward_length", s.ffn);
  b.kv_u32("llama.attention.head_count", s.heads);
  b.kv_u32("llama.attention.head_count_kv", s.kv_heads);
  b.kv_u32("llama.rope.dimension_count", s.head_dim);
  b.kv_f32("llama.rope.freq_base", s.rope.theta);
  b.kv_f32("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  // Llama 3 scaling the way converters store it: per-pair divisors of the base frequencies.
  ModelSpec unscaled = s;
  unscaled.rope.scaling = RopeScaling::none;
  const auto base = rope_inv_freq(unscaled), scaled = rope_inv_freq(s);
  std::vector<float> factors(base.size());
  for (std::size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];
  b.tensor(TensorSpec("rope_freqs.weight", {factors.size()}, kF32, f32_payload(factors)));
  const auto matrix = [&](const std::string& gguf_name, const std::string& hf_name, std::uint64_t rows,
                          std::uint64_t cols, std::uint32_t heads) {
    auto w = read(*ckpt, hf_name);
    if (heads != 0 && permute) w = permute_rows(w, heads, s.head_dim, static_cast<std::uint32_t>(cols));
    b.tensor(TensorSpec(gguf_name, {cols, rows}, kF32, f32_payload(w)));
  };
  const auto vec = [&](const std::string& gguf_name, const std::string& hf_name) {
    const auto v = read(*ckpt, hf_name);
    b.tensor(TensorSpec(gguf_name, {v.size()}, kF32, f32_payload(v)));
  };
  matrix("token_embd.weight", "model.embed_tokens.weight", s.vocab, s.hidden, 0);
  matrix("output.weight", "lm_head.weight", s.vocab, s.hidden, 0);
  vec("output_norm.weight", "model.norm.weight");
  for (std::uint32_t l = 0; l < s.layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    matrix(g + "attn_q.weight", h + "self_attn.q_proj.weight", s.q_dim(), s.hidden, s.heads);
    matrix(g + "attn_k.weight", h + "self_attn.k_proj.weight", s.kv_dim(), s.hidden, s.kv_heads);
    matrix(g + "attn_v.weight", h + "self_attn.v_proj.weight", s.kv_dim(), s.hidden, 0);
    matrix(g + "attn_output.weight", h + "self_attn.o_proj.weight", s.hidden, s.q_dim(), 0);
    matrix(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", s.ffn, s.hidden, 0);
    matrix(g + "ffn_up.weight", h + "mlp.up_proj.weight", s.ffn, s.hidden, 0);
    matrix(g + "ffn_down.weight", h + "mlp.down_proj.weight", s.hidden, s.ffn, 0);
    vec(g + "attn_norm.weight", h + "input_layernorm.weight");
    vec(g + "ffn_norm.weight", h + "post_attention_layernorm.weight");
  }
  auto file = gguf::GgufFile::from_buffer(b.build(), "tiny_llama.gguf");
  if (!file) return fail(ModelError{file.error().message});
  return ModelWeights::from_gguf(std::move(*file));
}

double worst_error(std::unique_ptr<ModelWeights> w, bool check_greedy) {
  const test::Golden golden = test::load_golden("tiny_llama");
  CpuBackendOptions o;
  o.block_size = 4;
  o.kv_cache_bytes = 4 << 20;
  auto backend = CpuBackend::create(std::shared_ptr<const ModelWeights>(std::move(w)), o);
  EXPECT_TRUE(backend.ok());
  if (!backend.ok()) return 1e9;
  test::Driver driver(**backend);
  double worst = 0;
  for (std::size_t i = 0; i < golden.prompts.size(); ++i) {
    const auto logits = driver.prefill(i, golden.prompts[i].ids, 4);
    worst = std::max(worst, test::rel_error(logits, golden.row(i)));
    if (check_greedy) {
      EXPECT_EQ(driver.greedy(i, logits, static_cast<int>(golden.prompts[i].greedy.size())), golden.prompts[i].greedy);
    }
  }
  return worst;
}

TEST(GgufRopePermutation, InterleavedRopeOnPermutedWeightsMatchesTransformers) {
  auto w = convert_tiny_llama(true);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ((*w)->format(), "gguf");
  EXPECT_EQ((*w)->spec().rope.style, RopeStyle::interleaved);
  EXPECT_EQ((*w)->spec().rope.freq_factors.size(), 8u);
  EXPECT_FALSE((*w)->spec().tied_embeddings);
  EXPECT_LE(worst_error(std::move(*w), true), 1e-4);
}

TEST(GgufRopePermutation, WithoutThePermutationTheLogitsDisagree) {
  auto w = convert_tiny_llama(false);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_GT(worst_error(std::move(*w), false), 1e-2);
}

}  // namespace
}  // namespace sluice
