// The interface the engine loop drives: a Backend owns the device side of the model (weights in its format,
// the paged KV cache, scratch) and executes StepPlans.
//
// Threading: a backend is used by one thread, the engine thread, which calls execute() once per step. The
// backend may use its own compute threads inside execute().
//
// Output: for each sequence of the plan with wants_logits set, in plan order, one row. A backend that returns
// logits (the CPU backend) fills `logits` with one row of `vocab` floats per output row; a backend that
// samples on the device (CUDA) fills `token_ids`, plus logits for the rows whose plan sampling says
// host_sample (the engine samples those on the host). A row with logits is sampled from them; a row without
// takes its token id. The views point into buffers the backend owns and stay valid until the next execute()
// or the backend's destruction.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/backend/step_plan.h"
#include "engine/model/model_spec.h"
#include "engine/util/result.h"

namespace sluice {

struct BackendError {
  enum class Kind {
    invalid_plan,    // the plan breaks a contract (positions, page tables, capacities); a scheduler bug
    invalid_config,  // creation options out of range
    out_of_memory,   // the KV cache or a step's buffers could not be allocated
    device_fault,    // the device failed; the engine must be marked unhealthy
  };
  Kind kind = Kind::invalid_plan;
  std::string message;
};

inline std::string_view backend_error_kind_name(BackendError::Kind kind) {
  switch (kind) {
    case BackendError::Kind::invalid_plan:
      return "invalid_plan";
    case BackendError::Kind::invalid_config:
      return "invalid_config";
    case BackendError::Kind::out_of_memory:
      return "out_of_memory";
    case BackendError::Kind::device_fault:
      return "device_fault";
  }
  return "unknown";
}

struct StepOutput {
  std::uint32_t num_rows = 0;                // sequences that asked for output
  std::span<const std::uint32_t> seq_index;  // per row: the sequence's index in the plan
  std::span<const std::uint64_t> seq_ids;    // per row: the sequence's id
  std::uint32_t vocab = 0;
  std::span<const float> logits;            // rows of vocab floats, row-major (see logits_row)
  std::span<const std::int32_t> token_ids;  // num_rows; empty when the backend returned logits only
  // Per row: which row of `logits` holds its logits, -1 for none (the backend sampled it). Empty: row r's
  // logits are row r of `logits` (every row has logits).
  std::span<const std::int32_t> logits_row;

  bool has_logits(std::uint32_t row) const {
    if (logits_row.empty()) return !logits.empty();
    return logits_row[row] >= 0;
  }
  // Empty when the row has none.
  std::span<const float> row_logits(std::uint32_t row) const {
    if (!has_logits(row)) return {};
    const std::size_t at = logits_row.empty() ? row : static_cast<std::size_t>(logits_row[row]);
    return logits.subspan(at * vocab, vocab);
  }
};

// Device memory a backend holds, by use (bytes).
struct BackendMemory {
  std::uint64_t weights = 0;
  std::uint64_t kv_cache = 0;
  std::uint64_t other = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Runs one step: writes the K/V of every new token into its sequence's pages, then computes the outputs
  // wanted. On error nothing is returned; the KV pages of the plan's new positions are unspecified (the
  // engine must treat those sequences as needing recomputation).
  virtual Result<StepOutput, BackendError> execute(const StepPlan& plan) = 0;

  virtual const ModelSpec& spec() const = 0;
  virtual std::uint32_t num_kv_blocks() const = 0;
  virtual std::uint32_t block_size() const = 0;
  // The largest num_tokens() one plan may carry.
  virtual std::uint32_t max_batched_tokens() const = 0;
  virtual std::string_view name() const = 0;
  // What the backend allocated at creation; constant afterwards.
  virtual BackendMemory memory() const { return {}; }
};

}  // namespace sluice
