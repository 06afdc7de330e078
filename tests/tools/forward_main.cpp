// sluice_forward: teacher-forced logits of a model on given token sequences, for comparing a backend with a
// reference implementation (tests/gpu/test_models_vs_transformers.py compares with Hugging Face transformers).
//
// Input: a JSON array of sequences {"prompt": [ids], "continuation": [ids]}; every continuation has the same
// length C >= 1. Each sequence is fed as the token stream prompt ++ continuation[0 .. C-2]: the prompt as a
// prefill (whole, or in chunks of --chunk tokens) whose last position yields logits row 0, then each
// continuation token but the last as a decode step yielding rows 1 .. C-1. Row r is therefore the prediction
// at position P-1+r, i.e. the distribution over continuation[r] — what a reference computes from one forward
// pass over prompt ++ continuation.
//
// Modes:
//   alone  each sequence by itself: its prefill, then its decodes, one sequence per step.
//   batch  all sequences in one stream of steps, scheduled like a continuous-batching engine: sequence i
//          arrives at step i * --arrive-every; each step carries one decode token of every sequence past its
//          prompt, then prompt chunks (at most --chunk tokens each, 0 = whole) of arrived sequences in arrival
//          order while the step's token budget (--max-batched-tokens) lasts. Steps thus mix prefills, chunked
//          prefills and decodes of other sequences, and pure decode steps of shrinking batch size at the end.
// KV pages: every sequence gets its own blocks, drawn from a shuffled free list so that page tables are not
// contiguous runs; each plan carries exactly the table entries its positions need, as a scheduler would.
//
// Output (--out): one float32 .npy of shape [sequences, C, vocab], rows streamed to the file as steps return
// them, so memory stays at one step's logits. Sizes: 32 x 64 x 151,936 x 4 bytes = 1.2 GiB for a Qwen2
// vocabulary — acceptable for a test's temporary directory, and fp32 keeps the comparison free of any
// rounding of our own. stdout: one JSON object describing the run (steps, mixed steps, timing).
//
//   sluice_forward --model PATH --input FILE.json --out FILE.npy [--device cpu|cuda] [--mode alone|batch]
//                  [--chunk N] [--arrive-every K] [--max-batched-tokens N] [--block-size 16] [--seed S]
//                  cpu:  [--threads N] [--kv-cache-mib M]  (default: exactly what the sequences need)
//                  cuda: [--gpu-memory-utilization F] [--max-model-len N] [--max-num-seqs N] [--enforce-eager]
//                        [--cuda-device I]
//   sluice_forward --list-devices    prints the backends this build has, one per line
// Exit status: 0 success, 1 the model, input or a step failed, 2 bad command line or a backend this build
// lacks.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "engine/backend/backend.h"
#include "engine/backend/kv_cache.h"
#include "engine/backend/step_plan.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/util/json_lite.h"
#include "engine/util/parse_number.h"
#ifdef SLUICE_HAS_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace {

using sluice::parse_number;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Options {
  std::string model;
  std::string input;
  std::string out;
  std::string device = "cpu";
  std::string mode = "alone";
  std::uint32_t chunk = 0;  // 0: a prompt goes in one step (budget permitting)
  std::uint32_t arrive_every = 1;
  std::uint32_t max_batched_tokens = 2048;
  std::uint32_t block_size = 16;
  std::uint64_t seed = 1;
  unsigned threads = 2;
  std::uint64_t kv_cache_mib = 0;  // 0: sized from the sequences
  double gpu_memory_utilization = 0.5;
  std::uint32_t max_model_len = 0;  // 0: the longest sequence, rounded up to a block
  std::uint32_t max_num_seqs = 0;   // 0: the number of sequences
  bool enforce_eager = false;
  int cuda_device = 0;
};

std::vector<std::string> available_devices() {
#ifdef SLUICE_HAS_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

// Returns "" on success, otherwise what was wrong with the command line.
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
    if (a == "--model") o.model = std::string(v);
    else if (a == "--input") o.input = std::string(v);
    else if (a == "--out") o.out = std::string(v);
    else if (a == "--device") o.device = std::string(v);
    else if (a == "--mode") o.mode = std::string(v);
    else if (a == "--chunk") ok = parse_number(v, o.chunk);
    else if (a == "--arrive-every") ok = parse_number(v, o.arrive_every) && o.arrive_every > 0;
    else if (a == "--max-batched-tokens") ok = parse_number(v, o.max_batched_tokens) && o.max_batched_tokens > 0;
    else if (a == "--block-size") ok = parse_number(v, o.block_size) && o.block_size > 0;
    else if (a == "--seed") ok = parse_number(v, o.seed);
    else if (a == "--threads") ok = parse_number(v, o.threads) && o.threads > 0;
    else if (a == "--kv-cache-mib") ok = parse_number(v, o.kv_cache_mib) && o.kv_cache_mib > 0;
    else if (a == "--gpu-memory-utilization")
      ok = parse_number(v, o.gpu_memory_utilization) && o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1;
    else if (a == "--max-model-len") ok = parse_number(v, o.max_model_len);
    else if (a == "--max-num-seqs") ok = parse_number(v, o.max_num_seqs);
    else if (a == "--cuda-device") ok = parse_number(v, o.cuda_device) && o.cuda_device >= 0;
    else return fmt::format("unknown option {}", a);
    if (!ok) return fmt::format("bad value '{}' for {}", v, a);
  }
  if (o.model.empty() || o.input.empty() || o.out.empty()) return "--model, --input and --out are required";
  if (o.mode != "alone" && o.mode != "batch") return fmt::format("--mode must be alone or batch, got '{}'", o.mode);
  const auto devices = available_devices();
  if (std::find(devices.begin(), devices.end(), o.device) == devices.end()) {
    if (o.device == "cuda") {
      return "--device cuda: this build has no CUDA backend (configure with -DSLUICE_CUDA=ON where nvcc is found)";
    }
    return fmt::format("--device must be cpu or cuda, got '{}'", o.device);
  }
  return {};
}

struct Sequence {
  std::vector<std::int32_t> prompt;
  std::vector<std::int32_t> continuation;
  // prompt ++ continuation[0 .. C-2]: what is fed, token k at position k.
  std::vector<std::int32_t> stream;
};

// Reads the input file; returns "" or what is wrong with it.
std::string load_sequences(const std::string& path, std::uint32_t vocab, std::vector<Sequence>& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return fmt::format("{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto doc = sluice::json::parse(ss.str());
  if (!doc) return fmt::format("{}: {}", path, doc.error().message);
  if (!doc->is_array() || doc->size() == 0) return fmt::format("{}: expected a non-empty array of sequences", path);
  auto read_ids = [&](const sluice::json::Value* v, std::size_t i, const char* key,
                      std::vector<std::int32_t>& ids) -> std::string {
    if (v == nullptr || !v->is_array() || v->size() == 0) {
      return fmt::format("{}: sequence {}: \"{}\" must be a non-empty array of token ids", path, i, key);
    }
    for (const auto& item : v->items()) {
      const auto id = item.as_i64();
      if (!id || *id < 0 || *id >= static_cast<std::int64_t>(vocab)) {
        return fmt::format("{}: sequence {}: \"{}\" holds a value that is not a token id in [0, {})", path, i, key,
                           vocab);
      }
      ids.push_back(static_cast<std::int32_t>(*id));
    }
    return {};
  };
  for (std::size_t i = 0; i < doc->size(); ++i) {
    const auto& item = doc->items()[i];
    Sequence s;
    if (auto e = read_ids(item.find("prompt"), i, "prompt", s.prompt); !e.empty()) return e;
    if (auto e = read_ids(item.find("continuation"), i, "continuation", s.continuation); !e.empty()) return e;
    if (!out.empty() && s.continuation.size() != out.front().continuation.size()) {
      return fmt::format("{}: sequence {} has {} continuation tokens, sequence 0 has {}; all must be equal", path, i,
                         s.continuation.size(), out.front().continuation.size());
    }
    s.stream = s.prompt;
    s.stream.insert(s.stream.end(), s.continuation.begin(), s.continuation.end() - 1);
    out.push_back(std::move(s));
  }
  return {};
}

// A float32 .npy of shape [n0, n1, n2] written row by row at arbitrary positions (pwrite), so rows may arrive
// in any order.
class NpyWriter {
 public:
  ~NpyWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string open(const std::string& path, std::size_t n0, std::size_t n1, std::size_t n2) {
    n1_ = n1;
    n2_ = n2;
    std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, {}), }}", n0, n1, n2);
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64 as numpy writes it.
    const std::size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header.push_back('\n');
    std::string prefix("\x93NUMPY\x01\x00", 8);
    prefix.push_back(static_cast<char>(header.size() & 0xff));
    prefix.push_back(static_cast<char>(header.size() >> 8));
    prefix += header;
    data_offset_ = prefix.size();
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) return fmt::format("{}: cannot create", path);
    const off_t total = static_cast<off_t>(data_offset_ + n0 * n1 * n2 * sizeof(float));
    if (!write_at(prefix.data(), prefix.size(), 0) || ::ftruncate(fd_, total) != 0) {
      return fmt::format("{}: write failed", path);
    }
    return {};
  }

  bool write_row(std::size_t i0, std::size_t i1, const float* row) {
    const std::size_t offset = data_offset_ + (i0 * n1_ + i1) * n2_ * sizeof(float);
    return write_at(row, n2_ * sizeof(float), offset);
  }

 private:
  bool write_at(const void* data, std::size_t bytes, std::size_t offset) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(offset));
      if (n <= 0) return false;
      p += n;
      bytes -= static_cast<std::size_t>(n);
      offset += static_cast<std::size_t>(n);
    }
    return true;
  }

  int fd_ = -1;
  std::size_t n1_ = 0, n2_ = 0, data_offset_ = 0;
};

struct RunStats {
  std::uint64_t steps = 0;
  std::uint64_t mixed_steps = 0;        // at least one decode token and at least one prompt token
  std::uint64_t decode_only_steps = 0;  // decode tokens only, more than one sequence
  std::uint64_t prefill_chunks = 0;     // prompt pieces that did not end the prompt
  std::uint32_t max_step_tokens = 0;
  std::uint32_t max_step_seqs = 0;
  std::uint64_t tokens = 0;
};

// One sequence's contribution to a step: `count` tokens of its stream starting at its `fed` cursor.
struct Piece {
  std::size_t seq = 0;
  std::uint32_t count = 0;
};

class Runner {
 public:
  Runner(sluice::Backend& backend, std::vector<Sequence>& seqs, NpyWriter& writer, std::uint32_t max_seqs)
      : backend_(backend),
        seqs_(seqs),
        writer_(writer),
        plan_(sluice::StepPlanLimits{max_seqs, backend.max_batched_tokens(),
                                     table_capacity(seqs, backend.block_size())}),
        fed_(seqs.size(), 0),
        rows_(seqs.size(), 0),
        tables_(seqs.size()) {}

  std::uint32_t blocks_needed(std::size_t i) const {
    const std::uint32_t bs = backend_.block_size();
    return static_cast<std::uint32_t>((seqs_[i].stream.size() + bs - 1) / bs);
  }
  bool done(std::size_t i) const { return fed_[i] == seqs_[i].stream.size(); }
  bool in_prompt(std::size_t i) const { return fed_[i] < seqs_[i].prompt.size(); }
  std::size_t fed(std::size_t i) const { return fed_[i]; }
  std::vector<std::int32_t>& table(std::size_t i) { return tables_[i]; }
  const RunStats& stats() const { return stats_; }

  // Runs one step made of `pieces`; returns "" or what failed.
  std::string step(const std::vector<Piece>& pieces) {
    plan_.clear();
    const std::uint32_t bs = backend_.block_size();
    std::uint32_t decode_tokens = 0, prompt_tokens = 0;
    for (const Piece& p : pieces) {
      const Sequence& s = seqs_[p.seq];
      const std::size_t begin = fed_[p.seq], end = begin + p.count;
      const std::size_t entries = (end + bs - 1) / bs;
      if (entries > tables_[p.seq].size()) return fmt::format("sequence {}: page table too short", p.seq);
      // Logits for every piece that reaches the last prompt token or beyond: the end of the prompt or a decode.
      const bool logits = end >= s.prompt.size();
      if (!plan_.add_sequence(p.seq, std::span(s.stream).subspan(begin, p.count), static_cast<std::int32_t>(begin),
                              std::span(tables_[p.seq]).first(entries), logits)) {
        return fmt::format("step {}: the plan's capacity is exceeded", stats_.steps);
      }
      if (begin >= s.prompt.size()) {
        ++decode_tokens;
      } else {
        prompt_tokens += p.count;
        if (!logits) ++stats_.prefill_chunks;
      }
    }
    auto out = backend_.execute(plan_);
    if (!out) {
      return fmt::format("step {}: {}: {}", stats_.steps, sluice::backend_error_kind_name(out.error().kind),
                         out.error().message);
    }
    const sluice::StepOutput& o = *out;
    std::uint32_t expected_rows = 0;
    for (std::uint32_t i = 0; i < plan_.num_seqs(); ++i) expected_rows += plan_.wants_logits[i];
    if (o.num_rows != expected_rows) {
      return fmt::format("step {}: {} output rows, {} wanted", stats_.steps, o.num_rows, expected_rows);
    }
    if (o.num_rows > 0 && (o.vocab != backend_.spec().vocab || o.logits.size() < std::size_t{o.num_rows} * o.vocab)) {
      return fmt::format("step {}: the backend returned no logits (vocab {}, {} floats)", stats_.steps, o.vocab,
                         o.logits.size());
    }
    for (std::uint32_t r = 0; r < o.num_rows; ++r) {
      const std::uint32_t i = o.seq_index[r];
      if (i >= plan_.num_seqs() || !plan_.wants_logits[i] || o.seq_ids[r] != plan_.seq_ids[i]) {
        return fmt::format("step {}: output row {} names sequence {} of the plan wrongly", stats_.steps, r, i);
      }
      const std::size_t seq = pieces[i].seq;
      // The row predicts the token after the piece's last one: row (last position) - (P - 1).
      const std::size_t row = fed_[seq] + pieces[i].count - seqs_[seq].prompt.size();
      if (row != rows_[seq]) return fmt::format("step {}: sequence {} got row {} out of order", stats_.steps, seq, row);
      if (!writer_.write_row(seq, row, o.row_logits(r).data())) return "writing the output failed";
      ++rows_[seq];
    }
    for (const Piece& p : pieces) fed_[p.seq] += p.count;
    ++stats_.steps;
    stats_.tokens += plan_.num_tokens();
    if (decode_tokens > 0 && prompt_tokens > 0) ++stats_.mixed_steps;
    if (prompt_tokens == 0 && decode_tokens > 1) ++stats_.decode_only_steps;
    stats_.max_step_tokens = std::max(stats_.max_step_tokens, plan_.num_tokens());
    stats_.max_step_seqs = std::max(stats_.max_step_seqs, plan_.num_seqs());
    return {};
  }

 private:
  static std::uint32_t table_capacity(const std::vector<Sequence>& seqs, std::uint32_t bs) {
    std::uint64_t n = 0;
    for (const auto& s : seqs) n += (s.stream.size() + bs - 1) / bs;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX));
  }

  sluice::Backend& backend_;
  std::vector<Sequence>& seqs_;
  NpyWriter& writer_;
  sluice::StepPlan plan_;
  std::vector<std::size_t> fed_;
  std::vector<std::size_t> rows_;
  std::vector<std::vector<std::int32_t>> tables_;
  RunStats stats_;
};

// Hands out KV blocks in a shuffled order, first in first out, so that consecutive sequences (alone mode,
// when they do not all fit) reuse blocks as late as possible and tables are scattered over the cache.
class BlockPool {
 public:
  BlockPool(std::uint32_t num_blocks, std::uint64_t seed) {
    std::vector<std::int32_t> ids(num_blocks);
    for (std::uint32_t i = 0; i < num_blocks; ++i) ids[i] = static_cast<std::int32_t>(i);
    std::mt19937_64 rng(seed);
    std::shuffle(ids.begin(), ids.end(), rng);
    free_.assign(ids.begin(), ids.end());
  }
  bool take(std::uint32_t n, std::vector<std::int32_t>& table) {
    if (n > free_.size()) return false;
    for (std::uint32_t k = 0; k < n; ++k) {
      table.push_back(free_.front());
      free_.pop_front();
    }
    return true;
  }
  void give_back(std::vector<std::int32_t>& table) {
    for (std::int32_t b : table) free_.push_back(b);
    table.clear();
  }

 private:
  std::deque<std::int32_t> free_;
};

std::string run_alone(Runner& runner, BlockPool& pool, const std::vector<Sequence>& seqs, const Options& o,
                      std::uint32_t budget) {
  const std::uint32_t chunk = o.chunk == 0 ? budget : std::min(o.chunk, budget);
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (!pool.take(runner.blocks_needed(i), runner.table(i))) {
      return fmt::format("sequence {} needs {} KV blocks; the cache has fewer", i, runner.blocks_needed(i));
    }
    while (!runner.done(i)) {
      const std::size_t left = seqs[i].prompt.size() - std::min(runner.fed(i), seqs[i].prompt.size());
      const std::uint32_t count =
          runner.in_prompt(i) ? static_cast<std::uint32_t>(std::min<std::size_t>(left, chunk)) : 1;
      if (auto e = runner.step({Piece{i, count}}); !e.empty()) return e;
    }
    pool.give_back(runner.table(i));
  }
  return {};
}

std::string run_batch(Runner& runner, BlockPool& pool, const std::vector<Sequence>& seqs, const Options& o,
                      std::uint32_t budget, std::uint32_t max_seqs) {
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (!pool.take(runner.blocks_needed(i), runner.table(i))) {
      return fmt::format("batch mode keeps every sequence's pages at once and the KV cache runs out at sequence {}; "
                         "raise --kv-cache-mib / --gpu-memory-utilization or pass fewer sequences",
                         i);
    }
  }
  std::vector<Piece> pieces;
  std::size_t finished = 0;
  for (std::uint64_t tick = 0; finished < seqs.size(); ++tick) {
    const std::size_t arrived = std::min<std::size_t>(seqs.size(), tick / o.arrive_every + 1);
    pieces.clear();
    std::uint32_t tokens = 0;
    for (std::size_t i = 0; i < arrived && pieces.size() < max_seqs && tokens < budget; ++i) {
      if (!runner.done(i) && !runner.in_prompt(i)) {
        pieces.push_back(Piece{i, 1});
        ++tokens;
      }
    }
    for (std::size_t i = 0; i < arrived && pieces.size() < max_seqs && tokens < budget; ++i) {
      if (!runner.in_prompt(i)) continue;
      std::uint32_t count = static_cast<std::uint32_t>(seqs[i].prompt.size() - runner.fed(i));
      if (o.chunk > 0) count = std::min(count, o.chunk);
      count = std::min(count, budget - tokens);
      pieces.push_back(Piece{i, count});
      tokens += count;
    }
    if (pieces.empty()) continue;  // nothing has arrived that still needs work; wait for the next arrival
    if (auto e = runner.step(pieces); !e.empty()) return e;
    for (const Piece& p : pieces) finished += runner.done(p.seq) ? 1 : 0;
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--list-devices") {
    for (const auto& d : available_devices()) std::puts(d.c_str());
    return 0;
  }
  Options o;
  if (auto e = parse_args(argc, argv, o); !e.empty()) {
    std::fprintf(stderr, "sluice_forward: %s\n", e.c_str());
    return 2;
  }

  const auto t_load = Clock::now();
  auto loaded = sluice::ModelWeights::load(o.model);
  if (!loaded) {
    std::fprintf(stderr, "sluice_forward: %s\n", loaded.error().message.c_str());
    return 1;
  }
  std::shared_ptr<const sluice::ModelWeights> weights(std::move(loaded).value());
  const sluice::ModelSpec& spec = weights->spec();

  std::vector<Sequence> seqs;
  if (auto e = load_sequences(o.input, spec.vocab, seqs); !e.empty()) {
    std::fprintf(stderr, "sluice_forward: %s\n", e.c_str());
    return 1;
  }
  std::size_t longest = 0;
  std::uint64_t blocks_all = 0;
  for (const auto& s : seqs) {
    longest = std::max(longest, s.stream.size());
    blocks_all += (s.stream.size() + o.block_size - 1) / o.block_size;
  }
  const std::uint32_t max_seqs =
      o.max_num_seqs > 0 ? o.max_num_seqs : static_cast<std::uint32_t>(std::min<std::size_t>(seqs.size(), 256));

  std::unique_ptr<sluice::Backend> backend;
  if (o.device == "cpu") {
    sluice::CpuBackendOptions co;
    co.threads = o.threads;
    co.block_size = o.block_size;
    co.max_batched_tokens = o.max_batched_tokens;
    // Every sequence's pages at once (both modes then use distinct blocks for every sequence).
    co.kv_cache_bytes = o.kv_cache_mib > 0 ? (o.kv_cache_mib << 20)
                                           : (blocks_all + 1) * sluice::kv_bytes_per_block(spec, o.block_size, 4);
    auto b = sluice::CpuBackend::create(weights, co);
    if (!b) {
      std::fprintf(stderr, "sluice_forward: %s\n", b.error().message.c_str());
      return 1;
    }
    backend = std::move(b).value();
  }
#ifdef SLUICE_HAS_CUDA
  if (o.device == "cuda") {
    sluice::CudaBackendOptions co;
    co.device = o.cuda_device;
    co.gpu_memory_utilization = o.gpu_memory_utilization;
    co.max_model_len = o.max_model_len > 0
                           ? o.max_model_len
                           : static_cast<std::uint32_t>((longest + o.block_size - 1) / o.block_size * o.block_size);
    co.max_num_seqs = max_seqs;
    co.max_batched_tokens = o.max_batched_tokens;
    co.block_size = o.block_size;
    co.enforce_eager = o.enforce_eager;
    co.return_logits = true;
    auto b = sluice::create_cuda_backend(weights, co);
    if (!b) {
      std::fprintf(stderr, "sluice_forward: %s\n", b.error().message.c_str());
      return 1;
    }
    backend = std::move(b).value();
  }
#endif
  const double load_s = seconds_since(t_load);

  const std::size_t positions = seqs.front().continuation.size();
  NpyWriter writer;
  if (auto e = writer.open(o.out, seqs.size(), positions, spec.vocab); !e.empty()) {
    std::fprintf(stderr, "sluice_forward: %s\n", e.c_str());
    return 1;
  }
  const std::uint32_t budget = std::min(o.max_batched_tokens, backend->max_batched_tokens());
  Runner runner(*backend, seqs, writer, max_seqs);
  BlockPool pool(backend->num_kv_blocks(), o.seed);
  const auto t_run = Clock::now();
  const std::string err = o.mode == "alone" ? run_alone(runner, pool, seqs, o, budget)
                                            : run_batch(runner, pool, seqs, o, budget, max_seqs);
  const double run_s = seconds_since(t_run);
  if (!err.empty()) {
    std::fprintf(stderr, "sluice_forward: %s\n", err.c_str());
    return 1;
  }

  const RunStats& st = runner.stats();
  std::string extra;
#ifdef SLUICE_HAS_CUDA
  if (const auto* cb = dynamic_cast<const sluice::CudaBackend*>(backend.get())) {
    extra = fmt::format(", \"graphs_captured\": {}, \"graph_replays\": {}", cb->graphs_captured(), cb->graph_replays());
  }
#endif
  std::printf(
      "{\"device\": \"%s\", \"mode\": \"%s\", \"sequences\": %zu, \"positions\": %zu, \"vocab\": %u, "
      "\"steps\": %llu, \"mixed_steps\": %llu, \"decode_only_steps\": %llu, \"prefill_chunks\": %llu, "
      "\"max_step_tokens\": %u, \"max_step_seqs\": %u, \"tokens\": %llu, \"kv_blocks\": %u, \"load_s\": %.3f, "
      "\"run_s\": %.3f%s}\n",
      o.device.c_str(), o.mode.c_str(), seqs.size(), positions, spec.vocab,
      static_cast<unsigned long long>(st.steps), static_cast<unsigned long long>(st.mixed_steps),
      static_cast<unsigned long long>(st.decode_only_steps), static_cast<unsigned long long>(st.prefill_chunks),
      st.max_step_tokens, st.max_step_seqs, static_cast<unsigned long long>(st.tokens), backend->num_kv_blocks(),
      load_s, run_s, extra.c_str());
  return 0;
}
