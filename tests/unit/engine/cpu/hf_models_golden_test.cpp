// Small random Llama / Qwen2 / Mistral checkpoints (tests/fixtures/models, written by
// scripts/make_logits_golden.py with transformers) run through the Hugging Face directory loader and the CPU
// backend: last-position logits within 1e-4 of transformers in fp32, greedy continuations identical.
// Covers fp32 sharded safetensors with an index, bf16 and fp16 files, Llama 3 RoPE scaling, GQA, an FFN
// width that is not a multiple of 8, Qwen2's QKV bias with tied embeddings, and Mistral's sliding window.
#include <gtest/gtest.h>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "tests/unit/engine/cpu/test_support.h"

namespace sluice {
namespace {

class HfModelGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(HfModelGolden, LogitsAndGreedyTokensMatchTransformers) {
  const std::string name = GetParam();
  auto weights = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/" + name);
  ASSERT_TRUE(weights.ok()) << weights.error().message;
  EXPECT_EQ((*weights)->format(), "safetensors");
  const test::Golden golden = test::load_golden(name);
  ASSERT_EQ(golden.vocab, (*weights)->spec().vocab);
  ASSERT_FALSE(golden.prompts.empty());

  CpuBackendOptions opts;
  opts.threads = 2;
  opts.block_size = 4;  // many pages per prompt
  opts.kv_cache_bytes = 8 << 20;
  auto backend = CpuBackend::create(std::shared_ptr<const ModelWeights>(std::move(*weights)), opts);
  ASSERT_TRUE(backend.ok()) << backend.error().message;
  test::Driver driver(**backend);
  for (std::size_t i = 0; i < golden.prompts.size(); ++i) {
    const auto& p = golden.prompts[i];
    const auto logits = driver.prefill(i, p.ids, p.ids.size());
    ASSERT_EQ(logits.size(), golden.vocab);
    EXPECT_LE(test::rel_error(logits, golden.row(i)), 1e-4) << name << " prompt " << i;
    EXPECT_EQ(driver.greedy(i, logits, static_cast<int>(p.greedy.size())), p.greedy) << name << " prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfModelGolden, ::testing::Values("tiny_llama", "tiny_qwen2", "tiny_mistral"));

TEST(HfModelSpec, FixturesDescribeWhatTheyTest) {
  auto llama = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/tiny_llama");
  ASSERT_TRUE(llama.ok()) << llama.error().message;
  const ModelSpec& s = (*llama)->spec();
  EXPECT_EQ(s.architecture, "llama");
  EXPECT_EQ(s.rope.scaling, RopeScaling::llama3);
  EXPECT_EQ(s.rope.style, RopeStyle::half);
  EXPECT_EQ(s.heads, 3u);
  EXPECT_EQ(s.kv_heads, 1u);
  EXPECT_EQ(s.ffn, 100u);
  EXPECT_FALSE(s.tied_embeddings);

  auto qwen = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/tiny_qwen2");
  ASSERT_TRUE(qwen.ok()) << qwen.error().message;
  EXPECT_TRUE((*qwen)->spec().qkv_bias);
  EXPECT_TRUE((*qwen)->spec().tied_embeddings);
  EXPECT_EQ((*qwen)->spec().eos_tokens, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ((*qwen)->lm_head().data, (*qwen)->token_embedding().data);

  auto mistral = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/tiny_mistral");
  ASSERT_TRUE(mistral.ok()) << mistral.error().message;
  EXPECT_EQ((*mistral)->spec().sliding_window, 8u);
}

}  // namespace
}  // namespace sluice
