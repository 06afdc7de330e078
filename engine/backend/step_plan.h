// StepPlan: one engine step as plain data — which sequences run, which new tokens each contributes at which
// positions, where their KV pages are, and which need output. The scheduler fills it; a backend executes it.
//
// Layout (all flat arrays, capacities fixed at construction so a step never allocates):
//   sequence i (i < num_seqs()):
//     seq_ids[i]                     the engine's id, echoed back in StepOutput
//     token_begin[i], token_count[i] its new tokens: token_ids[token_begin .. +token_count), consecutive
//     start_pos[i]                   position of its first new token; token k sits at start_pos + k. Positions
//                                    [0, start_pos) must already be in its KV pages from earlier steps.
//     table_begin[i], table_count[i] its page table: block_ids[table_begin .. +table_count); position p lives
//                                    in block_ids[table_begin + p / block_size], slot p % block_size, so the
//                                    table must cover start_pos + token_count positions
//     wants_logits[i]                1: return the logits of its last new token (the end of a prompt or a
//                                    decode step); 0: a prefill chunk whose output nobody reads
//     sampling[i]                    how a backend that samples on the device picks its next token (when
//                                    wants_logits); add_sequence() sets greedy, set_sampling() changes it
//   token j (j < num_tokens()): token_ids[j], positions[j] (derived: start_pos of its sequence + offset),
//                                    token_seq[j] (index of its sequence)
// Sequences occupy consecutive token ranges in the order they were added. A prompt may be split over steps
// (chunked prefill) and mixed with decode tokens of other sequences. Two sequences of one plan must not
// write the same (block, slot); they may read shared blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sluice {

// Per-sequence sampling for backends that sample on the device (engine/sampling/sampler.h step 4; the
// device and host samplers draw the same Philox number for (seed, token_index)). A request that needs the
// host sampler's other features (penalties, logit_bias, min_tokens bans, logprobs) sets host_sample: the
// backend then returns that row's logits instead of a token id.
struct SequenceSampling {
  float temperature = 0.0f;       // below 1e-5: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;             // 1: off
  float min_p = 0.0f;             // 0: off
  std::int32_t top_k = 0;         // 0 or negative: off
  std::uint64_t seed = 0;         // the request's seed
  std::uint32_t token_index = 0;  // tokens the request generated so far: the index of the token drawn now
  bool host_sample = false;       // return this row's logits; the engine samples it on the host
};

struct StepPlanLimits {
  std::uint32_t max_seqs = 256;
  std::uint32_t max_tokens = 8192;
  std::uint32_t max_table_entries = 65536;  // sum of page-table lengths over the sequences of a step
};

class StepPlan {
 public:
  explicit StepPlan(const StepPlanLimits& limits = {})
      : limits_(limits),
        seq_ids(limits.max_seqs),
        token_begin(limits.max_seqs),
        token_count(limits.max_seqs),
        start_pos(limits.max_seqs),
        table_begin(limits.max_seqs),
        table_count(limits.max_seqs),
        wants_logits(limits.max_seqs),
        sampling(limits.max_seqs),
        token_ids(limits.max_tokens),
        positions(limits.max_tokens),
        token_seq(limits.max_tokens),
        block_ids(limits.max_table_entries) {}

  const StepPlanLimits& limits() const { return limits_; }
  std::uint32_t num_seqs() const { return num_seqs_; }
  std::uint32_t num_tokens() const { return num_tokens_; }
  std::uint32_t num_table_entries() const { return num_table_entries_; }
  bool empty() const { return num_seqs_ == 0; }

  void clear() {
    num_seqs_ = 0;
    num_tokens_ = 0;
    num_table_entries_ = 0;
  }

  // Appends a sequence; returns false (changing nothing) when a capacity would be exceeded or `tokens` is
  // empty. `table` is the sequence's whole page table (blocks for positions 0 onwards).
  bool add_sequence(std::uint64_t seq_id, std::span<const std::int32_t> tokens, std::int32_t first_pos,
                    std::span<const std::int32_t> table, bool logits) {
    if (tokens.empty() || first_pos < 0 || num_seqs_ >= limits_.max_seqs ||
        tokens.size() > limits_.max_tokens - num_tokens_ ||
        table.size() > limits_.max_table_entries - num_table_entries_) {
      return false;
    }
    const std::uint32_t i = num_seqs_++;
    seq_ids[i] = seq_id;
    token_begin[i] = num_tokens_;
    token_count[i] = static_cast<std::uint32_t>(tokens.size());
    start_pos[i] = first_pos;
    table_begin[i] = num_table_entries_;
    table_count[i] = static_cast<std::uint32_t>(table.size());
    wants_logits[i] = logits ? 1 : 0;
    sampling[i] = SequenceSampling{};
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      token_ids[num_tokens_] = tokens[k];
      positions[num_tokens_] = first_pos + static_cast<std::int32_t>(k);
      token_seq[num_tokens_] = i;
      ++num_tokens_;
    }
    for (std::int32_t b : table) block_ids[num_table_entries_++] = b;
    return true;
  }

  // Sets the sampling of the sequence added last; false when the plan is empty.
  bool set_sampling(const SequenceSampling& s) {
    if (num_seqs_ == 0) return false;
    sampling[num_seqs_ - 1] = s;
    return true;
  }

 private:
  StepPlanLimits limits_;
  std::uint32_t num_seqs_ = 0;
  std::uint32_t num_tokens_ = 0;
  std::uint32_t num_table_entries_ = 0;

 public:
  // Per sequence.
  std::vector<std::uint64_t> seq_ids;
  std::vector<std::uint32_t> token_begin;
  std::vector<std::uint32_t> token_count;
  std::vector<std::int32_t> start_pos;
  std::vector<std::uint32_t> table_begin;
  std::vector<std::uint32_t> table_count;
  std::vector<std::uint8_t> wants_logits;
  std::vector<SequenceSampling> sampling;
  // Per token.
  std::vector<std::int32_t> token_ids;
  std::vector<std::int32_t> positions;
  std::vector<std::uint32_t> token_seq;
  // Page tables, concatenated.
  std::vector<std::int32_t> block_ids;
};

}  // namespace sluice
