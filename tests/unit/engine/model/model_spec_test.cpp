// ModelSpec validation, RoPE frequency tables against values transformers computes, and spec_from_gguf on
// synthetic files.
#include "engine/model/model_spec.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/model/gguf_reader.h"
#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice {
namespace {

ModelSpec base_spec() {
  ModelSpec s;
  s.architecture = "llama";
  s.vocab = 100;
  s.hidden = 64;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 16;
  s.ffn = 128;
  s.max_position = 128;
  return s;
}

TEST(ModelSpec, ValidateCatchesInconsistentShapes) {
  EXPECT_TRUE(validate(base_spec(), "x").ok());
  auto s = base_spec();
  s.kv_heads = 3;
  EXPECT_FALSE(validate(s, "x").ok());
  s = base_spec();
  s.head_dim = 15;
  EXPECT_FALSE(validate(s, "x").ok());
  s = base_spec();
  s.rms_eps = 0.0f;
  EXPECT_FALSE(validate(s, "x").ok());
  s = base_spec();
  s.rope.theta = NAN;
  EXPECT_FALSE(validate(s, "x").ok());
  s = base_spec();
  s.vocab = 0;
  auto e = validate(s, "file.gguf");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "file.gguf: vocab must be positive");
  s = base_spec();
  s.rope.freq_factors = {1.0f, 2.0f};  // needs head_dim / 2 = 8
  EXPECT_FALSE(validate(s, "x").ok());
  s = base_spec();
  s.rope.scaling = RopeScaling::llama3;
  s.rope.factor = 8.0f;
  s.rope.low_freq_factor = 4.0f;
  s.rope.high_freq_factor = 1.0f;
  EXPECT_FALSE(validate(s, "x").ok());
}

// Reference values: transformers' ROPE_INIT_FUNCTIONS for Llama 3.1 (theta 5e5, head_dim 128, factor 8,
// low 1, high 4, original 8192) and linear scaling (theta 1e4, factor 4).
TEST(ModelSpec, RopeFrequenciesMatchTransformers) {
  ModelSpec s = base_spec();
  s.head_dim = 128;
  s.rope.theta = 500000.0f;
  s.rope.scaling = RopeScaling::llama3;
  s.rope.factor = 8.0f;
  s.rope.low_freq_factor = 1.0f;
  s.rope.high_freq_factor = 4.0f;
  s.rope.original_max_position = 8192;
  const auto f = rope_inv_freq(s);
  ASSERT_EQ(f.size(), 64u);
  const std::pair<int, double> want[] = {{0, 1.0},
                                         {20, 0.016560440883040428},
                                         {40, 3.428102354519069e-05},
                                         {45, 1.2297638932068367e-05},
                                         {50, 4.411534519022098e-06},
                                         {63, 3.068925877869333e-07}};
  for (const auto& [i, v] : want) EXPECT_NEAR(f[i], v, 2e-6 * v) << i;

  ModelSpec lin = base_spec();
  lin.head_dim = 128;
  lin.rope.scaling = RopeScaling::linear;
  lin.rope.factor = 4.0f;
  const auto g = rope_inv_freq(lin);
  EXPECT_NEAR(g[0], 0.25, 1e-7);
  EXPECT_NEAR(g[10], 0.05928434059023857, 2e-6 * 0.0593);
  EXPECT_NEAR(g[63], 2.8869548259535804e-05, 2e-6 * 2.89e-5);

  ModelSpec ff = base_spec();
  ff.rope.freq_factors.assign(8, 2.0f);
  const auto plain = rope_inv_freq(base_spec()), divided = rope_inv_freq(ff);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(divided[i], plain[i] / 2.0f);
}

using gguf::testing::f32_payload;
using gguf::testing::GgufBuilder;
using gguf::testing::TensorSpec;

GgufBuilder minimal_llama(std::uint32_t kv_heads = 2) {
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.context_length", 256);
  b.kv_u32("llama.embedding_length", 64);
  b.kv_u32("llama.block_count", 1);
  b.kv_u32("llama.feed_forward_length", 96);
  b.kv_u32("llama.attention.head_count", 4);
  b.kv_u32("llama.attention.head_count_kv", kv_heads);
  b.kv_u32("tokenizer.ggml.bos_token_id", 1);
  b.kv_u32("tokenizer.ggml.eos_token_id", 2);
  b.tensor(TensorSpec("token_embd.weight", {64, 50}, 0, f32_payload(std::vector<float>(64 * 50))));
  return b;
}

TEST(SpecFromGguf, ReadsKeysDefaultsAndTensorLayout) {
  auto f = gguf::GgufFile::from_buffer(minimal_llama().build(), "m.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  auto s = spec_from_gguf(*f);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->vocab, 50u);  // from token_embd when llama.vocab_size is absent
  EXPECT_EQ(s->head_dim, 16u);
  EXPECT_EQ(s->kv_heads, 2u);
  EXPECT_FLOAT_EQ(s->rope.theta, 10000.0f);
  EXPECT_EQ(s->rope.style, RopeStyle::interleaved);
  EXPECT_TRUE(s->tied_embeddings);
  EXPECT_EQ(s->bos_token, 1);
  EXPECT_EQ(s->eos_tokens, std::vector<std::int64_t>{2});
}

TEST(SpecFromGguf, Qwen2UsesRotateHalfAndBiases) {
  GgufBuilder b;
  b.kv_str("general.architecture", "qwen2");
  b.kv_u32("qwen2.context_length", 256);
  b.kv_u32("qwen2.embedding_length", 64);
  b.kv_u32("qwen2.block_count", 1);
  b.kv_u32("qwen2.feed_forward_length", 96);
  b.kv_u32("qwen2.attention.head_count", 4);
  b.tensor(TensorSpec("token_embd.weight", {64, 50}, 0, f32_payload(std::vector<float>(64 * 50))));
  b.tensor(TensorSpec("blk.0.attn_q.bias", {64}, 0, f32_payload(std::vector<float>(64))));
  auto f = gguf::GgufFile::from_buffer(b.build(), "q.gguf");
  ASSERT_TRUE(f.ok());
  auto s = spec_from_gguf(*f);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->rope.style, RopeStyle::half);
  EXPECT_TRUE(s->qkv_bias);
}

TEST(SpecFromGguf, RejectsUnsupportedOrMissing) {
  {
    GgufBuilder b = minimal_llama();
    b.kv_u32("llama.rope.dimension_count", 8);  // partial rotary
    auto f = gguf::GgufFile::from_buffer(b.build(), "m.gguf");
    ASSERT_TRUE(f.ok());
    auto s = spec_from_gguf(*f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("partial rotary"), std::string::npos);
  }
  {
    GgufBuilder b = minimal_llama();
    b.kv_str("llama.rope.scaling.type", "yarn");
    auto f = gguf::GgufFile::from_buffer(b.build(), "m.gguf");
    ASSERT_TRUE(f.ok());
    EXPECT_FALSE(spec_from_gguf(*f).ok());
  }
  {
    GgufBuilder b;
    b.kv_str("general.architecture", "gpt2");
    auto f = gguf::GgufFile::from_buffer(b.build(), "g.gguf");
    ASSERT_TRUE(f.ok());
    auto s = spec_from_gguf(*f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("gpt2"), std::string::npos);
  }
  {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.embedding_length", 64);
    auto f = gguf::GgufFile::from_buffer(b.build(), "g.gguf");
    ASSERT_TRUE(f.ok());
    auto s = spec_from_gguf(*f);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("block_count"), std::string::npos);
  }
  {
    GgufBuilder b = minimal_llama(3);
    auto f = gguf::GgufFile::from_buffer(b.build(), "m.gguf");
    ASSERT_TRUE(f.ok());
    EXPECT_FALSE(spec_from_gguf(*f).ok());
  }
}

}  // namespace
}  // namespace sluice
