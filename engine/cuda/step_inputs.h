// Packing a StepPlan into the CUDA backend's per-step input buffer (host side, no device calls: tests check it
// on any machine). The buffer's layout is StepInputLayout (memory_plan.h); one copy of its used prefix moves
// everything the step's kernels read.
//
// Eager steps: arrays sized to the plan (tokens, sequences); decode attention gets the sequences with one new
// token, prefill attention the others; logits rows are the last token of each sequence that wants logits.
// Decode-graph steps (bucket > 0, every sequence with one token): arrays sized to the bucket, the batch padded
// with rows for token 0 at position 0 whose KV slot is -1 (kv_write skips them) and whose page table is one
// extra entry naming block 0; logits and samples are computed for every row (row i = sequence i) and the
// padding's ignored; decode attention's max_context is max_model_len so the captured grid fits every replay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/backend/step_plan.h"
#include "engine/cuda/memory_plan.h"
#include "kernels/cuda/sampling.h"

namespace sluice::cuda {

// What one launch of the forward pass covers.
struct StepShape {
  std::uint32_t tokens = 0;              // rows of the activations (the plan's tokens, or the bucket)
  std::uint32_t decode_tokens = 0;       // entries of decode_rows
  std::uint32_t decode_max_context = 0;  // bound on position + 1 of the decode tokens
  std::uint32_t prefill_seqs = 0;
  std::uint32_t prefill_max_tokens = 0;
  std::uint32_t logit_rows = 0;  // rows of logits (and samples) computed
  StepInputLayout layout;        // offsets of the arrays in the buffer
  std::size_t bytes = 0;         // used prefix of the buffer
};

// Per output row (each sequence with wants_logits, in plan order): its index in the plan, its id and its row
// in the device's logits. Spans of at least limits.max_seqs entries.
struct StepRows {
  std::span<std::uint32_t> seq_index;
  std::span<std::uint64_t> seq_ids;
  std::span<std::uint32_t> device_row;
  std::uint32_t count = 0;
};

RowSampling to_row_sampling(const SequenceSampling& s);

// Writes the inputs of `plan` into `buffer` (max_step_input_bytes(limits) bytes) and describes the launch.
// `bucket` 0: eager; otherwise a decode graph's batch size ≥ plan.num_seqs(). The plan must be valid for
// `limits` (positions below max_model_len, page tables covering them).
StepShape pack_step_inputs(const StepPlan& plan, const BackendLimits& limits, std::uint32_t bucket, std::byte* buffer,
                           StepRows& rows);

}  // namespace sluice::cuda
