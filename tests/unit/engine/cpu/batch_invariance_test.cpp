// Batch invariance of the CPU backend: every sequence's logits, at the end of its prompt and at each decode
// step, are bit-identical whether it runs alone or batched with others, whether its prompt is prefilled in
// one step or in chunks mixed with other sequences' decode tokens, and on 1, 2 or 3 threads.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "tests/unit/engine/cpu/test_support.h"

namespace sluice {
namespace {

struct Schedule {
  unsigned threads = 1;
  std::size_t chunk = 1 << 20;  // prompt tokens per step
  int stagger = 0;              // sequence i joins at step i * stagger; < 0: each sequence runs alone
};

// Per sequence: its logits rows in order (end of prompt, then each decode step).
using Trace = std::map<std::uint64_t, std::vector<std::vector<float>>>;

Trace run(std::shared_ptr<const ModelWeights> w, const std::vector<std::vector<std::int32_t>>& prompts, int decode,
          const Schedule& sc) {
  CpuBackendOptions opts;
  opts.threads = sc.threads;
  opts.block_size = 8;
  opts.kv_cache_bytes = std::uint64_t{64} << 20;
  auto backend = CpuBackend::create(std::move(w), opts);
  EXPECT_TRUE(backend.ok());
  if (!backend.ok()) return {};
  test::Driver driver(**backend);
  Trace trace;
  struct State {
    std::size_t fed = 0;     // prompt tokens sent
    std::int32_t next = -1;  // greedy choice from the last row
  };
  std::vector<State> st(prompts.size());
  // Done once the prompt's row and `decode` decode rows arrived.
  const auto finished = [&](std::size_t i) { return trace[i].size() == static_cast<std::size_t>(decode) + 1; };
  for (int step = 0;; ++step) {
    std::vector<test::Driver::Work> work;
    std::vector<std::size_t> who;  // sequences whose row this step returns, in plan order
    bool all_done = true;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (finished(i)) continue;
      all_done = false;
      if (sc.stagger < 0) {
        bool earlier_running = false;  // alone: only the first unfinished sequence runs
        for (std::size_t j = 0; j < i; ++j) earlier_running |= !finished(j);
        if (earlier_running) continue;
      } else if (step < static_cast<int>(i) * sc.stagger) {
        continue;
      }
      State& s = st[i];
      if (s.fed < prompts[i].size()) {
        const std::size_t e = std::min(prompts[i].size(), s.fed + sc.chunk);
        work.push_back({i, {prompts[i].begin() + s.fed, prompts[i].begin() + e}, e == prompts[i].size()});
        if (e == prompts[i].size()) who.push_back(i);
        s.fed = e;
      } else {
        work.push_back({i, {s.next}, true});
        who.push_back(i);
      }
    }
    if (all_done) break;
    if (work.empty()) continue;
    const auto rows = driver.step(work);
    EXPECT_EQ(rows.size(), who.size());
    if (rows.size() != who.size()) return trace;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      trace[who[r]].push_back(rows[r]);
      st[who[r]].next = test::argmax(rows[r]);
    }
  }
  return trace;
}

void expect_identical(const Trace& a, const Trace& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [seq, rows] : a) {
    const auto& other = b.at(seq);
    ASSERT_EQ(rows.size(), other.size()) << what << " seq " << seq;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i].size(), other[i].size());
      EXPECT_EQ(0, std::memcmp(rows[i].data(), other[i].data(), rows[i].size() * sizeof(float)))
          << what << ": seq " << seq << " row " << i << " differs";
    }
  }
}

void check_model(std::shared_ptr<const ModelWeights> w, const std::vector<std::vector<std::int32_t>>& prompts,
                 int decode) {
  const Trace alone = run(w, prompts, decode, {1, 1 << 20, -1});
  ASSERT_EQ(alone.size(), prompts.size());
  for (const auto& [seq, rows] : alone) ASSERT_EQ(rows.size(), static_cast<std::size_t>(decode) + 1);
  expect_identical(alone, run(w, prompts, decode, {1, 1 << 20, 0}), "batched together, 1 thread");
  expect_identical(alone, run(w, prompts, decode, {2, 1 << 20, 0}), "batched together, 2 threads");
  expect_identical(alone, run(w, prompts, decode, {3, 7, 2}), "chunks of 7, staggered, 3 threads");
  expect_identical(alone, run(w, prompts, decode, {2, 1, 1}), "chunks of 1, staggered, 2 threads");
  expect_identical(alone, run(w, prompts, decode, {2, 5, 0}), "chunks of 5 together, 2 threads");
  expect_identical(alone, run(w, prompts, decode, {2, 1 << 20, -1}), "alone, 2 threads");
}

TEST(BatchInvariance, TinyLlamaFromSafetensors) {
  auto w = ModelWeights::load_hf_dir(test::fixtures_dir() + "/models/tiny_llama");
  ASSERT_TRUE(w.ok()) << w.error().message;
  const test::Golden g = test::load_golden("tiny_llama");
  std::vector<std::vector<std::int32_t>> prompts;
  for (const auto& p : g.prompts) prompts.push_back(p.ids);
  check_model(std::shared_ptr<const ModelWeights>(std::move(*w)), prompts, 6);
}

TEST(BatchInvariance, SmolLM2Q4_1) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "model file absent: " << test::smollm2_path();
  auto w = ModelWeights::load_gguf(test::smollm2_path());
  ASSERT_TRUE(w.ok()) << w.error().message;
  const test::Golden g = test::load_golden("smollm2_135m_q4_1");
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::size_t i = 0; i < 3; ++i) prompts.push_back(g.prompts[i].ids);
  prompts.push_back(std::vector<std::int32_t>(g.prompts[4].ids.begin(), g.prompts[4].ids.begin() + 40));
  check_model(std::shared_ptr<const ModelWeights>(std::move(*w)), prompts, 4);
}

}  // namespace
}  // namespace sluice
