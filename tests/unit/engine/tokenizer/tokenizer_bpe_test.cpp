// Byte-level BPE on a small synthetic vocabulary: merge order, added tokens, ignore_merges, creation errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer.h"

namespace sluice {
namespace {

using Ids = std::vector<std::int32_t>;

// Ids 0..255 are the single bytes (in byte order); later tokens follow `extra`.
TokenizerSpec byte_spec(const std::vector<std::string>& extra_bytes, const std::vector<std::string>& merges,
                        std::string pre = "gpt2") {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_level::encode(std::string(1, static_cast<char>(b))));
  for (const auto& e : extra_bytes) spec.tokens.push_back(byte_level::encode(e));
  for (const auto& m : merges) {
    const auto sp = m.rfind(' ');  // the separator is the last space: " " + "a" is written "  a"
    spec.merges.push_back(byte_level::encode(m.substr(0, sp)) + " " + byte_level::encode(m.substr(sp + 1)));
  }
  return spec;
}

std::int32_t id_of(const Tokenizer& t, std::string_view bytes) { return *t.find_token(byte_level::encode(bytes)); }

TEST(ByteLevel, AlphabetRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(byte_level::decode(byte_level::encode(one)), one);
  }
  EXPECT_EQ(byte_level::encode(" \n"), "ĠĊ");
  EXPECT_EQ(byte_level::byte_to_code_point('A'), U'A');
  EXPECT_EQ(byte_level::byte_to_code_point(0x20), 0x120u);
  EXPECT_FALSE(byte_level::decode("<|im_start|>\xE2\x96\x81").has_value());  // U+2581 is outside the alphabet
  EXPECT_FALSE(byte_level::code_point_to_byte(0x2581).has_value());
}

TEST(BytePairEncoding, LowestRankMergesFirst) {
  auto t = Tokenizer::create(byte_spec({"ab", "bc"}, {"a b", "b c"}));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->encode("abc", false), (Ids{id_of(*t, "ab"), 'c'}));
  auto u = Tokenizer::create(byte_spec({"ab", "bc"}, {"b c", "a b"}));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->encode("abc", false), (Ids{'a', id_of(*u, "bc")}));
}

TEST(BytePairEncoding, EqualPairsMergeLeftmostFirstAndChain) {
  auto t = Tokenizer::create(byte_spec({"aa", "aaa", "he", "ll", "hell", "hello"},
                                       {"a a", "aa a", "h e", "l l", "he ll", "hell o"}));
  ASSERT_TRUE(t.ok()) << t.error().message;
  // Rank beats length: "a a" (rank 0) pairs up every run before "aa a" (rank 1) is tried. HF agrees:
  // aaaa → aa aa, aaaaa → aa aaa.
  EXPECT_EQ(t->encode("aaaa", false), (Ids{id_of(*t, "aa"), id_of(*t, "aa")}));
  EXPECT_EQ(t->encode("aaaaa", false), (Ids{id_of(*t, "aa"), id_of(*t, "aaa")}));
  EXPECT_EQ(t->encode("hello", false), (Ids{id_of(*t, "hello")}));
  // Pieces never merge across the pre-tokenizer's boundaries.
  EXPECT_EQ(t->encode("hel lo", false), (Ids{id_of(*t, "he"), 'l', ' ', 'l', 'o'}));
  EXPECT_EQ(t->decode(t->encode("hello, aaaa!", false)), "hello, aaaa!");
}

TEST(BytePairEncoding, AddedTokensLongestMatchAndParseSpecial) {
  TokenizerSpec spec = byte_spec({}, {});
  spec.tokens.push_back("<a>");      // 256 control
  spec.tokens.push_back("<a><b>");   // 257 control
  spec.tokens.push_back("<tool>");   // 258 user-defined
  spec.token_types.assign(spec.tokens.size(), 1);
  spec.token_types[256] = 3;
  spec.token_types[257] = 3;
  spec.token_types[258] = 4;
  spec.eos_id = 256;
  auto t = Tokenizer::create(spec);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->encode("x<a><b>y<a>", true), (Ids{'x', 257, 'y', 256}));
  EXPECT_EQ(t->encode("<tool>", true), (Ids{258}));
  // Without special parsing control tokens are text, user-defined tokens still match.
  EXPECT_EQ(t->encode("<a><tool>", false), (Ids{'<', 'a', '>', 258}));
  EXPECT_EQ(t->token_bytes(257), "<a><b>");
  EXPECT_EQ(t->decode(Ids{'x', 257, 258}), "x<a><b><tool>");
  EXPECT_EQ(t->decode(Ids{'x', 257, 258}, DecodeOptions{.skip_special = true}), "x<tool>");
  EXPECT_EQ(t->decode(Ids{'x', -5, 9999}), "x");
  EXPECT_TRUE(t->is_end_of_generation(256));
}

TEST(BytePairEncoding, IgnoreMergesTakesWholePiecesFromTheVocabulary) {
  // "abc" is a token with no merge path to it; llama-bpe looks whole pieces up first, gpt2 does not.
  auto llama = Tokenizer::create(byte_spec({"abc"}, {}, "llama-bpe"));
  ASSERT_TRUE(llama.ok()) << llama.error().message;
  EXPECT_EQ(llama->encode("abc", false), (Ids{256}));
  auto gpt2 = Tokenizer::create(byte_spec({"abc"}, {}, "gpt2"));
  ASSERT_TRUE(gpt2.ok());
  EXPECT_EQ(gpt2->encode("abc", false), (Ids{'a', 'b', 'c'}));
}

TEST(BytePairEncoding, RandomBytesRoundTripForEveryPreTokenizer) {
  std::mt19937 rng(3);
  for (const char* pre : {"gpt2", "smollm", "llama-bpe", "qwen2"}) {
    auto t = Tokenizer::create(byte_spec({"ab", "abc", " a"}, {"a b", "ab c", "  a"}, pre));
    ASSERT_TRUE(t.ok()) << t.error().message;
    for (int round = 0; round < 300; ++round) {
      std::string bytes(rng() % 48, '\0');
      const std::string_view pool = "ab c\n\t1'\xC3\xA9\xF0\x9F\x98\x80\xFF";
      for (char& c : bytes) c = pool[rng() % pool.size()];
      const auto ids = t->encode(bytes, true);
      std::string joined;
      for (auto id : ids) joined += t->token_bytes(id);
      EXPECT_EQ(joined, bytes) << pre;
    }
  }
}

TEST(BytePairEncoding, CreationErrorsNameTheProblem) {
  TokenizerSpec empty;
  empty.model = "gpt2";
  EXPECT_NE(Tokenizer::create(empty).error().message.find("empty"), std::string::npos);

  auto bad_merge = byte_spec({}, {"a b"});
  EXPECT_NE(Tokenizer::create(bad_merge).error().message.find("merge 0"), std::string::npos);

  auto no_space = byte_spec({}, {});
  no_space.merges.push_back("ab");
  EXPECT_FALSE(Tokenizer::create(no_space).ok());

  auto pre = byte_spec({}, {}, "mystery");
  const std::string pre_msg = Tokenizer::create(pre).error().message;
  EXPECT_NE(pre_msg.find("mystery"), std::string::npos);
  EXPECT_NE(pre_msg.find("smollm"), std::string::npos);

  auto model = byte_spec({}, {});
  model.model = "bert";
  EXPECT_NE(Tokenizer::create(model).error().message.find("bert"), std::string::npos);

  auto ids = byte_spec({}, {});
  ids.eos_id = 256;
  EXPECT_NE(Tokenizer::create(ids).error().message.find("eos"), std::string::npos);

  auto types = byte_spec({}, {});
  types.token_types = {1, 1};
  EXPECT_NE(Tokenizer::create(types).error().message.find("token_type"), std::string::npos);
}

TEST(BytePairEncoding, FromGgufBuffer) {
  // A minimal GGUF file holding only tokenizer keys: a missing required key is an error, not a crash.
  std::vector<std::byte> bytes;
  auto put = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    bytes.insert(bytes.end(), b, b + n);
  };
  auto put_u32 = [&](std::uint32_t v) { put(&v, 4); };
  auto put_u64 = [&](std::uint64_t v) { put(&v, 8); };
  auto put_str = [&](std::string_view s) {
    put_u64(s.size());
    put(s.data(), s.size());
  };
  put("GGUF", 4);
  put_u32(3);
  put_u64(0);  // tensors
  put_u64(1);  // metadata
  put_str("tokenizer.ggml.model");
  put_u32(8);
  put_str("gpt2");
  auto file = gguf::GgufFile::from_buffer(bytes, "tiny.gguf");
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto t = Tokenizer::from_gguf(*file);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("tokenizer.ggml.tokens"), std::string::npos) << t.error().message;
}

}  // namespace
}  // namespace sluice
