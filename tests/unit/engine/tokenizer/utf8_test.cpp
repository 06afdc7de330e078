// UTF-8 repair (maximal subparts, as Python's errors="replace" and Rust's from_utf8_lossy) and the
// streaming decoder's contract: push()* + flush() == decode(), never an invalid sequence out.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/incremental_decoder.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace sluice {
namespace {

std::string repaired(std::string_view s) {
  std::string out;
  utf8::append_repaired(out, s);
  return out;
}

const std::string R = "\xEF\xBF\xBD";

TEST(Utf8, RepairReplacesMaximalSubparts) {
  // Expected values are Python's bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(repaired("abc"), "abc");
  EXPECT_EQ(repaired("\xE2\x82\xAC"), "€");
  EXPECT_EQ(repaired("\xE2\x82"), R);                   // truncated 3-byte sequence: one replacement
  EXPECT_EQ(repaired("\xE2\x82" "A"), R + "A");
  EXPECT_EQ(repaired("\xF0\x9F\x98"), R);
  EXPECT_EQ(repaired("\x80\x80"), R + R);               // lone continuation bytes: one each
  EXPECT_EQ(repaired("\xC0\xAF"), R + R);               // overlong lead is invalid by itself
  EXPECT_EQ(repaired("\xED\xA0\x80"), R + R + R);       // surrogate: ED then out-of-range A0
  EXPECT_EQ(repaired("\xF4\x90\x80\x80"), R + R + R + R);  // above U+10FFFF
  EXPECT_EQ(repaired("\xF5"), R);
  EXPECT_EQ(repaired("a\xE0\x80z"), "a" + R + R + "z");
  EXPECT_EQ(repaired("\xF0\x9F\x98\x80\xF0"), "😀" + R);
}

TEST(Utf8, CompletePrefixHoldsOnlyATruncatedTail) {
  EXPECT_EQ(utf8::complete_prefix_length("abc"), 3u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xF0"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\x80"), 3u);          // can never complete: release it
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE2\x41"), 4u);
  EXPECT_EQ(utf8::complete_prefix_length("\xF0\x9F\x98\x80"), 4u);
  EXPECT_EQ(utf8::complete_prefix_length(""), 0u);
}

TEST(Utf8, DecodeAndEncodeCodePoints) {
  const utf8::Decoded d = utf8::decode("\xF0\x9F\x98\x80", 0);
  EXPECT_TRUE(d.valid);
  EXPECT_EQ(d.code_point, 0x1F600u);
  EXPECT_EQ(d.length, 4u);
  std::string s;
  utf8::append_code_point(s, 0x20AC);
  utf8::append_code_point(s, 0xD800);    // not a scalar value
  utf8::append_code_point(s, 0x110000);
  EXPECT_EQ(s, "€" + R + R);
  EXPECT_TRUE(utf8::is_valid("héllo"));
  EXPECT_FALSE(utf8::is_valid("h\xC3"));
}

// A byte-level tokenizer whose tokens are single bytes plus a few multi-byte fragments that cut characters.
Tokenizer fragment_tokenizer() {
  TokenizerSpec spec;
  spec.model = "gpt2";
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_level::encode(std::string(1, static_cast<char>(b))));
  spec.tokens.push_back(byte_level::encode("a\xF0\x9F"));  // 256: a letter and half an emoji
  spec.tokens.push_back(byte_level::encode("\x98\x80!"));  // 257: the other half and a letter
  spec.tokens.push_back("<|end|>");                        // 258 control
  spec.token_types.assign(spec.tokens.size(), 1);
  spec.token_types[258] = 3;
  auto t = Tokenizer::create(spec);
  EXPECT_TRUE(t.ok());
  return std::move(*t);
}

TEST(IncrementalDecoder, ReleasesTextOnlyAtCharacterBoundaries) {
  const Tokenizer t = fragment_tokenizer();
  IncrementalDecoder dec(t);
  EXPECT_EQ(dec.push(256), "a");
  EXPECT_EQ(dec.pending_bytes(), 2u);
  EXPECT_EQ(dec.push(257), "😀!");
  EXPECT_EQ(dec.push(258), "<|end|>");
  EXPECT_EQ(dec.flush(), "");

  IncrementalDecoder skip(t, DecodeOptions{.skip_special = true});
  EXPECT_EQ(skip.push(258), "");
  EXPECT_EQ(skip.push(256), "a");
  EXPECT_EQ(skip.push(258), "");  // a control token does not break the held character
  EXPECT_EQ(skip.push(257), "😀!");

  IncrementalDecoder broken(t);
  EXPECT_EQ(broken.push(256), "a");
  EXPECT_EQ(broken.push('x'), R + "x");  // the held bytes can no longer complete
  EXPECT_EQ(broken.push(0xE2), "");
  EXPECT_EQ(broken.flush(), R);
  EXPECT_EQ(broken.push('y'), "y");      // flush starts a new stream
}

TEST(IncrementalDecoder, RandomStreamsEqualWholeDecode) {
  const Tokenizer t = fragment_tokenizer();
  std::mt19937 rng(11);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::int32_t> ids(rng() % 40);
    for (auto& id : ids) id = static_cast<std::int32_t>(rng() % 260) - 1;  // includes -1 and 259 (invalid)
    for (bool skip : {false, true}) {
      const DecodeOptions opt{.skip_special = skip};
      IncrementalDecoder dec(t, opt);
      std::string streamed;
      for (auto id : ids) {
        const std::string piece = dec.push(id);
        ASSERT_TRUE(utf8::is_valid(piece));
        streamed += piece;
      }
      streamed += dec.flush();
      EXPECT_EQ(streamed, t.decode(ids, opt));
    }
  }
}

}  // namespace
}  // namespace sluice
