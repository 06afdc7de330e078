// Shared by the CUDA backend tests: tiny random Llama-family models built as in-memory GGUF files, a driver
// that runs the same plans on two backends (the CUDA backend, or a host emulation of its forward pass, against
// the CPU backend), and the scenario of prefills, chunked prefills, decodes and mixed batches they share.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/backend/kv_cache.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/model/gguf_reader.h"
#include "engine/model/weights.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice::test {

using gguf::testing::f32_payload;
using gguf::testing::GgufBuilder;
using gguf::testing::TensorSpec;

inline constexpr std::uint32_t kGgufF32 = 0;
inline constexpr std::uint32_t kGgufQ8_0 = 8;

// ---- tiny models ----

struct TinyShape {
  const char* name;
  const char* arch;  // "llama" (interleaved RoPE) or "qwen2" (rotate-half)
  std::uint32_t hidden, heads, kv_heads, head_dim, ffn, layers, vocab, context;
  bool tied, qkv_bias, q8_mlp;
};

inline const TinyShape kLlama{"llama_q8", "llama", 256, 4, 2, 64, 512, 2, 512, 1024, false, false, true};
inline const TinyShape kQwen{"qwen2_tied", "qwen2", 256, 2, 1, 128, 384, 2, 300, 1024, true, true, false};

inline std::vector<float> uniform(std::size_t n, float scale, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Q8_0 blocks with d = 1/256 (exact in half and, times any int8, exact in bf16): both backends then see the
// very same weights.
inline std::vector<std::byte> q8_0_payload(const std::vector<float>& w) {
  constexpr float kD = 1.0f / 256.0f;
  constexpr std::uint16_t kHalfD = (15 - 8) << 10;  // 2^-8 as IEEE half
  std::vector<std::byte> out;
  out.reserve(w.size() / 32 * 34);
  for (std::size_t b = 0; b < w.size(); b += 32) {
    out.push_back(static_cast<std::byte>(kHalfD & 0xff));
    out.push_back(static_cast<std::byte>(kHalfD >> 8));
    for (std::size_t i = 0; i < 32; ++i) {
      const long q = std::clamp(std::lround(w[b + i] / kD), -127L, 127L);
      out.push_back(static_cast<std::byte>(static_cast<std::int8_t>(q)));
    }
  }
  return out;
}

inline std::shared_ptr<const ModelWeights> make_model(const TinyShape& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  GgufBuilder b;
  const std::string p = std::string(s.arch) + ".";
  b.kv_str("general.architecture", s.arch);
  b.kv_u32(p + "context_length", s.context);
  b.kv_u32(p + "embedding_length", s.hidden);
  b.kv_u32(p + "block_count", s.layers);
  b.kv_u32(p + "feed_forward_length", s.ffn);
  b.kv_u32(p + "attention.head_count", s.heads);
  b.kv_u32(p + "attention.head_count_kv", s.kv_heads);
  b.kv_u32(p + "attention.key_length", s.head_dim);
  b.kv_u32(p + "attention.value_length", s.head_dim);
  b.kv_f32(p + "rope.freq_base", 10000.0f);
  b.kv_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  const auto fan_in = [](std::uint32_t n) { return std::sqrt(3.0f / static_cast<float>(n)); };
  // Values exact in bf16, so both backends hold the same weights and only activations round differently.
  const auto bf16_exact = [](std::vector<float>& v) {
    for (float& x : v) x = __bfloat162float(__float2bfloat16(x));
  };
  const auto matrix = [&](const std::string& name, std::uint32_t rows, std::uint32_t cols, float scale, bool q8) {
    auto w = uniform(std::size_t{rows} * cols, scale, rng);
    bf16_exact(w);
    b.tensor(TensorSpec(name, {cols, rows}, q8 ? kGgufQ8_0 : kGgufF32, q8 ? q8_0_payload(w) : f32_payload(w)));
  };
  const auto vec = [&](const std::string& name, std::uint32_t n, float center, float spread) {
    auto v = uniform(n, spread, rng);
    for (float& x : v) x += center;
    bf16_exact(v);
    b.tensor(TensorSpec(name, {n}, kGgufF32, f32_payload(v)));
  };
  const std::uint32_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  matrix("token_embd.weight", s.vocab, s.hidden, 1.0f, false);
  // Logits with a spread of a few units, so argmax decisions are mostly clear.
  if (!s.tied) matrix("output.weight", s.vocab, s.hidden, 1.5f * fan_in(s.hidden), false);
  vec("output_norm.weight", s.hidden, 1.0f, 0.2f);
  for (std::uint32_t l = 0; l < s.layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".";
    matrix(g + "attn_q.weight", q, s.hidden, fan_in(s.hidden), false);
    matrix(g + "attn_k.weight", kv, s.hidden, fan_in(s.hidden), false);
    matrix(g + "attn_v.weight", kv, s.hidden, fan_in(s.hidden), false);
    matrix(g + "attn_output.weight", s.hidden, q, fan_in(q), false);
    matrix(g + "ffn_gate.weight", s.ffn, s.hidden, fan_in(s.hidden), s.q8_mlp);
    matrix(g + "ffn_up.weight", s.ffn, s.hidden, fan_in(s.hidden), s.q8_mlp);
    matrix(g + "ffn_down.weight", s.hidden, s.ffn, fan_in(s.ffn), s.q8_mlp);
    vec(g + "attn_norm.weight", s.hidden, 1.0f, 0.2f);
    vec(g + "ffn_norm.weight", s.hidden, 1.0f, 0.2f);
    if (s.qkv_bias) {
      vec(g + "attn_q.bias", q, 0.0f, 0.3f);
      vec(g + "attn_k.bias", kv, 0.0f, 0.3f);
      vec(g + "attn_v.bias", kv, 0.0f, 0.3f);
    }
  }
  auto file = gguf::GgufFile::from_buffer(b.build(), std::string(s.name) + ".gguf");
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message);
  if (!file.ok()) return nullptr;
  auto w = ModelWeights::from_gguf(std::move(*file));
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().message);
  return w.ok() ? std::shared_ptr<const ModelWeights>(std::move(*w)) : nullptr;
}

// ---- running the same plans on both backends ----

inline std::int32_t argmax(std::span<const float> v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// The gap between the largest and second largest value.
inline float top_two_gap(std::span<const float> v) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : v) {
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) {
      b = x;
    }
  }
  return a - b;
}

inline void expect_row_close(std::span<const float> gpu, std::span<const float> cpu, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (float x : gpu) ASSERT_TRUE(std::isfinite(x)) << what << ": non-finite GPU logit";
  const double err = cuda::test::relative_error(gpu.data(), cpu.data(), cpu.size());
  EXPECT_LE(err, 2e-2) << what;
  if (top_two_gap(cpu) > 0.1f) {
    EXPECT_EQ(argmax(gpu), argmax(cpu)) << what << " (relative error " << err << ")";
  }
}

class DualDriver {
 public:
  struct Work {
    std::uint64_t seq;
    std::vector<std::int32_t> tokens;
    bool logits = true;
    SequenceSampling sampling{};
  };
  struct Row {
    std::uint64_t seq = 0;
    std::vector<float> cpu;
    std::vector<float> gpu;    // empty when the GPU sampled the row
    std::int32_t gpu_id = -1;  // -1 when the GPU returned logits
  };

  DualDriver(Backend& gpu, Backend& cpu, std::uint64_t seed)
      : gpu_(gpu), cpu_(cpu), plan_(StepPlanLimits{16, 2048, 4096}) {
    // Blocks handed out in a shuffled order, so page tables are not the identity.
    free_.resize(std::min(gpu.num_kv_blocks(), cpu.num_kv_blocks()));
    std::iota(free_.begin(), free_.end(), 0);
    std::mt19937_64 rng(seed);
    std::shuffle(free_.begin(), free_.end(), rng);
  }

  std::vector<Row> step(const std::vector<Work>& work) {
    plan_.clear();
    for (const Work& w : work) {
      Seq& s = seqs_[w.seq];
      const std::uint32_t end = s.length + static_cast<std::uint32_t>(w.tokens.size());
      while (s.table.size() * gpu_.block_size() < end) {
        EXPECT_FALSE(free_.empty()) << "test ran out of KV blocks";
        if (free_.empty()) return {};
        s.table.push_back(free_.back());
        free_.pop_back();
      }
      EXPECT_TRUE(plan_.add_sequence(w.seq, w.tokens, static_cast<std::int32_t>(s.length), s.table, w.logits));
      plan_.set_sampling(w.sampling);
      s.length = end;
    }
    std::vector<Row> rows;
    auto g = gpu_.execute(plan_);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
    if (!g.ok()) return rows;
    for (std::uint32_t r = 0; r < g->num_rows; ++r) {
      Row row;
      row.seq = g->seq_ids[r];
      auto l = g->row_logits(r);
      row.gpu.assign(l.begin(), l.end());
      if (!g->has_logits(r)) row.gpu_id = g->token_ids[r];
      rows.push_back(std::move(row));
    }
    auto c = cpu_.execute(plan_);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    if (!c.ok()) return {};
    EXPECT_EQ(c->num_rows, rows.size());
    for (std::uint32_t r = 0; r < c->num_rows && r < rows.size(); ++r) {
      EXPECT_EQ(c->seq_ids[r], rows[r].seq);
      auto l = c->row_logits(r);
      rows[r].cpu.assign(l.begin(), l.end());
    }
    return rows;
  }

  std::uint32_t length(std::uint64_t seq) { return seqs_[seq].length; }

 private:
  struct Seq {
    std::uint32_t length = 0;
    std::vector<std::int32_t> table;
  };
  Backend& gpu_;
  Backend& cpu_;
  StepPlan plan_;
  std::map<std::uint64_t, Seq> seqs_;
  std::vector<std::int32_t> free_;
};

inline std::vector<std::int32_t> random_tokens(std::size_t n, std::uint32_t vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab) - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline std::unique_ptr<CpuBackend> make_cpu(std::shared_ptr<const ModelWeights> w) {
  CpuBackendOptions o;
  o.threads = 2;
  o.block_size = 16;
  o.max_batched_tokens = 1024;
  o.kv_cache_bytes = kv_bytes_per_block(w->spec(), 16, 4) * 400;
  auto b = CpuBackend::create(std::move(w), o);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? std::move(*b) : nullptr;
}

inline CudaBackendOptions gpu_options(bool eager, bool return_logits) {
  CudaBackendOptions o;
  o.max_model_len = 1024;
  o.max_num_seqs = 16;
  o.max_batched_tokens = 1024;
  o.block_size = 16;
  o.enforce_eager = eager;
  o.return_logits = return_logits;
  return o;
}

inline std::unique_ptr<Backend> make_gpu(std::shared_ptr<const ModelWeights> w, const CudaBackendOptions& o) {
  auto b = create_cuda_backend(std::move(w), o);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? std::move(*b) : nullptr;
}

// Prefill, chunked prefill (one sequence past 512 positions: more than one decode-attention partition), decode
// of 1, 2, 3 and 5 sequences (graph buckets 1, 2, 4, 8 with padding) and mixed steps, teacher-forced with the
// CPU's greedy choices; every row checked with expect_row_close.
inline void run_scenario(Backend& gpu, Backend& cpu, std::uint32_t vocab) {
  DualDriver d(gpu, cpu, 99);
  std::mt19937_64 rng(7);
  std::map<std::uint64_t, std::int32_t> next;
  int step_no = 0;
  const auto run = [&](const std::vector<DualDriver::Work>& work) {
    ++step_no;
    auto rows = d.step(work);
    for (const auto& r : rows) {
      const std::string what = "step " + std::to_string(step_no) + " seq " + std::to_string(r.seq) + " (position " +
                               std::to_string(d.length(r.seq)) + ")";
      expect_row_close(r.gpu, r.cpu, what);
      next[r.seq] = argmax(r.cpu);
    }
    return rows.size();
  };
  const auto decode = [&](std::uint64_t seq) { return DualDriver::Work{seq, {next[seq]}}; };

  EXPECT_EQ(run({{1, random_tokens(37, vocab, rng)}}), 1u);
  const auto b_prompt = random_tokens(100, vocab, rng), c_prompt = random_tokens(600, vocab, rng);
  EXPECT_EQ(run({decode(1), {2, {b_prompt.begin(), b_prompt.begin() + 64}, false}}), 1u);
  EXPECT_EQ(run({{2, {b_prompt.begin() + 64, b_prompt.end()}},
                 decode(1),
                 {3, {c_prompt.begin(), c_prompt.begin() + 256}, false}}),
            2u);
  EXPECT_EQ(run({decode(1), decode(2), {3, {c_prompt.begin() + 256, c_prompt.begin() + 512}, false}}), 2u);
  EXPECT_EQ(run({{3, {c_prompt.begin() + 512, c_prompt.end()}}, decode(2), decode(1)}), 3u);
  // Pure decode of 3 sequences (bucket 4: one padding row), long enough to replay the graph.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(run({decode(1), decode(2), decode(3)}), 3u);
  // Two new prompts in one step beside decodes, then pure decode of 5 (bucket 8) and of 1 (bucket 1).
  EXPECT_EQ(
      run({decode(3), {4, random_tokens(5, vocab, rng)}, decode(1), {5, random_tokens(19, vocab, rng)}, decode(2)}),
      5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(run({decode(1), decode(2), decode(3), decode(4), decode(5)}), 5u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run({decode(4)}), 1u);
  // A prompt of exactly one block, then its first decode token opens a new block (bucket 2).
  EXPECT_EQ(run({{6, random_tokens(16, vocab, rng)}}), 1u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(run({decode(6), decode(3)}), 2u);
}

}  // namespace sluice::test
