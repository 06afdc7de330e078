#include "engine/core/engine.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/backend/step_plan.h"
#include "engine/core/backend_factory.h"
#include "engine/core/fault_hooks.h"
#include "engine/model/gguf_reader.h"
#include "engine/model/weights.h"
#include "engine/sampling/plan_sampling.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_matcher.h"
#include "engine/sampling/token_history.h"
#include "engine/scheduler/scheduler.h"
#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/incremental_decoder.h"

namespace sluice {

namespace {

// One request's decoding state, owned by the engine thread.
struct Live {
  std::shared_ptr<GenerationStream> stream;
  SamplingParams params;
  std::uint64_t seed = 0;
  TokenHistory history;
  IncrementalDecoder decoder;
  StopMatcher stop;
  std::string held;          // text generated while the stream had no room (coalesced)
  std::int32_t held_tokens = 0;
  std::int64_t prompt_tokens = 0;

  Live(std::shared_ptr<GenerationStream> s, SamplingParams p, std::uint64_t sd, std::span<const std::int32_t> prompt,
       const Tokenizer& tok)
      : stream(std::move(s)), params(std::move(p)), seed(sd), history(prompt), decoder(tok),
        stop(params.stop, params.include_stop_str_in_output),
        prompt_tokens(static_cast<std::int64_t>(prompt.size())) {}
};

struct Command {
  enum class Kind { submit, cancel } kind;
  std::uint64_t id = 0;
  GenerationRequest request;
};

}  // namespace

struct Engine::Impl {
  EngineConfig config;
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat_template;
  std::unique_ptr<Backend> backend;
  std::optional<Scheduler> scheduler;
  std::vector<std::int32_t> eos_ids;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Command> inbox;
  std::uint32_t queued_submits = 0;  // submits in the inbox or waiting in the scheduler
  bool stopping = false;
  std::atomic<std::uint64_t> next_id{1};

  mutable std::mutex stats_mu;
  EngineStats stats;
  // When the step in progress started (steady clock, ns); 0 between steps. Read by the watchdog.
  std::atomic<std::int64_t> step_started_ns{0};
  std::uint64_t steps_started = 0;  // engine thread only
  EngineFaultHooks hooks = engine_fault_hooks();

  std::unordered_map<std::uint64_t, Live> live;  // engine thread only
  std::thread thread;
  std::mt19937_64 seed_rng{std::random_device{}()};

  void loop();
  void apply(Command& c);
  void emit(std::uint64_t id, Live& l, std::string text, std::int32_t tokens, bool force);
  void end(std::uint64_t id, Live& l, std::string_view reason);
  void fail_all(GenerationErrorKind kind, const std::string& message);
  void publish(double step_seconds, std::uint64_t new_tokens);
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<Engine>, EngineError> Engine::create(const EngineConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  const std::string& path = config.model_path;
  if (path.empty())
    return fail(EngineError{"engine.model_path is empty: name a GGUF model file or a Hugging Face model directory"});
  std::error_code ec;
  const bool is_dir = std::filesystem::is_directory(path, ec);
  if (!is_dir && !std::filesystem::is_regular_file(path, ec))
    return fail(EngineError{fmt::format("model file '{}' is missing (run `make run`, which fetches the default "
                                        "model, or set engine.model_path)", path)});

  if (is_dir) {
    // A Hugging Face checkpoint: tokenizer.json, tokenizer_config.json / chat_template.jinja, config.json and
    // safetensors. The template's errors already say which engine.chat_template values exist.
    auto hf = load_hf_tokenizer(path);
    if (!hf) return fail(EngineError{fmt::format("tokenizer of '{}': {}", path, hf.error().message)});
    auto tmpl = hf_chat_template(hf.value(), config.chat_template);
    if (!tmpl) return fail(EngineError{fmt::format("chat template of '{}': {}", path, tmpl.error().message)});
    impl->tokenizer.emplace(std::move(hf.value().tokenizer));
    impl->chat_template = std::move(tmpl.value());
  } else {
    auto file = gguf::GgufFile::open(path);
    if (!file) return fail(EngineError{fmt::format("model file is not a valid GGUF file: {}", file.error().message)});
    auto tok = Tokenizer::from_gguf(file.value());
    if (!tok) return fail(EngineError{fmt::format("tokenizer of '{}': {}", path, tok.error().message)});
    impl->tokenizer.emplace(std::move(tok.value()));
    auto tmpl = ChatTemplate::from_gguf(file.value(), *impl->tokenizer, config.chat_template);
    if (!tmpl)
      return fail(EngineError{fmt::format("chat template of '{}': {} (set engine.chat_template to one of chatml, "
                                          "smollm2, qwen2, llama3, llama3.1, mistral)",
                                          path, tmpl.error().message)});
    impl->chat_template = std::move(tmpl.value());
  }
  auto weights = is_dir ? ModelWeights::load_hf_dir(path) : ModelWeights::load_gguf(path);
  if (!weights) return fail(EngineError{fmt::format("model weights: {}", weights.error().message)});
  std::shared_ptr<const ModelWeights> shared(std::move(weights.value()));
  const ModelSpec& spec = shared->spec();
  if (impl->tokenizer->token_count() > spec.vocab)
    return fail(EngineError{fmt::format("the tokenizer of '{}' has {} tokens but the model's vocabulary only {}; "
                                        "the tokenizer does not belong to this model",
                                        path, impl->tokenizer->token_count(), spec.vocab)});

  std::uint32_t max_len = config.max_model_len == 0 ? spec.max_position : config.max_model_len;
  if (spec.max_position > 0 && max_len > spec.max_position)
    return fail(EngineError{fmt::format("engine.max_model_len {} exceeds the model's context length {}", max_len,
                                        spec.max_position)});
  auto backend = create_engine_backend(config, shared, max_len);
  if (!backend) return fail(std::move(backend.error()));
  impl->backend = std::move(backend.value().backend);
  std::string backend_note = std::move(backend.value().note);
  SchedulerConfig sc;
  sc.max_num_seqs = config.max_num_seqs;
  sc.max_num_batched_tokens = config.max_num_batched_tokens;
  sc.max_model_len = max_len;
  sc.block_size = impl->backend->block_size();
  sc.num_kv_blocks = impl->backend->num_kv_blocks();
  sc.enable_chunked_prefill = config.enable_chunked_prefill;
  auto sched = Scheduler::create(sc);
  if (!sched) return fail(EngineError{fmt::format("scheduler: {}", sched.error().message)});
  impl->scheduler.emplace(std::move(sched.value()));

  for (auto id : impl->tokenizer->end_of_generation_ids()) impl->eos_ids.push_back(id);
  // A checkpoint's config.json may list more end tokens than its tokenizer names (Llama 3.1: three).
  for (auto id : spec.eos_tokens)
    if (is_dir && id >= 0 && id < spec.vocab &&
        std::find(impl->eos_ids.begin(), impl->eos_ids.end(), id) == impl->eos_ids.end())
      impl->eos_ids.push_back(static_cast<std::int32_t>(id));

  auto engine = std::unique_ptr<Engine>(new Engine(std::move(impl)));
  // A file is named without its extension; a directory keeps its whole name ("Qwen2.5-0.5B-Instruct", "dir/").
  std::filesystem::path model_file(path);
  if (model_file.filename().empty()) model_file = model_file.parent_path();
  const std::string default_name = (is_dir ? model_file.filename() : model_file.stem()).string();
  engine->model_name_ = config.served_model_name.empty() ? default_name : config.served_model_name;
  engine->max_model_len_ = max_len;
  engine->backend_note_ = std::move(backend_note);
  {
    std::lock_guard lock(engine->impl_->stats_mu);
    engine->impl_->stats.kv_blocks_total = engine->impl_->backend->num_kv_blocks();
    engine->impl_->stats.kv_blocks_free = engine->impl_->backend->num_kv_blocks();
    const BackendMemory mem = engine->impl_->backend->memory();
    engine->impl_->stats.weight_bytes = mem.weights;
    engine->impl_->stats.kv_cache_bytes = mem.kv_cache;
    engine->impl_->stats.other_bytes = mem.other;
  }
  Impl* raw = engine->impl_.get();
  raw->thread = std::thread([raw] { raw->loop(); });
  return engine;
}

std::uint32_t Engine::vocab_size() const { return impl_->backend->spec().vocab; }

std::string_view Engine::backend_name() const { return impl_->backend->name(); }

Result<std::vector<std::int32_t>, std::string> Engine::encode_chat(const std::vector<ChatTurn>& messages) const {
  auto text = render_chat(*impl_->chat_template, messages, /*add_generation_prompt=*/true);
  if (!text) return fail(text.error().message);
  // The template writes special tokens (BOS, role markers) as text: parse them as tokens.
  return impl_->tokenizer->encode(text.value(), /*parse_special=*/true);
}

std::vector<std::int32_t> Engine::encode_text(std::string_view text) const {
  auto ids = impl_->tokenizer->encode(text, /*parse_special=*/false);
  if (impl_->tokenizer->add_bos_token() && impl_->tokenizer->bos_id() >= 0)
    ids.insert(ids.begin(), impl_->tokenizer->bos_id());
  return ids;
}

double Engine::current_step_seconds() const {
  const std::int64_t started = impl_->step_started_ns.load(std::memory_order_acquire);
  if (started == 0) return 0;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  return now > started ? static_cast<double>(now - started) * 1e-9 : 0.0;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

Result<std::uint64_t, std::pair<GenerationErrorKind, std::string>> Engine::submit(GenerationRequest request) {
  using Err = std::pair<GenerationErrorKind, std::string>;
  if (!request.stream) return fail(Err{GenerationErrorKind::invalid, "no output stream"});
  if (request.prompt.empty()) return fail(Err{GenerationErrorKind::invalid, "the prompt is empty"});
  if (auto v = validate_sampling_params(request.params, vocab_size()); !v)
    return fail(Err{GenerationErrorKind::invalid, v.error().field + ": " + v.error().message});
  for (auto id : request.prompt)
    if (id < 0 || static_cast<std::uint32_t>(id) >= vocab_size())
      return fail(Err{GenerationErrorKind::invalid, fmt::format("prompt token id {} is outside the vocabulary", id)});
  const std::size_t need = request.prompt.size() + request.params.max_tokens.value_or(1);
  if (need > max_model_len_)
    return fail(Err{GenerationErrorKind::context_too_long,
                    fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens and "
                                "{} more were asked for.",
                                max_model_len_, request.prompt.size(), request.params.max_tokens.value_or(1))});
  const std::uint64_t id = impl_->next_id.fetch_add(1);
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return fail(Err{GenerationErrorKind::overloaded, "the engine is stopping"});
    if (impl_->queued_submits >= impl_->config.max_waiting)
      return fail(Err{GenerationErrorKind::overloaded, "the engine's queue is full"});
    ++impl_->queued_submits;
    impl_->inbox.push_back(Command{Command::Kind::submit, id, std::move(request)});
  }
  impl_->cv.notify_one();
  return id;
}

void Engine::cancel(std::uint64_t id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->inbox.push_back(Command{Command::Kind::cancel, id, {}});
  }
  impl_->cv.notify_one();
}

void Engine::Impl::apply(Command& c) {
  if (c.kind == Command::Kind::cancel) {
    auto it = live.find(c.id);
    if (it == live.end()) return;
    scheduler->cancel(c.id);
    auto stream = std::move(it->second.stream);
    live.erase(it);
    stream->on_error(GenerationErrorKind::cancelled, "the request was cancelled");
    return;
  }
  GenerationRequest& r = c.request;
  SequenceRequest sr;
  sr.id = c.id;
  sr.prompt = r.prompt;
  sr.max_tokens = r.params.max_tokens;
  if (auto st = scheduler->add(std::move(sr)); !st) {
    const auto kind = st.error().kind == SchedulerError::Kind::context_too_long ? GenerationErrorKind::context_too_long
                      : st.error().kind == SchedulerError::Kind::kv_capacity    ? GenerationErrorKind::overloaded
                                                                                : GenerationErrorKind::invalid;
    r.stream->on_error(kind, st.error().message);
    return;
  }
  const std::uint64_t seed = r.params.seed ? *r.params.seed : seed_rng();
  live.emplace(std::piecewise_construct, std::forward_as_tuple(c.id),
               std::forward_as_tuple(std::move(r.stream), std::move(r.params), seed, r.prompt, *tokenizer));
}

void Engine::Impl::emit(std::uint64_t, Live& l, std::string text, std::int32_t tokens, bool force) {
  l.held += text;
  l.held_tokens += tokens;
  if (l.held.empty()) return;
  if (!force && !l.stream->has_room()) return;  // coalesce until the client catches up
  l.stream->on_text(std::move(l.held), l.held_tokens);
  l.held.clear();
  l.held_tokens = 0;
}

void Engine::Impl::end(std::uint64_t id, Live& l, std::string_view reason) {
  if (!l.stop.stopped()) {
    std::string rest = l.decoder.flush();
    auto out = l.stop.push(rest);
    rest = std::move(out.text);
    if (!out.stopped) rest += l.stop.flush();
    emit(id, l, std::move(rest), 0, true);
  } else {
    emit(id, l, {}, 0, true);
  }
  l.stream->on_finish(reason, l.prompt_tokens, static_cast<std::int64_t>(l.history.num_generated()));
}

void Engine::Impl::fail_all(GenerationErrorKind kind, const std::string& message) {
  for (auto& [id, l] : live) {
    scheduler->cancel(id);
    l.stream->on_error(kind, message);
  }
  live.clear();
}

void Engine::Impl::publish(double step_seconds, std::uint64_t new_tokens) {
  auto s = scheduler->stats();
  std::lock_guard lock(stats_mu);
  stats.running = s.running;
  stats.waiting = s.waiting;
  stats.kv_usage = s.kv_usage;
  stats.steps = s.steps;
  stats.preemptions = s.preemptions;
  stats.kv_blocks_free = s.blocks.free;
  stats.last_step_seconds = step_seconds;
  stats.generated_tokens += new_tokens;
}

void Engine::Impl::loop() {
  StepPlan plan(scheduler->plan_limits());
  std::vector<std::int32_t> sampled;
  std::vector<float> row;
  SamplerWorkspace workspace;
  for (;;) {
    std::deque<Command> batch;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stopping || !inbox.empty() || scheduler->has_work(); });
      if (stopping) break;
      batch.swap(inbox);
      for (auto& c : batch)
        if (c.kind == Command::Kind::submit) --queued_submits;
    }
    for (auto& c : batch) apply(c);
    if (!scheduler->has_work()) {
      publish(0, 0);
      continue;
    }

    const auto t0 = std::chrono::steady_clock::now();
    scheduler->schedule(plan);
    if (plan.empty()) {
      publish(0, 0);
      continue;
    }
    // How a backend that samples on the device draws each sequence's next token.
    for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
      if (plan.wants_logits[i] == 0) continue;
      if (auto it = live.find(plan.seq_ids[i]); it != live.end()) {
        const Live& l = it->second;
        plan.sampling[i] = plan_sampling(l.params, l.seed, l.history.num_generated(), eos_ids);
      }
    }
    const std::uint64_t step_number = ++steps_started;
    step_started_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count(),
                          std::memory_order_release);
    if (hooks.before_execute) hooks.before_execute(step_number);
    auto out = backend->execute(plan);
    if (out && hooks.fail_step && hooks.fail_step(step_number))
      out = fail(BackendError{BackendError::Kind::device_fault, "injected device fault (test hook)"});
    step_started_ns.store(0, std::memory_order_release);
    if (!out) {
      // The step's KV pages are unspecified: every request in flight is failed rather than continued on
      // damaged state. A device fault also marks the engine unhealthy.
      if (out.error().kind == BackendError::Kind::device_fault) {
        std::lock_guard lock(stats_mu);
        stats.healthy = false;
      }
      fail_all(GenerationErrorKind::internal, "the engine failed a step: " + out.error().message);
      continue;
    }
    const StepOutput& o = out.value();
    sampled.assign(o.num_rows, 0);
    for (std::uint32_t r = 0; r < o.num_rows; ++r) {
      const std::uint64_t id = o.seq_ids[r];
      auto it = live.find(id);
      if (it == live.end()) continue;  // cancelled meanwhile; on_step_done skips it
      Live& l = it->second;
      // A device-sampled row has no logits; rows that need the host sampler come back with theirs.
      if (!o.has_logits(r) && !o.token_ids.empty()) {
        sampled[r] = o.token_ids[r];
        continue;
      }
      auto logits = o.row_logits(r);
      row.assign(logits.begin(), logits.end());
      auto res = sample_row(row, l.params, l.history, l.seed, l.history.num_generated(), eos_ids, workspace);
      sampled[r] = res.token;
    }
    auto updates = scheduler->on_step_done(plan, sampled);
    if (!updates) {
      fail_all(GenerationErrorKind::internal, "scheduler: " + updates.error().message);
      continue;
    }
    std::uint64_t new_tokens = 0;
    for (const SequenceUpdate& u : updates.value()) {
      auto it = live.find(u.id);
      if (it == live.end()) continue;
      Live& l = it->second;
      ++new_tokens;
      l.history.append(u.token);
      const bool is_eos = !l.params.ignore_eos && std::find(eos_ids.begin(), eos_ids.end(), u.token) != eos_ids.end();
      const bool is_stop_id = std::find(l.params.stop_token_ids.begin(), l.params.stop_token_ids.end(), u.token) !=
                              l.params.stop_token_ids.end();
      std::string_view reason;
      if (is_eos || is_stop_id) {
        reason = "stop";
      } else {
        auto piece = l.decoder.push(u.token);
        auto so = l.stop.push(piece);
        emit(u.id, l, std::move(so.text), 1, false);
        if (so.stopped) reason = "stop";
      }
      if (reason.empty() && u.finished) reason = "length";
      if (!reason.empty()) {
        if (!u.finished) scheduler->finish(u.id, FinishReason::stop);
        end(u.id, l, reason);
        live.erase(it);
      }
    }
    // Text held back by backpressure goes out as soon as there is room.
    for (auto& [id, l] : live)
      if (!l.held.empty() && l.stream->has_room()) emit(id, l, {}, 0, true);
    publish(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), new_tokens);
  }
  fail_all(GenerationErrorKind::cancelled, "the engine is stopping");
}

}  // namespace sluice
