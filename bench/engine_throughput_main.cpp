// engine_throughput: prompt and decode throughput of the embedded engine (CPU backend) on one GGUF model.
//
// One measured run submits B requests at once, each a prompt of exactly P token ids drawn at random (fixed
// seed) from the vocabulary's normal tokens, greedy (temperature 0), ignore_eos, min_tokens = max_tokens = G,
// so every request produces exactly G tokens. From the per-request stream callbacks it derives:
//   prompt throughput  = B*P / (time from the first submit until every request has its first token)
//   decode throughput  = B*(G-1) / (time from that last first token until the last request finishes)
//   inter-token latency = the gaps between a request's successive tokens (at B = 1: per-token latency)
// A warm-up run of the same shape (fewer tokens) comes first so weights and KV pages are resident.
//
// Timing comes from GenerationStream::on_text, which the engine calls on its own thread in the step that
// sampled the token. A token whose text is an incomplete UTF-8 sequence arrives with the next one; such runs
// are flagged ("first_token_delayed") instead of being silently mistimed. The engine's step counter checks
// that all prompts went in one prefill step (expected steps = G when B*P <= max_num_batched_tokens); a run
// where they did not is discarded and repeated (see main).
//
//   engine_throughput --model PATH [--batch 1] [--prompt-tokens 128] [--gen-tokens 64] [--threads 2]
//                     [--max-num-batched-tokens 1024] [--max-num-seqs 256] [--kv-cache-mib 256]
//                     [--block-size 16] [--repeat 3] [--max-retries 3] [--warmup-tokens 4] [--seed 1234]
//                     [--prompts-out FILE] [--texts]
// Prints one JSON object on stdout; progress and errors go to stderr. Exit status 1 on any failure.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/core/engine.h"
#include "engine/model/gguf_reader.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/parse_number.h"
#include "gateway/api/json_writer.h"

namespace {

using sluice::parse_number;

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU time of the whole process (all engine threads), in seconds. On a shared machine cpu/wall shows how
// much of its cores the engine actually got.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Options {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::uint32_t batch = 1;
  std::uint32_t prompt_tokens = 128;
  std::uint32_t gen_tokens = 64;
  std::uint32_t threads = 2;
  std::uint32_t max_num_batched_tokens = 1024;
  std::uint32_t max_num_seqs = 256;
  std::uint32_t kv_cache_mib = 256;
  std::uint32_t block_size = 16;
  std::uint32_t repeat = 3;
  std::uint32_t max_retries = 3;
  std::uint32_t warmup_tokens = 4;
  std::uint64_t seed = 1234;
  std::string prompts_out;  // "" = do not write the prompts
  bool texts = false;       // include each request's generated text (last run) in the JSON
};

// Returns "" on success, otherwise what was wrong with the command line.
std::string parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--texts") {
      o.texts = true;
      continue;
    }
    if (i + 1 >= argc) return fmt::format("{} needs a value", a);
    const std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--model") o.model = std::string(v);
    else if (a == "--prompts-out") o.prompts_out = std::string(v);
    else if (a == "--batch") ok = parse_number(v, o.batch) && o.batch > 0;
    else if (a == "--prompt-tokens") ok = parse_number(v, o.prompt_tokens) && o.prompt_tokens > 0;
    else if (a == "--gen-tokens") ok = parse_number(v, o.gen_tokens) && o.gen_tokens > 1;
    else if (a == "--threads") ok = parse_number(v, o.threads) && o.threads > 0;
    else if (a == "--max-num-batched-tokens")
      ok = parse_number(v, o.max_num_batched_tokens) && o.max_num_batched_tokens > 0;
    else if (a == "--max-num-seqs") ok = parse_number(v, o.max_num_seqs) && o.max_num_seqs > 0;
    else if (a == "--kv-cache-mib") ok = parse_number(v, o.kv_cache_mib) && o.kv_cache_mib > 0;
    else if (a == "--block-size") ok = parse_number(v, o.block_size) && o.block_size > 0;
    else if (a == "--repeat") ok = parse_number(v, o.repeat) && o.repeat > 0;
    else if (a == "--max-retries") ok = parse_number(v, o.max_retries);
    else if (a == "--warmup-tokens") ok = parse_number(v, o.warmup_tokens);
    else if (a == "--seed") ok = parse_number(v, o.seed);
    else return fmt::format("unknown option {}", a);
    if (!ok) return fmt::format("bad value '{}' for {} (a positive integer)", v, a);
  }
  return {};
}

// One request's observations, written on the engine thread, read by main after `done`.
struct RequestLog {
  std::vector<Clock::time_point> token_times;  // one per generated token (a coalesced piece repeats its time)
  std::vector<double> token_cpu;               // the process's CPU seconds at each of those times
  bool first_delayed = false;                  // the first on_text carried more than one token
  Clock::time_point finished;
  std::int64_t completion_tokens = 0;
  std::string reason;
  std::string text;
  std::string error;  // non-empty: the request failed
  bool done = false;
};

class RunTracker {
 public:
  explicit RunTracker(std::size_t n) : logs_(n) {}

  RequestLog& log(std::size_t i) { return logs_[i]; }
  std::mutex& mutex() { return mu_; }
  void mark_done(std::size_t i) {
    logs_[i].done = true;
    ++finished_;
    cv_.notify_all();
  }
  // Waits until every request has ended; the caller then reads the logs without the lock.
  void wait_all() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_ == logs_.size(); });
  }
  const std::vector<RequestLog>& logs() const { return logs_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestLog> logs_;
  std::size_t finished_ = 0;
};

class TimingStream final : public sluice::GenerationStream {
 public:
  TimingStream(RunTracker& tracker, std::size_t index) : tracker_(tracker), index_(index) {}

  void on_text(std::string text, std::int32_t tokens) override {
    const auto now = Clock::now();
    const double cpu = process_cpu_seconds();
    std::lock_guard lock(tracker_.mutex());
    RequestLog& l = tracker_.log(index_);
    if (l.token_times.empty() && tokens > 1) l.first_delayed = true;
    for (std::int32_t k = 0; k < tokens; ++k) {
      l.token_times.push_back(now);
      l.token_cpu.push_back(cpu);
    }
    l.text += text;
  }
  void on_finish(std::string_view reason, std::int64_t, std::int64_t completion_tokens) override {
    const auto now = Clock::now();
    std::lock_guard lock(tracker_.mutex());
    RequestLog& l = tracker_.log(index_);
    l.finished = now;
    l.completion_tokens = completion_tokens;
    l.reason = std::string(reason);
    tracker_.mark_done(index_);
  }
  void on_error(sluice::GenerationErrorKind, std::string message) override {
    std::lock_guard lock(tracker_.mutex());
    RequestLog& l = tracker_.log(index_);
    l.error = message.empty() ? "error" : std::move(message);
    l.finished = Clock::now();
    tracker_.mark_done(index_);
  }
  bool has_room() const override { return true; }

 private:
  RunTracker& tracker_;
  std::size_t index_;
};

struct RunResult {
  double prefill_s = 0;
  double decode_s = 0;
  double prefill_cpu_s = 0;  // process CPU time over the same intervals
  double decode_cpu_s = 0;
  double prompt_tok_s = 0;
  double decode_tok_s = 0;
  double ttft_min_ms = 0;
  double ttft_max_ms = 0;
  std::vector<double> itl_ms;  // inter-token gaps of every request, sorted
  std::uint64_t engine_steps = 0;
  std::uint64_t preemptions = 0;
  bool first_token_delayed = false;
  std::vector<std::string> texts;
};


double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

// Runs one batch of `prompts`, each generating exactly `gen` tokens. Returns "" or what went wrong.
std::string run_once(sluice::Engine& engine, const std::vector<std::vector<std::int32_t>>& prompts,
                     std::uint32_t gen, RunResult& out) {
  RunTracker tracker(prompts.size());
  std::vector<std::shared_ptr<TimingStream>> streams;
  for (std::size_t i = 0; i < prompts.size(); ++i) streams.push_back(std::make_shared<TimingStream>(tracker, i));
  const auto before = engine.stats();

  const double cpu0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    sluice::GenerationRequest r;
    r.prompt = prompts[i];
    r.params.temperature = 0.0f;
    r.params.ignore_eos = true;
    r.params.max_tokens = gen;
    r.params.min_tokens = gen;
    r.params.seed = 0;
    r.stream = streams[i];
    auto id = engine.submit(std::move(r));
    if (!id) return fmt::format("submit {} failed: {}", i, id.error().second);
  }
  tracker.wait_all();
  // The engine publishes its counters after the step's callbacks: wait for the step that finished them.
  auto after = engine.stats();
  for (int k = 0; k < 1000 && (after.running != 0 || after.steps == before.steps); ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    after = engine.stats();
  }

  Clock::time_point last_first = t0, first_first = Clock::time_point::max(), last_token = t0;
  double cpu_last_first = cpu0, cpu_last_token = cpu0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const RequestLog& l = tracker.logs()[i];
    if (!l.error.empty()) return fmt::format("request {} failed: {}", i, l.error);
    if (l.completion_tokens != static_cast<std::int64_t>(gen) || l.token_times.size() != gen)
      return fmt::format("request {} produced {} tokens ({} timed), expected {} (finish reason '{}')", i,
                         l.completion_tokens, l.token_times.size(), gen, l.reason);
    if (l.token_times.front() >= last_first) {
      last_first = l.token_times.front();
      cpu_last_first = l.token_cpu.front();
    }
    if (l.token_times.back() >= last_token) {
      last_token = l.token_times.back();
      cpu_last_token = l.token_cpu.back();
    }
    first_first = std::min(first_first, l.token_times.front());
    out.first_token_delayed = out.first_token_delayed || l.first_delayed;
    for (std::size_t k = 1; k < l.token_times.size(); ++k)
      out.itl_ms.push_back(seconds(l.token_times[k] - l.token_times[k - 1]) * 1e3);
    out.texts.push_back(l.text);
  }
  std::sort(out.itl_ms.begin(), out.itl_ms.end());
  const double b = static_cast<double>(prompts.size());
  out.prefill_s = seconds(last_first - t0);
  out.decode_s = seconds(last_token - last_first);
  out.prefill_cpu_s = cpu_last_first - cpu0;
  out.decode_cpu_s = cpu_last_token - cpu_last_first;
  out.prompt_tok_s = b * static_cast<double>(prompts.front().size()) / out.prefill_s;
  out.decode_tok_s = out.decode_s > 0 ? b * (gen - 1) / out.decode_s : 0;
  out.ttft_min_ms = seconds(first_first - t0) * 1e3;
  out.ttft_max_ms = out.prefill_s * 1e3;
  out.engine_steps = after.steps - before.steps;
  out.preemptions = after.preemptions - before.preemptions;
  return {};
}

// B prompts of P ids, uniform over the vocabulary's normal tokens (no control, byte or end-of-generation ids).
std::vector<std::vector<std::int32_t>> make_prompts(const sluice::Tokenizer& tok, const Options& o) {
  std::vector<std::int32_t> pool;
  for (std::size_t id = 0; id < tok.token_count(); ++id) {
    const auto t = static_cast<std::int32_t>(id);
    if (tok.token_type(t) == sluice::TokenType::normal && !tok.is_end_of_generation(t)) pool.push_back(t);
  }
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
  std::vector<std::vector<std::int32_t>> prompts(o.batch);
  for (auto& p : prompts)
    for (std::uint32_t k = 0; k < o.prompt_tokens; ++k) p.push_back(pool[pick(rng)]);
  return prompts;
}

void write_run(sluice::JsonWriter& w, const RunResult& r, std::uint32_t expected_steps) {
  w.begin_object();
  w.key("prefill_s"); w.number(r.prefill_s);
  w.key("prompt_tok_s"); w.number(r.prompt_tok_s);
  w.key("decode_s"); w.number(r.decode_s);
  w.key("decode_tok_s"); w.number(r.decode_tok_s);
  w.key("prefill_cpu_s"); w.number(r.prefill_cpu_s);
  w.key("decode_cpu_s"); w.number(r.decode_cpu_s);
  w.key("ttft_ms"); w.begin_object();
  w.key("min"); w.number(r.ttft_min_ms);
  w.key("max"); w.number(r.ttft_max_ms);
  w.end_object();
  double sum = 0;
  for (double x : r.itl_ms) sum += x;
  w.key("itl_ms"); w.begin_object();
  w.key("mean"); w.number(r.itl_ms.empty() ? 0.0 : sum / static_cast<double>(r.itl_ms.size()));
  w.key("p50"); w.number(percentile(r.itl_ms, 50));
  w.key("p90"); w.number(percentile(r.itl_ms, 90));
  w.key("p99"); w.number(percentile(r.itl_ms, 99));
  w.key("max"); w.number(r.itl_ms.empty() ? 0.0 : r.itl_ms.back());
  w.end_object();
  w.key("engine_steps"); w.number(r.engine_steps);
  w.key("expected_steps"); w.number(expected_steps);
  w.key("preemptions"); w.number(r.preemptions);
  w.key("first_token_delayed"); w.boolean(r.first_token_delayed);
  w.end_object();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (auto err = parse_args(argc, argv, o); !err.empty()) {
    fmt::print(stderr, "engine_throughput: {}\n", err);
    return 1;
  }

  auto file = sluice::gguf::GgufFile::open(o.model);
  if (!file) {
    fmt::print(stderr, "engine_throughput: {}\n", file.error().message);
    return 1;
  }
  auto tok = sluice::Tokenizer::from_gguf(file.value());
  if (!tok) {
    fmt::print(stderr, "engine_throughput: tokenizer: {}\n", tok.error().message);
    return 1;
  }
  const auto prompts = make_prompts(tok.value(), o);
  if (!o.prompts_out.empty()) {
    sluice::JsonWriter pw;
    pw.begin_array();
    for (const auto& p : prompts) {
      pw.begin_array();
      for (auto id : p) pw.number(id);
      pw.end_array();
    }
    pw.end_array();
    std::ofstream f(o.prompts_out, std::ios::binary | std::ios::trunc);
    f << pw.str() << '\n';
    if (!f) {
      fmt::print(stderr, "engine_throughput: cannot write {}\n", o.prompts_out);
      return 1;
    }
  }

  sluice::EngineConfig cfg;
  cfg.model_path = o.model;
  cfg.threads = o.threads;
  cfg.kv_cache_bytes = std::uint64_t{o.kv_cache_mib} << 20;
  cfg.block_size = o.block_size;
  cfg.max_num_seqs = o.max_num_seqs;
  cfg.max_num_batched_tokens = o.max_num_batched_tokens;
  cfg.max_waiting = std::max<std::uint32_t>(cfg.max_waiting, o.batch);
  const auto load_start = Clock::now();
  auto engine = sluice::Engine::create(cfg);
  if (!engine) {
    fmt::print(stderr, "engine_throughput: {}\n", engine.error().message);
    return 1;
  }
  const double load_s = seconds(Clock::now() - load_start);
  sluice::Engine& e = *engine.value();

  if (o.warmup_tokens > 1) {
    RunResult warm;
    if (auto err = run_once(e, prompts, o.warmup_tokens, warm); !err.empty()) {
      fmt::print(stderr, "engine_throughput: warm-up: {}\n", err);
      return 1;
    }
  }
  // All prompts fit one prefill step when B*P <= the step budget; then one decode step per further token.
  // submit() wakes the engine thread at the first request; on a busy machine it can take the first requests
  // into a step before the rest are queued. Such a run measures a different shape, so it is discarded and
  // run again (up to --max-retries times per run; the count is reported).
  const std::uint64_t total_prompt = std::uint64_t{o.batch} * o.prompt_tokens;
  const std::uint32_t expected_steps =
      total_prompt <= o.max_num_batched_tokens && o.batch <= o.max_num_seqs ? o.gen_tokens : 0;
  std::vector<RunResult> runs(o.repeat);
  std::uint32_t discarded = 0;
  for (std::uint32_t i = 0; i < o.repeat; ++i) {
    for (std::uint32_t attempt = 0;; ++attempt) {
      runs[i] = RunResult{};
      if (auto err = run_once(e, prompts, o.gen_tokens, runs[i]); !err.empty()) {
        fmt::print(stderr, "engine_throughput: run {}: {}\n", i + 1, err);
        return 1;
      }
      if (expected_steps == 0 || runs[i].engine_steps == expected_steps || attempt >= o.max_retries) break;
      ++discarded;
      fmt::print(stderr, "engine_throughput: B={} run {}: {} engine steps instead of {} (the prompts did not all "
                 "enter one step); running it again\n", o.batch, i + 1, runs[i].engine_steps, expected_steps);
    }
    fmt::print(stderr, "engine_throughput: B={} run {}: prompt {:.1f} tok/s, decode {:.1f} tok/s\n", o.batch, i + 1,
               runs[i].prompt_tok_s, runs[i].decode_tok_s);
  }
  const auto stats = e.stats();

  sluice::JsonWriter w;
  w.begin_object();
  w.key("tool"); w.string("engine_throughput");
  w.key("model"); w.string(o.model);
  w.key("model_load_s"); w.number(load_s);
  w.key("settings"); w.begin_object();
  w.key("backend"); w.string("cpu");
  w.key("threads"); w.number(o.threads);
  w.key("max_num_batched_tokens"); w.number(o.max_num_batched_tokens);
  w.key("max_num_seqs"); w.number(o.max_num_seqs);
  w.key("block_size"); w.number(o.block_size);
  w.key("kv_cache_bytes"); w.number(cfg.kv_cache_bytes);
  w.key("kv_blocks"); w.number(stats.kv_blocks_total);
  w.key("enable_chunked_prefill"); w.boolean(cfg.enable_chunked_prefill);
  w.key("max_model_len"); w.number(e.max_model_len());
  w.end_object();
  w.key("batch"); w.number(o.batch);
  w.key("prompt_tokens"); w.number(o.prompt_tokens);
  w.key("gen_tokens"); w.number(o.gen_tokens);
  w.key("seed"); w.number(o.seed);
  w.key("warmup_tokens"); w.number(o.warmup_tokens);
  w.key("discarded_runs"); w.number(discarded);
  w.key("runs"); w.begin_array();
  for (const auto& r : runs) write_run(w, r, expected_steps);
  w.end_array();
  std::vector<double> pt, dt, itl50;
  for (const auto& r : runs) {
    pt.push_back(r.prompt_tok_s);
    dt.push_back(r.decode_tok_s);
    itl50.push_back(percentile(r.itl_ms, 50));
  }
  w.key("median"); w.begin_object();
  w.key("prompt_tok_s"); w.number(median(pt));
  w.key("decode_tok_s"); w.number(median(dt));
  w.key("itl_p50_ms"); w.number(median(itl50));
  w.end_object();
  if (o.texts) {
    w.key("texts"); w.begin_array();
    for (const auto& t : runs.back().texts) w.string(t);
    w.end_array();
  }
  w.end_object();
  fmt::print("{}\n", w.str());
  return 0;
}
