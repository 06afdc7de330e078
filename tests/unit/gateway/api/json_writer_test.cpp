#include "gateway/api/json_writer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace sluice {
namespace {

std::string lit(std::string_view s) { return json_quote(s); }

// Parses `json` strictly; fails the test if it is not valid.
simdjson::dom::element reparse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element el;
  auto err = parser.parse(json).get(el);
  EXPECT_FALSE(err) << simdjson::error_message(err) << " in " << json;
  return el;
}

TEST(JsonWriterTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(lit("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(lit("line\nnext\ttab\rcr\bbs\ffeed"), R"("line\nnext\ttab\rcr\bbs\ffeed")");
  EXPECT_EQ(lit(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(lit(std::string("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(lit("/"), R"("/")");  // no needless escapes
  EXPECT_EQ(lit(""), R"("")");
}

TEST(JsonWriterTest, PassesValidUtf8Through) {
  const std::string s = "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80";  // é ✓ 😀
  EXPECT_EQ(lit(s), "\"" + s + "\"");
}

TEST(JsonWriterTest, ReplacesInvalidUtf8) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(lit("a\xFF" "b"), "\"a" + fffd + "b\"");
  EXPECT_EQ(lit("\xC3"), "\"" + fffd + "\"");                    // truncated sequence
  EXPECT_EQ(lit("\xC0\xAF"), "\"" + fffd + fffd + "\"");         // overlong
  EXPECT_EQ(lit("\xED\xA0\x80"), "\"" + fffd + fffd + fffd + "\"");  // a UTF-16 surrogate
  EXPECT_EQ(lit("\xF4\x90\x80\x80"), "\"" + fffd + fffd + fffd + fffd + "\"");  // above U+10FFFF
  simdjson::dom::parser parser;
  const std::string doc = "[" + lit("x\xE2\x9C" "y\x80") + "]";
  reparse(parser, doc);
}

TEST(JsonWriterTest, EveryByteRoundTrips) {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  JsonWriter w;
  w.begin_object();
  w.key("s");
  w.string(all);
  w.end_object();
  simdjson::dom::parser parser;
  std::string_view back;
  ASSERT_FALSE(reparse(parser, w.take())["s"].get(back));
  EXPECT_EQ(back, all);
}

TEST(JsonWriterTest, InsertsSeparatorsInNestedContainers) {
  JsonWriter w;
  w.begin_object();
  w.key("a");
  w.begin_array();
  w.number(1);
  w.begin_object();
  w.end_object();
  w.begin_array();
  w.end_array();
  w.string("x");
  w.end_array();
  w.key("b");
  w.boolean(true);
  w.key("c");
  w.null();
  w.key("d");
  w.raw(R"({"k":[1,2]})");
  w.key("e");
  w.boolean(false);
  w.end_object();
  EXPECT_EQ(w.str(), R"({"a":[1,{},[],"x"],"b":true,"c":null,"d":{"k":[1,2]},"e":false})");
}

TEST(JsonWriterTest, WritesIntegersExactly) {
  JsonWriter w;
  w.begin_array();
  w.number(std::numeric_limits<std::int64_t>::min());
  w.number(std::numeric_limits<std::int64_t>::max());
  w.number(std::numeric_limits<std::uint64_t>::max());
  w.number(0);
  w.number(-7);
  w.number(std::size_t{42});
  w.end_array();
  EXPECT_EQ(w.str(), "[-9223372036854775808,9223372036854775807,18446744073709551615,0,-7,42]");
}

TEST(JsonWriterTest, DoublesRoundTripAndNonFiniteBecomesNull) {
  const double values[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-300, 5e-324, 123456789.125, -0.0, 2.0};
  for (double v : values) {
    JsonWriter w;
    w.begin_array();
    w.number(v);
    w.end_array();
    simdjson::dom::parser parser;
    simdjson::dom::array arr;
    ASSERT_FALSE(reparse(parser, w.str()).get(arr)) << w.str();
    double back = 0;
    ASSERT_FALSE((*arr.begin()).get_double().get(back)) << w.str();
    EXPECT_EQ(back, v) << w.str();
    EXPECT_EQ(std::signbit(back), std::signbit(v)) << w.str();
  }
  JsonWriter w;
  w.begin_array();
  w.number(std::nan(""));
  w.number(std::numeric_limits<double>::infinity());
  w.number(-std::numeric_limits<double>::infinity());
  w.end_array();
  EXPECT_EQ(w.str(), "[null,null,null]");
}

TEST(JsonWriterTest, TakeEmptiesAndResetsTheWriter) {
  JsonWriter w;
  w.begin_array();
  w.number(1);
  w.end_array();
  EXPECT_EQ(w.take(), "[1]");
  EXPECT_EQ(w.str(), "");
  w.begin_array();
  w.number(2);
  w.end_array();
  EXPECT_EQ(w.take(), "[2]");  // no stray comma from the previous document
}

}  // namespace
}  // namespace sluice
