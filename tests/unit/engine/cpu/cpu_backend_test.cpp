// CpuBackend's contract beyond numerics: options and KV capacity at creation, rejection of plans that break
// the StepPlan contract (as errors, never a crash or an out-of-bounds write), and the shape of StepOutput.
#include "engine/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <cstring>

#include "engine/backend/kv_cache.h"
#include "engine/model/weights.h"
#include "tests/unit/engine/cpu/test_support.h"

namespace sluice {
namespace {

std::shared_ptr<const ModelWeights> tiny_llama() {
  auto w = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/tiny_llama");
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  return w.ok() ? std::shared_ptr<const ModelWeights>(std::move(*w)) : nullptr;
}

std::unique_ptr<CpuBackend> make(std::shared_ptr<const ModelWeights> w, CpuBackendOptions o = {}) {
  auto b = CpuBackend::create(std::move(w), o);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? std::move(*b) : nullptr;
}

TEST(KvCache, CapacityFromByteBudget) {
  ModelSpec s;
  s.layers = 30;
  s.kv_heads = 3;
  s.head_dim = 64;
  // SmolLM2: 2 (K, V) x 30 layers x 3 heads x 64 x 2 bytes = 22.5 KiB per token in fp16.
  EXPECT_EQ(kv_bytes_per_block(s, 1, 2), 23040u);
  EXPECT_EQ(kv_bytes_per_block(s, 16, 4), 16u * 46080u);
  EXPECT_EQ(kv_blocks_for_budget(s, 16, 4, 16u * 46080u * 10 + 5), 10u);
  EXPECT_EQ(kv_blocks_for_budget(s, 16, 4, 100), 0u);
  KvCacheLayout l{2, 5, 3, 4, 8, 4};
  EXPECT_EQ(l.block_elements(), 96u);
  EXPECT_EQ(l.offset(0, 0, 0, 1), 8u);
  EXPECT_EQ(l.offset(0, 1, 0, 0), 96u);
  EXPECT_EQ(l.offset(1, 0, 2, 3), 5u * 96 + 2 * 32 + 3 * 8);
  EXPECT_EQ(l.total_elements(), 2u * 5 * 96);
}

TEST(CpuBackend, CreateChecksOptionsAndBudget) {
  auto w = tiny_llama();
  ASSERT_NE(w, nullptr);
  CpuBackendOptions o;
  o.kv_cache_bytes = 1000;  // less than one block
  auto b = CpuBackend::create(w, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::out_of_memory);
  EXPECT_NE(b.error().message.find("kv_cache_bytes"), std::string::npos);
  o = {};
  o.threads = 0;
  EXPECT_FALSE(CpuBackend::create(w, o).ok());
  o = {};
  o.block_size = 0;
  EXPECT_FALSE(CpuBackend::create(w, o).ok());
  EXPECT_FALSE(CpuBackend::create(nullptr, {}).ok());

  o = {};
  o.block_size = 8;
  o.kv_cache_bytes = kv_bytes_per_block(w->spec(), 8, 4) * 7 + 3;
  auto ok = make(w, o);
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->num_kv_blocks(), 7u);
  EXPECT_EQ(ok->block_size(), 8u);
  EXPECT_EQ(ok->name(), "cpu");
}

TEST(CpuBackend, RejectsPlansThatBreakTheContract) {
  auto w = tiny_llama();
  ASSERT_NE(w, nullptr);
  CpuBackendOptions o;
  o.block_size = 4;
  o.kv_cache_bytes = kv_bytes_per_block(w->spec(), 4, 4) * 8;
  o.max_batched_tokens = 16;
  auto b = make(w, o);
  ASSERT_NE(b, nullptr);
  const std::vector<std::int32_t> tokens = {5, 6, 7, 8, 9};
  const auto expect_invalid = [&](const StepPlan& plan, const char* what) {
    auto r = b->execute(plan);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().kind, BackendError::Kind::invalid_plan) << what;
    EXPECT_FALSE(r.error().message.empty());
  };
  StepPlan plan;
  const std::vector<std::int32_t> two_blocks = {0, 1};
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, two_blocks, true));
  EXPECT_TRUE(b->execute(plan).ok());

  plan.clear();
  const std::vector<std::int32_t> one_block = {2};
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, one_block, true));
  expect_invalid(plan, "page table too short");

  plan.clear();
  const std::vector<std::int32_t> bad_block = {0, 8};
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, bad_block, true));
  expect_invalid(plan, "block id beyond the cache");

  plan.clear();
  const std::vector<std::int32_t> negative = {-1, 0};
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, negative, true));
  expect_invalid(plan, "negative block id");

  plan.clear();
  const std::vector<std::int32_t> bad_token = {5, 256};
  ASSERT_TRUE(plan.add_sequence(1, bad_token, 0, two_blocks, true));
  expect_invalid(plan, "token id outside the vocabulary");

  plan.clear();
  const std::vector<std::int32_t> many(17, 3);
  const std::vector<std::int32_t> five = {0, 1, 2, 3, 4};
  ASSERT_TRUE(plan.add_sequence(1, many, 0, five, true));
  expect_invalid(plan, "more tokens than max_batched_tokens");

  plan.clear();
  const std::vector<std::int32_t> all8 = {0, 1, 2, 3, 4, 5, 6, 7};
  ASSERT_TRUE(plan.add_sequence(1, tokens, 254, all8, true));
  expect_invalid(plan, "positions beyond max_position_embeddings");

  plan.clear();
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, two_blocks, true));
  plan.positions[2] = 7;
  expect_invalid(plan, "positions not consecutive");

  plan.clear();
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, two_blocks, true));
  plan.token_begin[0] = 1;
  expect_invalid(plan, "token ranges not consecutive");

  plan.clear();
  ASSERT_TRUE(plan.add_sequence(1, tokens, 0, two_blocks, true));
  plan.table_count[0] = 100;
  expect_invalid(plan, "page table outside the block ids");
}

TEST(CpuBackend, OutputRowsFollowThePlanAndSkipSequencesWithoutLogits) {
  auto w = tiny_llama();
  ASSERT_NE(w, nullptr);
  CpuBackendOptions o;
  o.block_size = 4;
  auto b = make(w, o);
  ASSERT_NE(b, nullptr);
  StepPlan plan;
  EXPECT_TRUE(b->execute(plan).ok());  // an empty step is fine
  EXPECT_EQ(b->execute(plan)->num_rows, 0u);
  const std::vector<std::int32_t> t1 = {1, 2, 3}, t2 = {4, 5}, t3 = {6};
  const std::vector<std::int32_t> p1 = {0}, p2 = {1}, p3 = {2};
  ASSERT_TRUE(plan.add_sequence(10, t1, 0, p1, true));
  ASSERT_TRUE(plan.add_sequence(20, t2, 0, p2, false));
  ASSERT_TRUE(plan.add_sequence(30, t3, 0, p3, true));
  auto out = b->execute(plan);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->num_rows, 2u);
  EXPECT_EQ(out->seq_index[0], 0u);
  EXPECT_EQ(out->seq_index[1], 2u);
  EXPECT_EQ(out->seq_ids[0], 10u);
  EXPECT_EQ(out->seq_ids[1], 30u);
  EXPECT_EQ(out->vocab, 256u);
  EXPECT_EQ(out->logits.size(), 2u * 256);
  EXPECT_TRUE(out->token_ids.empty());
  // Sequence 30's row equals what it gets alone.
  const std::vector<float> batched(out->row_logits(1).begin(), out->row_logits(1).end());
  auto alone = make(w, o);
  StepPlan single;
  ASSERT_TRUE(single.add_sequence(30, t3, 0, p3, true));
  auto out2 = alone->execute(single);
  ASSERT_TRUE(out2.ok());
  EXPECT_EQ(0, std::memcmp(batched.data(), out2->row_logits(0).data(), batched.size() * sizeof(float)));
}

TEST(StepPlan, CapacitiesAreEnforced) {
  StepPlan plan(StepPlanLimits{2, 4, 3});
  const std::vector<std::int32_t> two = {1, 2}, three = {1, 2, 3}, table = {0, 1};
  EXPECT_FALSE(plan.add_sequence(1, {}, 0, table, true));  // no tokens
  EXPECT_FALSE(plan.add_sequence(1, two, -1, table, true));
  EXPECT_TRUE(plan.add_sequence(1, two, 5, table, true));
  EXPECT_FALSE(plan.add_sequence(2, three, 0, {}, true));   // 5 tokens > 4
  EXPECT_FALSE(plan.add_sequence(2, two, 0, table, true));  // 4 table entries > 3
  const std::vector<std::int32_t> one_block = {7};
  EXPECT_TRUE(plan.add_sequence(2, two, 0, one_block, false));
  EXPECT_FALSE(plan.add_sequence(3, std::vector<std::int32_t>{1}, 0, {}, true));  // 3 sequences > 2
  EXPECT_EQ(plan.num_seqs(), 2u);
  EXPECT_EQ(plan.num_tokens(), 4u);
  EXPECT_EQ(plan.positions[0], 5);
  EXPECT_EQ(plan.positions[1], 6);
  EXPECT_EQ(plan.positions[2], 0);
  EXPECT_EQ(plan.token_seq[3], 1u);
  EXPECT_EQ(plan.block_ids[2], 7);
  EXPECT_EQ(plan.table_begin[1], 2u);
  plan.clear();
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(plan.num_tokens(), 0u);
}

}  // namespace
}  // namespace sluice
