// Scheduler: continuous batching over the paged KV cache. It decides, step by step, which sequences run and
// which of their tokens go in, and writes that decision as a StepPlan (engine/backend/step_plan.h).
//
// A sequence's tokens are its prompt followed by what it generated; `num_computed` of them have their K/V in
// its blocks. Every step feeds some of the rest: one token for a decoding sequence, a chunk for a prompt.
// When a step reaches the end of a sequence's tokens the backend returns logits for it, the engine samples,
// and on_step_done() appends the sampled token.
//
// Each schedule():
//   1. running sequences that need one token (decodes), oldest admitted first;
//   2. running sequences part way through their prompt, the next chunk within the token budget;
//   3. waiting requests, FIFO, while the token budget, max_num_seqs and free KV blocks allow (a request that
//      does not fit stops admission: nobody overtakes it). Skipped in a step that preempted.
// When a running sequence needs a block and none is free, the most recently admitted running sequence is
// preempted by recomputation: its blocks are freed and it returns to the front of the waiting queue, its
// prompt now being the original prompt plus the tokens it generated. It may preempt itself, when it is the
// most recent. A request whose prompt plus max_tokens could never fit — beyond max_model_len, or more KV
// blocks than the cache has — is refused by add().
//
// If the backend fails a step, do not call on_step_done(): nothing advanced, so the next schedule() plans
// the same tokens again (their pages are rewritten).
//
// Owned and used by the engine thread only. stats() is a snapshot the engine publishes for metrics.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/backend/step_plan.h"
#include "engine/scheduler/block_manager.h"
#include "engine/util/result.h"

namespace sluice {

struct SchedulerConfig {
  std::uint32_t max_num_seqs = 256;               // sequences running at once
  std::uint32_t max_num_batched_tokens = 2048;    // tokens in one step
  std::uint32_t max_model_len = 4096;             // prompt + generated tokens of one sequence
  std::uint32_t block_size = 16;                  // token slots per KV block
  std::uint32_t num_kv_blocks = 0;                // blocks of the backend's KV cache
  bool enable_chunked_prefill = true;             // off: a prompt goes in whole, in one step
  std::optional<std::uint32_t> long_prefill_token_threshold;  // the largest prompt chunk of one sequence per step
};

struct SchedulerError {
  enum class Kind : std::uint8_t {
    invalid_config,
    duplicate_id,
    empty_prompt,
    invalid_max_tokens,
    context_too_long,  // prompt + max_tokens > max_model_len
    kv_capacity,       // prompt + max_tokens needs more KV blocks than the cache holds
    bad_output,        // on_step_done got a different number of sampled ids than the plan asked for
  };
  Kind kind = Kind::invalid_config;
  std::string message;
};

struct SequenceRequest {
  std::uint64_t id = 0;
  std::vector<std::int32_t> prompt;
  std::optional<std::uint32_t> max_tokens;  // absent: up to max_model_len
};

enum class SeqState : std::uint8_t {
  waiting,     // queued, holds no blocks
  prefilling,  // running; its prompt (after preemption: prompt and output so far) is still going in
  decoding,    // running; one token per step
};

enum class FinishReason : std::uint8_t { stop, length, cancelled };

struct SequenceStatus {
  SeqState state = SeqState::waiting;
  std::uint32_t prompt_len = 0;     // the original prompt
  std::uint32_t num_generated = 0;
  std::uint32_t num_tokens = 0;     // prompt_len + num_generated
  std::uint32_t num_computed = 0;   // tokens whose K/V are in its blocks
  std::uint32_t max_tokens = 0;     // the effective limit on num_generated
};

// One sampled token appended by on_step_done().
struct SequenceUpdate {
  std::uint64_t id = 0;
  std::int32_t token = 0;
  std::uint32_t num_generated = 0;  // including this token
  bool finished = false;            // by length: max_tokens or max_model_len reached; blocks already freed
};

struct ScheduleSummary {
  std::uint32_t decode_seqs = 0;
  std::uint32_t prefill_seqs = 0;  // running prompt chunks and newly admitted ones
  std::uint32_t admitted = 0;
  std::uint32_t preempted = 0;
  std::uint32_t num_tokens = 0;
};

struct SchedulerStats {
  std::uint32_t running = 0;
  std::uint32_t waiting = 0;
  double kv_usage = 0.0;           // fraction of KV blocks in use
  std::uint64_t preemptions = 0;   // cumulative
  std::uint64_t rejected = 0;      // add() refusals, cumulative
  std::uint64_t steps = 0;         // non-empty plans built, cumulative
  BlockCounters blocks;
};

class Scheduler {
 public:
  static Result<Scheduler, SchedulerError> create(const SchedulerConfig& config);

  // Queues a request at the back of the waiting queue, or says why it can never run.
  Status<SchedulerError> add(SequenceRequest request);

  // Clears `plan` and fills it with the next step; an empty plan means there is nothing to run.
  ScheduleSummary schedule(StepPlan& plan);

  // Applies the results of `plan`: `sampled` holds one id per sequence with wants_logits, in plan order.
  // Sequences cancelled or finished since schedule() are skipped. The returned updates are valid until the
  // next call.
  Result<std::span<const SequenceUpdate>, SchedulerError> on_step_done(const StepPlan& plan,
                                                                       std::span<const std::int32_t> sampled);

  // Ends a sequence at once (EOS, stop token or stop string, as the engine decided) and frees its blocks.
  bool finish(std::uint64_t id, FinishReason reason);
  bool cancel(std::uint64_t id) { return finish(id, FinishReason::cancelled); }

  std::optional<SequenceStatus> status(std::uint64_t id) const;
  // The sequence's tokens, prompt first (empty for an unknown id); valid until the next call that changes it.
  std::span<const std::int32_t> tokens(std::uint64_t id) const;

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  std::uint32_t num_running() const { return static_cast<std::uint32_t>(running_.size()); }
  std::uint32_t num_waiting() const { return static_cast<std::uint32_t>(waiting_.size()); }
  SchedulerStats stats() const;
  const SchedulerConfig& config() const { return config_; }
  const BlockManager& blocks() const { return blocks_; }
  // Plan capacities that fit every step this scheduler can build.
  StepPlanLimits plan_limits() const;

 private:
  struct Sequence {
    std::uint64_t id = 0;
    std::vector<std::int32_t> tokens;
    std::uint32_t prompt_len = 0;
    std::uint32_t max_tokens = 0;
    std::uint32_t num_computed = 0;
    bool running = false;
  };
  struct Decision {
    Sequence* seq = nullptr;
    std::uint32_t num_tokens = 0;
    std::uint32_t table_len = 0;
  };
  struct Budget {
    std::uint32_t tokens = 0;
    std::uint32_t seqs = 0;
    std::uint32_t table_entries = 0;
  };

  explicit Scheduler(const SchedulerConfig& config);

  std::uint32_t chunk_for(std::uint32_t remaining, std::uint32_t budget) const;
  void schedule_running(bool decodes, Budget& budget, ScheduleSummary& summary);
  void admit_waiting(Budget& budget, ScheduleSummary& summary);
  void preempt(Sequence& victim, Budget& budget);
  void remove(Sequence& seq, FreeCause cause);

  SchedulerConfig config_;
  BlockManager blocks_;
  std::unordered_map<std::uint64_t, Sequence> seqs_;  // node-based: Sequence* stay valid
  std::vector<Sequence*> running_;                    // admission order
  std::deque<Sequence*> waiting_;
  std::vector<Decision> decisions_;                   // scratch of schedule()
  std::vector<SequenceUpdate> updates_;               // scratch of on_step_done()
  std::uint64_t preemptions_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t steps_ = 0;
};

}  // namespace sluice
