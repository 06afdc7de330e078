// ModelWeights from GGUF: which tensors stay quantized in the mapping and which become fp32 copies, and
// errors (naming the tensor) for missing tensors, wrong shapes and types the kernels cannot read.
#include "engine/model/weights.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "engine/model/gguf_reader.h"
#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice {
namespace {

using gguf::testing::f32_payload;
using gguf::testing::GgufBuilder;
using gguf::testing::TensorSpec;

constexpr std::uint32_t kF32 = 0, kF16 = 1, kQ8_0 = 8, kQ4_K = 12;
constexpr std::uint64_t kHidden = 32, kFfn = 64, kVocab = 8, kHeads = 2, kKvHeads = 1, kHeadDim = 16;

// A one-layer llama GGUF; `edit` may replace any tensor before it is added.
std::vector<std::byte> tiny_gguf(const std::function<void(TensorSpec&)>& edit = nullptr) {
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.context_length", 64);
  b.kv_u32("llama.embedding_length", kHidden);
  b.kv_u32("llama.block_count", 1);
  b.kv_u32("llama.feed_forward_length", kFfn);
  b.kv_u32("llama.attention.head_count", kHeads);
  b.kv_u32("llama.attention.head_count_kv", kKvHeads);
  const auto add = [&](const std::string& name, std::vector<std::uint64_t> dims) {
    std::uint64_t n = 1;
    for (auto d : dims) n *= d;
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>(i % 17);
    TensorSpec t(name, dims, kF32, f32_payload(v));
    if (edit) edit(t);
    b.tensor(std::move(t));
  };
  add("token_embd.weight", {kHidden, kVocab});
  add("output_norm.weight", {kHidden});
  add("blk.0.attn_norm.weight", {kHidden});
  add("blk.0.ffn_norm.weight", {kHidden});
  add("blk.0.attn_q.weight", {kHidden, kHeads * kHeadDim});
  add("blk.0.attn_k.weight", {kHidden, kKvHeads * kHeadDim});
  add("blk.0.attn_v.weight", {kHidden, kKvHeads * kHeadDim});
  add("blk.0.attn_output.weight", {kHeads * kHeadDim, kHidden});
  add("blk.0.ffn_gate.weight", {kHidden, kFfn});
  add("blk.0.ffn_up.weight", {kHidden, kFfn});
  add("blk.0.ffn_down.weight", {kFfn, kHidden});
  return b.build();
}

Result<std::unique_ptr<ModelWeights>, ModelError> load(std::vector<std::byte> bytes) {
  auto f = gguf::GgufFile::from_buffer(std::move(bytes), "tiny.gguf");
  if (!f) return fail(ModelError{f.error().message});
  return ModelWeights::from_gguf(std::move(*f));
}

TEST(Weights, LoadsAllFloatGguf) {
  auto w = load(tiny_gguf());
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ((*w)->format(), "gguf");
  EXPECT_TRUE((*w)->spec().tied_embeddings);
  EXPECT_EQ((*w)->lm_head().data, (*w)->token_embedding().data);
  const LayerWeights& l = (*w)->layers().at(0);
  EXPECT_EQ(l.wq.rows, kHeads * kHeadDim);
  EXPECT_EQ(l.wq.cols, kHidden);
  EXPECT_EQ(l.down.rows, kHidden);
  EXPECT_EQ(l.down.cols, kFfn);
  EXPECT_EQ(l.bq, nullptr);
  EXPECT_FLOAT_EQ(l.attn_norm[3], 0.03f);
  // Bytes of every matrix, the tied head counted once.
  const std::uint64_t want =
      4 * (kVocab * kHidden + 2 * kHidden * kHeads * kHeadDim + 2 * kHidden * kKvHeads * kHeadDim + 3 * kHidden * kFfn);
  EXPECT_EQ((*w)->matrix_bytes(), want);
}

TEST(Weights, KeepsQuantizedBlocksAndConvertsHalfPrecision) {
  auto w = load(tiny_gguf([](TensorSpec& t) {
    if (t.name == "blk.0.ffn_up.weight") {  // 64 rows of one Q8_0 block: d = 1.0, q = row index
      t.type = kQ8_0;
      t.payload.assign(kFfn * 34, std::byte{0});
      for (std::size_t r = 0; r < kFfn; ++r) {
        const std::uint16_t one = 0x3C00;
        std::memcpy(t.payload.data() + r * 34, &one, 2);
        for (int j = 0; j < 32; ++j) t.payload[r * 34 + 2 + j] = static_cast<std::byte>(r);
      }
    }
    if (t.name == "blk.0.ffn_gate.weight") {
      t.type = kF16;
      t.payload.assign(kHidden * kFfn * 2, std::byte{0});
      const std::uint16_t half = 0x3800;  // 0.5
      for (std::size_t i = 0; i < kHidden * kFfn; ++i) std::memcpy(t.payload.data() + 2 * i, &half, 2);
    }
  }));
  ASSERT_TRUE(w.ok()) << w.error().message;
  const LayerWeights& l = (*w)->layers()[0];
  EXPECT_EQ(l.up.type, kernels::WeightType::q8_0);
  EXPECT_EQ(l.up.row_bytes, 34u);
  std::vector<float> row(kHidden);
  kernels::dequantize_row(l.up, 5, row.data());
  EXPECT_EQ(row[31], 5.0f);
  EXPECT_EQ(l.gate.type, kernels::WeightType::f32);
  kernels::dequantize_row(l.gate, 7, row.data());
  EXPECT_EQ(row[0], 0.5f);
}

TEST(Weights, ErrorsNameTheTensor) {
  const auto expect_error = [](std::vector<std::byte> bytes, const std::string& needle) {
    auto w = load(std::move(bytes));
    ASSERT_FALSE(w.ok()) << needle;
    EXPECT_NE(w.error().message.find(needle), std::string::npos) << w.error().message;
  };
  expect_error(tiny_gguf([](TensorSpec& t) {
                 if (t.name == "blk.0.attn_k.weight") t.name = "blk.0.attn_k.renamed";
               }),
               "blk.0.attn_k.weight");
  expect_error(tiny_gguf([](TensorSpec& t) {
                 if (t.name == "blk.0.attn_v.weight") t.dims = {kHidden * 2, kKvHeads * kHeadDim / 2};
               }),
               "blk.0.attn_v.weight");
  expect_error(tiny_gguf([](TensorSpec& t) {
                 if (t.name == "blk.0.ffn_down.weight") {
                   t.type = kQ4_K;  // 256-element blocks of 144 bytes
                   t.dims = {256, kHidden};
                   t.payload.assign(kHidden * 144, std::byte{0});
                 }
               }),
               "Q4_K");
  expect_error(tiny_gguf([](TensorSpec& t) {
                 if (t.name == "blk.0.ffn_norm.weight") t.dims = {kHidden / 2, 2};
               }),
               "blk.0.ffn_norm.weight");
}

TEST(Weights, LoadDispatchesOnPathKind) {
  auto missing = ModelWeights::load("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/model.gguf"), std::string::npos);
  auto dir = ModelWeights::load(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/models/tiny_mistral");
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  EXPECT_EQ((*dir)->format(), "safetensors");
}

}  // namespace
}  // namespace sluice
