// The per-sequence contract checks every backend makes on a StepPlan before running it (step_plan.h):
// consecutive, non-empty token ranges covering all tokens; positions inside the backend's limit; page tables
// inside the plan that cover every position; block ids inside the cache; token ids inside the vocabulary.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/backend/backend.h"
#include "engine/backend/step_plan.h"
#include "engine/util/result.h"

namespace sluice {

struct PlanBounds {
  std::int64_t max_positions = 0;  // positions [0, max_positions) are allowed
  // How messages name that limit: limit_prefix + max_positions + limit_suffix ("max_model_len 2048", "the
  // model's 2048 positions"); built only when a check fails.
  std::string_view limit_prefix;
  std::string_view limit_suffix;
  std::uint32_t block_size = 0;
  std::uint32_t num_blocks = 0;
  std::uint32_t vocab = 0;
};

// invalid_plan with a message naming the sequence and what is wrong, or Ok. The plan's counts must already
// be checked against its arrays (num_seqs, num_tokens and num_table_entries within their sizes).
Status<BackendError> check_plan_sequences(const StepPlan& plan, const PlanBounds& bounds);

}  // namespace sluice
