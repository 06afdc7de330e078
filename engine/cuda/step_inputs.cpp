#include "engine/cuda/step_inputs.h"

#include <algorithm>
#include <cstring>

namespace sluice::cuda {

RowSampling to_row_sampling(const SequenceSampling& s) {
  RowSampling r;
  r.temperature = s.temperature;
  r.top_p = s.top_p;
  r.min_p = s.min_p;
  r.top_k = s.top_k;
  r.seed = s.seed;
  r.token_index = s.token_index;
  return r;
}

StepShape pack_step_inputs(const StepPlan& plan, const BackendLimits& limits, std::uint32_t bucket, std::byte* buffer,
                           StepRows& rows) {
  const std::uint32_t n = plan.num_tokens(), seqs = plan.num_seqs();
  const bool graph = bucket != 0;
  StepShape shape;
  shape.tokens = graph ? bucket : n;
  const StepInputLayout L = layout_step_inputs(shape.tokens, graph ? bucket : seqs);
  const auto arr = [buffer](std::size_t off) { return reinterpret_cast<std::int32_t*>(buffer + off); };
  std::int32_t* tok = arr(L.token_ids);
  std::int32_t* pos = arr(L.positions);
  std::int32_t* slot = arr(L.slot_mapping);
  std::int32_t* token_table = arr(L.token_table_offset);
  std::int32_t* decode_rows = arr(L.decode_rows);
  std::int32_t* p_begin = arr(L.prefill_token_begin);
  std::int32_t* p_count = arr(L.prefill_token_count);
  std::int32_t* p_start = arr(L.prefill_start_pos);
  std::int32_t* p_table = arr(L.prefill_table_offset);
  std::int32_t* logit_rows = arr(L.logit_rows);
  auto* sampling = reinterpret_cast<RowSampling*>(buffer + L.row_sampling);
  std::int32_t* tables = arr(L.block_tables);

  const std::uint32_t bs = limits.block_size;
  std::uint32_t entries = 0, logits = 0;
  rows.count = 0;
  for (std::uint32_t i = 0; i < seqs; ++i) {
    const std::uint32_t begin = plan.token_begin[i], count = plan.token_count[i];
    const auto start = static_cast<std::uint32_t>(plan.start_pos[i]);
    // Only the blocks this step can touch travel, compacted: a step's tables then stay within
    // max_seqs × blocks_per_seq entries however long the scheduler's tables are.
    const std::uint32_t needed = (start + count + bs - 1) / bs;
    const std::uint32_t table = entries;
    std::memcpy(tables + table, plan.block_ids.data() + plan.table_begin[i], std::size_t{needed} * 4);
    entries += needed;
    for (std::uint32_t k = 0; k < count; ++k) {
      const std::uint32_t j = begin + k, p = start + k;
      tok[j] = plan.token_ids[j];
      pos[j] = static_cast<std::int32_t>(p);
      slot[j] = tables[table + p / bs] * static_cast<std::int32_t>(bs) + static_cast<std::int32_t>(p % bs);
      token_table[j] = static_cast<std::int32_t>(table);
    }
    if (count == 1) {
      decode_rows[shape.decode_tokens++] = static_cast<std::int32_t>(begin);
      shape.decode_max_context = std::max(shape.decode_max_context, start + 1);
    } else {
      p_begin[shape.prefill_seqs] = static_cast<std::int32_t>(begin);
      p_count[shape.prefill_seqs] = static_cast<std::int32_t>(count);
      p_start[shape.prefill_seqs] = static_cast<std::int32_t>(start);
      p_table[shape.prefill_seqs] = static_cast<std::int32_t>(table);
      ++shape.prefill_seqs;
      shape.prefill_max_tokens = std::max(shape.prefill_max_tokens, count);
    }
    if (plan.wants_logits[i] != 0) {
      const std::uint32_t r = rows.count++;
      rows.seq_index[r] = i;
      rows.seq_ids[r] = plan.seq_ids[i];
      if (graph) {
        rows.device_row[r] = i;  // a decode graph computes every row; row i is sequence i
      } else {
        logit_rows[logits] = static_cast<std::int32_t>(begin + count - 1);
        sampling[logits] = to_row_sampling(plan.sampling[i]);
        rows.device_row[r] = logits++;
      }
    }
  }
  if (graph) {
    tables[entries] = 0;
    const std::uint32_t pad_table = entries++;
    for (std::uint32_t j = n; j < bucket; ++j) {
      tok[j] = 0;
      pos[j] = 0;
      slot[j] = -1;
      token_table[j] = static_cast<std::int32_t>(pad_table);
      decode_rows[j] = static_cast<std::int32_t>(j);
    }
    for (std::uint32_t j = 0; j < bucket; ++j) {
      logit_rows[j] = static_cast<std::int32_t>(j);
      sampling[j] = j < n ? to_row_sampling(plan.sampling[j]) : RowSampling{};
    }
    shape.decode_tokens = bucket;
    shape.decode_max_context = limits.max_model_len;
    logits = bucket;
  }
  shape.logit_rows = logits;
  shape.layout = L;
  shape.bytes = L.bytes(entries);
  return shape;
}

}  // namespace sluice::cuda
