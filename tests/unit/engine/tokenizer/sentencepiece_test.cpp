// SentencePiece-style BPE (GGUF model "llama") on a synthetic vocabulary built here: score order, ties,
// the "▁" space marker and its prefix, byte fallback, the unknown token, control tokens, decoding.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/tokenizer/incremental_decoder.h"
#include "engine/tokenizer/tokenizer.h"

namespace sluice {
namespace {

using Ids = std::vector<std::int32_t>;

struct Vocab {
  TokenizerSpec spec;
  std::int32_t add(std::string text, float score, TokenType type = TokenType::normal) {
    spec.tokens.push_back(std::move(text));
    spec.scores.push_back(score);
    spec.token_types.push_back(static_cast<std::int32_t>(type));
    return static_cast<std::int32_t>(spec.tokens.size() - 1);
  }
};

// <unk>=0 <s>=1 </s>=2, then (optionally) the 256 byte tokens, then pieces.
Vocab llama_vocab(bool byte_tokens) {
  Vocab v;
  v.spec.model = "llama";
  v.add("<unk>", 0, TokenType::unknown);
  v.add("<s>", 0, TokenType::control);
  v.add("</s>", 0, TokenType::control);
  v.spec.unknown_id = 0;
  v.spec.bos_id = 1;
  v.spec.eos_id = 2;
  v.spec.add_bos = true;
  if (byte_tokens) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      v.add(name, 0, TokenType::byte);
    }
  }
  return v;
}

TEST(SentencePiece, HighestScoreMergesFirst) {
  for (bool bc_wins : {true, false}) {
    Vocab v = llama_vocab(false);
    v.spec.add_space_prefix = false;
    const auto a = v.add("a", -1);
    const auto b = v.add("b", -1);
    const auto c = v.add("c", -1);
    const auto ab = v.add("ab", bc_wins ? -5.0f : -2.0f);
    const auto bc = v.add("bc", bc_wins ? -2.0f : -5.0f);
    auto t = Tokenizer::create(v.spec);
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(t->encode("abc", false), bc_wins ? (Ids{a, bc}) : (Ids{ab, c}));
    (void)b;
  }
}

TEST(SentencePiece, TiesMergeLeftmostAndChainsReachWholeWords) {
  Vocab v = llama_vocab(false);
  const auto space = v.add("\xE2\x96\x81", -1);
  v.add("h", -2);
  v.add("e", -3);
  const auto l = v.add("l", -4);
  v.add("o", -5);
  v.add("\xE2\x96\x81h", -10);
  v.add("ll", -9);
  v.add("\xE2\x96\x81he", -11);
  v.add("llo", -12);
  const auto hello = v.add("\xE2\x96\x81hello", -13);
  const auto lll = v.add("lll", -20);
  auto t = Tokenizer::create(v.spec);
  ASSERT_TRUE(t.ok()) << t.error().message;
  // "▁hello": ll (-9), ▁h (-10), ▁he (-11), llo (-12), ▁hello (-13).
  EXPECT_EQ(t->encode("hello", false), (Ids{hello}));
  EXPECT_EQ(t->encode("hello hello", false), (Ids{hello, hello}));
  // "llll": both "ll" candidates score the same; the leftmost merges first, then the right pair.
  EXPECT_EQ(t->encode("llll", false), (Ids{space, *t->find_token("ll"), *t->find_token("ll")}));
  // "lll": the leftmost "ll" merges, then "ll"+"l" forms "lll".
  EXPECT_EQ(t->encode("lll", false), (Ids{space, lll}));
  (void)l;
}

TEST(SentencePiece, ByteFallbackAndUnknown) {
  Vocab v = llama_vocab(true);
  const auto space = v.add("\xE2\x96\x81", -1);
  const auto x = v.add("x", -2);
  auto t = Tokenizer::create(v.spec);
  ASSERT_TRUE(t.ok()) << t.error().message;
  const std::int32_t byte0 = 3;  // <0x00>
  EXPECT_EQ(t->encode("x中", false), (Ids{space, x, byte0 + 0xE4, byte0 + 0xB8, byte0 + 0xAD}));
  EXPECT_EQ(t->decode(t->encode("x中", false)), " x中");
  EXPECT_EQ(t->decode(t->encode("x中", false), DecodeOptions{.strip_leading_space = true}), "x中");
  EXPECT_EQ(t->token_bytes(byte0 + 0x0A), "\n");

  Vocab w = llama_vocab(false);
  const auto wspace = w.add("\xE2\x96\x81", -1);
  const auto wx = w.add("x", -2);
  auto u = Tokenizer::create(w.spec);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->encode("x中x", false), (Ids{wspace, wx, 0, wx}));
  EXPECT_EQ(u->decode(Ids{wx, 0}, DecodeOptions{.skip_special = true}), "x");
}

TEST(SentencePiece, SpacePrefixAndControlTokens) {
  Vocab v = llama_vocab(true);
  const auto space = v.add("\xE2\x96\x81", -1);
  const auto hi = v.add("\xE2\x96\x81hi", -2);
  v.add("h", -3);
  v.add("i", -4);
  const auto bare_hi = v.add("hi", -5);
  auto t = Tokenizer::create(v.spec);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->add_bos_token());
  EXPECT_EQ(t->model(), TokenizerModel::sentencepiece_bpe);
  EXPECT_EQ(t->encode("hi hi", false), (Ids{hi, hi}));
  EXPECT_EQ(t->encode(" hi", false), (Ids{space, hi}));
  // Each stretch of text after a control token gets the prefix again (llama.cpp's rule).
  EXPECT_EQ(t->encode("<s>hi</s>hi", true), (Ids{1, hi, 2, hi}));
  EXPECT_EQ(t->decode(Ids{1, hi, 2}, DecodeOptions{.skip_special = true}), " hi");
  EXPECT_EQ(t->decode(Ids{1, hi, 2}), "<s> hi</s>");

  v.spec.add_space_prefix = false;
  auto u = Tokenizer::create(v.spec);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->encode("hi", false), (Ids{bare_hi}));
}

TEST(SentencePiece, StreamingMatchesDecode) {
  Vocab v = llama_vocab(true);
  v.add("\xE2\x96\x81", -1);
  v.add("a", -2);
  auto t = Tokenizer::create(v.spec);
  ASSERT_TRUE(t.ok());
  const Ids ids = t->encode("a 中a 😀", false);
  for (bool strip : {false, true}) {
    const DecodeOptions opt{.skip_special = false, .strip_leading_space = strip};
    IncrementalDecoder dec(*t, opt);
    std::string streamed;
    for (auto id : ids) streamed += dec.push(id);
    streamed += dec.flush();
    EXPECT_EQ(streamed, t->decode(ids, opt));
  }
  EXPECT_EQ(t->decode(ids, DecodeOptions{.strip_leading_space = true}), "a 中a 😀");
}

}  // namespace
}  // namespace sluice
