#include "engine/cuda/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace sluice::cuda {

namespace {

constexpr std::size_t kInputAlign = 16;

std::size_t align_up(std::size_t v, std::size_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace

BackendLimits make_limits(std::uint32_t max_tokens, std::uint32_t max_seqs, std::uint32_t max_model_len,
                          std::uint32_t block_size) {
  BackendLimits l;
  l.max_tokens = max_tokens;
  // A step cannot hold more sequences than tokens.
  l.max_seqs = std::min(max_seqs, max_tokens);
  l.max_model_len = max_model_len;
  l.block_size = block_size;
  l.blocks_per_seq = block_size == 0 ? 0 : (max_model_len + block_size - 1) / block_size;
  const std::uint64_t entries = std::uint64_t{l.max_seqs} * l.blocks_per_seq + 1;
  l.max_table_entries = static_cast<std::uint32_t>(std::min<std::uint64_t>(entries, UINT32_MAX / 8));
  return l;
}

std::vector<std::uint32_t> graph_buckets(std::uint32_t max_batch) {
  std::vector<std::uint32_t> out;
  if (max_batch == 0) return out;
  for (std::uint32_t b : {1u, 2u, 4u, 8u}) {
    if (b < max_batch) out.push_back(b);
  }
  // From 16 on: powers of two and the midpoints 1.5 × 2^k, so padding wastes at most a third of a batch.
  for (std::uint64_t p = 16; p < max_batch; p *= 2) {
    out.push_back(static_cast<std::uint32_t>(p));
    const std::uint64_t mid = p + p / 2;
    if (mid < max_batch) out.push_back(static_cast<std::uint32_t>(mid));
  }
  out.push_back(max_batch);
  return out;
}

std::uint32_t bucket_for(const std::vector<std::uint32_t>& buckets, std::uint32_t n) {
  const auto it = std::lower_bound(buckets.begin(), buckets.end(), n);
  return it == buckets.end() ? 0 : *it;
}

StepInputLayout layout_step_inputs(std::uint32_t tokens, std::uint32_t seqs) {
  StepInputLayout l;
  std::size_t at = 0;
  const auto take = [&at](std::size_t bytes) {
    const std::size_t here = at;
    at = align_up(at + bytes, kInputAlign);
    return here;
  };
  const std::size_t t4 = std::size_t{tokens} * 4, s4 = std::size_t{seqs} * 4;
  l.token_ids = take(t4);
  l.positions = take(t4);
  l.slot_mapping = take(t4);
  l.token_table_offset = take(t4);
  l.decode_rows = take(s4);
  l.prefill_token_begin = take(s4);
  l.prefill_token_count = take(s4);
  l.prefill_start_pos = take(s4);
  l.prefill_table_offset = take(s4);
  l.logit_rows = take(s4);
  l.row_sampling = take(std::size_t{seqs} * sizeof(RowSampling));
  l.block_tables = take(0);
  return l;
}

std::size_t max_step_input_bytes(const BackendLimits& limits) {
  return align_up(layout_step_inputs(limits.max_tokens, limits.max_seqs).bytes(limits.max_table_entries), 256);
}

void carve_activations(Carver& c, const ModelSpec& s, const BackendLimits& limits, std::size_t decode_workspace_bytes,
                       std::size_t sampling_workspace_bytes, Activations& out) {
  const std::size_t t = limits.max_tokens, rows = limits.max_seqs;
  const std::size_t qkv = std::size_t{s.q_dim()} + 2 * std::size_t{s.kv_dim()};
  out.residual = c.take<float>(t * s.hidden);
  out.normed = c.take<__nv_bfloat16>(t * s.hidden);
  out.qkv = c.take<__nv_bfloat16>(t * qkv);
  out.attn = c.take<__nv_bfloat16>(t * s.q_dim());
  out.delta = c.take<__nv_bfloat16>(t * s.hidden);
  out.gate_up = c.take<__nv_bfloat16>(t * 2 * std::size_t{s.ffn});
  out.act = c.take<__nv_bfloat16>(t * s.ffn);
  out.final_rows = c.take<__nv_bfloat16>(rows * s.hidden);
  out.logits = c.take<float>(rows * s.vocab);
  out.sampled = c.take<std::int32_t>(rows);
  out.decode_workspace = c.take<std::byte>(decode_workspace_bytes);
  out.decode_workspace_tokens = limits.max_seqs;
  out.sampling_workspace = c.take<std::byte>(sampling_workspace_bytes);
  out.inputs = c.take<std::byte>(max_step_input_bytes(limits));
}

std::string format_gib(std::uint64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / static_cast<double>(std::uint64_t{1} << 30));
}

Result<MemoryBudget, std::string> plan_device_memory(const MemoryBudgetInput& in) {
  MemoryBudget out;
  out.used_by_others = in.total_bytes > in.free_bytes ? in.total_bytes - in.free_bytes : 0;
  const double allowed = std::floor(in.utilization * static_cast<double>(in.total_bytes));
  const double budget = allowed - static_cast<double>(out.used_by_others);
  const std::string context = fmt::format(
      "gpu_memory_utilization {:.2f} of {} total allows {}, and {} is already in use (this process's "
      "CUDA context and other processes)",
      in.utilization, format_gib(in.total_bytes), format_gib(static_cast<std::uint64_t>(allowed)),
      format_gib(out.used_by_others));
  if (budget <= static_cast<double>(in.weight_bytes)) {
    return fail(fmt::format(
        "the model's weights need {} in bf16 but only {} of GPU memory is available to this "
        "backend ({}); raise gpu_memory_utilization, free the GPU, or use a smaller model",
        format_gib(in.weight_bytes), format_gib(budget > 0 ? static_cast<std::uint64_t>(budget) : 0), context));
  }
  out.budget_bytes = static_cast<std::uint64_t>(budget);
  const std::uint64_t fixed = in.weight_bytes + in.activation_bytes + in.workspace_bytes + in.reserve_bytes;
  const std::uint64_t rest = out.budget_bytes > fixed ? out.budget_bytes - fixed : 0;
  std::uint64_t blocks = in.kv_block_bytes == 0 ? 0 : rest / in.kv_block_bytes;
  const std::uint64_t slot_bound = in.block_size == 0 ? 0 : (std::uint64_t{1} << 31) / in.block_size - 1;
  blocks = std::min<std::uint64_t>({blocks, in.max_useful_blocks, slot_bound});
  if (blocks < in.blocks_per_seq || blocks == 0) {
    return fail(fmt::format(
        "not enough GPU memory for the KV cache: of the {} budget, the weights take {}, activations for "
        "max_num_batched_tokens and max_num_seqs {}, workspaces and the graph/runtime reserve {}, leaving {} = {} "
        "KV blocks of {} tokens; one sequence of max_model_len {} needs {} blocks ({}). Lower max_model_len, "
        "max_num_seqs or max_num_batched_tokens, or raise gpu_memory_utilization ({})",
        format_gib(out.budget_bytes), format_gib(in.weight_bytes), format_gib(in.activation_bytes),
        format_gib(in.workspace_bytes + in.reserve_bytes), format_gib(rest), blocks, in.block_size, in.max_model_len,
        in.blocks_per_seq, format_gib(std::uint64_t{in.blocks_per_seq} * in.kv_block_bytes), context));
  }
  out.num_kv_blocks = static_cast<std::uint32_t>(blocks);
  out.kv_bytes = blocks * in.kv_block_bytes;
  out.summary = fmt::format(
      "GPU memory: budget {} (of {} total, {} used elsewhere): weights {}, activations {}, workspaces+reserve {}, "
      "KV cache {} = {} blocks of {} tokens",
      format_gib(out.budget_bytes), format_gib(in.total_bytes), format_gib(out.used_by_others),
      format_gib(in.weight_bytes), format_gib(in.activation_bytes), format_gib(in.workspace_bytes + in.reserve_bytes),
      format_gib(out.kv_bytes), out.num_kv_blocks, in.block_size);
  return out;
}

}  // namespace sluice::cuda
