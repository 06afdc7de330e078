// engine_gpu: speed of the CUDA backend on a named model shape with random bf16 weights.
//
// The weights are generated on the device (create_cuda_backend_random), so an 8B shape needs no checkpoint.
// The tool drives the Scheduler and the Backend directly, as the engine thread does, with token-id prompts
// (uniform random ids, fixed seed), greedy sampling on the device and no end-of-sequence check: every request
// runs exactly its max_tokens. No tokenizer, no detokenization, no HTTP: this is the engine's own speed.
//
// Parts, in this order (each one skipped once the --max-seconds budget is spent, and cut short if the budget
// runs out inside it; the JSON says which):
//   bandwidth  cudaMemcpy device-to-device of a large buffer, before the backend takes its memory. GB/s is
//              counted as bytes read + bytes written (2 x buffer bytes per copy), the convention of the
//              reference figure for this card. roofline = bandwidth / bf16 bytes of all the model's weights
//              (embedding counted once when tied): every weight is read once per batch-1 decode step.
//   warm-up    max_num_seqs short requests whose lengths differ by one token, so a decode step of every batch
//              size from max_num_seqs down to 1 runs once and each CUDA-graph bucket is captured before the
//              measurements (an online server captures them at start-up too).
//   decode     batch 1: a P-token prompt, G generated tokens. decode tok/s = (G - 1) / (time of token G -
//              time of token 1): the first token belongs to the prefill. Inter-token latency = the gaps
//              between successive tokens (scheduling + the step + reading back the sampled id).
//   ttft       batch 1: from just before the request is added to the scheduler until the step that sampled
//              its first token has returned the id to the host: scheduling + prefill + sampling. Median of
//              --ttft-repeats fresh prompts, each after the previous one finished.
//   offline    N prompts of I tokens, O generated tokens each, all queued at once; continuous batching with
//              max_num_seqs and max_num_batched_tokens (chunked prefill). output tok/s = N*O / time until
//              the last token; total tok/s = N*(I+O) / the same time.
// All times are host steady_clock readings taken after the backend's execute() returned, which synchronizes
// with the device (the sampled ids are on the host by then).
//
//   engine_gpu [--shape llama-3.1-8b|llama-3.2-1b|smollm2-135m] [--parts bandwidth,decode,ttft,offline]
//              [--prompt-tokens 128] [--gen-tokens 256] [--decode-repeats 3] [--ttft-repeats 10]
//              [--offline-prompts 512] [--offline-input 1000] [--offline-output 1000] [--max-num-seqs 256]
//              [--max-batched-tokens 8192] [--block-size 16] [--max-model-len 0 (auto) or >= 64]
//              [--gpu-memory-utilization 0.9]
//              [--enforce-eager] [--max-seconds 240] [--seed 1234] [--device 0] [--copy-mib 2048]
// Prints one JSON object on stdout; progress goes to stderr. Exit status 0 when every part that ran finished
// without error (parts cut by the budget are reported, not failed), 1 on an error, 2 in a build without CUDA.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "engine/backend/backend.h"
#include "engine/model/model_spec.h"
#include "engine/scheduler/scheduler.h"
#include "engine/util/parse_number.h"
#include "gateway/api/json_writer.h"

#ifdef SLUICE_HAS_CUDA
#include <cuda_runtime_api.h>

#include "engine/cuda/cuda_backend.h"
#endif

namespace {

using sluice::parse_number;

using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Options {
  std::string shape = "llama-3.1-8b";
  std::set<std::string> parts = {"bandwidth", "decode", "ttft", "offline"};
  std::uint32_t prompt_tokens = 128;
  std::uint32_t gen_tokens = 256;
  std::uint32_t decode_repeats = 3;
  std::uint32_t ttft_repeats = 10;
  std::uint32_t offline_prompts = 512;
  std::uint32_t offline_input = 1000;
  std::uint32_t offline_output = 1000;
  std::uint32_t max_num_seqs = 256;
  std::uint32_t max_batched_tokens = 8192;
  std::uint32_t block_size = 16;
  std::uint32_t max_model_len = 0;  // 0: the longest request of the selected parts, rounded up to a block
  double gpu_memory_utilization = 0.90;
  bool enforce_eager = false;
  double max_seconds = 240;
  std::uint64_t seed = 1234;
  int device = 0;
  std::uint32_t copy_mib = 2048;
};

std::string parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--enforce-eager") {
      o.enforce_eager = true;
      continue;
    }
    if (i + 1 >= argc) return fmt::format("{} needs a value", a);
    const std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--shape") {
      o.shape = std::string(v);
    } else if (a == "--parts") {
      o.parts.clear();
      for (std::size_t b = 0; b <= v.size();) {
        const std::size_t e = std::min(v.find(',', b), v.size());
        const std::string part(v.substr(b, e - b));
        if (part != "bandwidth" && part != "decode" && part != "ttft" && part != "offline")
          return fmt::format("--parts: '{}' is not one of bandwidth, decode, ttft, offline", part);
        o.parts.insert(part);
        b = e + 1;
      }
    } else if (a == "--prompt-tokens") ok = parse_number(v, o.prompt_tokens) && o.prompt_tokens > 0;
    else if (a == "--gen-tokens") ok = parse_number(v, o.gen_tokens) && o.gen_tokens > 1;
    else if (a == "--decode-repeats") ok = parse_number(v, o.decode_repeats) && o.decode_repeats > 0;
    else if (a == "--ttft-repeats") ok = parse_number(v, o.ttft_repeats) && o.ttft_repeats > 0;
    else if (a == "--offline-prompts") ok = parse_number(v, o.offline_prompts) && o.offline_prompts > 0;
    else if (a == "--offline-input") ok = parse_number(v, o.offline_input) && o.offline_input > 0;
    else if (a == "--offline-output") ok = parse_number(v, o.offline_output) && o.offline_output > 0;
    else if (a == "--max-num-seqs") ok = parse_number(v, o.max_num_seqs) && o.max_num_seqs > 0;
    else if (a == "--max-batched-tokens") ok = parse_number(v, o.max_batched_tokens) && o.max_batched_tokens > 0;
    else if (a == "--block-size") ok = parse_number(v, o.block_size) && o.block_size > 0;
    else if (a == "--max-model-len")
      ok = parse_number(v, o.max_model_len) && (o.max_model_len == 0 || o.max_model_len >= 64);
    else if (a == "--gpu-memory-utilization")
      ok = parse_number(v, o.gpu_memory_utilization) && o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1;
    else if (a == "--max-seconds") ok = parse_number(v, o.max_seconds) && o.max_seconds > 0;
    else if (a == "--seed") ok = parse_number(v, o.seed);
    else if (a == "--device") ok = parse_number(v, o.device) && o.device >= 0;
    else if (a == "--copy-mib") ok = parse_number(v, o.copy_mib) && o.copy_mib > 0;
    else return fmt::format("unknown option {}", a);
    if (!ok) return fmt::format("bad value '{}' for {}", v, a);
  }
  return {};
}

// The published shapes of the models whose speed the project targets (Hugging Face config.json values).
bool make_spec(const std::string& shape, sluice::ModelSpec& s) {
  s = sluice::ModelSpec{};
  s.architecture = "llama";
  s.name = shape;
  s.rms_eps = 1e-5f;
  s.rope.style = sluice::RopeStyle::half;
  if (shape == "llama-3.1-8b" || shape == "llama-3.2-1b") {
    const bool big = shape == "llama-3.1-8b";
    s.vocab = 128256;
    s.hidden = big ? 4096 : 2048;
    s.layers = big ? 32 : 16;
    s.heads = 32;
    s.kv_heads = 8;
    s.head_dim = big ? 128 : 64;
    s.ffn = big ? 14336 : 8192;
    s.tied_embeddings = !big;
    s.rope.theta = 500000.0f;
    s.rope.scaling = sluice::RopeScaling::llama3;
    s.rope.factor = big ? 8.0f : 32.0f;
    s.rope.low_freq_factor = 1.0f;
    s.rope.high_freq_factor = 4.0f;
    s.rope.original_max_position = 8192;
    s.max_position = 131072;
    s.bos_token = 128000;
    s.eos_tokens = {128001, 128008, 128009};
    return true;
  }
  if (shape == "smollm2-135m") {
    s.vocab = 49152;
    s.hidden = 576;
    s.layers = 30;
    s.heads = 9;
    s.kv_heads = 3;
    s.head_dim = 64;
    s.ffn = 1536;
    s.tied_embeddings = true;
    s.rope.theta = 100000.0f;
    s.max_position = 8192;
    s.bos_token = 1;
    s.eos_tokens = {2};
    return true;
  }
  return false;
}

// Parameters of the model; x2 = the bf16 bytes a batch-1 decode step reads (the tied matrix once).
std::uint64_t parameter_count(const sluice::ModelSpec& s) {
  const std::uint64_t h = s.hidden;
  const std::uint64_t per_layer = h * (s.q_dim() + 2ull * s.kv_dim()) + std::uint64_t{s.q_dim()} * h +
                                  3ull * h * s.ffn + 2ull * h;
  return std::uint64_t{s.vocab} * h * (s.tied_embeddings ? 1 : 2) + per_layer * s.layers + h;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

void write_dist(sluice::JsonWriter& w, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  w.begin_object();
  w.key("n"); w.number(static_cast<std::uint64_t>(v.size()));
  w.key("mean"); w.number(v.empty() ? 0.0 : sum / static_cast<double>(v.size()));
  w.key("p50"); w.number(percentile(v, 50));
  w.key("p90"); w.number(percentile(v, 90));
  w.key("p99"); w.number(percentile(v, 99));
  w.key("min"); w.number(v.empty() ? 0.0 : v.front());
  w.key("max"); w.number(v.empty() ? 0.0 : v.back());
  w.end_object();
}

// What one batch of requests did.
struct BatchRun {
  bool complete = false;      // every request produced all its tokens before the deadline
  std::string error;          // non-empty: a backend or scheduler failure
  double elapsed_s = 0;       // from before the first add() until the last token (or the cut)
  std::uint64_t steps = 0;
  std::uint64_t decode_steps = 0;       // steps without prompt tokens
  std::uint64_t decode_seq_sum = 0;     // sequences over those steps (mean decode batch = sum / steps)
  std::uint64_t max_running = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t prompt_tokens = 0;      // of the requests that finished
  std::uint64_t generated = 0;          // tokens sampled, all requests
  // Per request: seconds from the start to each of its tokens.
  std::vector<std::vector<double>> token_s;
};

// Drives scheduler + backend over `prompts` (request i generates max_tokens[i]) until all finish, a step
// fails, or `deadline` passes (the remaining requests are then cancelled, freeing their blocks).
class Driver {
 public:
  Driver(sluice::Backend& backend, sluice::Scheduler& scheduler)
      : backend_(backend), scheduler_(scheduler), plan_(scheduler.plan_limits()) {}

  BatchRun run(const std::vector<std::vector<std::int32_t>>& prompts, const std::vector<std::uint32_t>& max_tokens,
               Clock::time_point deadline) {
    BatchRun r;
    r.token_s.resize(prompts.size());
    std::unordered_map<std::uint64_t, std::size_t> index;
    const auto pre0 = scheduler_.stats().preemptions;
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      sluice::SequenceRequest req;
      req.id = next_id_++;
      req.prompt = prompts[i];
      req.max_tokens = max_tokens[i];
      r.token_s[i].reserve(max_tokens[i]);
      if (auto st = scheduler_.add(std::move(req)); !st) {
        r.error = fmt::format("scheduler refused request {}: {}", i, st.error().message);
        cancel_all(index);
        return r;
      }
      index.emplace(next_id_ - 1, i);
    }
    std::size_t live = prompts.size();
    while (live > 0) {
      if (Clock::now() >= deadline) break;
      const auto summary = scheduler_.schedule(plan_);
      if (plan_.empty()) {
        r.error = "the scheduler planned an empty step with requests pending (KV cache too small?)";
        break;
      }
      auto out = backend_.execute(plan_);
      if (!out) {
        r.error = fmt::format("backend step failed ({}): {}", sluice::backend_error_kind_name(out.error().kind),
                              out.error().message);
        break;
      }
      const sluice::StepOutput& o = out.value();
      if (o.token_ids.size() != o.num_rows) {
        r.error = "the backend returned no sampled token ids (logits only)";
        break;
      }
      auto updates = scheduler_.on_step_done(plan_, o.token_ids);
      if (!updates) {
        r.error = "scheduler: " + updates.error().message;
        break;
      }
      const double now = seconds(Clock::now() - t0);
      ++r.steps;
      if (summary.prefill_seqs == 0) {
        ++r.decode_steps;
        r.decode_seq_sum += summary.decode_seqs;
      }
      r.max_running = std::max<std::uint64_t>(r.max_running, scheduler_.num_running());
      for (const sluice::SequenceUpdate& u : updates.value()) {
        auto it = index.find(u.id);
        if (it == index.end()) continue;
        r.token_s[it->second].push_back(now);
        ++r.generated;
        if (u.finished) {
          r.prompt_tokens += prompts[it->second].size();
          index.erase(it);
          --live;
        }
      }
    }
    r.elapsed_s = seconds(Clock::now() - t0);
    r.complete = live == 0 && r.error.empty();
    if (live > 0 && r.error.empty()) {
      // Cut by the deadline: the elapsed time ends at the last token produced.
      double last = 0;
      for (const auto& t : r.token_s)
        if (!t.empty()) last = std::max(last, t.back());
      r.elapsed_s = last;
    }
    cancel_all(index);
    r.preemptions = scheduler_.stats().preemptions - pre0;
    return r;
  }

 private:
  void cancel_all(const std::unordered_map<std::uint64_t, std::size_t>& index) {
    for (const auto& [id, i] : index) scheduler_.cancel(id);
  }

  sluice::Backend& backend_;
  sluice::Scheduler& scheduler_;
  sluice::StepPlan plan_;
  std::uint64_t next_id_ = 1;
};

std::vector<std::int32_t> random_prompt(std::mt19937_64& rng, std::uint32_t vocab, std::uint32_t n) {
  std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(vocab) - 1);
  std::vector<std::int32_t> p(n);
  for (auto& t : p) t = pick(rng);
  return p;
}

#ifdef SLUICE_HAS_CUDA
struct Bandwidth {
  double gb_s = 0;
  std::uint64_t buffer_bytes = 0;
  int copies = 0;
  std::string error;
};

// Device-to-device copies of one buffer into another, timed with events after a warm-up copy.
Bandwidth measure_bandwidth(int device, std::uint64_t bytes) {
  Bandwidth b;
  b.buffer_bytes = bytes;
  b.copies = 20;
  void* src = nullptr;
  void* dst = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  auto check = [&](cudaError_t err, const char* what) {
    if (err != cudaSuccess && b.error.empty()) b.error = fmt::format("{}: {}", what, cudaGetErrorString(err));
    return err == cudaSuccess;
  };
  if (check(cudaSetDevice(device), "cudaSetDevice") && check(cudaMalloc(&src, bytes), "cudaMalloc") &&
      check(cudaMalloc(&dst, bytes), "cudaMalloc") && check(cudaMemset(src, 1, bytes), "cudaMemset") &&
      check(cudaEventCreate(&e0), "cudaEventCreate") && check(cudaEventCreate(&e1), "cudaEventCreate") &&
      check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy") &&
      check(cudaDeviceSynchronize(), "cudaDeviceSynchronize")) {
    cudaEventRecord(e0);
    for (int i = 0; i < b.copies; ++i) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    if (check(cudaEventSynchronize(e1), "copy")) {
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      b.gb_s = 2.0 * static_cast<double>(bytes) * b.copies / (static_cast<double>(ms) * 1e-3) / 1e9;
    }
  }
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  if (src) cudaFree(src);
  if (dst) cudaFree(dst);
  return b;
}
#endif

}  // namespace

#ifndef SLUICE_HAS_CUDA
int main() {
  fmt::print(stderr, "engine_gpu: this build has no CUDA backend (configure where nvcc is installed, with "
                     "-DSLUICE_CUDA=ON); nothing to measure\n");
  return 2;
}
#else
int main(int argc, char** argv) {
  const auto start = Clock::now();
  Options o;
  if (auto err = parse_args(argc, argv, o); !err.empty()) {
    fmt::print(stderr, "engine_gpu: {}\n", err);
    return 1;
  }
  sluice::ModelSpec spec;
  if (!make_spec(o.shape, spec)) {
    fmt::print(stderr, "engine_gpu: unknown --shape '{}' (llama-3.1-8b, llama-3.2-1b, smollm2-135m)\n", o.shape);
    return 1;
  }
  if (auto st = sluice::validate(spec, o.shape); !st) {
    fmt::print(stderr, "engine_gpu: {}\n", st.error().message);
    return 1;
  }
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.max_seconds));
  auto has = [&](const char* p) { return o.parts.count(p) > 0; };
  std::uint32_t need = 0;
  if (has("decode")) need = std::max(need, o.prompt_tokens + o.gen_tokens);
  if (has("ttft")) need = std::max(need, o.prompt_tokens + 1);
  if (has("offline")) need = std::max(need, o.offline_input + o.offline_output);
  need = std::max<std::uint32_t>(need, 64);
  const std::uint32_t max_model_len =
      o.max_model_len ? o.max_model_len : (need + o.block_size - 1) / o.block_size * o.block_size;

  sluice::JsonWriter w;
  std::vector<std::string> errors, cut;
  w.begin_object();
  w.key("tool"); w.string("engine_gpu");
  w.key("shape"); w.string(o.shape);
  w.key("spec"); w.begin_object();
  w.key("vocab"); w.number(spec.vocab);
  w.key("hidden"); w.number(spec.hidden);
  w.key("layers"); w.number(spec.layers);
  w.key("heads"); w.number(spec.heads);
  w.key("kv_heads"); w.number(spec.kv_heads);
  w.key("head_dim"); w.number(spec.head_dim);
  w.key("ffn"); w.number(spec.ffn);
  w.key("tied_embeddings"); w.boolean(spec.tied_embeddings);
  w.end_object();
  const std::uint64_t params = parameter_count(spec);
  const std::uint64_t weight_bytes = params * 2;
  w.key("parameters"); w.number(params);
  w.key("weight_bytes_bf16"); w.number(weight_bytes);

  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, o.device) == cudaSuccess) {
    w.key("device"); w.begin_object();
    w.key("name"); w.string(prop.name);
    w.key("compute_capability"); w.string(fmt::format("{}.{}", prop.major, prop.minor));
    w.key("total_memory_bytes"); w.number(static_cast<std::uint64_t>(prop.totalGlobalMem));
    w.end_object();
  }
  w.key("settings"); w.begin_object();
  w.key("max_num_seqs"); w.number(o.max_num_seqs);
  w.key("max_batched_tokens"); w.number(o.max_batched_tokens);
  w.key("block_size"); w.number(o.block_size);
  w.key("max_model_len"); w.number(max_model_len);
  w.key("gpu_memory_utilization"); w.number(o.gpu_memory_utilization);
  w.key("enforce_eager"); w.boolean(o.enforce_eager);
  w.key("max_seconds"); w.number(o.max_seconds);
  w.key("seed"); w.number(o.seed);
  w.key("sampling"); w.string("greedy, on the device; no EOS: every request runs exactly its max tokens");
  w.end_object();

  double bandwidth = 0;
  if (has("bandwidth")) {
    const auto b = measure_bandwidth(o.device, std::uint64_t{o.copy_mib} << 20);
    w.key("bandwidth"); w.begin_object();
    w.key("convention"); w.string("device-to-device cudaMemcpy; GB/s = (bytes read + bytes written) / time = "
                                  "2 x buffer bytes x copies / time; 1 GB = 1e9 bytes");
    w.key("buffer_bytes"); w.number(b.buffer_bytes);
    w.key("copies"); w.number(b.copies);
    w.key("gb_s"); w.number(b.gb_s);
    if (!b.error.empty()) { w.key("error"); w.string(b.error); errors.push_back("bandwidth: " + b.error); }
    w.end_object();
    bandwidth = b.gb_s;
    if (bandwidth > 0) {
      w.key("roofline_decode_b1_tok_s"); w.number(bandwidth * 1e9 / static_cast<double>(weight_bytes));
    }
    fmt::print(stderr, "engine_gpu: copy bandwidth {:.0f} GB/s (read + write)\n", b.gb_s);
  }

  sluice::CudaBackendOptions co;
  co.device = o.device;
  co.gpu_memory_utilization = o.gpu_memory_utilization;
  co.max_model_len = max_model_len;
  co.max_num_seqs = o.max_num_seqs;
  co.max_batched_tokens = o.max_batched_tokens;
  co.block_size = o.block_size;
  co.enforce_eager = o.enforce_eager;
  const auto load0 = Clock::now();
  auto created = sluice::create_cuda_backend_random(spec, o.seed, co);
  const double load_s = seconds(Clock::now() - load0);
  if (!created) {
    const std::string msg = fmt::format("create_cuda_backend_random ({}): {}",
                                        sluice::backend_error_kind_name(created.error().kind),
                                        created.error().message);
    fmt::print(stderr, "engine_gpu: {}\n", msg);
    w.key("errors"); w.begin_array(); w.string(msg); w.end_array();
    w.end_object();
    fmt::print("{}\n", w.str());
    return 1;
  }
  std::unique_ptr<sluice::Backend> backend = std::move(created.value());
  fmt::print(stderr, "engine_gpu: {} backend ready in {:.1f} s, {} KV blocks\n", o.shape, load_s,
             backend->num_kv_blocks());

  sluice::SchedulerConfig sc;
  sc.max_num_seqs = o.max_num_seqs;
  sc.max_num_batched_tokens = std::min(o.max_batched_tokens, backend->max_batched_tokens());
  sc.max_model_len = max_model_len;
  sc.block_size = backend->block_size();
  sc.num_kv_blocks = backend->num_kv_blocks();
  sc.enable_chunked_prefill = true;
  auto sched = sluice::Scheduler::create(sc);
  if (!sched) {
    fmt::print(stderr, "engine_gpu: scheduler: {}\n", sched.error().message);
    return 1;
  }
  sluice::Scheduler scheduler = std::move(sched.value());
  Driver driver(*backend, scheduler);
  std::mt19937_64 rng(o.seed);
  auto out_of_time = [&] { return Clock::now() >= deadline; };

  // Warm-up: request i generates i + 2 tokens, so the decode batch shrinks by one each step through every
  // graph bucket; short prompts keep its prefill to one step.
  {
    std::vector<std::vector<std::int32_t>> prompts;
    std::vector<std::uint32_t> gen;
    for (std::uint32_t i = 0; i < o.max_num_seqs; ++i) {
      prompts.push_back(random_prompt(rng, spec.vocab, 16));
      gen.push_back(std::min(i + 2, max_model_len - 16));
    }
    const auto r = driver.run(prompts, gen, deadline);
    w.key("warmup"); w.begin_object();
    w.key("requests"); w.number(o.max_num_seqs);
    w.key("seconds"); w.number(r.elapsed_s);
    w.key("steps"); w.number(r.steps);
    w.key("complete"); w.boolean(r.complete);
    w.end_object();
    if (!r.error.empty()) errors.push_back("warm-up: " + r.error);
    if (!r.complete && r.error.empty()) cut.push_back("warmup");
    fmt::print(stderr, "engine_gpu: warm-up {:.1f} s, {} steps\n", r.elapsed_s, r.steps);
  }

  std::vector<double> itl_ms;
  if (has("decode") && errors.empty()) {
    std::vector<double> rates;
    w.key("decode_b1"); w.begin_object();
    w.key("prompt_tokens"); w.number(o.prompt_tokens);
    w.key("gen_tokens"); w.number(o.gen_tokens);
    w.key("runs_tok_s"); w.begin_array();
    for (std::uint32_t k = 0; k < o.decode_repeats && !out_of_time(); ++k) {
      const auto r = driver.run({random_prompt(rng, spec.vocab, o.prompt_tokens)}, {o.gen_tokens}, deadline);
      if (!r.error.empty()) { errors.push_back("decode: " + r.error); break; }
      const auto& t = r.token_s[0];
      if (t.size() < 2) break;
      const double rate = static_cast<double>(t.size() - 1) / (t.back() - t.front());
      rates.push_back(rate);
      w.number(rate);
      for (std::size_t i = 1; i < t.size(); ++i) itl_ms.push_back((t[i] - t[i - 1]) * 1e3);
      fmt::print(stderr, "engine_gpu: batch-1 decode run {}: {:.1f} tok/s ({} tokens{})\n", k + 1, rate, t.size(),
                 r.complete ? "" : ", cut by the time budget");
      if (!r.complete) { cut.push_back("decode"); break; }
    }
    w.end_array();
    w.key("tok_s"); w.number(median(rates));
    if (bandwidth > 0 && !rates.empty()) {
      w.key("fraction_of_roofline");
      w.number(median(rates) / (bandwidth * 1e9 / static_cast<double>(weight_bytes)));
    }
    w.key("itl_ms"); write_dist(w, itl_ms);
    w.end_object();
    if (rates.size() < o.decode_repeats && std::find(cut.begin(), cut.end(), "decode") == cut.end() &&
        errors.empty())
      cut.push_back("decode");
  }

  if (has("ttft") && errors.empty()) {
    std::vector<double> ttft;
    for (std::uint32_t k = 0; k < o.ttft_repeats && !out_of_time(); ++k) {
      const auto r = driver.run({random_prompt(rng, spec.vocab, o.prompt_tokens)}, {1}, deadline);
      if (!r.error.empty()) { errors.push_back("ttft: " + r.error); break; }
      if (!r.complete || r.token_s[0].empty()) break;
      ttft.push_back(r.token_s[0].front() * 1e3);
    }
    w.key("ttft_b1"); w.begin_object();
    w.key("prompt_tokens"); w.number(o.prompt_tokens);
    w.key("includes"); w.string("scheduler add + schedule + prefill step + device sampling + id to host");
    w.key("median_ms"); w.number(median(ttft));
    w.key("ms"); write_dist(w, ttft);
    w.end_object();
    if (ttft.size() < o.ttft_repeats && errors.empty()) cut.push_back("ttft");
    fmt::print(stderr, "engine_gpu: TTFT({}) median {:.2f} ms over {} runs\n", o.prompt_tokens, median(ttft),
               ttft.size());
  }

  if (has("offline") && errors.empty()) {
    if (out_of_time()) {
      cut.push_back("offline");
    } else {
      std::vector<std::vector<std::int32_t>> prompts;
      for (std::uint32_t i = 0; i < o.offline_prompts; ++i)
        prompts.push_back(random_prompt(rng, spec.vocab, o.offline_input));
      const std::vector<std::uint32_t> gen(o.offline_prompts, o.offline_output);
      const auto r = driver.run(prompts, gen, deadline);
      if (!r.error.empty()) errors.push_back("offline: " + r.error);
      if (!r.complete && r.error.empty()) cut.push_back("offline");
      std::vector<double> ttft_ms, finish_s;
      double last_first = 0;
      for (const auto& t : r.token_s) {
        if (t.empty()) continue;
        ttft_ms.push_back(t.front() * 1e3);
        last_first = std::max(last_first, t.front());
        if (t.size() == o.offline_output) finish_s.push_back(t.back());
      }
      const double el = r.elapsed_s > 0 ? r.elapsed_s : 1e-9;
      w.key("offline"); w.begin_object();
      w.key("prompts"); w.number(o.offline_prompts);
      w.key("input_tokens"); w.number(o.offline_input);
      w.key("output_tokens"); w.number(o.offline_output);
      w.key("complete"); w.boolean(r.complete);
      w.key("finished_requests"); w.number(static_cast<std::uint64_t>(finish_s.size()));
      w.key("elapsed_s"); w.number(r.elapsed_s);
      w.key("generated_tokens"); w.number(r.generated);
      // Prompt tokens whose requests produced at least one token (their prefill is done).
      std::uint64_t prefilled = 0;
      for (const auto& t : r.token_s) prefilled += t.empty() ? 0 : o.offline_input;
      w.key("output_tok_s"); w.number(static_cast<double>(r.generated) / el);
      w.key("total_tok_s"); w.number(static_cast<double>(r.generated + prefilled) / el);
      w.key("steps"); w.number(r.steps);
      w.key("decode_steps"); w.number(r.decode_steps);
      w.key("mean_decode_batch");
      w.number(r.decode_steps ? static_cast<double>(r.decode_seq_sum) / static_cast<double>(r.decode_steps) : 0.0);
      w.key("max_running"); w.number(r.max_running);
      w.key("preemptions"); w.number(r.preemptions);
      w.key("last_first_token_s"); w.number(last_first);
      w.key("ttft_ms"); write_dist(w, ttft_ms);
      w.end_object();
      fmt::print(stderr, "engine_gpu: offline {} x {}/{}: {:.0f} output tok/s, {:.0f} total tok/s in {:.1f} s{}\n",
                 o.offline_prompts, o.offline_input, o.offline_output, static_cast<double>(r.generated) / el,
                 static_cast<double>(r.generated + prefilled) / el, r.elapsed_s,
                 r.complete ? "" : " (incomplete)");
    }
  }

  const auto mem = backend->memory();
  w.key("backend"); w.begin_object();
  w.key("name"); w.string(backend->name());
  w.key("create_s"); w.number(load_s);
  w.key("weights_bytes"); w.number(mem.weights);
  w.key("kv_cache_bytes"); w.number(mem.kv_cache);
  w.key("other_bytes"); w.number(mem.other);
  w.key("kv_blocks"); w.number(backend->num_kv_blocks());
  if (const auto* cb = dynamic_cast<const sluice::CudaBackend*>(backend.get())) {
    w.key("memory_plan"); w.string(cb->memory_budget().summary);
    w.key("graphs_captured"); w.number(static_cast<std::uint64_t>(cb->graphs_captured()));
    w.key("graph_replays"); w.number(cb->graph_replays());
    w.key("graph_disabled_reason"); w.string(cb->graph_disabled_reason());
  }
  w.end_object();
  w.key("cut_by_time_budget"); w.begin_array();
  for (const auto& c : cut) w.string(c);
  w.end_array();
  w.key("errors"); w.begin_array();
  for (const auto& e : errors) w.string(e);
  w.end_array();
  w.key("elapsed_s"); w.number(seconds(Clock::now() - start));
  w.end_object();
  fmt::print("{}\n", w.str());
  for (const auto& e : errors) fmt::print(stderr, "engine_gpu: error: {}\n", e);
  return errors.empty() ? 0 : 1;
}
#endif
