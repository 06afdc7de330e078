// The GGUF reader on well-formed files built in memory: metadata of every type, typed getters, tensor
// placement, memory-mapped open(), and dequantize_row's range checks.
#include "engine/model/gguf_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice::gguf {
namespace {

using testing::Bytes;
using testing::f32_payload;
using testing::GgufBuilder;
using testing::TensorSpec;
namespace vt = testing::vt;

// Two Q4_0 blocks (64 elements): scales 1.0 and -0.5, nibbles counting 0..15 in each half.
std::vector<std::byte> q4_0_two_blocks() {
  Bytes b;
  for (std::uint16_t d : {std::uint16_t{0x3C00}, std::uint16_t{0xB800}}) {
    b.u16(d);
    for (int j = 0; j < 16; ++j) b.u8(static_cast<std::uint8_t>(j | ((15 - j) << 4)));
  }
  return b.take();
}

double q4_0_two_blocks_value(int e) {
  const double d = e < 32 ? 1.0 : -0.5;
  const int i = e % 32;
  const int q = i < 16 ? i : 15 - (i - 16);
  return (q - 8) * d;
}

GgufBuilder sample_builder() {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama")
      .kv_u32("llama.block_count", 2)
      .kv("u8", vt::u8, Bytes().u8(200))
      .kv("i8", vt::i8, Bytes().u8(0xFF))
      .kv("u16", vt::u16, Bytes().u16(60000))
      .kv("i16", vt::i16, Bytes().u16(0x8000))
      .kv("i32.neg", vt::i32, Bytes().i32(-5))
      .kv("u64.big", vt::u64, Bytes().u64(std::uint64_t{1} << 40))
      .kv("i64", vt::i64, Bytes().u64(static_cast<std::uint64_t>(-7)))
      .kv_f32("eps", 1e-5f)
      .kv("f64", vt::f64, Bytes().put(2.5))
      .kv_bool("flag", true)
      .kv_str_array("tokens", {"a", "", "\xC4\xA0the", std::string("\0x", 2)})
      .kv("scores", vt::array, Bytes().u32(vt::f32).u64(3).f32(0.5f).f32(-1.0f).f32(3.0f))
      .kv("types", vt::array, Bytes().u32(vt::i32).u64(2).i32(1).i32(-3))
      .kv("bools", vt::array, Bytes().u32(vt::boolean).u64(3).u8(1).u8(0).u8(1))
      .kv("empty", vt::array, Bytes().u32(vt::u64).u64(0));
  g.tensor(TensorSpec{"norm.weight", {4}, 0, f32_payload({1.0f, -2.0f, 3.5f, 0.25f})});
  g.tensor(TensorSpec{"q.weight", {32, 2}, 2, q4_0_two_blocks()});
  return g;
}

TEST(GgufReader, ReadsMetadataOfEveryType) {
  auto f = GgufFile::from_buffer(sample_builder().build(), "sample.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->path(), "sample.gguf");
  ASSERT_EQ(f->metadata().size(), 17u);
  EXPECT_EQ(f->metadata()[0].key, "general.architecture");
  EXPECT_EQ(f->metadata()[0].file_offset, 24u);

  EXPECT_EQ(*f->get_string("general.architecture"), "llama");
  EXPECT_EQ(*f->get_u32("llama.block_count"), 2u);
  EXPECT_EQ(*f->get_u32("u8"), 200u);
  EXPECT_EQ(*f->get_i64("i8"), -1);
  EXPECT_EQ(*f->get_u64("u16"), 60000u);
  EXPECT_EQ(*f->get_i64("i16"), -32768);
  EXPECT_EQ(*f->get_i64("i32.neg"), -5);
  EXPECT_EQ(*f->get_u64("u64.big"), std::uint64_t{1} << 40);
  EXPECT_EQ(*f->get_i64("i64"), -7);
  EXPECT_FLOAT_EQ(*f->get_f32("eps"), 1e-5f);
  EXPECT_FLOAT_EQ(*f->get_f32("f64"), 2.5f);
  EXPECT_TRUE(*f->get_bool("flag"));
  EXPECT_EQ(f->find("flag")->type(), ValueType::bool_);
  EXPECT_EQ(f->find("i16")->type(), ValueType::int16);

  auto tokens = f->get_string_array("tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  ASSERT_EQ(tokens->size(), 4u);
  EXPECT_EQ((*tokens)[0], "a");
  EXPECT_EQ((*tokens)[1], "");
  EXPECT_EQ((*tokens)[2], "\xC4\xA0the");
  EXPECT_EQ((*tokens)[3], std::string("\0x", 2));  // string values are raw bytes, NUL included
  auto scores = f->get_f32_array("scores");
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(std::vector<float>(scores->begin(), scores->end()), (std::vector<float>{0.5f, -1.0f, 3.0f}));
  auto types = f->get_i32_array("types");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ(std::vector<std::int32_t>(types->begin(), types->end()), (std::vector<std::int32_t>{1, -3}));
  const Array* bools = f->find("bools")->as_array();
  ASSERT_NE(bools, nullptr);
  EXPECT_EQ(bools->element_type, ValueType::bool_);
  EXPECT_EQ(*bools->as<std::uint8_t>(), (std::vector<std::uint8_t>{1, 0, 1}));
  EXPECT_EQ(f->find("empty")->as_array()->size(), 0u);
  EXPECT_EQ(f->find("empty")->as_array()->element_type, ValueType::uint64);
}

TEST(GgufReader, GettersExplainMissingKeysAndWrongTypes) {
  auto f = GgufFile::from_buffer(sample_builder().build(), "sample.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->contains("llama.nope"));
  auto missing = f->get_u32("llama.nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "sample.gguf: metadata key 'llama.nope' is missing");

  auto wrong = f->get_u32("general.architecture");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().message,
            "sample.gguf: byte 24: metadata key 'general.architecture' has type string, expected an "
            "unsigned integer");
  EXPECT_NE(f->get_u64("i32.neg").error().message.find("is negative"), std::string::npos);
  EXPECT_NE(f->get_u32("u64.big").error().message.find("does not fit in 32 bits"), std::string::npos);
  EXPECT_NE(f->get_string_array("scores").error().message.find("array of float32, expected array of string"),
            std::string::npos);
  EXPECT_FALSE(f->get_f32_array("types").ok());
  EXPECT_FALSE(f->get_i32_array("scores").ok());
  EXPECT_FALSE(f->get_bool("u8").ok());
  EXPECT_FALSE(f->get_f32("u8").ok());
  EXPECT_FALSE(f->get_string("tokens").ok());
  EXPECT_FALSE(f->get_u64("flag").ok());  // bools are not integers
}

TEST(GgufReader, PlacesTensorsInTheDataSection) {
  auto f = GgufFile::from_buffer(sample_builder().build());
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->data_offset() % 32, 0u);
  const TensorInfo* norm = f->tensor("norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->dims, (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(norm->type, TensorType::F32);
  EXPECT_EQ(norm->offset, 0u);
  EXPECT_EQ(norm->n_elements, 4u);
  EXPECT_EQ(norm->n_bytes, 16u);
  EXPECT_EQ(norm->data, f->bytes().data() + f->data_offset());

  const TensorInfo* q = f->tensor("q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::Q4_0);
  EXPECT_EQ(q->offset, 32u);  // 16 bytes of norm, padded to 32
  EXPECT_EQ(q->n_elements, 64u);
  EXPECT_EQ(q->n_bytes, 36u);
  EXPECT_EQ(q->row_length(), 32u);
  EXPECT_EQ(q->n_rows(), 2u);
  EXPECT_EQ(f->tensor("missing"), nullptr);
  EXPECT_EQ(f->tensor(""), nullptr);
}

TEST(GgufReader, DequantizesRowsAndChecksRanges) {
  auto f = GgufFile::from_buffer(sample_builder().build());
  ASSERT_TRUE(f.ok());
  const TensorInfo& norm = *f->tensor("norm.weight");
  std::vector<float> out(64, 99.0f);
  ASSERT_TRUE(dequantize_row(norm, 1, 3, out.data()).ok());
  EXPECT_EQ(out[0], -2.0f);
  EXPECT_EQ(out[1], 3.5f);
  EXPECT_EQ(out[2], 0.25f);
  EXPECT_EQ(out[3], 99.0f);

  const TensorInfo& q = *f->tensor("q.weight");
  ASSERT_TRUE(dequantize_row(q, 0, 64, out.data()).ok());
  for (int e = 0; e < 64; ++e) EXPECT_EQ(out[e], q4_0_two_blocks_value(e)) << e;
  std::fill(out.begin(), out.end(), 99.0f);
  ASSERT_TRUE(dequantize_row(q, 32, 32, out.data()).ok());  // the second row alone
  for (int e = 0; e < 32; ++e) EXPECT_EQ(out[e], q4_0_two_blocks_value(32 + e)) << e;
  EXPECT_EQ(out[32], 99.0f);

  auto past = dequantize_row(q, 32, 64, out.data());
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.error().message.find("outside its 64 elements"), std::string::npos) << past.error().message;
  EXPECT_FALSE(dequantize_row(q, 64, 32, out.data()).ok());
  EXPECT_FALSE(dequantize_row(q, ~std::uint64_t{0} - 31, 64, out.data()).ok());  // first + n wraps
  auto unaligned = dequantize_row(q, 16, 32, out.data());
  ASSERT_FALSE(unaligned.ok());
  EXPECT_NE(unaligned.error().message.find("32-element Q4_0 blocks"), std::string::npos);
  EXPECT_FALSE(dequantize_row(q, 0, 16, out.data()).ok());
  EXPECT_TRUE(dequantize_row(q, 64, 0, out.data()).ok());

  TensorInfo lying = q;  // a hand-made info whose byte size disagrees with its shape
  lying.n_bytes = 1000;
  EXPECT_FALSE(dequantize_row(lying, 0, 32, out.data()).ok());
  TensorInfo k_quant = q;
  k_quant.type = TensorType::Q6_K;
  auto unsupported = dequantize_row(k_quant, 0, 32, out.data());
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(unsupported.error().message.find("Q6_K"), std::string::npos);
}

TEST(GgufReader, HonoursCustomAlignmentAndVersion2) {
  GgufBuilder g;
  g.version = 2;
  g.alignment = 64;
  g.kv_u32("general.alignment", 64);
  g.tensor(TensorSpec{"a", {3}, 0, f32_payload({1, 2, 3})});
  g.tensor(TensorSpec{"b", {2, 2}, 1, Bytes().u16(0x3C00).u16(0x4000).u16(0xC200).u16(0).take()});
  auto f = GgufFile::from_buffer(g.build());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->tensor("b")->offset, 64u);
  std::vector<float> out(4);
  ASSERT_TRUE(dequantize_row(*f->tensor("b"), 0, 4, out.data()).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, 2.0f, -3.0f, 0.0f}));
}

TEST(GgufReader, AcceptsAFileWithoutTensors) {
  GgufBuilder g;
  g.kv_str("general.name", "x");
  g.pad_data = false;
  auto f = GgufFile::from_buffer(g.build());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufReader, MovingKeepsTensorDataValid) {
  auto f = GgufFile::from_buffer(sample_builder().build());
  ASSERT_TRUE(f.ok());
  const std::byte* before = f->tensor("norm.weight")->data;
  GgufFile moved = std::move(*f);
  GgufFile again = std::move(moved);
  ASSERT_EQ(again.tensor("norm.weight")->data, before);
  std::vector<float> out(4);
  ASSERT_TRUE(dequantize_row(*again.tensor("norm.weight"), 0, 4, out.data()).ok());
  EXPECT_EQ(out[2], 3.5f);
}

class TempFile {
 public:
  explicit TempFile(const std::vector<std::byte>& bytes) {
    path_ = (std::filesystem::temp_directory_path() /
             ("sluice_gguf_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++) + ".gguf"))
                .string();
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TEST(GgufReader, OpensAMappedFile) {
  TempFile file(sample_builder().build());
  auto f = GgufFile::open(file.path());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->path(), file.path());
  EXPECT_EQ(f->bytes().size(), std::filesystem::file_size(file.path()));
  std::vector<float> out(64);
  ASSERT_TRUE(dequantize_row(*f->tensor("q.weight"), 0, 64, out.data()).ok());
  EXPECT_EQ(out[63], q4_0_two_blocks_value(63));
}

TEST(GgufReader, OpenReportsSystemErrorsWithThePath) {
  auto missing = GgufFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/dir/model.gguf: cannot open"), std::string::npos)
      << missing.error().message;

  auto dir = GgufFile::open(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("not a regular file"), std::string::npos);

  TempFile empty({});
  auto e = GgufFile::open(empty.path());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message,
            empty.path() + ": byte 0: file is 0 bytes, too small for a GGUF header (24 bytes)");

  std::vector<std::byte> bad = sample_builder().build();
  bad.resize(bad.size() - 40);  // cut into the Q4_0 tensor
  TempFile truncated(bad);
  auto t = GgufFile::open(truncated.path());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message.rfind(truncated.path() + ": byte ", 0), 0u) << t.error().message;
  EXPECT_NE(
      t.error().message.find("tensor 'q.weight' (Q4_0, 36 bytes at data offset 32) extends past the end"),
      std::string::npos)
      << t.error().message;
}

}  // namespace
}  // namespace sluice::gguf
