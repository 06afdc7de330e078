#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

namespace sluice {
namespace {

Failure<SchedulerError> reject(SchedulerError::Kind kind, std::string message) {
  return fail(SchedulerError{kind, std::move(message)});
}

}  // namespace

Result<Scheduler, SchedulerError> Scheduler::create(const SchedulerConfig& c) {
  using K = SchedulerError::Kind;
  if (c.max_num_seqs == 0) return reject(K::invalid_config, "max_num_seqs must be >= 1");
  if (c.max_num_batched_tokens == 0) return reject(K::invalid_config, "max_num_batched_tokens must be >= 1");
  if (c.max_model_len < 2) return reject(K::invalid_config, "max_model_len must be >= 2");
  if (c.block_size == 0) return reject(K::invalid_config, "block_size must be >= 1");
  if (c.num_kv_blocks == 0) {
    return reject(K::invalid_config, "the KV cache has no blocks: raise kv_cache_bytes or gpu_memory_utilization");
  }
  if (c.long_prefill_token_threshold && *c.long_prefill_token_threshold == 0) {
    return reject(K::invalid_config, "long_prefill_token_threshold must be >= 1 when set");
  }
  // Without chunking a recomputed sequence (up to max_model_len - 1 tokens) must fit in one step.
  if (!c.enable_chunked_prefill && c.max_num_batched_tokens < c.max_model_len) {
    return reject(K::invalid_config,
                  "with enable_chunked_prefill off, max_num_batched_tokens (" +
                      std::to_string(c.max_num_batched_tokens) + ") must be >= max_model_len (" +
                      std::to_string(c.max_model_len) + ")");
  }
  return Scheduler(c);
}

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), blocks_(config.num_kv_blocks, config.block_size) {}

Status<SchedulerError> Scheduler::add(SequenceRequest request) {
  using K = SchedulerError::Kind;
  const auto refuse = [this](K kind, std::string message) {
    ++rejected_;
    return reject(kind, std::move(message));
  };
  if (seqs_.contains(request.id)) return refuse(K::duplicate_id, "a sequence with this id is already queued");
  if (request.prompt.empty()) return refuse(K::empty_prompt, "the prompt has no tokens");
  const std::uint64_t prompt_len = request.prompt.size();
  if (request.max_tokens && *request.max_tokens == 0) return refuse(K::invalid_max_tokens, "max_tokens must be >= 1");
  if (prompt_len >= config_.max_model_len ||
      (request.max_tokens && prompt_len + *request.max_tokens > config_.max_model_len)) {
    return refuse(K::context_too_long,
                  "the prompt (" + std::to_string(prompt_len) + " tokens) plus max_tokens (" +
                      (request.max_tokens ? std::to_string(*request.max_tokens) : std::string("at least 1")) +
                      ") exceeds max_model_len (" + std::to_string(config_.max_model_len) + ")");
  }
  const auto max_tokens = request.max_tokens.value_or(config_.max_model_len - static_cast<std::uint32_t>(prompt_len));
  // The last generated token is never fed back, so its position needs no KV slot.
  const std::uint32_t blocks_needed = blocks_.blocks_for(prompt_len + max_tokens - 1);
  if (blocks_needed > blocks_.num_blocks()) {
    return refuse(K::kv_capacity, "the prompt plus max_tokens needs " + std::to_string(blocks_needed) +
                                      " KV blocks; the cache holds " + std::to_string(blocks_.num_blocks()));
  }
  Sequence& s = seqs_[request.id];
  s.id = request.id;
  s.tokens = std::move(request.prompt);
  s.prompt_len = static_cast<std::uint32_t>(prompt_len);
  s.max_tokens = max_tokens;
  waiting_.push_back(&s);
  return Ok{};
}

std::uint32_t Scheduler::chunk_for(std::uint32_t remaining, std::uint32_t budget) const {
  std::uint32_t n = remaining;
  if (config_.enable_chunked_prefill && config_.long_prefill_token_threshold && remaining > 1) {
    n = std::min(n, *config_.long_prefill_token_threshold);
  }
  if (n > budget) n = config_.enable_chunked_prefill ? budget : 0;
  return n;
}

ScheduleSummary Scheduler::schedule(StepPlan& plan) {
  plan.clear();
  decisions_.clear();
  ScheduleSummary summary;
  const StepPlanLimits& limits = plan.limits();
  Budget budget{std::min(config_.max_num_batched_tokens, limits.max_tokens), limits.max_seqs,
                limits.max_table_entries};

  schedule_running(true, budget, summary);
  schedule_running(false, budget, summary);
  // A step that had to preempt is short of blocks: admitting now would only preempt again.
  if (summary.preempted == 0) admit_waiting(budget, summary);

  for (const Decision& d : decisions_) {
    Sequence& s = *d.seq;
    const bool logits = s.num_computed + d.num_tokens == s.tokens.size();
    const std::span<const std::int32_t> toks(s.tokens.data() + s.num_computed, d.num_tokens);
    // Capacities were budgeted above, so this cannot fail.
    plan.add_sequence(s.id, toks, static_cast<std::int32_t>(s.num_computed), blocks_.block_table(s.id), logits);
    summary.num_tokens += d.num_tokens;
  }
  if (!plan.empty()) ++steps_;
  return summary;
}

void Scheduler::schedule_running(bool decodes, Budget& budget, ScheduleSummary& summary) {
  // Preemption shrinks running_ from the back, so the bound is re-read every iteration.
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    const auto remaining = static_cast<std::uint32_t>(s.tokens.size() - s.num_computed);
    if ((remaining == 1) != decodes) continue;
    if (budget.tokens == 0 || budget.seqs == 0) return;
    const std::uint32_t n = chunk_for(remaining, budget.tokens);
    if (n == 0) continue;
    const std::uint32_t end = s.num_computed + n;
    const std::uint32_t table_len = blocks_.blocks_for(end);
    if (table_len > budget.table_entries) continue;

    bool self_preempted = false;
    while (!blocks_.can_allocate(s.id, end)) {
      Sequence& victim = *running_.back();
      self_preempted = &victim == &s;
      preempt(victim, budget);
      ++summary.preempted;
      if (self_preempted) break;
    }
    if (self_preempted) return;  // it was the last running sequence
    if (!blocks_.allocate(s.id, end).ok()) continue;  // unreachable: the loop made room

    decisions_.push_back({&s, n, table_len});
    budget.tokens -= n;
    budget.seqs -= 1;
    budget.table_entries -= table_len;
    if (decodes) {
      ++summary.decode_seqs;
    } else {
      ++summary.prefill_seqs;
    }
  }
}

void Scheduler::admit_waiting(Budget& budget, ScheduleSummary& summary) {
  while (!waiting_.empty() && running_.size() < config_.max_num_seqs && budget.tokens > 0 && budget.seqs > 0) {
    Sequence& s = *waiting_.front();
    const auto remaining = static_cast<std::uint32_t>(s.tokens.size() - s.num_computed);
    const std::uint32_t n = chunk_for(remaining, budget.tokens);
    if (n == 0) return;
    const std::uint32_t end = s.num_computed + n;
    const std::uint32_t table_len = blocks_.blocks_for(end);
    if (table_len > budget.table_entries) return;
    if (!blocks_.allocate(s.id, end).ok()) return;  // FIFO: later requests wait behind this one

    waiting_.pop_front();
    s.running = true;
    running_.push_back(&s);
    decisions_.push_back({&s, n, table_len});
    budget.tokens -= n;
    budget.seqs -= 1;
    budget.table_entries -= table_len;
    ++summary.admitted;
    ++summary.prefill_seqs;
  }
}

void Scheduler::preempt(Sequence& victim, Budget& budget) {
  // Give back whatever this step had already granted it.
  for (auto it = decisions_.begin(); it != decisions_.end(); ++it) {
    if (it->seq == &victim) {
      budget.tokens += it->num_tokens;
      budget.seqs += 1;
      budget.table_entries += it->table_len;
      decisions_.erase(it);
      break;
    }
  }
  blocks_.free(victim.id, FreeCause::preempted);
  running_.erase(std::find(running_.begin(), running_.end(), &victim));
  victim.running = false;
  victim.num_computed = 0;  // its prompt is now the original prompt plus its output
  waiting_.push_front(&victim);
  ++preemptions_;
}

Result<std::span<const SequenceUpdate>, SchedulerError> Scheduler::on_step_done(
    const StepPlan& plan, std::span<const std::int32_t> sampled) {
  std::size_t rows = 0;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) rows += plan.wants_logits[i];
  if (rows != sampled.size()) {
    return reject(SchedulerError::Kind::bad_output, "the plan asked for " + std::to_string(rows) +
                                                        " sampled tokens, got " + std::to_string(sampled.size()));
  }
  updates_.clear();
  std::size_t row = 0;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    const bool has_row = plan.wants_logits[i] != 0;
    const std::size_t my_row = has_row ? row++ : 0;
    const auto it = seqs_.find(plan.seq_ids[i]);
    if (it == seqs_.end()) continue;  // finished or cancelled since the plan was built
    Sequence& s = it->second;
    const std::uint32_t count = plan.token_count[i];
    // A plan older than the sequence's current state (preempted and requeued since) changes nothing.
    if (!s.running || plan.start_pos[i] != static_cast<std::int32_t>(s.num_computed) ||
        s.num_computed + count > s.tokens.size()) {
      continue;
    }
    s.num_computed += count;
    if (!has_row || s.num_computed != s.tokens.size()) continue;

    s.tokens.push_back(sampled[my_row]);
    const std::uint32_t generated = static_cast<std::uint32_t>(s.tokens.size()) - s.prompt_len;
    const bool done = generated >= s.max_tokens || s.tokens.size() >= config_.max_model_len;
    updates_.push_back({s.id, sampled[my_row], generated, done});
    if (done) remove(s, FreeCause::finished);
  }
  return std::span<const SequenceUpdate>(updates_);
}

bool Scheduler::finish(std::uint64_t id, FinishReason reason) {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  remove(it->second, reason == FinishReason::cancelled ? FreeCause::cancelled : FreeCause::finished);
  return true;
}

void Scheduler::remove(Sequence& s, FreeCause cause) {
  blocks_.free(s.id, cause);
  if (s.running) {
    running_.erase(std::find(running_.begin(), running_.end(), &s));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &s));
  }
  const std::uint64_t id = s.id;  // `s` dies inside erase()
  seqs_.erase(id);
}

std::optional<SequenceStatus> Scheduler::status(std::uint64_t id) const {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) return std::nullopt;
  const Sequence& s = it->second;
  SequenceStatus st;
  st.prompt_len = s.prompt_len;
  st.num_tokens = static_cast<std::uint32_t>(s.tokens.size());
  st.num_generated = st.num_tokens - s.prompt_len;
  st.num_computed = s.num_computed;
  st.max_tokens = s.max_tokens;
  if (!s.running) {
    st.state = SeqState::waiting;
  } else if (st.num_generated > 0 && s.num_computed + 1 == st.num_tokens) {
    st.state = SeqState::decoding;
  } else {
    st.state = SeqState::prefilling;
  }
  return st;
}

std::span<const std::int32_t> Scheduler::tokens(std::uint64_t id) const {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) return {};
  return it->second.tokens;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  st.running = num_running();
  st.waiting = num_waiting();
  st.kv_usage = blocks_.usage();
  st.preemptions = preemptions_;
  st.rejected = rejected_;
  st.steps = steps_;
  st.blocks = blocks_.counters();
  return st;
}

StepPlanLimits Scheduler::plan_limits() const {
  const std::uint64_t per_seq = blocks_.blocks_for(config_.max_model_len);
  const std::uint64_t tables = std::min<std::uint64_t>(per_seq * config_.max_num_seqs, UINT32_MAX);
  return StepPlanLimits{config_.max_num_seqs, config_.max_num_batched_tokens, static_cast<std::uint32_t>(tables)};
}

}  // namespace sluice
