#include "engine/backend/plan_check.h"

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace sluice {

Status<BackendError> check_plan_sequences(const StepPlan& plan, const PlanBounds& bounds) {
  const auto plan_error = [](std::string message) {
    return BackendError{BackendError::Kind::invalid_plan, std::move(message)};
  };
  const std::uint32_t n = plan.num_tokens();
  std::uint32_t expected_begin = 0;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    const auto bad = [&](std::string_view what) {
      return fail(plan_error(fmt::format("sequence {} (id {}): {}", i, plan.seq_ids[i], what)));
    };
    const std::uint32_t count = plan.token_count[i];
    if (plan.token_begin[i] != expected_begin || count == 0 || count > n - expected_begin) {
      return bad("token range is empty or not consecutive");
    }
    expected_begin += count;
    const std::int64_t start = plan.start_pos[i];
    if (start < 0 || start + count > bounds.max_positions) {
      return bad(fmt::format("positions [{}, {}) exceed {}{}{}", start, start + count, bounds.limit_prefix,
                             bounds.max_positions, bounds.limit_suffix));
    }
    const std::uint64_t table_end = std::uint64_t{plan.table_begin[i]} + plan.table_count[i];
    if (table_end > plan.num_table_entries()) return bad("page table lies outside the plan's block ids");
    const std::uint64_t needed =
        (static_cast<std::uint64_t>(start) + count + bounds.block_size - 1) / bounds.block_size;
    if (plan.table_count[i] < needed) {
      return bad(fmt::format("page table has {} blocks, {} needed for {} positions", plan.table_count[i], needed,
                             start + count));
    }
    for (std::uint64_t b = plan.table_begin[i]; b < plan.table_begin[i] + needed; ++b) {
      const std::int32_t id = plan.block_ids[b];
      if (id < 0 || static_cast<std::uint32_t>(id) >= bounds.num_blocks) {
        return bad(fmt::format("block id {} is outside [0, {})", id, bounds.num_blocks));
      }
    }
    for (std::uint32_t k = 0; k < count; ++k) {
      const std::uint32_t j = plan.token_begin[i] + k;
      if (plan.positions[j] != start + k || plan.token_seq[j] != i) return bad("token positions are inconsistent");
      if (plan.token_ids[j] < 0 || static_cast<std::uint32_t>(plan.token_ids[j]) >= bounds.vocab) {
        return bad(fmt::format("token id {} is outside the vocabulary", plan.token_ids[j]));
      }
    }
  }
  if (expected_begin != n) return fail(plan_error("token count does not match the sequences' tokens"));
  return Ok{};
}

}  // namespace sluice
