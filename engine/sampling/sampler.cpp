#include "engine/sampling/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/sampling/philox.h"

namespace sluice {
namespace {

constexpr float kGreedyBelow = 1e-5f;  // vLLM's threshold: smaller temperatures are greedy
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kMaxFloat = std::numeric_limits<float>::max();

// top_k up to this size is selected with a bounded heap in one pass over the vocabulary (almost every
// logit costs one comparison against the heap's worst); larger k use nth_element.
constexpr std::size_t kHeapSelectMax = 1024;

// top_p histograms logits by their distance below the maximum: kBucketsPerNat buckets per nat over
// kBucketRange nats, the last bucket holding everything further down (relative weight below e^-32).
constexpr int kBuckets = 512;
constexpr float kBucketsPerNat = 16.0f;
constexpr float kBucketRange = static_cast<float>(kBuckets - 1) / kBucketsPerNat;

bool in_range(std::int32_t id, std::size_t vocab) { return id >= 0 && static_cast<std::size_t>(id) < vocab; }

// Higher logit first; the lower id first among equal logits. A strict weak order because NaNs are gone.
struct Descending {
  const float* logits;
  bool operator()(std::int32_t a, std::int32_t b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

float apply_repetition(float logit, float penalty) { return logit > 0.0f ? logit / penalty : logit * penalty; }

// The largest logit. Eight independent running maxima break the loop-carried dependency, which makes this
// several times faster than std::max_element on a vocabulary-sized row. Expects no NaN.
float max_value(std::span<const float> v) {
  std::array<float, 8> m;
  m.fill(kNegInf);
  std::size_t i = 0;
  for (; i + m.size() <= v.size(); i += m.size()) {
    for (std::size_t j = 0; j < m.size(); ++j) m[j] = v[i + j] > m[j] ? v[i + j] : m[j];
  }
  for (; i < v.size(); ++i) m[0] = v[i] > m[0] ? v[i] : m[0];
  return *std::max_element(m.begin(), m.end());
}

// The first (lowest) id holding the largest logit.
std::int32_t argmax(std::span<const float> v) {
  return static_cast<std::int32_t>(std::find(v.begin(), v.end(), max_value(v)) - v.begin());
}

int bucket_of(float distance) {
  return distance < kBucketRange ? static_cast<int>(distance * kBucketsPerNat) : kBuckets - 1;
}

// order = the min(k, V) best ids under Descending, best first.
void select_top(std::span<const float> logits, std::size_t k, std::vector<std::int32_t>& order) {
  const std::size_t vocab = logits.size();
  const Descending cmp{logits.data()};
  k = std::min(k, vocab);
  order.clear();
  if (k == 0) return;
  if (k <= kHeapSelectMax && k * 8 <= vocab) {
    for (std::size_t i = 0; i < k; ++i) order.push_back(static_cast<std::int32_t>(i));
    std::make_heap(order.begin(), order.end(), cmp);  // front: the worst of those kept
    float floor = logits[static_cast<std::size_t>(order.front())];
    for (std::size_t i = k; i < vocab; ++i) {
      // Ids only grow, so an equal logit ranks below everything kept: strictly greater is the test.
      if (!(logits[i] > floor)) continue;
      std::pop_heap(order.begin(), order.end(), cmp);
      order.back() = static_cast<std::int32_t>(i);
      std::push_heap(order.begin(), order.end(), cmp);
      floor = logits[static_cast<std::size_t>(order.front())];
    }
    std::sort_heap(order.begin(), order.end(), cmp);
    return;
  }
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  const auto kth = order.begin() + static_cast<std::ptrdiff_t>(k);
  if (k < vocab) std::nth_element(order.begin(), kth, order.end(), cmp);
  order.resize(k);
  std::sort(order.begin(), order.end(), cmp);
}

// The nucleus without top_k: one pass histograms the weights by distance below the maximum and sums them;
// the bucket where the cumulative mass reaches top_p is the only one that needs ordering, so a second pass
// gathers that bucket and those above it, and only they are sorted. Leaves `order` sorted best first and
// returns how many of it the nucleus keeps.
std::size_t nucleus(std::span<const float> logits, float max_logit, float top_p, std::vector<std::int32_t>& order) {
  std::array<double, kBuckets> mass{};
  double total = 0.0;
  for (float l : logits) {
    const float w = std::exp(l - max_logit);
    total += w;
    mass[static_cast<std::size_t>(bucket_of(max_logit - l))] += w;
  }
  const double target = static_cast<double>(top_p) * total;
  int last_bucket = kBuckets - 1;
  double cum = 0.0;
  for (int b = 0; b < kBuckets; ++b) {
    cum += mass[static_cast<std::size_t>(b)];
    if (cum >= target) {
      last_bucket = b;
      break;
    }
  }
  order.clear();
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (bucket_of(max_logit - logits[i]) <= last_bucket) order.push_back(static_cast<std::int32_t>(i));
  }
  std::sort(order.begin(), order.end(), Descending{logits.data()});
  // Keep tokens while the mass before them is below the target: the token that reaches it stays.
  std::size_t count = 0;
  cum = 0.0;
  while (count < order.size() && (count == 0 || cum < target)) {
    cum += std::exp(logits[static_cast<std::size_t>(order[count])] - max_logit);
    ++count;
  }
  return count;
}

// The candidates when top_k or top_p is active: the top_k best, cut to the top_p nucleus, then by min_p;
// returned in ascending id order.
std::span<const std::int32_t> truncated_candidates(std::span<const float> logits, float max_logit,
                                                   const SamplingParams& p, std::vector<std::int32_t>& order) {
  const bool use_top_k = p.top_k > 0 && static_cast<std::size_t>(p.top_k) < logits.size();
  std::size_t count = 0;
  if (!use_top_k) {
    count = nucleus(logits, max_logit, p.top_p, order);
  } else {
    select_top(logits, static_cast<std::size_t>(p.top_k), order);
    count = order.size();
    if (p.top_p < 1.0f) {
      double total = 0.0;
      for (std::int32_t id : order) total += std::exp(logits[static_cast<std::size_t>(id)] - max_logit);
      const double target = static_cast<double>(p.top_p) * total;
      double cum = 0.0;
      count = 0;
      while (count < order.size() && (count == 0 || cum < target)) {
        cum += std::exp(logits[static_cast<std::size_t>(order[count])] - max_logit);
        ++count;
      }
    }
  }
  if (p.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  exp(l_i - max) >= min_p; the prefix is best first, so cut from its end.
    while (count > 1 && std::exp(logits[static_cast<std::size_t>(order[count - 1])] - max_logit) < p.min_p) --count;
  }
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count));
  return {order.data(), count};
}

// Inverse CDF over `ids` (ascending), weighted by exp(logit - max).
std::int32_t draw_among(std::span<const std::int32_t> ids, std::span<const float> logits, float max_logit, float u,
                        std::vector<float>& weights) {
  weights.resize(ids.size());
  double total = 0.0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    weights[i] = std::exp(logits[static_cast<std::size_t>(ids[i])] - max_logit);
    total += weights[i];
  }
  const double target = static_cast<double>(u) * total;
  double acc = 0.0;
  std::int32_t last_positive = ids.empty() ? 0 : ids.front();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (weights[i] <= 0.0f) continue;
    last_positive = ids[i];
    acc += weights[i];
    if (acc > target) return ids[i];
  }
  return last_positive;  // rounding left `acc` a hair below `target`
}

// Inverse CDF over the whole vocabulary in id order, tokens below the min_p threshold weighted 0.
std::int32_t draw_all(std::span<const float> logits, float max_logit, float min_p, float u,
                      std::vector<float>& weights) {
  weights.resize(logits.size());
  double total = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float w = std::exp(logits[i] - max_logit);
    weights[i] = w >= min_p ? w : 0.0f;
    total += weights[i];
  }
  const double target = static_cast<double>(u) * total;
  double acc = 0.0;
  std::int32_t last_positive = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (weights[i] <= 0.0f) continue;
    last_positive = static_cast<std::int32_t>(i);
    acc += weights[i];
    if (acc > target) return last_positive;
  }
  return last_positive;
}

void fill_logprobs(std::span<const float> logits, const SamplingParams& p, SampleResult& result,
                   SamplerWorkspace& ws) {
  const std::size_t n = std::min<std::size_t>(p.top_logprobs, logits.size());
  const float max_logit = max_value(logits);
  if (max_logit == kNegInf) {  // everything banned: no distribution to report
    result.logprob = kNegInf;
    for (std::size_t i = 0; i < n; ++i) result.top_logprobs.push_back({static_cast<std::int32_t>(i), kNegInf});
    return;
  }
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  result.logprob = static_cast<float>(logits[static_cast<std::size_t>(result.token)] - log_z);
  if (n == 0) return;
  select_top(logits, n, ws.order);
  result.top_logprobs.reserve(n);
  for (std::int32_t id : ws.order) {
    result.top_logprobs.push_back({id, static_cast<float>(logits[static_cast<std::size_t>(id)] - log_z)});
  }
}

}  // namespace

void process_logits(std::span<float> logits, const SamplingParams& p, const TokenHistory& history,
                    std::span<const std::int32_t> eos_ids) {
  const std::size_t vocab = logits.size();
  for (const auto& [id, bias] : p.logit_bias) {
    if (in_range(id, vocab)) logits[static_cast<std::size_t>(id)] += bias;
  }
  if (history.num_generated() < p.min_tokens) {
    for (std::int32_t id : p.stop_token_ids) {
      if (in_range(id, vocab)) logits[static_cast<std::size_t>(id)] = kNegInf;
    }
    if (!p.ignore_eos) {
      for (std::int32_t id : eos_ids) {
        if (in_range(id, vocab)) logits[static_cast<std::size_t>(id)] = kNegInf;
      }
    }
  }
  if (p.repetition_penalty != 1.0f && p.repetition_penalty > 0.0f) {
    for (std::int32_t id : history.prompt_distinct()) {
      if (in_range(id, vocab)) logits[id] = apply_repetition(logits[id], p.repetition_penalty);
    }
    for (const auto& [id, count] : history.generated_counts()) {
      if (in_range(id, vocab) && !history.in_prompt(id)) {
        logits[id] = apply_repetition(logits[id], p.repetition_penalty);
      }
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    for (const auto& [id, count] : history.generated_counts()) {
      if (!in_range(id, vocab) || count == 0) continue;
      logits[id] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
  // Last, so that nothing above can bring a NaN or an infinity back: NaN never wins, and the largest float
  // still dominates where +inf would turn `l - max` into NaN.
  for (float& l : logits) l = l == l ? std::min(l, kMaxFloat) : kNegInf;  // branch-free, so it vectorizes
}

SampleResult sample_row(std::span<float> logits, const SamplingParams& p, const TokenHistory& history,
                        std::uint64_t seed, std::uint32_t token_index, std::span<const std::int32_t> eos_ids,
                        SamplerWorkspace& ws) {
  SampleResult result;
  if (logits.empty()) return result;
  process_logits(logits, p, history, eos_ids);

  if (!(p.temperature >= kGreedyBelow)) {
    result.token = argmax(logits);
  } else {
    const float inv_t = 1.0f / p.temperature;
    for (float& l : logits) l = std::min(l * inv_t, kMaxFloat);  // a small temperature may overflow
    const float max_logit = max_value(logits);
    if (max_logit == kNegInf) {
      result.token = 0;  // every token banned: nothing to draw from
    } else {
      const float u = philox::uniform(seed, token_index, 0);
      const bool truncate = (p.top_k > 0 && static_cast<std::size_t>(p.top_k) < logits.size()) || p.top_p < 1.0f;
      result.token = truncate ? draw_among(truncated_candidates(logits, max_logit, p, ws.order), logits, max_logit,
                                           u, ws.weights)
                              : draw_all(logits, max_logit, p.min_p, u, ws.weights);
    }
  }
  if (p.logprobs) fill_logprobs(logits, p, result, ws);
  return result;
}

SampleResult sample_row(std::span<float> logits, const SamplingParams& params, const TokenHistory& history,
                        std::uint64_t seed, std::uint32_t token_index, std::span<const std::int32_t> eos_ids) {
  thread_local SamplerWorkspace workspace;
  return sample_row(logits, params, history, seed, token_index, eos_ids, workspace);
}

}  // namespace sluice
