// How the engine describes a request's next token to a backend that samples on the device, and how it reads
// a StepOutput that mixes device-sampled rows with rows returned as logits.
#include "engine/sampling/plan_sampling.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/backend/backend.h"

namespace sluice {
namespace {

TEST(PlanSampling, CopiesTheDrawParameters) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 40;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  const std::vector<std::int32_t> eos = {2};
  const SequenceSampling s = plan_sampling(p, 1234, 5, eos);
  EXPECT_FLOAT_EQ(s.temperature, 0.7f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_FLOAT_EQ(s.min_p, 0.05f);
  EXPECT_EQ(s.seed, 1234u);
  EXPECT_EQ(s.token_index, 5u);
  EXPECT_FALSE(s.host_sample);
}

TEST(PlanSampling, HostSamplesWhatOnlyTheHostSamplerDoes) {
  const std::vector<std::int32_t> eos = {2};
  const auto host = [&](SamplingParams p, std::uint32_t generated = 0,
                        std::span<const std::int32_t> e = std::span<const std::int32_t>()) {
    return plan_sampling(p, 1, generated, e.empty() ? std::span<const std::int32_t>(eos) : e).host_sample;
  };
  SamplingParams p;
  EXPECT_FALSE(host(p));
  p = {};
  p.presence_penalty = 0.5f;
  EXPECT_TRUE(host(p));
  p = {};
  p.frequency_penalty = -0.5f;
  EXPECT_TRUE(host(p));
  p = {};
  p.repetition_penalty = 1.1f;
  EXPECT_TRUE(host(p));
  p = {};
  p.logit_bias = {{3, 1.0f}};
  EXPECT_TRUE(host(p));
  p = {};
  p.logprobs = true;
  EXPECT_TRUE(host(p));
  // min_tokens only while it bans something.
  p = {};
  p.min_tokens = 3;
  EXPECT_TRUE(host(p, 2));
  EXPECT_FALSE(host(p, 3));
  p.ignore_eos = true;
  EXPECT_FALSE(host(p, 0));
  p.stop_token_ids = {7};
  EXPECT_TRUE(host(p, 0));
  // Stop strings, stop ids and max_tokens are the engine's business after sampling: no host sampling.
  p = {};
  p.stop = {"x"};
  p.stop_token_ids = {7};
  p.max_tokens = 4;
  EXPECT_FALSE(host(p, 0));
}

TEST(PlanSampling, StepPlanDefaultsToGreedyAndSetsTheLastSequence) {
  StepPlan plan(StepPlanLimits{4, 16, 16});
  EXPECT_FALSE(plan.set_sampling(SequenceSampling{}));
  const std::vector<std::int32_t> toks = {1, 2}, table = {0};
  ASSERT_TRUE(plan.add_sequence(7, toks, 0, table, true));
  SequenceSampling s;
  s.temperature = 1.0f;
  s.seed = 9;
  ASSERT_TRUE(plan.set_sampling(s));
  ASSERT_TRUE(plan.add_sequence(8, toks, 0, table, true));
  EXPECT_EQ(plan.sampling[0].seed, 9u);
  EXPECT_FLOAT_EQ(plan.sampling[1].temperature, 0.0f);  // a new sequence starts greedy
  plan.clear();
  ASSERT_TRUE(plan.add_sequence(9, toks, 0, table, true));
  EXPECT_EQ(plan.sampling[0].seed, 0u);  // reset by add_sequence, not left from the last step
}

TEST(StepOutputRows, LogitsRowMapsRowsToLogits) {
  const std::vector<float> logits = {1, 2, 3, 4, 5, 6};  // two rows of vocab 3
  StepOutput all;
  all.num_rows = 2;
  all.vocab = 3;
  all.logits = logits;
  EXPECT_TRUE(all.has_logits(1));
  EXPECT_EQ(all.row_logits(1)[0], 4.0f);

  const std::vector<std::int32_t> ids = {11, 12, 13};
  const std::vector<std::int32_t> map = {-1, 1, -1};
  StepOutput mixed;
  mixed.num_rows = 3;
  mixed.vocab = 3;
  mixed.logits = logits;
  mixed.token_ids = ids;
  mixed.logits_row = map;
  EXPECT_FALSE(mixed.has_logits(0));
  EXPECT_TRUE(mixed.row_logits(0).empty());
  EXPECT_TRUE(mixed.has_logits(1));
  EXPECT_EQ(mixed.row_logits(1)[0], 4.0f);
  EXPECT_FALSE(mixed.has_logits(2));

  StepOutput ids_only;
  ids_only.num_rows = 3;
  ids_only.vocab = 3;
  ids_only.token_ids = ids;
  EXPECT_FALSE(ids_only.has_logits(0));
}

}  // namespace
}  // namespace sluice
