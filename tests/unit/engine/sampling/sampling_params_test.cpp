#include "engine/sampling/sampling_params.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

std::string failing_field(const SamplingParams& p, std::uint32_t vocab = 100) {
  auto r = validate_sampling_params(p, vocab);
  return r.ok() ? std::string() : r.error().field;
}

TEST(SamplingParams, DefaultsAreValid) { EXPECT_EQ(failing_field(SamplingParams{}), ""); }

TEST(SamplingParams, RejectsOutOfRangeValuesNamingTheField) {
  SamplingParams p;
  p.temperature = -0.1f;
  EXPECT_EQ(failing_field(p), "temperature");
  p = {};
  p.top_k = -2;
  EXPECT_EQ(failing_field(p), "top_k");
  p = {};
  p.top_p = 0.0f;
  EXPECT_EQ(failing_field(p), "top_p");
  p = {};
  p.min_p = 1.5f;
  EXPECT_EQ(failing_field(p), "min_p");
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_EQ(failing_field(p), "repetition_penalty");
  p = {};
  p.frequency_penalty = 2.5f;
  EXPECT_EQ(failing_field(p), "frequency_penalty");
  p = {};
  p.logit_bias = {{100, 1.0f}};
  EXPECT_EQ(failing_field(p, 100), "logit_bias");
  p = {};
  p.max_tokens = 4;
  p.min_tokens = 5;
  EXPECT_EQ(failing_field(p), "min_tokens");
  p = {};
  p.stop = {""};
  EXPECT_EQ(failing_field(p), "stop");
  p = {};
  p.stop_token_ids = {-1};
  EXPECT_EQ(failing_field(p), "stop_token_ids");
  p = {};
  p.top_logprobs = 3;
  EXPECT_EQ(failing_field(p), "top_logprobs");  // needs logprobs
  p.logprobs = true;
  EXPECT_EQ(failing_field(p), "");
}

}  // namespace
}  // namespace sluice
