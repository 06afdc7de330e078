// Helpers of the CPU backend tests: golden files written by scripts/make_logits_golden.py, a minimal page
// allocator and step driver standing in for the scheduler, and the relative error the project uses.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend/step_plan.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/util/json_lite.h"

namespace sluice::test {

inline std::string fixtures_dir() {
  return std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures";
}

inline std::string smollm2_path() {
  if (const char* env = std::getenv("SLUICE_MODEL_GGUF"); env != nullptr && *env != '\0') return env;
  return std::string(SLUICE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline double rel_error(std::span<const float> a, std::span<const float> b) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return den == 0.0 ? num : num / den;
}

inline std::int32_t argmax(std::span<const float> v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum
}

struct GoldenPrompt {
  std::vector<std::int32_t> ids;
  std::vector<std::int32_t> greedy;
};

struct Golden {
  std::string model;
  std::uint32_t vocab = 0;
  std::vector<GoldenPrompt> prompts;
  std::vector<float> logits;  // prompts.size() rows of vocab

  std::span<const float> row(std::size_t i) const { return {logits.data() + i * vocab, vocab}; }
};

inline std::vector<std::int32_t> int_list(const json::Value* v) {
  std::vector<std::int32_t> out;
  if (v == nullptr) return out;
  for (const auto& e : v->items()) out.push_back(static_cast<std::int32_t>(e.as_i64().value_or(-1)));
  return out;
}

// Loads tests/fixtures/logits/<name>.json and its .f32 rows; fails the current test on any problem.
inline Golden load_golden(const std::string& name) {
  Golden g;
  const std::string dir = fixtures_dir() + "/logits/";
  std::ifstream in(dir + name + ".json");
  EXPECT_TRUE(in.good()) << "missing golden " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = json::parse(ss.str());
  EXPECT_TRUE(doc.ok()) << name << ": " << (doc.ok() ? "" : doc.error().message);
  if (!doc.ok()) return g;
  g.model = *doc->find("model")->as_string();
  g.vocab = static_cast<std::uint32_t>(doc->find("vocab")->as_u64().value_or(0));
  for (const auto& p : doc->find("prompts")->items())
    g.prompts.push_back({int_list(p.find("ids")), int_list(p.find("greedy"))});
  std::ifstream bin(dir + *doc->find("logits_file")->as_string(), std::ios::binary);
  g.logits.resize(g.prompts.size() * g.vocab);
  bin.read(reinterpret_cast<char*>(g.logits.data()), static_cast<std::streamsize>(g.logits.size() * sizeof(float)));
  EXPECT_TRUE(bin.good()) << "short golden logits file for " << name;
  return g;
}

// Stands in for the scheduler: hands out KV blocks to sequences in order and builds plans.
class Driver {
 public:
  explicit Driver(Backend& backend) : backend_(backend), plan_(StepPlanLimits{64, 4096, 8192}) {}

  struct Work {
    std::uint64_t seq;
    std::vector<std::int32_t> tokens;
    bool logits = true;
  };

  // Runs one step with the given pieces of work (each sequence continues where it stopped) and returns, per
  // work item that asked for logits, a copy of its row.
  std::vector<std::vector<float>> step(const std::vector<Work>& work) {
    plan_.clear();
    for (const Work& w : work) {
      Seq& s = seqs_[w.seq];
      const std::uint32_t end = s.length + static_cast<std::uint32_t>(w.tokens.size());
      while (s.table.size() * backend_.block_size() < end) s.table.push_back(next_block_++);
      EXPECT_TRUE(plan_.add_sequence(w.seq, w.tokens, static_cast<std::int32_t>(s.length), s.table, w.logits));
      s.length = end;
    }
    auto out = backend_.execute(plan_);
    EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().message);
    std::vector<std::vector<float>> rows;
    if (!out.ok()) return rows;
    for (std::uint32_t r = 0; r < out->num_rows; ++r) {
      auto row = out->row_logits(r);
      rows.emplace_back(row.begin(), row.end());
    }
    return rows;
  }

  // Prefills `ids` in chunks of `chunk` tokens; returns the logits after the last token.
  std::vector<float> prefill(std::uint64_t seq, const std::vector<std::int32_t>& ids, std::size_t chunk) {
    std::vector<float> last;
    for (std::size_t b = 0; b < ids.size(); b += chunk) {
      const std::size_t e = std::min(ids.size(), b + chunk);
      auto rows = step({Work{seq, {ids.begin() + b, ids.begin() + e}, e == ids.size()}});
      if (e == ids.size() && !rows.empty()) last = rows[0];
    }
    return last;
  }

  // Greedy continuation of `seq` whose last logits are `logits`.
  std::vector<std::int32_t> greedy(std::uint64_t seq, std::vector<float> logits, int steps) {
    std::vector<std::int32_t> out;
    for (int i = 0; i < steps && !logits.empty(); ++i) {
      out.push_back(argmax(logits));
      if (i + 1 == steps) break;
      auto rows = step({Work{seq, {out.back()}, true}});
      logits = rows.empty() ? std::vector<float>{} : rows[0];
    }
    return out;
  }

 private:
  struct Seq {
    std::uint32_t length = 0;
    std::vector<std::int32_t> table;
  };
  Backend& backend_;
  StepPlan plan_;
  std::map<std::uint64_t, Seq> seqs_;
  std::int32_t next_block_ = 0;
};

}  // namespace sluice::test
