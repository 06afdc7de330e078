#include "engine/sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "engine/sampling/philox.h"

namespace sluice {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> out;
  for (double x : p) out.push_back(static_cast<float>(std::log(x)));
  return out;
}

// Samples `draws` tokens at consecutive token indices and returns the observed frequency of each id.
std::vector<double> frequencies(const std::vector<float>& logits, const SamplingParams& params, int draws,
                                std::uint64_t seed = 2024) {
  std::vector<double> freq(logits.size(), 0.0);
  TokenHistory history;
  SamplerWorkspace ws;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> row = logits;
    const SampleResult r = sample_row(row, params, history, seed, static_cast<std::uint32_t>(i), {}, ws);
    EXPECT_GE(r.token, 0);
    freq[static_cast<std::size_t>(r.token)] += 1.0 / draws;
  }
  return freq;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

double chi_square(const std::vector<double>& observed_freq, const std::vector<double>& expected_p, int draws) {
  double chi2 = 0.0;
  for (std::size_t i = 0; i < observed_freq.size(); ++i) {
    if (expected_p[i] == 0.0) continue;
    const double o = observed_freq[i] * draws, e = expected_p[i] * draws;
    chi2 += (o - e) * (o - e) / e;
  }
  return chi2;
}

SamplingParams at_temperature(float t) {
  SamplingParams p;
  p.temperature = t;
  return p;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  SamplingParams p = at_temperature(0.0f);
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  EXPECT_EQ(sample_row(logits, p, TokenHistory{}, 1, 0, {}).token, 1);
  // The seed and index play no part.
  for (std::uint32_t i = 0; i < 20; ++i) {
    std::vector<float> row = {1.0f, 3.0f, 2.0f, 3.0f};
    EXPECT_EQ(sample_row(row, p, TokenHistory{}, 77 + i, i, {}).token, 1);
  }
  // Temperatures below 1e-5 count as greedy.
  std::vector<float> row = {0.0f, 0.1f, 0.0f};
  EXPECT_EQ(sample_row(row, at_temperature(1e-6f), TokenHistory{}, 3, 0, {}).token, 1);
}

TEST(Sampler, SameSeedAndIndexGiveTheSameToken) {
  std::vector<float> base(1000);
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = static_cast<float>(std::sin(i * 0.37) * 2.0);
  const SamplingParams p = at_temperature(1.0f);
  std::set<std::int32_t> distinct;
  for (std::uint32_t index = 0; index < 50; ++index) {
    std::vector<float> a = base, b = base;
    const auto ra = sample_row(a, p, TokenHistory{}, 99, index, {});
    const auto rb = sample_row(b, p, TokenHistory{}, 99, index, {});
    EXPECT_EQ(ra.token, rb.token);
    distinct.insert(ra.token);
  }
  EXPECT_GT(distinct.size(), 25u);  // different indices draw different tokens
  // Another seed gives another sequence of draws.
  int same = 0;
  for (std::uint32_t index = 0; index < 50; ++index) {
    std::vector<float> a = base, b = base;
    same += sample_row(a, p, TokenHistory{}, 99, index, {}).token == sample_row(b, p, TokenHistory{}, 100, index, {}).token;
  }
  EXPECT_LT(same, 10);
}

TEST(Sampler, MatchesTheDistributionAtTemperatureOne) {
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4};
  constexpr int kDraws = 20000;
  const auto freq = frequencies(log_probs(p), at_temperature(1.0f), kDraws);
  EXPECT_LT(max_abs_diff(freq, p), 0.015);
  EXPECT_LT(chi_square(freq, p, kDraws), 16.27);  // 3 degrees of freedom, p = 0.001
}

TEST(Sampler, TemperatureSharpensTheDistribution) {
  // logits / 0.5 = 2 log p, so the sampled distribution is p^2 renormalized.
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4};
  std::vector<double> sq;
  for (double x : p) sq.push_back(x * x / 0.3);
  constexpr int kDraws = 20000;
  const auto freq = frequencies(log_probs(p), at_temperature(0.5f), kDraws);
  EXPECT_LT(max_abs_diff(freq, sq), 0.015);
  EXPECT_LT(chi_square(freq, sq, kDraws), 16.27);
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  SamplingParams params = at_temperature(1.0f);
  params.top_k = 2;
  const auto freq = frequencies(log_probs({0.1, 0.2, 0.3, 0.4}), params, 20000);
  EXPECT_EQ(freq[0], 0.0);
  EXPECT_EQ(freq[1], 0.0);
  EXPECT_NEAR(freq[2], 3.0 / 7.0, 0.015);
  EXPECT_NEAR(freq[3], 4.0 / 7.0, 0.015);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingTheMass) {
  // Sorted: id2 0.5, id0 0.25, id3 0.15, id1 0.1. With top_p 0.7 the mass before id3 is 0.75: it goes.
  const auto logits = log_probs({0.25, 0.1, 0.5, 0.15});
  SamplingParams params = at_temperature(1.0f);
  params.top_p = 0.7f;
  auto freq = frequencies(logits, params, 20000);
  EXPECT_EQ(freq[1], 0.0);
  EXPECT_EQ(freq[3], 0.0);
  EXPECT_NEAR(freq[2], 2.0 / 3.0, 0.015);
  EXPECT_NEAR(freq[0], 1.0 / 3.0, 0.015);
  // 0.8: the mass before id3 (0.75) is below, so id3 stays; id1 still goes.
  params.top_p = 0.8f;
  freq = frequencies(logits, params, 20000);
  EXPECT_EQ(freq[1], 0.0);
  EXPECT_NEAR(freq[3], 0.15 / 0.9, 0.015);
  // Tiny top_p keeps the most likely token alone.
  params.top_p = 0.01f;
  freq = frequencies(logits, params, 2000);
  EXPECT_NEAR(freq[2], 1.0, 1e-9);
}

TEST(Sampler, MinPCutsRelativeToTheMostLikely) {
  // p_max = 0.5; min_p 0.4 keeps p >= 0.2: ids 2 (0.5) and 0 (0.25).
  const auto logits = log_probs({0.25, 0.1, 0.5, 0.15});
  SamplingParams params = at_temperature(1.0f);
  params.min_p = 0.4f;
  const auto freq = frequencies(logits, params, 20000);
  EXPECT_EQ(freq[1], 0.0);
  EXPECT_EQ(freq[3], 0.0);
  EXPECT_NEAR(freq[2], 2.0 / 3.0, 0.015);
}

// A full-sort reference of the temperature path: softmax weights, descending order, top_k, top_p, min_p,
// then inverse CDF in ascending id order with the same uniform.
struct Reference {
  std::vector<float> logits;  // scaled by the temperature
  float max_logit = 0.0f;
  std::vector<std::int32_t> ids;  // the candidates, ascending

  Reference(std::vector<float> raw, const SamplingParams& p) : logits(std::move(raw)) {
    const float inv_t = 1.0f / p.temperature;
    for (float& l : logits) l *= inv_t;
    const float m = max_logit = *std::max_element(logits.begin(), logits.end());
    std::vector<std::int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    std::size_t n = order.size();
    if (p.top_k > 0) n = std::min<std::size_t>(n, static_cast<std::size_t>(p.top_k));
    double total = 0.0;
    if (n < order.size()) {
      for (std::size_t i = 0; i < n; ++i) total += std::exp(logits[order[i]] - m);
    } else {
      for (float l : logits) total += std::exp(l - m);
    }
    if (p.top_p < 1.0f) {
      double cum = 0.0;
      std::size_t keep = 0;
      while (keep < n && (keep == 0 || cum < p.top_p * total)) cum += std::exp(logits[order[keep++]] - m);
      n = keep;
    }
    while (p.min_p > 0.0f && n > 1 && std::exp(logits[order[n - 1]] - m) < p.min_p) --n;
    ids.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
    std::sort(ids.begin(), ids.end());
  }

  std::int32_t draw(std::uint64_t seed, std::uint32_t index) const {
    double z = 0.0;
    for (std::int32_t id : ids) z += std::exp(logits[id] - max_logit);
    const double target = philox::uniform(seed, index, 0) * z;
    double acc = 0.0;
    for (std::int32_t id : ids) {
      acc += std::exp(logits[id] - max_logit);
      if (acc > target) return id;
    }
    return ids.back();
  }
};

TEST(Sampler, AgreesWithAFullSortReferenceOnLargeVocabularies) {
  constexpr std::size_t kVocab = 50000;
  std::vector<float> base(kVocab);
  std::uint32_t state = 12345;
  for (float& l : base) {
    state = state * 1664525u + 1013904223u;
    l = static_cast<float>(state >> 8) / 16777216.0f * 4.0f;  // flat-ish: [0, 4)
  }
  // A peaked head of 100 tokens scattered over the vocabulary.
  for (int i = 0; i < 100; ++i) base[static_cast<std::size_t>(i) * 499 + 7] = 12.0f + 0.01f * i;

  struct Case {
    std::int32_t top_k;
    float top_p;
    float min_p;
    float temperature;
  };
  const Case cases[] = {{-1, 1.0f, 0.0f, 1.0f},  {40, 1.0f, 0.0f, 0.8f},  {-1, 0.9f, 0.0f, 1.0f},
                        {-1, 0.95f, 0.0f, 3.0f}, {-1, 0.5f, 0.0f, 10.0f}, {200, 0.8f, 0.05f, 1.5f},
                        {-1, 1.0f, 0.2f, 2.0f},  {1, 1.0f, 0.0f, 1.0f},    {20000, 0.9f, 0.0f, 2.0f}};
  for (const Case& c : cases) {
    SamplingParams p = at_temperature(c.temperature);
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    const Reference reference(base, p);
    SamplerWorkspace ws;
    for (std::uint32_t index = 0; index < 40; ++index) {
      std::vector<float> row = base;
      const std::int32_t got = sample_row(row, p, TokenHistory{}, 31337, index, {}, ws).token;
      EXPECT_EQ(got, reference.draw(31337, index))
          << "top_k " << c.top_k << " top_p " << c.top_p << " min_p " << c.min_p << " T " << c.temperature;
    }
  }
}

TEST(Sampler, TopPOnAPeakedLargeVocabularyStaysInTheNucleus) {
  std::vector<float> base(152064, 0.0f);
  std::set<std::int32_t> head;
  for (int i = 0; i < 100; ++i) {
    const std::int32_t id = (i * 7919) % 152064;
    base[static_cast<std::size_t>(id)] = 10.0f;
    head.insert(id);
  }
  // The head holds ~97.7% of the mass, so top_p 0.9 keeps only head tokens.
  SamplingParams p = at_temperature(1.0f);
  p.top_p = 0.9f;
  std::set<std::int32_t> seen;
  SamplerWorkspace ws;
  for (std::uint32_t index = 0; index < 150; ++index) {
    std::vector<float> row = base;
    const std::int32_t t = sample_row(row, p, TokenHistory{}, 5, index, {}, ws).token;
    EXPECT_TRUE(head.contains(t)) << t;
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 40u);
}

// Penalties on logits {2, -1, 0.5, 3, -2}, prompt {0, 1}, generated {3, 3, 1}.
std::vector<float> penalized(float repetition, float frequency, float presence) {
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  const std::vector<std::int32_t> prompt = {0, 1};
  TokenHistory h(prompt);
  for (std::int32_t id : {3, 3, 1}) h.append(id);
  SamplingParams p;
  p.repetition_penalty = repetition;
  p.frequency_penalty = frequency;
  p.presence_penalty = presence;
  process_logits(logits, p, h, {});
  return logits;
}

TEST(Sampler, RepetitionPenaltyCoversPromptAndOutput) {
  EXPECT_EQ(penalized(2.0f, 0.0f, 0.0f), (std::vector<float>{1.0f, -2.0f, 0.5f, 1.5f, -2.0f}));
}

TEST(Sampler, FrequencyPenaltyCountsGeneratedOccurrences) {
  EXPECT_EQ(penalized(1.0f, 0.5f, 0.0f), (std::vector<float>{2.0f, -1.5f, 0.5f, 2.0f, -2.0f}));
}

TEST(Sampler, PresencePenaltyAppliesOncePerGeneratedToken) {
  EXPECT_EQ(penalized(1.0f, 0.0f, 0.25f), (std::vector<float>{2.0f, -1.25f, 0.5f, 2.75f, -2.0f}));
}

TEST(Sampler, PenaltiesCombineInVllmOrder) {
  // Repetition first (id3: 3 / 2 = 1.5), then frequency (-2 * 0.5) and presence (-0.25).
  EXPECT_EQ(penalized(2.0f, 0.5f, 0.25f), (std::vector<float>{1.0f, -2.75f, 0.5f, 0.25f, -2.0f}));
}

TEST(Sampler, LogitBiasOfMinusHundredBans) {
  SamplingParams p = at_temperature(0.0f);
  p.logit_bias = {{2, -100.0f}, {99, 5.0f}};  // an id outside the vocabulary is ignored
  std::vector<float> logits = {0.0f, 1.0f, 5.0f, 0.5f};
  EXPECT_EQ(sample_row(logits, p, TokenHistory{}, 1, 0, {}).token, 1);

  p.temperature = 1.0f;
  const auto freq = frequencies({0.0f, 1.0f, 5.0f, 0.5f}, p, 5000);
  EXPECT_EQ(freq[2], 0.0);
  // A positive bias raises a token's chance.
  p.logit_bias = {{0, 10.0f}};
  EXPECT_GT(frequencies({0.0f, 1.0f, 5.0f, 0.5f}, p, 2000)[0], 0.9);
}

TEST(Sampler, MinTokensBansEosAndStopTokens) {
  const std::vector<std::int32_t> eos = {4};
  SamplingParams p = at_temperature(0.0f);
  p.min_tokens = 2;
  p.stop_token_ids = {3};
  TokenHistory h(std::vector<std::int32_t>{1, 2});
  h.append(0);  // one generated: still below min_tokens

  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 8.0f, 9.0f};
  EXPECT_EQ(sample_row(logits, p, h, 1, 1, eos).token, 2);

  h.append(0);  // two generated: the bans lift
  logits = {0.0f, 1.0f, 2.0f, 8.0f, 9.0f};
  EXPECT_EQ(sample_row(logits, p, h, 1, 2, eos).token, 4);

  // With ignore_eos, EOS is an ordinary token and is not banned; stop tokens still are.
  TokenHistory fresh;
  p.ignore_eos = true;
  logits = {0.0f, 1.0f, 2.0f, 8.0f, 9.0f};
  EXPECT_EQ(sample_row(logits, p, fresh, 1, 0, eos).token, 4);
  p.ignore_eos = false;
  logits = {0.0f, 1.0f, 2.0f, 8.0f, 9.0f};
  EXPECT_EQ(sample_row(logits, p, fresh, 1, 0, eos).token, 2);
}

TEST(Sampler, LogprobOfTheChosenTokenAndTopAlternatives) {
  SamplingParams p = at_temperature(0.0f);
  p.logprobs = true;
  p.top_logprobs = 2;
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const auto r = sample_row(logits, p, TokenHistory{}, 1, 0, {});
  const double log_z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_EQ(r.token, 2);
  EXPECT_NEAR(r.logprob, 3.0 - log_z, 1e-6);
  ASSERT_EQ(r.top_logprobs.size(), 2u);
  EXPECT_EQ(r.top_logprobs[0].id, 2);
  EXPECT_EQ(r.top_logprobs[1].id, 1);
  EXPECT_NEAR(r.top_logprobs[1].logprob, 2.0 - log_z, 1e-6);

  // With a temperature the log-probabilities are those of the scaled logits.
  p.temperature = 2.0f;
  p.top_logprobs = 0;
  logits = {1.0f, 2.0f, 3.0f};
  const auto t = sample_row(logits, p, TokenHistory{}, 1, 0, {});
  const double log_z2 = std::log(std::exp(0.5) + std::exp(1.0) + std::exp(1.5));
  const double expected[] = {0.5 - log_z2, 1.0 - log_z2, 1.5 - log_z2};
  EXPECT_NEAR(t.logprob, expected[t.token], 1e-6);
  EXPECT_TRUE(t.top_logprobs.empty());
}

TEST(Sampler, LogprobsAreNotComputedUnlessAsked) {
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SamplingParams p = at_temperature(0.0f);
  p.top_logprobs = 3;  // ignored without logprobs
  const auto r = sample_row(logits, p, TokenHistory{}, 1, 0, {});
  EXPECT_EQ(r.logprob, 0.0f);
  EXPECT_TRUE(r.top_logprobs.empty());
}

TEST(Sampler, SurvivesNanInfAndEmptyRows) {
  SamplingParams p = at_temperature(1.0f);
  std::vector<float> empty;
  EXPECT_EQ(sample_row(empty, p, TokenHistory{}, 1, 0, {}).token, -1);

  // NaN never wins; +inf dominates.
  for (std::uint32_t i = 0; i < 50; ++i) {
    std::vector<float> row = {std::nanf(""), 0.0f, 0.0f};
    const std::int32_t t = sample_row(row, p, TokenHistory{}, 1, i, {}).token;
    EXPECT_TRUE(t == 1 || t == 2);
    std::vector<float> inf_row = {0.0f, kInf, 1.0f};
    EXPECT_EQ(sample_row(inf_row, p, TokenHistory{}, 1, i, {}).token, 1);
  }
  std::vector<float> nan_greedy = {std::nanf(""), 1.0f, 2.0f};
  EXPECT_EQ(sample_row(nan_greedy, at_temperature(0.0f), TokenHistory{}, 1, 0, {}).token, 2);

  // Everything banned: a token is still returned, with -inf log-probability.
  p.logprobs = true;
  std::vector<float> banned = {-kInf, -kInf};
  const auto r = sample_row(banned, p, TokenHistory{}, 1, 0, {});
  EXPECT_GE(r.token, 0);
  EXPECT_EQ(r.logprob, -kInf);
}

TEST(TokenHistory, TracksPromptAndGeneratedCounts) {
  TokenHistory h(std::vector<std::int32_t>{5, 3, 5, 9});
  EXPECT_EQ(std::vector<std::int32_t>(h.prompt_distinct().begin(), h.prompt_distinct().end()),
            (std::vector<std::int32_t>{3, 5, 9}));
  EXPECT_TRUE(h.in_prompt(9));
  EXPECT_FALSE(h.in_prompt(4));
  h.append(4);
  h.append(4);
  h.append(5);
  EXPECT_EQ(h.num_generated(), 3u);
  EXPECT_EQ(h.generated_counts().at(4), 2u);
  EXPECT_EQ(h.generated_counts().at(5), 1u);
  EXPECT_EQ(h.prompt().size(), 4u);
}

}  // namespace
}  // namespace sluice
