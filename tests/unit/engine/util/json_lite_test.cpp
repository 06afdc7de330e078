// json_lite: accepts RFC 8259 documents and exposes them faithfully; rejects malformed, ambiguous and hostile
// input with an offset, without crashing.
#include "engine/util/json_lite.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace sluice::json {
namespace {

TEST(JsonLite, ParsesEveryKind) {
  auto v = parse(R"( {"a": 1, "b": [true, false, null], "c": {"d": "x\ny"}, "e": -2.5e3, "f": ""} )");
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_TRUE(v->is_object());
  EXPECT_EQ(v->size(), 5u);
  EXPECT_EQ(v->keys()[0], "a");
  EXPECT_EQ(v->find("a")->as_u64(), 1u);
  EXPECT_EQ(v->find("a")->as_i64(), 1);
  EXPECT_EQ(v->find("a")->as_f64(), 1.0);
  const Value* b = v->find("b");
  ASSERT_TRUE(b->is_array());
  EXPECT_EQ(b->items()[0].as_bool(), true);
  EXPECT_EQ(b->items()[1].as_bool(), false);
  EXPECT_TRUE(b->items()[2].is_null());
  EXPECT_EQ(*v->find("c")->find("d")->as_string(), "x\ny");
  EXPECT_EQ(v->find("e")->as_f64(), -2500.0);
  EXPECT_FALSE(v->find("e")->as_i64().has_value());  // not an integer literal
  EXPECT_EQ(*v->find("f")->as_string(), "");
  EXPECT_EQ(v->find("missing"), nullptr);
  EXPECT_EQ(b->find("a"), nullptr);  // not an object
  EXPECT_FALSE(b->as_bool().has_value());
}

TEST(JsonLite, IntegersAreExactAcrossTheirRange) {
  auto v = parse(R"([18446744073709551615, 18446744073709551616, -9223372036854775808, -1, 0, -0, 9007199254740993])");
  ASSERT_TRUE(v.ok());
  const auto& it = v->items();
  EXPECT_EQ(it[0].as_u64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_FALSE(it[0].as_i64().has_value());
  EXPECT_FALSE(it[1].as_u64().has_value());  // beyond 64 bits: only as a double
  EXPECT_TRUE(it[1].as_f64().has_value());
  EXPECT_EQ(it[2].as_i64(), std::numeric_limits<std::int64_t>::min());
  EXPECT_FALSE(it[2].as_u64().has_value());
  EXPECT_EQ(it[3].as_i64(), -1);
  EXPECT_FALSE(it[3].as_u64().has_value());
  EXPECT_EQ(it[4].as_u64(), 0u);
  EXPECT_EQ(it[5].as_u64(), 0u);
  EXPECT_EQ(it[6].as_u64(), 9007199254740993u);  // not representable as a double
}

TEST(JsonLite, DecodesEscapesAndUtf8) {
  auto v = parse(R"(["\u00e9\u4e2d\ud83d\ude00", "\"\\\/\b\f\n\r\t", "é中😀"])");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v->items()[0].as_string(), "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
  EXPECT_EQ(*v->items()[1].as_string(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(*v->items()[2].as_string(), *v->items()[0].as_string());
}

TEST(JsonLite, RejectsMalformedInput) {
  const char* bad[] = {
      "",
      "{",
      "[1,]",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "[1 2]",
      "01",
      "1.",
      "1e",
      "-",
      "+1",
      ".5",
      "NaN",
      "Infinity",
      "tru",
      "nul",
      "\"abc",
      "\"\\x\"",
      "\"\\u12\"",
      "\"\\ud800\"",
      "\"\\udc00\"",
      "\"\\ud800\\u0041\"",
      "\"a\nb\"",
      "[1] 2",
      "{1:2}",
      "1e999",
      "{\"a\":1,\"a\":2}",
      "\"\xC3\"",
      "\"\xC0\xAF\"",
      "\"\xED\xA0\x80\"",
      "\"\xF5\x80\x80\x80\"",
      "// c\n1",
  };
  for (const char* text : bad) {
    auto v = parse(text);
    EXPECT_FALSE(v.ok()) << "accepted: " << text;
    if (!v.ok()) {
      EXPECT_NE(v.error().message.find("byte"), std::string::npos);
      EXPECT_LE(v.error().offset, std::string(text).size());
    }
  }
}

TEST(JsonLite, DuplicateKeysAreFoundInLargeObjects) {
  std::string doc = "{";
  for (int i = 0; i < 100; ++i) doc += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  auto ok = parse(doc + "\"last\":0}");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->size(), 101u);
  EXPECT_EQ(ok->find("k57")->as_u64(), 57u);
  auto dup = parse(doc + "\"k3\":0}");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("duplicate key \"k3\""), std::string::npos);
}

TEST(JsonLite, LimitsDepthAndSize) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_FALSE(parse(deep).ok());
  EXPECT_TRUE(parse(deep, ParseLimits{1 << 20, 128}).ok());
  const std::string deep_objects = [] {
    std::string s;
    for (int i = 0; i < 70; ++i) s += "{\"a\":";
    s += "1";
    for (int i = 0; i < 70; ++i) s += "}";
    return s;
  }();
  EXPECT_FALSE(parse(deep_objects).ok());
  EXPECT_FALSE(parse("[1, 2, 3]", ParseLimits{4, 64}).ok());
}

TEST(JsonLite, SurvivesEveryTruncationOfAValidDocument) {
  const std::string doc = R"({"weight_map": {"a.b": "model-00001.safetensors", "c": [1, 2.5, -3e-2]}, "s": "\u00e9"})";
  ASSERT_TRUE(parse(doc).ok());
  for (std::size_t n = 0; n < doc.size(); ++n) EXPECT_FALSE(parse(doc.substr(0, n)).ok()) << n;
}

}  // namespace
}  // namespace sluice::json
