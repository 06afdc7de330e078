// Hostile and broken GGUF files: a table of single-fault files, each of which must be rejected with a
// message naming the fault, plus sweeps that truncate and corrupt a valid file at every byte (run these
// under -fsanitize=address,undefined to prove the reader never reads outside the buffer).
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/model/gguf_reader.h"
#include "tests/unit/engine/model/gguf_test_builder.h"

namespace sluice::gguf {
namespace {

using testing::Bytes;
using testing::f32_payload;
using testing::GgufBuilder;
using testing::TensorSpec;
namespace vt = testing::vt;

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

std::vector<std::byte> header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv,
                              std::size_t trailing_zeros = 0) {
  Bytes b;
  b.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv).zeros(trailing_zeros);
  return b.take();
}

// A file whose only metadata pair is `pair` (already encoded: key, type, value).
std::vector<std::byte> with_pair(const Bytes& pair) {
  GgufBuilder g;
  g.kv_raw(pair);
  g.pad_data = false;
  return g.build();
}

// A file whose only metadata pair is key "k" of `type` with the encoded `value`.
std::vector<std::byte> with_value(std::uint32_t type, const Bytes& value) {
  return with_pair(Bytes().str("k").u32(type).raw(value.data()));
}

std::vector<std::byte> with_tensor(TensorSpec t) {
  GgufBuilder g;
  g.tensor(std::move(t));
  return g.build();
}

std::vector<std::byte> f32_zeros(std::size_t n) { return std::vector<std::byte>(n * 4); }

struct BadFile {
  const char* name;
  std::function<std::vector<std::byte>()> build;
  const char* expected;  // a substring of the error message
};

const std::vector<BadFile>& bad_files() {
  static const std::vector<BadFile> table = {
      // Header.
      {"empty", [] { return std::vector<std::byte>{}; },
       "byte 0: file is 0 bytes, too small for a GGUF header"},
      {"short_header",
       [] {
         auto b = header(3, 0, 0);
         b.pop_back();
         return b;
       },
       "file is 23 bytes"},
      {"bad_magic",
       [] {
         auto b = header(3, 0, 0);
         b[3] = std::byte{'L'};
         return b;
       },
       "byte 0: not a GGUF file: magic is 47 47 55 4c"},
      {"version_1", [] { return header(1, 0, 0, 64); }, "byte 4: GGUF version 1 is not supported"},
      {"version_0", [] { return header(0, 0, 0, 64); }, "unsupported GGUF version 0 (supported: 2 and 3)"},
      {"version_4", [] { return header(4, 0, 0, 64); }, "unsupported GGUF version 4"},
      {"big_endian", [] { return header(0x03000000, 0, 0, 64); }, "big-endian GGUF"},
      {"tensor_count_huge", [] { return header(3, std::uint64_t{1} << 40, 0, 100); },
       "byte 8: tensor count 1099511627776 cannot fit in the 100 bytes that follow"},
      {"tensor_count_max", [] { return header(3, kU64Max, 0, 100); }, "tensor count 18446744073709551615"},
      {"kv_count_max", [] { return header(3, 0, kU64Max, 100); },
       "byte 16: metadata count 18446744073709551615 cannot fit"},
      {"counts_together_too_many", [] { return header(3, 2, 4, 4 * 14 + 40); }, "tensor count 2 cannot fit"},
      {"kv_count_more_than_present",
       [] {
         GgufBuilder g;
         g.kv_u32("a", 1).kv_u32("b", 2);
         g.kv_count = 3;
         auto b = g.build();
         b.resize(b.size() + 64);
         return b;
       },
       "metadata key #2 is empty"},
      // Keys.
      {"key_length_past_end", [] { return with_pair(Bytes().u64(1000).raw("abcdef")); },
       "byte 24: metadata key #0 claims 1000 bytes but only 6 remain"},
      {"key_length_max", [] { return with_pair(Bytes().u64(kU64Max).raw("abcdef")); },
       "claims 18446744073709551615 bytes"},
      {"key_empty", [] { return with_pair(Bytes().str("").u32(vt::u8).u8(0).zeros(8)); },
       "metadata key #0 is empty"},
      {"key_too_long", [] { return with_pair(Bytes().str(std::string(65536, 'a')).u32(vt::u8).u8(0)); },
       "metadata key #0 is 65536 bytes long (at most 65535 allowed)"},
      {"key_bad_utf8", [] { return with_pair(Bytes().str("a\xFF\x62").u32(vt::u8).u8(0)); },
       "metadata key #0 is not valid UTF-8"},
      {"key_overlong_utf8", [] { return with_pair(Bytes().str("\xC0\xAF").u32(vt::u8).u8(0)); },
       "is not valid UTF-8"},
      {"key_surrogate", [] { return with_pair(Bytes().str("\xED\xA0\x80").u32(vt::u8).u8(0)); },
       "is not valid UTF-8"},
      {"key_cut_utf8", [] { return with_pair(Bytes().str("ab\xE2\x82").u32(vt::u8).u8(0)); },
       "is not valid UTF-8"},
      {"key_control_char", [] { return with_pair(Bytes().str("a\nb").u32(vt::u8).u8(0)); },
       "metadata key #0 contains a control character"},
      {"duplicate_key",
       [] {
         GgufBuilder g;
         g.kv_u32("a.b", 1).kv_u32("a.c", 2).kv_u32("a.b", 3);
         return g.build();
       },
       "byte 62: duplicate metadata key 'a.b'"},
      // Values.
      {"value_type_13", [] { return with_value(13, Bytes().u32(0)); },
       "metadata key 'k' has unknown value type 13"},
      {"value_type_max", [] { return with_value(0xFFFFFFFF, Bytes().u32(0)); },
       "unknown value type 4294967295"},
      {"value_truncated", [] { return with_value(vt::u64, Bytes().u8(1).u8(2).u8(3)); },
       "metadata key 'k' needs 8 bytes but the file ends after 3 (truncated?)"},
      {"string_past_end", [] { return with_value(vt::string, Bytes().u64(500).raw("abcd")); },
       "metadata key 'k' claims 500 bytes but only 4 remain"},
      {"string_length_max", [] { return with_value(vt::string, Bytes().u64(kU64Max).raw("abcd")); },
       "claims 18446744073709551615 bytes"},
      {"bool_not_0_or_1", [] { return with_value(vt::boolean, Bytes().u8(2)); }, "is a bool holding 2"},
      {"array_of_arrays",
       [] { return with_value(vt::array, Bytes().u32(vt::array).u64(1).u32(vt::u8).u64(0)); },
       "metadata key 'k' is an array of arrays, which is not supported"},
      {"array_unknown_element_type", [] { return with_value(vt::array, Bytes().u32(77).u64(0)); },
       "unknown array element type 77"},
      {"array_count_huge",
       [] { return with_value(vt::array, Bytes().u32(vt::u32).u64(std::uint64_t{1} << 62)); },
       "claims 4611686018427387904 uint32 elements but only 0 bytes remain"},
      {"array_bytes_wrap",
       [] { return with_value(vt::array, Bytes().u32(vt::u64).u64(std::uint64_t{1} << 61).u64(0)); },
       "claims 2305843009213693952 uint64 elements"},
      {"array_count_one_too_many",
       [] { return with_value(vt::array, Bytes().u32(vt::i32).u64(3).i32(1).i32(2)); },
       "claims 3 int32 elements but only 8 bytes remain"},
      {"string_array_count_huge",
       [] { return with_value(vt::array, Bytes().u32(vt::string).u64(std::uint64_t{1} << 60).zeros(16)); },
       "claims 1152921504606846976 string elements"},
      {"string_array_element_past_end",
       [] { return with_value(vt::array, Bytes().u32(vt::string).u64(2).str("ok").u64(99).raw("xy")); },
       "metadata key 'k' element 1 claims 99 bytes but only 2 remain"},
      {"bool_array_bad_element",
       [] { return with_value(vt::array, Bytes().u32(vt::boolean).u64(3).u8(1).u8(0).u8(7)); },
       "metadata key 'k' element 2 is a bool holding 7"},
      // general.alignment.
      {"alignment_zero",
       [] {
         GgufBuilder g;
         g.kv_u32("general.alignment", 0);
         return g.build();
       },
       "general.alignment is 0 (must be a power of two)"},
      {"alignment_48",
       [] {
         GgufBuilder g;
         g.kv_u32("general.alignment", 48);
         return g.build();
       },
       "general.alignment is 48"},
      {"alignment_string",
       [] {
         GgufBuilder g;
         g.kv_str("general.alignment", "32");
         return g.build();
       },
       "general.alignment has type string (must be uint32)"},
      {"alignment_u64",
       [] {
         GgufBuilder g;
         g.kv("general.alignment", vt::u64, Bytes().u64(32));
         return g.build();
       },
       "general.alignment has type uint64"},
      // Tensor infos.
      {"tensor_name_empty",
       [] {
         return with_tensor(TensorSpec{"", {8}, 0, f32_zeros(8)});
       },
       "tensor #0 name is empty"},
      {"tensor_name_too_long",
       [] {
         return with_tensor(TensorSpec{std::string(65, 'w'), {8}, 0, f32_zeros(8)});
       },
       "tensor #0 name is 65 bytes long (at most 64 allowed)"},
      {"tensor_name_bad_utf8",
       [] {
         return with_tensor(TensorSpec{"w\x80", {8}, 0, f32_zeros(8)});
       },
       "tensor #0 name is not valid UTF-8"},
      {"tensor_name_past_end",
       [] {
         Bytes b;
         b.raw("GGUF").u32(3).u64(1).u64(0).u64(kU64Max - 3).zeros(40);
         return b.take();
       },
       "byte 24: tensor #0 name claims 18446744073709551612 bytes but only 40 remain"},
      {"duplicate_tensor",
       [] {
         GgufBuilder g;
         g.tensor(TensorSpec{"w", {8}, 0, f32_zeros(8)}).tensor(TensorSpec{"w", {8}, 0, f32_zeros(8)});
         return g.build();
       },
       "duplicate tensor 'w'"},
      {"zero_dims",
       [] {
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.n_dims = 0;
         return with_tensor(t);
       },
       "tensor 'w' has 0 dimensions (1 to 4 allowed)"},
      {"five_dims",
       [] {
         return with_tensor(TensorSpec{"w", {1, 1, 1, 1, 1}, 0, f32_zeros(1)});
       },
       "tensor 'w' has 5 dimensions"},
      {"dims_count_max",
       [] {
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.n_dims = 0xFFFFFFFF;
         return with_tensor(t);
       },
       "has 4294967295 dimensions"},
      {"dims_truncated",
       [] {
         Bytes b;
         b.raw("GGUF").u32(3).u64(1).u64(0).str("w").u32(4).u64(1).u64(1).u64(1).zeros(5);
         return b.take();
       },
       "tensor 'w' dimension needs 8 bytes but the file ends after 5"},
      {"dim_zero",
       [] {
         return with_tensor(TensorSpec{"w", {4, 0}, 0, f32_zeros(0)});
       },
       "tensor 'w' dimension 1 is 0"},
      {"elements_overflow",
       [] {
         return with_tensor(TensorSpec{"w", {std::uint64_t{1} << 32, std::uint64_t{1} << 32}, 0, {}});
       },
       "tensor 'w' element count overflows (dimension 1 is 4294967296)"},
      {"dim_above_int64",
       [] {
         return with_tensor(TensorSpec{"w", {std::uint64_t{1} << 63}, 0, {}});
       },
       "element count overflows"},
      {"four_dims_overflow",
       [] {
         return with_tensor(TensorSpec{"w", {65536, 65536, 65536, 65536}, 0, {}});
       },
       "element count overflows (dimension 3 is 65536)"},
      {"byte_size_overflows",
       [] {
         return with_tensor(TensorSpec{"w", {std::uint64_t{1} << 31, std::uint64_t{1} << 31}, 0, {}});
       },
       "tensor 'w' byte size overflows"},
      {"tensor_type_removed",
       [] {
         return with_tensor(TensorSpec{"w", {32}, 4, std::vector<std::byte>(20)});
       },
       "tensor 'w' has unknown tensor type 4"},
      {"tensor_type_max",
       [] {
         return with_tensor(TensorSpec{"w", {32}, 0xFFFFFFFF, {}});
       },
       "unknown tensor type 4294967295"},
      {"q4_0_partial_block",
       [] {
         return with_tensor(TensorSpec{"w", {48, 2}, 2, std::vector<std::byte>(54)});
       },
       "tensor 'w' first dimension 48 is not a multiple of the Q4_0 block size 32"},
      {"q6_k_partial_block",
       [] {
         return with_tensor(TensorSpec{"w", {32}, 14, std::vector<std::byte>(210)});
       },
       "not a multiple of the Q6_K block size 256"},
      {"offset_misaligned",
       [] {
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.offset = 16;
         return with_tensor(t);
       },
       "tensor 'w' offset 16 is not a multiple of the alignment 32"},
      {"offset_misaligned_custom",
       [] {
         GgufBuilder g;
         g.alignment = 64;
         g.kv_u32("general.alignment", 64);
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.offset = 32;
         g.tensor(t);
         return g.build();
       },
       "offset 32 is not a multiple of the alignment 64"},
      // Placement in the data section.
      {"offset_past_end",
       [] {
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.offset = std::uint64_t{1} << 40;
         return with_tensor(t);
       },
       "tensor 'w' (F32, 32 bytes at data offset 1099511627776) extends past the end of the file"},
      {"offset_plus_size_wraps",
       [] {
         TensorSpec t{"w", {8}, 0, f32_zeros(8)};
         t.offset = kU64Max - 31;
         return with_tensor(t);
       },
       "extends past the end of the file"},
      {"huge_tensor_in_small_file",
       [] {
         return with_tensor(TensorSpec{"w", {std::uint64_t{1} << 40}, 0, f32_zeros(8)});
       },
       "tensor 'w' (F32, 4398046511104 bytes at data offset 0) extends past the end"},
      {"data_truncated",
       [] {
         auto b = with_tensor(TensorSpec{"w", {64}, 0, f32_zeros(64)});
         b.pop_back();
         return b;
       },
       "byte 24: tensor 'w' (F32, 256 bytes at data offset 0) extends past the end of the file (the data "
       "section "
       "holds 255 bytes; truncated?)"},
      {"data_section_missing",
       [] {
         GgufBuilder g;
         g.tensor(TensorSpec{"w", {8}, 0, f32_zeros(8)});
         g.pad_data = false;
         return g.build();
       },
       "byte 57: the data section would start at byte 64, past the end of the file (57 bytes)"},
      {"overlapping_tensors",
       [] {
         GgufBuilder g;
         TensorSpec b{"b", {16}, 0, f32_zeros(16)};
         b.offset = 32;
         g.tensor(TensorSpec{"a", {16}, 0, f32_zeros(16)}).tensor(b);
         return g.build();
       },
       "tensor 'b' overlaps tensor 'a'"},
      {"same_offset_tensors",
       [] {
         GgufBuilder g;
         TensorSpec b{"b", {8}, 0, f32_zeros(8)};
         b.offset = 0;
         g.tensor(TensorSpec{"a", {8}, 0, f32_zeros(8)}).tensor(b);
         return g.build();
       },
       "overlaps tensor"},
  };
  return table;
}

class MalformedGguf : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MalformedGguf, IsRejectedWithAClearMessage) {
  const BadFile& bad = bad_files()[GetParam()];
  auto f = GgufFile::from_buffer(bad.build(), "bad.gguf");
  ASSERT_FALSE(f.ok()) << bad.name << " was accepted";
  const std::string& msg = f.error().message;
  EXPECT_EQ(msg.rfind("bad.gguf: byte ", 0), 0u) << msg;
  EXPECT_NE(msg.find(bad.expected), std::string::npos)
      << "message: " << msg << "\nexpected: " << bad.expected;
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedGguf, ::testing::Range<std::size_t>(0, bad_files().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return std::string(bad_files()[info.param].name);
                         });

// A valid file with metadata of several kinds and tensors of several types.
std::vector<std::byte> rich_file() {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama")
      .kv_u32("general.alignment", 32)
      .kv_f32("eps", 1e-5f)
      .kv_bool("flag", false)
      .kv_str_array("tokens", {"a", "bc", "def"})
      .kv("scores", vt::array, Bytes().u32(vt::f32).u64(2).f32(1).f32(2))
      .kv("bools", vt::array, Bytes().u32(vt::boolean).u64(2).u8(0).u8(1));
  g.tensor(TensorSpec{"f32", {4, 2}, 0, f32_zeros(8)});
  g.tensor(TensorSpec{"q4", {32}, 2, std::vector<std::byte>(18)});
  g.tensor(TensorSpec{"q8", {32, 1, 1}, 8, std::vector<std::byte>(34)});
  return g.build();
}

TEST(MalformedGgufSweep, EveryTruncationBeforeTheLastTensorEndFails) {
  const std::vector<std::byte> full = rich_file();
  auto whole = GgufFile::from_buffer(full);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  std::uint64_t end = 0;
  for (const auto& t : whole->tensors()) end = std::max(end, whole->data_offset() + t.offset + t.n_bytes);
  for (std::size_t len = 0; len < full.size(); ++len) {
    auto f = GgufFile::from_buffer(std::vector<std::byte>(full.begin(), full.begin() + len), "cut.gguf");
    if (len < end) {
      ASSERT_FALSE(f.ok()) << "accepted a file cut to " << len << " bytes";
      EXPECT_EQ(f.error().message.rfind("cut.gguf: byte ", 0), 0u) << f.error().message;
    } else {
      EXPECT_TRUE(f.ok()) << "only trailing padding was cut: " << f.error().message;
    }
  }
}

// Every surviving file must still satisfy the reader's guarantees.
void expect_consistent(const GgufFile& f) {
  const auto bytes = f.bytes();
  for (const auto& t : f.tensors()) {
    ASSERT_GE(t.data, bytes.data());
    ASSERT_LE(static_cast<std::uint64_t>(t.data - bytes.data()) + t.n_bytes, bytes.size());
    ASSERT_EQ(t.offset % f.alignment(), 0u);
    if (tensor_type_traits(t.type).dequantizable && t.n_elements <= 4096) {
      std::vector<float> out(static_cast<std::size_t>(t.n_elements));
      ASSERT_TRUE(dequantize_row(t, 0, t.n_elements, out.data()).ok());
    }
  }
}

TEST(MalformedGgufSweep, CorruptingAnyHeaderByteNeverCrashes) {
  const std::vector<std::byte> full = rich_file();
  auto whole = GgufFile::from_buffer(full);
  ASSERT_TRUE(whole.ok());
  const std::size_t header_end = static_cast<std::size_t>(whole->data_offset());
  int accepted = 0, rejected = 0;
  for (std::size_t pos = 0; pos < header_end; ++pos) {
    for (std::uint8_t v : {0x00, 0x01, 0x07, 0x20, 0x7F, 0x80, 0xFF}) {
      std::vector<std::byte> b = full;
      b[pos] = std::byte{v};
      auto f = GgufFile::from_buffer(std::move(b));
      if (f.ok()) {
        ++accepted;
        expect_consistent(*f);
      } else {
        ++rejected;
        EXPECT_FALSE(f.error().message.empty());
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);  // e.g. changed characters inside string values
}

TEST(MalformedGgufSweep, RandomMultiByteCorruptionNeverCrashes) {
  const std::vector<std::byte> full = rich_file();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::byte> b = full;
    const int flips = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<std::byte>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    auto f = GgufFile::from_buffer(std::move(b));
    if (f.ok()) expect_consistent(*f);
  }
}

}  // namespace
}  // namespace sluice::gguf
