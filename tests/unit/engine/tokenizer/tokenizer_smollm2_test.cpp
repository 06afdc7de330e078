// The byte-level BPE tokenizer on the project's default model, SmolLM2-135M-Instruct (GGUF), against ids
// computed by Hugging Face `tokenizers` from the same file's vocabulary and merges
// (scripts/make_tokenizer_golden.py). Skipped when the model file is absent: $SLUICE_MODEL_GGUF, else
// <repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/model/gguf_reader.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/incremental_decoder.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "tests/unit/engine/tokenizer/golden_json.h"

namespace sluice {
namespace {

using test_json::Json;

std::string model_path() {
  if (const char* env = std::getenv("SLUICE_MODEL_GGUF"); env != nullptr && *env != '\0') return env;
  return std::string(SLUICE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::vector<std::int32_t> ids_of(const Json& j) {
  std::vector<std::int32_t> out;
  for (const Json& v : j.array) out.push_back(static_cast<std::int32_t>(v.number));
  return out;
}

// What decoding the record's ids gives: the text itself unless bytes without a token were dropped.
const std::string& decoded_text(const Json& r) {
  const Json* d = r.get("decoded");
  return d != nullptr ? d->string : r.get("text")->string;
}

std::string show(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (std::int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(model_path())) return;
    auto f = gguf::GgufFile::open(model_path());
    if (!f) {
      error_ = new std::string(f.error().message);
      return;
    }
    file_ = new gguf::GgufFile(std::move(*f));
    auto t = Tokenizer::from_gguf(*file_);
    if (!t) {
      error_ = new std::string(t.error().message);
      return;
    }
    tokenizer_ = new Tokenizer(std::move(*t));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete file_;
    delete error_;
    tokenizer_ = nullptr;
    file_ = nullptr;
    error_ = nullptr;
  }
  void SetUp() override {
    if (tokenizer_ == nullptr && error_ == nullptr) GTEST_SKIP() << "model file absent: " << model_path();
    ASSERT_EQ(error_, nullptr) << *error_;
  }
  const Tokenizer& tok() const { return *tokenizer_; }

  static inline gguf::GgufFile* file_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  static inline std::string* error_ = nullptr;
};

TEST_F(SmolLM2Tokenizer, PublishedIds) {
  EXPECT_EQ(tok().encode("Hello, we can use", true), (std::vector<std::int32_t>{19556, 28, 392, 416, 722}));
  EXPECT_EQ(tok().encode("\n", true), (std::vector<std::int32_t>{198}));
  EXPECT_TRUE(tok().encode("", true).empty());
}

TEST_F(SmolLM2Tokenizer, VocabularyFacts) {
  EXPECT_EQ(tok().token_count(), 49152u);
  EXPECT_EQ(tok().model(), TokenizerModel::byte_level_bpe);
  EXPECT_EQ(tok().pre_tokenizer_name(), "smollm");
  EXPECT_EQ(tok().bos_id(), 1);
  EXPECT_EQ(tok().eos_id(), 2);
  EXPECT_FALSE(tok().add_bos_token());
  EXPECT_EQ(tok().token_text(1), "<|im_start|>");
  EXPECT_EQ(tok().token_type(2), TokenType::control);
  EXPECT_EQ(tok().token_type(19556), TokenType::normal);
  EXPECT_EQ(tok().token_text(392), "Ġwe");
  EXPECT_EQ(tok().token_bytes(392), " we");
  EXPECT_EQ(tok().token_bytes(198), "\n");
  EXPECT_EQ(tok().find_token("<|im_end|>"), 2);
  EXPECT_FALSE(tok().find_token("no such token").has_value());
  EXPECT_EQ(tok().token_type(-1), TokenType::undefined);
  EXPECT_EQ(tok().token_bytes(49152), "");
  // Both end markers of the vocabulary stop generation: <|endoftext|> (0) and <|im_end|> (2, EOS).
  const auto eog = tok().end_of_generation_ids();
  EXPECT_EQ(std::vector<std::int32_t>(eog.begin(), eog.end()), (std::vector<std::int32_t>{0, 2}));
  EXPECT_TRUE(tok().is_end_of_generation(2));
  EXPECT_FALSE(tok().is_end_of_generation(1));
}

TEST_F(SmolLM2Tokenizer, MatchesReferenceIdsOnGoldenCorpus) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("smollm2_golden.jsonl"));
  ASSERT_GE(records.size(), 1000u);
  std::size_t mismatches = 0;
  for (const Json& r : records) {
    const std::string& text = r.get("text")->string;
    const bool special = r.get("special")->boolean;
    const auto expected = ids_of(*r.get("ids"));
    const auto got = tok().encode(text, special);
    if (got != expected && ++mismatches <= 5) {
      ADD_FAILURE() << "text: [" << text << "] special=" << special << "\n expected: " << show(expected)
                    << "\n      got: " << show(got);
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(SmolLM2Tokenizer, DecodeRoundTripsGoldenCorpus) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("smollm2_golden.jsonl"));
  ASSERT_FALSE(records.empty());
  for (const Json& r : records) {
    const auto ids = ids_of(*r.get("ids"));
    EXPECT_EQ(tok().decode(ids), decoded_text(r));
  }
}

TEST_F(SmolLM2Tokenizer, DecodeMatchesReferenceOnCutSequences) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("smollm2_decode_golden.jsonl"));
  ASSERT_GE(records.size(), 300u);
  std::size_t repaired = 0;
  for (const Json& r : records) {
    const auto ids = ids_of(*r.get("ids"));
    const std::string& expected = r.get("text")->string;
    EXPECT_EQ(tok().decode(ids), expected) << show(ids);
    repaired += expected.find("\xEF\xBF\xBD") != std::string::npos;
  }
  EXPECT_GT(repaired, 0u) << "the golden data should include sequences cut inside a character";
}

TEST_F(SmolLM2Tokenizer, StreamingDecodeEqualsWholeDecode) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("smollm2_golden.jsonl"));
  ASSERT_FALSE(records.empty());
  for (const Json& r : records) {
    const auto ids = ids_of(*r.get("ids"));
    IncrementalDecoder dec(tok());
    std::string streamed;
    for (std::int32_t id : ids) {
      const std::string piece = dec.push(id);
      EXPECT_TRUE(utf8::is_valid(piece));
      streamed += piece;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, decoded_text(r));
  }
}

TEST_F(SmolLM2Tokenizer, StreamingHoldsSplitCharacters) {
  // One emoji is four bytes; the vocabulary spells it with several byte tokens.
  const auto ids = tok().encode("😀", true);
  ASSERT_GT(ids.size(), 1u);
  IncrementalDecoder dec(tok());
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    EXPECT_EQ(dec.push(ids[i]), "");
    EXPECT_GT(dec.pending_bytes(), 0u);
  }
  EXPECT_EQ(dec.push(ids.back()), "😀");
  EXPECT_EQ(dec.flush(), "");
  // A stream cut inside the character is repaired at flush, once.
  IncrementalDecoder cut(tok());
  EXPECT_EQ(cut.push(ids[0]), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(cut.flush(), "");
}

TEST_F(SmolLM2Tokenizer, SpecialTokenParsing) {
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  EXPECT_EQ(tok().encode(text, true), (std::vector<std::int32_t>{1, 4093, 198, 6004, 2}));
  const auto plain = tok().encode(text, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok().decode(plain), text);
  // Decoding with skip_special drops control tokens only.
  EXPECT_EQ(tok().decode(tok().encode(text, true), DecodeOptions{.skip_special = true}), "user\nhi");
  EXPECT_EQ(tok().decode(tok().encode(text, true)), text);
}

TEST_F(SmolLM2Tokenizer, ArbitraryBytesEncodeLosslessly) {
  // Invalid UTF-8 is still tokenized, byte for byte, except the 21 bytes this vocabulary has no token for
  // (0x04, 0xC0, 0xF5..0xFF, ...), which HF's BPE drops as well (the model has no unknown token).
  std::array<bool, 256> representable{};
  int missing = 0;
  for (int b = 0; b < 256; ++b) {
    representable[b] = tok().find_token(byte_level::encode(std::string(1, static_cast<char>(b)))).has_value();
    missing += !representable[b];
  }
  EXPECT_EQ(missing, 21);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string bytes(static_cast<std::size_t>(rng() % 64), '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
    std::string kept;
    for (char c : bytes) {
      if (representable[static_cast<unsigned char>(c)]) kept += c;
    }
    const auto ids = tok().encode(bytes, true);
    std::string joined;
    for (std::int32_t id : ids) joined += tok().token_bytes(id);
    EXPECT_EQ(joined, kept);
    EXPECT_TRUE(utf8::is_valid(tok().decode(ids)));
  }
}

TEST_F(SmolLM2Tokenizer, LongInputsStayLinearEnough) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "The quick brown fox jumps over 13 lazy dogs. ";
  text += std::string(20000, ' ') + std::string(20000, 'a');
  const auto ids = tok().encode(text, true);
  EXPECT_EQ(tok().decode(ids), text);
}

}  // namespace
}  // namespace sluice
