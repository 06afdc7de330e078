#include "engine/sampling/sampling_params.h"

#include <cmath>

namespace sluice {
namespace {

Failure<SamplingParamsError> bad(std::string field, std::string message) {
  return fail(SamplingParamsError{std::move(field), std::move(message)});
}

}  // namespace

Status<SamplingParamsError> validate_sampling_params(const SamplingParams& p, std::uint32_t vocab) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    return bad("temperature", "must be a finite number >= 0");
  }
  if (p.top_k < -1) return bad("top_k", "must be -1 (off) or >= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return bad("top_p", "must be in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return bad("min_p", "must be in [0, 1]");
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return bad("presence_penalty", "must be in [-2, 2]");
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return bad("frequency_penalty", "must be in [-2, 2]");
  }
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty))) {
    return bad("repetition_penalty", "must be a finite number > 0");
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || static_cast<std::uint32_t>(id) >= vocab) {
      return bad("logit_bias", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                   std::to_string(vocab) + ")");
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) return bad("logit_bias", "biases must be in [-100, 100]");
  }
  if (p.max_tokens && *p.max_tokens == 0) return bad("max_tokens", "must be >= 1");
  if (p.max_tokens && p.min_tokens > *p.max_tokens) return bad("min_tokens", "must not exceed max_tokens");
  if (p.stop.size() > kMaxStopStrings) {
    return bad("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings");
  }
  for (const std::string& s : p.stop) {
    if (s.empty()) return bad("stop", "stop strings must not be empty");
    if (s.size() > kMaxStopStringBytes) {
      return bad("stop", "stop strings are limited to " + std::to_string(kMaxStopStringBytes) + " bytes");
    }
  }
  for (std::int32_t id : p.stop_token_ids) {
    if (id < 0 || static_cast<std::uint32_t>(id) >= vocab) {
      return bad("stop_token_ids", "token id " + std::to_string(id) + " is outside the vocabulary");
    }
  }
  if (p.top_logprobs > kMaxTopLogprobs) {
    return bad("top_logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
  }
  if (p.top_logprobs > 0 && !p.logprobs) return bad("top_logprobs", "requires logprobs");
  return Ok{};
}

}  // namespace sluice
