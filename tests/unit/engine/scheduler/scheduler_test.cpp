#include "engine/scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace sluice {
namespace {

// One sequence of a plan, copied out for comparison.
struct Row {
  std::uint64_t id = 0;
  std::int32_t start = 0;
  std::vector<std::int32_t> tokens;
  bool logits = false;
  std::vector<std::int32_t> table;
};

std::vector<Row> rows(const StepPlan& plan) {
  std::vector<Row> out;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    Row r;
    r.id = plan.seq_ids[i];
    r.start = plan.start_pos[i];
    r.tokens.assign(plan.token_ids.begin() + plan.token_begin[i],
                    plan.token_ids.begin() + plan.token_begin[i] + plan.token_count[i]);
    r.logits = plan.wants_logits[i] != 0;
    r.table.assign(plan.block_ids.begin() + plan.table_begin[i],
                   plan.block_ids.begin() + plan.table_begin[i] + plan.table_count[i]);
    out.push_back(r);
  }
  return out;
}

// Prompt of `n` tokens whose ids encode the request: id * 1000 + position.
std::vector<std::int32_t> prompt(std::uint64_t id, int n) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(id * 1000 + i);
  return p;
}

// The "model": the token sampled after a sequence's first `length` tokens depends only on (id, length), so a
// recomputed sequence must produce exactly what it would have without preemption.
std::int32_t model_token(std::uint64_t id, std::uint32_t length) {
  return static_cast<std::int32_t>(500000 + id * 1000 + length);
}

std::vector<std::int32_t> sample_all(const StepPlan& plan) {
  std::vector<std::int32_t> out;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    if (plan.wants_logits[i] == 0) continue;
    const auto length = static_cast<std::uint32_t>(plan.start_pos[i]) + plan.token_count[i];
    out.push_back(model_token(plan.seq_ids[i], length));
  }
  return out;
}

Scheduler make(const SchedulerConfig& c) {
  auto s = Scheduler::create(c);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return std::move(s).value();
}

SchedulerConfig config(std::uint32_t budget, std::uint32_t blocks, std::uint32_t block_size = 16) {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = budget;
  c.max_model_len = 1024;
  c.block_size = block_size;
  c.num_kv_blocks = blocks;
  return c;
}

// Runs schedule + on_step_done with the deterministic model; returns the plan's rows.
std::vector<Row> step(Scheduler& s, StepPlan& plan) {
  s.schedule(plan);
  std::vector<Row> out = rows(plan);
  auto done = s.on_step_done(plan, sample_all(plan));
  EXPECT_TRUE(done.ok());
  return out;
}

TEST(Scheduler, ChunkedPrefillSplitsPromptsWithinTheBudget) {
  Scheduler s = make(config(256, 1000));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 10), 50}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 300), 50}).ok());
  ASSERT_TRUE(s.add({3, prompt(3, 5), 50}).ok());

  // Step 1: A whole (10), B's first 246; C does not fit.
  ScheduleSummary sum = s.schedule(plan);
  EXPECT_EQ(plan.num_tokens(), 256u);
  EXPECT_EQ(sum.admitted, 2u);
  auto r = rows(plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, 1u);
  EXPECT_EQ(r[0].start, 0);
  EXPECT_EQ(r[0].tokens, prompt(1, 10));
  EXPECT_TRUE(r[0].logits);
  EXPECT_EQ(r[0].table, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(r[1].id, 2u);
  EXPECT_EQ(r[1].start, 0);
  EXPECT_EQ(r[1].tokens.size(), 246u);
  EXPECT_EQ(r[1].tokens.front(), 2000);
  EXPECT_EQ(r[1].tokens.back(), 2245);
  EXPECT_FALSE(r[1].logits);
  EXPECT_EQ(r[1].table.size(), 16u);  // ceil(246 / 16)
  for (std::uint32_t j = 0; j < plan.num_tokens(); ++j) {
    const std::uint32_t seq = plan.token_seq[j];
    EXPECT_EQ(plan.positions[j], plan.start_pos[seq] + static_cast<std::int32_t>(j - plan.token_begin[seq]));
  }
  EXPECT_EQ(s.status(2)->state, SeqState::prefilling);
  EXPECT_EQ(s.status(3)->state, SeqState::waiting);

  auto updates = s.on_step_done(plan, sample_all(plan));
  ASSERT_TRUE(updates.ok());
  ASSERT_EQ(updates->size(), 1u);
  EXPECT_EQ((*updates)[0].id, 1u);
  EXPECT_EQ((*updates)[0].token, model_token(1, 10));
  EXPECT_EQ(s.status(1)->state, SeqState::decoding);
  EXPECT_EQ(s.status(2)->num_computed, 246u);

  // Step 2: A decodes first, then B's remaining 54 (now at its end), then C is admitted.
  sum = s.schedule(plan);
  r = rows(plan);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(sum.decode_seqs, 1u);
  EXPECT_EQ(sum.prefill_seqs, 2u);
  EXPECT_EQ(r[0].id, 1u);
  EXPECT_EQ(r[0].start, 10);
  EXPECT_EQ(r[0].tokens, (std::vector<std::int32_t>{model_token(1, 10)}));
  EXPECT_TRUE(r[0].logits);
  EXPECT_EQ(r[1].id, 2u);
  EXPECT_EQ(r[1].start, 246);
  EXPECT_EQ(r[1].tokens.size(), 54u);
  EXPECT_EQ(r[1].tokens.front(), 2246);
  EXPECT_TRUE(r[1].logits);
  EXPECT_EQ(r[1].table.size(), 19u);  // ceil(300 / 16)
  EXPECT_EQ(r[2].id, 3u);
  EXPECT_EQ(r[2].start, 0);
  EXPECT_EQ(r[2].tokens, prompt(3, 5));
  EXPECT_EQ(plan.num_tokens(), 60u);
  ASSERT_TRUE(s.on_step_done(plan, sample_all(plan)).ok());

  // Step 3: decode only, one token each at the end of each sequence.
  sum = s.schedule(plan);
  r = rows(plan);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(sum.decode_seqs, 3u);
  EXPECT_EQ(sum.prefill_seqs, 0u);
  EXPECT_EQ(plan.num_tokens(), 3u);
  EXPECT_EQ(r[0].start, 11);
  EXPECT_EQ(r[1].start, 300);
  EXPECT_EQ(r[1].tokens, (std::vector<std::int32_t>{model_token(2, 300)}));
  EXPECT_EQ(r[2].start, 5);
  for (const Row& row : r) EXPECT_TRUE(row.logits);
}

TEST(Scheduler, LongPrefillThresholdCapsEachChunk) {
  SchedulerConfig c = config(256, 1000);
  c.long_prefill_token_threshold = 64;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 150), 4}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 100), 4}).ok());
  auto r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].tokens.size(), 64u);
  EXPECT_EQ(r[1].tokens.size(), 64u);
  r = step(s, plan);
  EXPECT_EQ(r[0].start, 64);
  EXPECT_EQ(r[0].tokens.size(), 64u);
  EXPECT_EQ(r[1].start, 64);
  EXPECT_EQ(r[1].tokens.size(), 36u);
  EXPECT_TRUE(r[1].logits);
  r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, 2u);  // B decodes first now
  EXPECT_EQ(r[1].id, 1u);
  EXPECT_EQ(r[1].start, 128);
  EXPECT_EQ(r[1].tokens.size(), 22u);
}

TEST(Scheduler, WithoutChunkingPromptsGoInWhole) {
  SchedulerConfig c = config(512, 1000);
  c.max_model_len = 512;
  c.enable_chunked_prefill = false;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 10), 8}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 300), 8}).ok());
  ASSERT_TRUE(s.add({3, prompt(3, 250), 8}).ok());
  auto r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);  // 310 tokens; 250 more would exceed 512 and may not be split
  EXPECT_EQ(r[1].tokens.size(), 300u);
  r = step(s, plan);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[2].id, 3u);
  EXPECT_EQ(r[2].tokens.size(), 250u);
  EXPECT_EQ(plan.num_tokens(), 252u);

  c.max_num_batched_tokens = 256;  // smaller than max_model_len: a recomputation could never fit
  EXPECT_EQ(Scheduler::create(c).error().kind, SchedulerError::Kind::invalid_config);
}

TEST(Scheduler, PreemptsTheNewestByRecomputationWhenBlocksRunOut) {
  // 6 blocks of 4 slots. Two prompts of 8 tokens take 2 blocks each, then a third block each at position 8;
  // at position 12 the older one needs a fourth block and none is free.
  Scheduler s = make(config(64, 6, 4));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 8), 12}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 8), 12}).ok());
  step(s, plan);  // prefill both
  for (int i = 0; i < 4; ++i) {
    auto r = step(s, plan);  // decodes at positions 8..11
    ASSERT_EQ(r.size(), 2u);
  }
  EXPECT_EQ(s.blocks().num_free(), 0u);
  EXPECT_EQ(s.status(2)->num_generated, 5u);

  ScheduleSummary sum = s.schedule(plan);
  EXPECT_EQ(sum.preempted, 1u);
  auto r = rows(plan);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, 1u);
  EXPECT_EQ(r[0].start, 12);
  EXPECT_EQ(r[0].table.size(), 4u);
  const auto b = s.status(2);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->state, SeqState::waiting);
  EXPECT_EQ(b->num_computed, 0u);
  EXPECT_EQ(b->num_tokens, 13u);  // its prompt is now the 8 original tokens and the 5 it generated
  EXPECT_FALSE(s.blocks().has_table(2));
  EXPECT_EQ(s.stats().preemptions, 1u);
  EXPECT_EQ(s.stats().blocks.preemptions, 1u);
  EXPECT_EQ(s.num_waiting(), 1u);
  ASSERT_TRUE(s.on_step_done(plan, sample_all(plan)).ok());

  // A runs to its max_tokens; B waits (its 13 tokens need 4 blocks, 2 are free), then is recomputed.
  std::vector<std::int32_t> expected_b = prompt(2, 8);
  for (std::uint32_t len = 8; len < 13; ++len) expected_b.push_back(model_token(2, len));
  bool saw_recompute = false;
  for (int guard = 0; guard < 64 && s.has_work(); ++guard) {
    s.schedule(plan);
    for (const Row& row : rows(plan)) {
      if (row.id == 2 && row.start == 0) {
        EXPECT_FALSE(s.status(1).has_value());  // only after A finished and freed its blocks
        EXPECT_EQ(row.tokens, expected_b);
        EXPECT_TRUE(row.logits);
        saw_recompute = true;
      }
    }
    auto updates = s.on_step_done(plan, sample_all(plan));
    ASSERT_TRUE(updates.ok());
    for (const SequenceUpdate& u : *updates) {
      if (u.finished) {
        EXPECT_EQ(u.num_generated, 12u);
      }
    }
  }
  EXPECT_TRUE(saw_recompute);
  EXPECT_FALSE(s.has_work());
  EXPECT_EQ(s.blocks().num_free(), 6u);
}

TEST(Scheduler, CancelFreesBlocksAtOnce) {
  Scheduler s = make(config(256, 100));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 40), 10}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 20), 10}).ok());
  ASSERT_TRUE(s.add({3, prompt(3, 20), 10}).ok());
  s.schedule(plan);
  EXPECT_EQ(s.blocks().num_free(), 100u - 3u - 2u - 2u);

  // Cancelled between schedule and on_step_done: blocks return now, the stale plan row is skipped.
  EXPECT_TRUE(s.cancel(1));
  EXPECT_FALSE(s.cancel(1));
  EXPECT_EQ(s.blocks().num_free(), 100u - 4u);
  EXPECT_FALSE(s.status(1).has_value());
  EXPECT_EQ(s.blocks().counters().frees, 3u);
  auto updates = s.on_step_done(plan, sample_all(plan));
  ASSERT_TRUE(updates.ok());
  EXPECT_EQ(updates->size(), 2u);

  s.schedule(plan);
  for (const Row& r : rows(plan)) EXPECT_NE(r.id, 1u);
  EXPECT_TRUE(s.finish(2, FinishReason::stop));
  EXPECT_EQ(s.blocks().num_free(), 98u);
  EXPECT_EQ(s.num_running(), 1u);
}

TEST(Scheduler, CancelOfAWaitingRequest) {
  SchedulerConfig c = config(256, 100);
  c.max_num_seqs = 1;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 4), 10}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 4), 10}).ok());
  ASSERT_TRUE(s.add({3, prompt(3, 4), 10}).ok());
  step(s, plan);
  EXPECT_EQ(s.num_waiting(), 2u);
  EXPECT_TRUE(s.cancel(2));
  EXPECT_EQ(s.num_waiting(), 1u);
  EXPECT_TRUE(s.cancel(1));
  auto r = step(s, plan);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, 3u);
}

TEST(Scheduler, MaxNumSeqsCapsRunningSequencesAndAdmissionIsFifo) {
  SchedulerConfig c = config(256, 100);
  c.max_num_seqs = 2;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());
  for (std::uint64_t id = 1; id <= 4; ++id) ASSERT_TRUE(s.add({id, prompt(id, 3), 2}).ok());
  auto r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, 1u);
  EXPECT_EQ(r[1].id, 2u);
  EXPECT_EQ(s.num_running(), 2u);
  EXPECT_EQ(s.num_waiting(), 2u);
  r = step(s, plan);  // 1 and 2 generate their second token and finish
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(s.num_running(), 0u);
  r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, 3u);
  EXPECT_EQ(r[1].id, 4u);
}

TEST(Scheduler, AHeadThatDoesNotFitIsNotOvertaken) {
  // 10 blocks of 16. Request 1 holds 6; request 2 needs 5 for its first chunk, so it waits — and request 3,
  // which would fit, waits behind it.
  Scheduler s = make(config(256, 10));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 90), 60}).ok());
  step(s, plan);
  EXPECT_EQ(s.blocks().num_free(), 4u);
  ASSERT_TRUE(s.add({2, prompt(2, 70), 10}).ok());
  ASSERT_TRUE(s.add({3, prompt(3, 4), 10}).ok());
  auto r = step(s, plan);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, 1u);
  EXPECT_EQ(s.status(3)->state, SeqState::waiting);
  EXPECT_TRUE(s.cancel(1));
  r = step(s, plan);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, 2u);
  EXPECT_EQ(r[1].id, 3u);
}

TEST(Scheduler, FinishesByLengthAndFreesBlocks) {
  SchedulerConfig c = config(256, 100);
  c.max_model_len = 8;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 5), 2}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 5), std::nullopt}).ok());  // up to max_model_len: 3 tokens
  EXPECT_EQ(s.status(2)->max_tokens, 3u);
  std::map<std::uint64_t, std::vector<std::int32_t>> out;
  std::map<std::uint64_t, bool> finished;
  for (int guard = 0; guard < 10 && s.has_work(); ++guard) {
    s.schedule(plan);
    auto updates = s.on_step_done(plan, sample_all(plan));
    ASSERT_TRUE(updates.ok());
    for (const SequenceUpdate& u : *updates) {
      EXPECT_FALSE(finished[u.id]);
      out[u.id].push_back(u.token);
      finished[u.id] = u.finished;
    }
  }
  EXPECT_EQ(out[1], (std::vector<std::int32_t>{model_token(1, 5), model_token(1, 6)}));
  EXPECT_EQ(out[2].size(), 3u);
  EXPECT_TRUE(finished[1]);
  EXPECT_TRUE(finished[2]);
  EXPECT_EQ(s.blocks().num_free(), 100u);
  EXPECT_FALSE(s.has_work());
}

TEST(Scheduler, RefusesRequestsThatCanNeverRun) {
  SchedulerConfig c = config(256, 4);  // 4 blocks of 16: 64 positions
  c.max_model_len = 100;
  Scheduler s = make(c);
  using K = SchedulerError::Kind;
  EXPECT_EQ(s.add({1, {}, 4}).error().kind, K::empty_prompt);
  EXPECT_EQ(s.add({2, prompt(2, 10), 0}).error().kind, K::invalid_max_tokens);
  EXPECT_EQ(s.add({3, prompt(3, 90), 11}).error().kind, K::context_too_long);
  EXPECT_EQ(s.add({4, prompt(4, 100), std::nullopt}).error().kind, K::context_too_long);
  auto kv = s.add({5, prompt(5, 60), 6});  // 65 positions need 5 blocks
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.error().kind, K::kv_capacity);
  EXPECT_NE(kv.error().message.find("5 KV blocks"), std::string::npos);
  EXPECT_TRUE(s.add({6, prompt(6, 60), 5}).ok());  // the last token needs no slot: 64 positions fit
  EXPECT_EQ(s.add({6, prompt(6, 3), 5}).error().kind, K::duplicate_id);
  EXPECT_EQ(s.stats().rejected, 6u);
  EXPECT_EQ(s.num_waiting(), 1u);
}

TEST(Scheduler, InvalidConfigsAreRefused) {
  SchedulerConfig c = config(256, 0);
  EXPECT_EQ(Scheduler::create(c).error().kind, SchedulerError::Kind::invalid_config);
  c = config(256, 10);
  c.block_size = 0;
  EXPECT_FALSE(Scheduler::create(c).ok());
  c = config(0, 10);
  EXPECT_FALSE(Scheduler::create(c).ok());
  c = config(256, 10);
  c.long_prefill_token_threshold = 0;
  EXPECT_FALSE(Scheduler::create(c).ok());
}

TEST(Scheduler, OnStepDoneRejectsAMismatchedOutputAndChangesNothing) {
  Scheduler s = make(config(256, 100));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 4), 4}).ok());
  s.schedule(plan);
  const std::vector<std::int32_t> two = {1, 2};
  auto r = s.on_step_done(plan, two);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, SchedulerError::Kind::bad_output);
  EXPECT_EQ(s.status(1)->num_computed, 0u);
  // A failed backend step is simply not reported: the same tokens are planned again.
  s.schedule(plan);
  auto again = rows(plan);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].start, 0);
  EXPECT_EQ(again[0].tokens, prompt(1, 4));
}

TEST(Scheduler, RespectsASmallerPlan) {
  Scheduler s = make(config(256, 100));
  StepPlan plan(StepPlanLimits{2, 50, 64});
  for (std::uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(s.add({id, prompt(id, 30), 4}).ok());
  s.schedule(plan);
  EXPECT_EQ(plan.num_seqs(), 2u);
  EXPECT_EQ(plan.num_tokens(), 50u);
  EXPECT_EQ(rows(plan)[1].tokens.size(), 20u);
}

TEST(Scheduler, StatsForMetrics) {
  Scheduler s = make(config(256, 10));
  StepPlan plan(s.plan_limits());
  ASSERT_TRUE(s.add({1, prompt(1, 40), 4}).ok());
  ASSERT_TRUE(s.add({2, prompt(2, 4), 4}).ok());
  SchedulerStats st = s.stats();
  EXPECT_EQ(st.waiting, 2u);
  EXPECT_EQ(st.running, 0u);
  EXPECT_EQ(st.kv_usage, 0.0);
  step(s, plan);
  st = s.stats();
  EXPECT_EQ(st.running, 2u);
  EXPECT_EQ(st.waiting, 0u);
  EXPECT_DOUBLE_EQ(st.kv_usage, 0.4);  // 3 + 1 of 10 blocks
  EXPECT_EQ(st.steps, 1u);
  EXPECT_EQ(st.blocks.used, 4u);
  s.schedule(plan);
  EXPECT_EQ(s.stats().steps, 2u);

  Scheduler idle = make(config(256, 10));
  idle.schedule(plan);
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(idle.stats().steps, 0u);  // an empty plan is not a step
}

// Many requests, a small cache, random cancels: every plan keeps the StepPlan contract, no two running
// sequences own the same block, and every request that was not cancelled produces exactly what the model
// would have produced without any preemption.
TEST(Scheduler, RandomizedWorkloadKeepsInvariants) {
  std::mt19937 rng(7);
  SchedulerConfig c;
  c.max_num_seqs = 6;
  c.max_num_batched_tokens = 48;
  c.max_model_len = 96;
  c.block_size = 4;
  c.num_kv_blocks = 40;
  Scheduler s = make(c);
  StepPlan plan(s.plan_limits());

  std::map<std::uint64_t, std::uint32_t> prompt_len, max_tokens;
  std::map<std::uint64_t, std::vector<std::int32_t>> outputs;
  std::set<std::uint64_t> cancelled, finished;
  std::uint64_t next_id = 1;
  std::uint64_t preempted = 0;
  for (int iteration = 0; iteration < 2000 && (next_id <= 60 || s.has_work()); ++iteration) {
    if (next_id <= 60 && rng() % 3 == 0) {
      const auto p = static_cast<int>(1 + rng() % 60);
      const auto m = static_cast<std::uint32_t>(1 + rng() % 30);
      ASSERT_TRUE(s.add({next_id, prompt(next_id, p), m}).ok());
      prompt_len[next_id] = static_cast<std::uint32_t>(p);
      max_tokens[next_id] = m;
      ++next_id;
    }
    const ScheduleSummary sum = s.schedule(plan);
    preempted += sum.preempted;
    ASSERT_LE(plan.num_tokens(), c.max_num_batched_tokens);
    ASSERT_LE(plan.num_seqs(), c.max_num_seqs);
    std::set<std::int32_t> blocks_in_plan;
    for (const Row& r : rows(plan)) {
      const auto toks = s.tokens(r.id);
      ASSERT_LE(r.start + r.tokens.size(), toks.size());
      EXPECT_TRUE(std::equal(r.tokens.begin(), r.tokens.end(), toks.begin() + r.start));
      EXPECT_GE(r.table.size() * c.block_size, r.start + r.tokens.size());
      EXPECT_EQ(r.logits, r.start + r.tokens.size() == toks.size());
      for (std::int32_t b : r.table) EXPECT_TRUE(blocks_in_plan.insert(b).second) << "block " << b << " shared";
    }
    auto updates = s.on_step_done(plan, sample_all(plan));
    ASSERT_TRUE(updates.ok());
    for (const SequenceUpdate& u : *updates) {
      outputs[u.id].push_back(u.token);
      if (u.finished) finished.insert(u.id);
    }
    if (rng() % 25 == 0 && s.num_running() > 0) {
      // Cancel someone at random among the known ids still alive.
      const std::uint64_t victim = 1 + rng() % (next_id - 1);
      if (s.cancel(victim)) cancelled.insert(victim);
    }
    const BlockCounters bc = s.blocks().counters();
    ASSERT_EQ(bc.free + bc.used, bc.total);
  }
  EXPECT_FALSE(s.has_work());
  EXPECT_EQ(s.blocks().num_free(), c.num_kv_blocks);
  EXPECT_GT(preempted, 0u);  // the cache is small enough that preemption happened
  EXPECT_EQ(finished.size() + cancelled.size(), 60u);
  for (std::uint64_t id = 1; id < next_id; ++id) {
    if (cancelled.contains(id)) continue;
    ASSERT_TRUE(finished.contains(id)) << id;
    std::vector<std::int32_t> expected;
    for (std::uint32_t k = 0; k < max_tokens[id]; ++k) expected.push_back(model_token(id, prompt_len[id] + k));
    EXPECT_EQ(outputs[id], expected) << "request " << id;
  }
}

}  // namespace
}  // namespace sluice
