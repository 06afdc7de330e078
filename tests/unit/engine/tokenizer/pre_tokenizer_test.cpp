// Pre-tokenizer split rules against the pieces HF `tokenizers` produces with each family's published regular
// expression (Oniguruma), on the golden corpus (scripts/make_tokenizer_golden.py), plus hand-checked cases.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/unicode_class.h"
#include "tests/unit/engine/tokenizer/golden_json.h"

namespace sluice {
namespace {

std::vector<std::string> split(PreTokenizerKind kind, std::string_view text) {
  PreTokenizer p;
  std::vector<std::string_view> pieces;
  p.split(kind, text, pieces);
  return {pieces.begin(), pieces.end()};
}

std::string show(const std::vector<std::string>& pieces) {
  std::string s;
  for (const auto& p : pieces) s += "[" + p + "]";
  return s;
}

TEST(PreTokenizer, NamesMapToFamilies) {
  EXPECT_EQ(pre_tokenizer_from_name("smollm")->kind, PreTokenizerKind::smollm);
  EXPECT_EQ(pre_tokenizer_from_name("gpt2")->kind, PreTokenizerKind::gpt2);
  EXPECT_EQ(pre_tokenizer_from_name("llama-bpe")->kind, PreTokenizerKind::llama3);
  EXPECT_TRUE(pre_tokenizer_from_name("llama-bpe")->ignore_merges);
  EXPECT_EQ(pre_tokenizer_from_name("qwen2")->kind, PreTokenizerKind::qwen2);
  EXPECT_FALSE(pre_tokenizer_from_name("qwen2")->ignore_merges);
  EXPECT_FALSE(pre_tokenizer_from_name("deepseek-llm").has_value());
  EXPECT_NE(known_pre_tokenizer_names().find("smollm"), std::string_view::npos);
}

TEST(PreTokenizer, MatchesReferenceSplitsOnGoldenCorpus) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("pretokenizer_golden.jsonl"));
  ASSERT_GE(records.size(), 1000u);
  const std::pair<const char*, PreTokenizerKind> families[] = {{"gpt2", PreTokenizerKind::gpt2},
                                                               {"smollm", PreTokenizerKind::smollm},
                                                               {"llama3", PreTokenizerKind::llama3},
                                                               {"qwen2", PreTokenizerKind::qwen2}};
  for (const auto& [name, kind] : families) {
    std::size_t mismatches = 0;
    for (const auto& r : records) {
      const std::string& text = r.get("text")->string;
      std::vector<std::string> expected;
      for (const auto& p : r.get(name)->array) expected.push_back(p.string);
      const auto got = split(kind, text);
      if (got != expected && ++mismatches <= 3) {
        ADD_FAILURE() << name << " on [" << text << "]\n expected " << show(expected) << "\n      got " << show(got);
      }
    }
    EXPECT_EQ(mismatches, 0u) << name;
  }
}

TEST(PreTokenizer, HandCheckedSplits) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(PreTokenizerKind::gpt2, "Hello, we can't"), (V{"Hello", ",", " we", " can", "'t"}));
  EXPECT_EQ(split(PreTokenizerKind::gpt2, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split(PreTokenizerKind::gpt2, "a \n b"), (V{"a", " \n", " b"}));
  EXPECT_EQ(split(PreTokenizerKind::gpt2, "x  "), (V{"x", "  "}));
  EXPECT_EQ(split(PreTokenizerKind::gpt2, " 123abc"), (V{" 123", "abc"}));
  EXPECT_EQ(split(PreTokenizerKind::smollm, " 123abc"), (V{" ", "1", "2", "3", "abc"}));
  EXPECT_EQ(split(PreTokenizerKind::smollm, "a  1"), (V{"a", "  ", "1"}));
  EXPECT_EQ(split(PreTokenizerKind::llama3, "12345 I'M"), (V{"123", "45", " I", "'M"}));
  EXPECT_EQ(split(PreTokenizerKind::qwen2, "123"), (V{"1", "2", "3"}));
  EXPECT_EQ(split(PreTokenizerKind::llama3, "a\n\n  b"), (V{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(split(PreTokenizerKind::llama3, "(hello)\n"), (V{"(hello", ")\n"}));
  EXPECT_TRUE(split(PreTokenizerKind::gpt2, "").empty());
}

TEST(PreTokenizer, InvalidBytesStandAloneAndCoverTheText) {
  const std::string text = "ab\xFF\xFE cd\xE2\x82 \xF0\x9F\x98\x80!";
  for (auto kind : {PreTokenizerKind::gpt2, PreTokenizerKind::smollm, PreTokenizerKind::llama3, PreTokenizerKind::qwen2}) {
    const auto pieces = split(kind, text);
    std::string joined;
    for (const auto& p : pieces) joined += p;
    EXPECT_EQ(joined, text);
  }
  EXPECT_EQ(split(PreTokenizerKind::gpt2, "a\xFF\xFE"), (std::vector<std::string>{"a", "\xFF\xFE"}));
}

TEST(UnicodeClass, Categories) {
  using unicode::CharClass;
  EXPECT_EQ(unicode::classify(U'a'), CharClass::letter);
  EXPECT_EQ(unicode::classify(U'ก'), CharClass::letter);     // Thai
  EXPECT_EQ(unicode::classify(U'中'), CharClass::letter);
  EXPECT_EQ(unicode::classify(0x20000), CharClass::letter);  // CJK extension B, beyond the BMP table
  EXPECT_EQ(unicode::classify(U'٣'), CharClass::number);
  EXPECT_EQ(unicode::classify(U'½'), CharClass::number);
  EXPECT_EQ(unicode::classify(U'Ⅻ'), CharClass::number);
  EXPECT_EQ(unicode::classify(0x1D7D8), CharClass::number);  // mathematical double-struck zero
  EXPECT_EQ(unicode::classify(0x0301), CharClass::other);    // combining acute accent (Mn)
  EXPECT_EQ(unicode::classify(0x1F600), CharClass::other);   // emoji
  EXPECT_EQ(unicode::classify(0x00A0), CharClass::whitespace);
  EXPECT_EQ(unicode::classify(0x3000), CharClass::whitespace);
  EXPECT_EQ(unicode::classify(0x0085), CharClass::whitespace);
  EXPECT_EQ(unicode::classify(0x200B), CharClass::other);    // zero width space is not White_Space
  EXPECT_EQ(unicode::classify(0x001C), CharClass::other);
  EXPECT_EQ(unicode::classify(0xD800), CharClass::other);
  EXPECT_EQ(unicode::classify(0x110000), CharClass::other);
  EXPECT_NE(std::string(unicode::tables_version()), "");
}

}  // namespace
}  // namespace sluice
