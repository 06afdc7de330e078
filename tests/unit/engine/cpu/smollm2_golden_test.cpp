// The default model, SmolLM2-135M-Instruct Q4_1 (GGUF), against transformers' fp32 forward pass over the
// same file (tests/fixtures/logits/smollm2_135m_q4_1.*, from scripts/make_logits_golden.py): last-position
// logits within 1e-3 relative and 32 greedy tokens identical, for 5 prompts. The engine runs the file's
// permuted attn_q/attn_k rows with interleaved RoPE; transformers un-permutes them and uses rotate-half, so
// agreement here is the end-to-end proof of that choice. Skipped when the model file is absent
// ($SLUICE_MODEL_GGUF, else <repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "tests/unit/engine/cpu/test_support.h"

namespace sluice {
namespace {

class SmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(test::smollm2_path())) return;
    auto w = ModelWeights::load_gguf(test::smollm2_path());
    if (w.ok()) {
      weights_ = new std::shared_ptr<const ModelWeights>(std::move(*w));
    } else {
      error_ = new std::string(w.error().message);
    }
  }
  static void TearDownTestSuite() {
    delete weights_;
    delete error_;
    weights_ = nullptr;
    error_ = nullptr;
  }
  void SetUp() override {
    if (weights_ == nullptr && error_ == nullptr) GTEST_SKIP() << "model file absent: " << test::smollm2_path();
    ASSERT_EQ(error_, nullptr) << *error_;
  }

  static std::unique_ptr<CpuBackend> backend(unsigned threads) {
    CpuBackendOptions opts;
    opts.threads = threads;
    opts.kv_cache_bytes = 64 << 20;
    auto b = CpuBackend::create(*weights_, opts);
    EXPECT_TRUE(b.ok()) << b.error().message;
    return b.ok() ? std::move(*b) : nullptr;
  }

  static inline std::shared_ptr<const ModelWeights>* weights_ = nullptr;
  static inline std::string* error_ = nullptr;
};

TEST_F(SmolLM2, SpecFromGguf) {
  const ModelSpec& s = (*weights_)->spec();
  EXPECT_EQ(s.architecture, "llama");
  EXPECT_EQ(s.vocab, 49152u);
  EXPECT_EQ(s.hidden, 576u);
  EXPECT_EQ(s.layers, 30u);
  EXPECT_EQ(s.heads, 9u);
  EXPECT_EQ(s.kv_heads, 3u);
  EXPECT_EQ(s.head_dim, 64u);
  EXPECT_EQ(s.ffn, 1536u);
  EXPECT_EQ(s.max_position, 8192u);
  EXPECT_FLOAT_EQ(s.rope.theta, 100000.0f);
  EXPECT_FLOAT_EQ(s.rms_eps, 1e-5f);
  EXPECT_EQ(s.rope.style, RopeStyle::interleaved);
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_EQ(s.bos_token, 1);
  ASSERT_FALSE(s.eos_tokens.empty());
  EXPECT_EQ(s.eos_tokens[0], 2);
  EXPECT_EQ((*weights_)->token_embedding().type, kernels::WeightType::q8_0);
  EXPECT_EQ((*weights_)->layers()[0].wq.type, kernels::WeightType::q4_1);
  EXPECT_EQ((*weights_)->lm_head().data, (*weights_)->token_embedding().data);
}

TEST_F(SmolLM2, LogitsAndGreedyTokensMatchTransformers) {
  const test::Golden golden = test::load_golden("smollm2_135m_q4_1");
  ASSERT_EQ(golden.prompts.size(), 5u);
  auto b = backend(2);
  ASSERT_NE(b, nullptr);
  test::Driver driver(*b);
  for (std::size_t i = 0; i < golden.prompts.size(); ++i) {
    const auto& p = golden.prompts[i];
    const auto logits = driver.prefill(i, p.ids, p.ids.size());
    ASSERT_EQ(logits.size(), golden.vocab);
    const double err = test::rel_error(logits, golden.row(i));
    EXPECT_LE(err, 1e-3) << "prompt " << i;
    RecordProperty("rel_error_prompt_" + std::to_string(i), std::to_string(err));
    ASSERT_EQ(p.greedy.size(), 32u);
    EXPECT_EQ(driver.greedy(i, logits, 32), p.greedy) << "prompt " << i;
  }
}

// Batch-1 decode throughput on 2 threads (reported, not asserted: the machine is shared).
TEST_F(SmolLM2, ReportsDecodeSpeed) {
  auto b = backend(2);
  ASSERT_NE(b, nullptr);
  test::Driver driver(*b);
  const test::Golden golden = test::load_golden("smollm2_135m_q4_1");
  const auto& ids = golden.prompts[4].ids;
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = driver.prefill(0, ids, ids.size());
  const auto t1 = std::chrono::steady_clock::now();
  const int steps = 64;
  const auto tokens = driver.greedy(0, logits, steps + 1);
  const auto t2 = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("SmolLM2-135M Q4_1, 2 threads: prefill %zu tokens %.1f ms (%.0f tok/s); decode %.1f tok/s\n", ids.size(),
              prefill_s * 1e3, ids.size() / prefill_s, steps / decode_s);
  RecordProperty("decode_tok_per_s", std::to_string(steps / decode_s));
  EXPECT_EQ(tokens.size(), static_cast<std::size_t>(steps + 1));
}

}  // namespace
}  // namespace sluice
