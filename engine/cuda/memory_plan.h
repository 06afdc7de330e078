// Memory planning of the CUDA backend, as plain functions of sizes (no device calls, so tests check them on
// any machine):
//   - the device budget: gpu_memory_utilization × total − what other processes already use, split into
//     weights, activations for max_batched_tokens, workspaces, a reserve for CUDA graphs and the runtime,
//     and the KV cache from the rest;
//   - the layout of the activation arena (sized for the largest step);
//   - the layout of a step's host→device inputs, packed so that one copy of the used prefix moves them all;
//   - the batch-size buckets of the decode CUDA graphs.
#pragma once

#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda/device_memory.h"
#include "engine/model/model_spec.h"
#include "engine/util/result.h"
#include "kernels/cuda/sampling.h"

namespace sluice::cuda {

// The backend's capacities, from its options and the model.
struct BackendLimits {
  std::uint32_t max_tokens = 0;     // tokens of one step (max_batched_tokens)
  std::uint32_t max_seqs = 0;       // sequences of one step, and rows of logits (max_num_seqs)
  std::uint32_t max_model_len = 0;  // positions of one sequence
  std::uint32_t block_size = 0;
  std::uint32_t blocks_per_seq = 0;     // ceil(max_model_len / block_size)
  std::uint32_t max_table_entries = 0;  // max_seqs × blocks_per_seq (+1 for the padding rows' entry)
};
BackendLimits make_limits(std::uint32_t max_tokens, std::uint32_t max_seqs, std::uint32_t max_model_len,
                          std::uint32_t block_size);

// Batch sizes with a captured decode graph: 1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, ... capped at
// (and always including) max_batch. A decode step of n sequences runs the graph of the smallest bucket ≥ n.
std::vector<std::uint32_t> graph_buckets(std::uint32_t max_batch);
// The smallest bucket ≥ n, or 0 when n exceeds them all.
std::uint32_t bucket_for(const std::vector<std::uint32_t>& buckets, std::uint32_t n);

// Byte offsets of a step's input arrays inside the pinned staging buffer and its device mirror. The offsets
// depend only on (tokens, seqs), and the page tables come last, so a decode graph captured for a bucket B
// (layout of (B, B)) reads every array at the same address on each replay however long the tables grow.
struct StepInputLayout {
  // Per token (int32).
  std::size_t token_ids = 0;
  std::size_t positions = 0;
  std::size_t slot_mapping = 0;
  std::size_t token_table_offset = 0;  // where the token's sequence's table starts in block_tables
  // Per sequence (int32).
  std::size_t decode_rows = 0;          // rows of the tokens the decode attention kernel handles
  std::size_t prefill_token_begin = 0;  // the prefill attention kernel's sequences
  std::size_t prefill_token_count = 0;
  std::size_t prefill_start_pos = 0;
  std::size_t prefill_table_offset = 0;
  std::size_t logit_rows = 0;    // token rows whose logits are computed
  std::size_t row_sampling = 0;  // RowSampling per logits row
  // Page tables, concatenated (int32), last.
  std::size_t block_tables = 0;

  std::size_t bytes(std::uint32_t table_entries) const { return block_tables + std::size_t{table_entries} * 4; }
};
StepInputLayout layout_step_inputs(std::uint32_t tokens, std::uint32_t seqs);
// Staging bytes that fit every step within `limits`.
std::size_t max_step_input_bytes(const BackendLimits& limits);

// The activation arena: every buffer a step's kernels write, sized for the largest step.
struct Activations {
  float* residual = nullptr;            // [T][hidden] fp32
  __nv_bfloat16* normed = nullptr;      // [T][hidden]
  __nv_bfloat16* qkv = nullptr;         // [T][q_dim + 2 kv_dim]
  __nv_bfloat16* attn = nullptr;        // [T][q_dim]
  __nv_bfloat16* delta = nullptr;       // [T][hidden]: attention output / MLP output before the residual add
  __nv_bfloat16* gate_up = nullptr;     // [T][2 ffn]
  __nv_bfloat16* act = nullptr;         // [T][ffn]
  __nv_bfloat16* final_rows = nullptr;  // [S][hidden]: normed rows that want logits
  float* logits = nullptr;              // [S][vocab]
  std::int32_t* sampled = nullptr;      // [S]
  void* decode_workspace = nullptr;         // zeroed once after carving (its arrival counters)
  std::uint32_t decode_workspace_tokens = 0;  // the max_tokens it was sized for: limits.max_seqs
  void* sampling_workspace = nullptr;
  std::byte* inputs = nullptr;  // the device mirror of the step's staging buffer
};
// Carves the arena (a measuring Carver sizes it). Workspace sizes come from the kernels' own functions.
void carve_activations(Carver& carver, const ModelSpec& spec, const BackendLimits& limits,
                       std::size_t decode_workspace_bytes, std::size_t sampling_workspace_bytes, Activations& out);

struct MemoryBudgetInput {
  std::uint64_t total_bytes = 0;  // cudaMemGetInfo, after this process created its context
  std::uint64_t free_bytes = 0;
  double utilization = 0.9;
  std::uint64_t weight_bytes = 0;
  std::uint64_t activation_bytes = 0;
  std::uint64_t workspace_bytes = 0;    // cuBLASLt and pinned-mirror buffers
  std::uint64_t reserve_bytes = 0;      // CUDA graphs, lazily loaded kernels, cuBLASLt internals
  std::uint64_t kv_block_bytes = 0;     // one block, all layers, K and V
  std::uint32_t blocks_per_seq = 0;     // one sequence of max_model_len
  std::uint32_t max_useful_blocks = 0;  // max_num_seqs × blocks_per_seq: more could never be in use at once
  std::uint32_t max_model_len = 0;      // for messages
  std::uint32_t block_size = 0;         // for the int32 slot bound
};

struct MemoryBudget {
  std::uint64_t budget_bytes = 0;    // what this backend may use
  std::uint64_t used_by_others = 0;  // total − free at creation
  std::uint64_t kv_bytes = 0;
  std::uint32_t num_kv_blocks = 0;
  std::string summary;  // one line for logs
};

// Fails (the message names the numbers and what to change) when the weights do not fit or fewer KV blocks
// remain than one sequence of max_model_len needs.
Result<MemoryBudget, std::string> plan_device_memory(const MemoryBudgetInput& in);

// "12.34 GiB"
std::string format_gib(std::uint64_t bytes);

}  // namespace sluice::cuda
