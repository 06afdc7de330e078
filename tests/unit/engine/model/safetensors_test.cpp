// safetensors reader: well-formed files round-trip; every malformed header field is an error naming the
// problem, never a crash; checkpoint directories resolve shards through the index.
#include "engine/model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace sluice::safetensors {
namespace {

std::vector<std::byte> file_with(const std::string& header, std::size_t data_bytes, std::uint64_t declared_len = 0) {
  std::vector<std::byte> out(8 + header.size() + data_bytes);
  const std::uint64_t n = declared_len != 0 ? declared_len : header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (std::size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<std::byte>(i);
  return out;
}

TEST(Safetensors, ReadsTensorsAndConvertsFloatTypes) {
  // F32 [2] = {1.5, -2}; F16 [2] = {1.0, -0.5}; BF16 [1] = 3.0
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("h":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}})";
  auto bytes = file_with(header, 14);
  std::byte* d = bytes.data() + 8 + header.size();
  const float a[2] = {1.5f, -2.0f};
  const std::uint16_t h[2] = {0x3C00, 0xB800};
  const std::uint16_t b = 0x4040;
  std::memcpy(d, a, 8);
  std::memcpy(d + 8, h, 4);
  std::memcpy(d + 12, &b, 2);
  auto f = SafetensorsFile::from_buffer(std::move(bytes), "mem");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->tensors().size(), 3u);
  const TensorView* h_t = f->tensor("h");
  ASSERT_NE(h_t, nullptr);
  EXPECT_EQ(h_t->dtype, Dtype::F16);
  EXPECT_EQ(h_t->shape, (std::vector<std::uint64_t>{1, 2}));
  std::vector<float> out(2);
  ASSERT_TRUE(to_f32(*f->tensor("a"), out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.5f, -2.0f}));
  ASSERT_TRUE(to_f32(*h_t, out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -0.5f}));
  std::vector<float> one(1);
  ASSERT_TRUE(to_f32(*f->tensor("b"), one).ok());
  EXPECT_EQ(one[0], 3.0f);
  EXPECT_FALSE(to_f32(*h_t, one).ok());  // wrong output size
  EXPECT_EQ(f->tensor("missing"), nullptr);
}

TEST(Safetensors, RejectsMalformedHeaders) {
  struct Case {
    const char* what;
    std::string header;
    std::size_t data;
  };
  const Case cases[] = {
      {"not json", "{\"a\":", 0},
      {"not an object", "[1]", 0},
      {"entry not an object", R"({"a":1})", 0},
      {"unknown dtype", R"({"a":{"dtype":"F42","shape":[1],"data_offsets":[0,4]}})", 4},
      {"missing shape", R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4},
      {"negative dim", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4},
      {"size mismatch", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8},
      {"beyond data", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8},
      {"reversed offsets", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 8},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       8},
      {"shape overflow", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", 4},
      {"three offsets", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8},
      {"duplicate name",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       8},
      {"metadata not an object", R"({"__metadata__":3})", 0},
  };
  for (const Case& c : cases) {
    auto f = SafetensorsFile::from_buffer(file_with(c.header, c.data), "mem");
    EXPECT_FALSE(f.ok()) << c.what;
    if (!f.ok()) {
      EXPECT_EQ(f.error().message.rfind("mem: ", 0), 0u) << f.error().message;
    }
  }
  EXPECT_FALSE(SafetensorsFile::from_buffer(std::vector<std::byte>(5), "mem").ok());
  EXPECT_FALSE(SafetensorsFile::from_buffer(file_with("{}", 0, 1000), "mem").ok());   // length beyond file
  EXPECT_FALSE(SafetensorsFile::from_buffer(file_with("{}", 0, ~0ull), "mem").ok());  // huge length
  EXPECT_TRUE(SafetensorsFile::from_buffer(file_with("{}", 0), "mem").ok());          // empty is valid
}

TEST(Safetensors, IntegerTensorsParseButDoNotConvert) {
  auto f = SafetensorsFile::from_buffer(file_with(R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8));
  ASSERT_TRUE(f.ok());
  std::vector<float> out(1);
  auto st = to_f32(*f->tensor("i"), out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("I64"), std::string::npos);
}

class CheckpointDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice_st_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::vector<std::byte>& bytes) {
    std::ofstream(dir_ / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::filesystem::path dir_;
};

TEST_F(CheckpointDir, ResolvesShardsThroughTheIndex) {
  write("s1.safetensors", file_with(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write("s2.safetensors", file_with(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write("model.safetensors.index.json", R"({"metadata":{},"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})");
  auto c = Checkpoint::open_dir(dir_.string());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->tensor_count(), 2u);
  EXPECT_NE(c->tensor("x"), nullptr);
  EXPECT_NE(c->tensor("y"), nullptr);
}

TEST_F(CheckpointDir, RejectsBadIndexes) {
  write("s1.safetensors", file_with(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  write("model.safetensors.index.json", R"({"weight_map":{"x":"../s1.safetensors"}})");
  EXPECT_FALSE(Checkpoint::open_dir(dir_.string()).ok());
  write("model.safetensors.index.json", R"({"weight_map":{"x":"s1.safetensors","z":"s1.safetensors"}})");
  auto missing = Checkpoint::open_dir(dir_.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("\"z\""), std::string::npos);
  write("model.safetensors.index.json", R"({"weight_map":{"x":"nope.safetensors"}})");
  EXPECT_FALSE(Checkpoint::open_dir(dir_.string()).ok());
  write("model.safetensors.index.json", R"({"weights":{}})");
  EXPECT_FALSE(Checkpoint::open_dir(dir_.string()).ok());
}

TEST_F(CheckpointDir, SingleFileWithoutIndex) {
  EXPECT_FALSE(Checkpoint::open_dir(dir_.string()).ok());  // nothing there
  write("model.safetensors", file_with(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  auto c = Checkpoint::open_dir(dir_.string());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->tensor_count(), 1u);
}

}  // namespace
}  // namespace sluice::safetensors
