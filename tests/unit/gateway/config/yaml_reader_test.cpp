#include "gateway/config/yaml_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  YamlReader reader{"t.yaml"};
  YAML::Node doc;
  explicit Parsed(const std::string& text) {
    auto d = reader.parse(text);
    EXPECT_TRUE(d.has_value());
    if (d) doc = *d;
  }
};

TEST(YamlReaderTest, NumbersAcceptDecimalAndExponentRejectOthers) {
  Parsed p("a: 1.5\nb: 1e3\nc: +2\nd: .inf\ne: nan\nf: 0x10\ng: \"3\"\nh: 7\n");
  YamlMap m(p.reader, p.doc, "", {"a", "b", "c", "d", "e", "f", "g", "h"});
  double v = -1;
  EXPECT_TRUE(m.read_number("a", v, 0, 10));
  EXPECT_EQ(v, 1.5);
  EXPECT_TRUE(m.read_number("b", v, 0, 1e6));
  EXPECT_EQ(v, 1000);
  EXPECT_TRUE(m.read_number("c", v, 0, 10));
  EXPECT_EQ(v, 2);
  EXPECT_FALSE(m.read_number("d", v, 0, 10));
  EXPECT_FALSE(m.read_number("e", v, 0, 10));
  EXPECT_FALSE(m.read_number("f", v, 0, 100));
  EXPECT_FALSE(m.read_number("g", v, 0, 10));
  EXPECT_EQ(v, 2);  // untouched by the failures
  EXPECT_FALSE(m.read_number("absent", v, 0, 10));
  EXPECT_EQ(p.reader.errors().size(), 4u);
  std::int64_t i = 0;
  EXPECT_FALSE(m.read_int("a", i, 0, 10));  // 1.5 is not an integer
  EXPECT_TRUE(m.read_int("h", i, 0, 10));
  EXPECT_EQ(i, 7);
  EXPECT_EQ(p.reader.errors().size(), 5u);
  EXPECT_EQ(p.reader.errors()[4].line, 1);
}

TEST(YamlReaderTest, StringsAcceptAnyScalarButNotEmptyValues) {
  Parsed p("a: 123\nb: \"\"\nc:\nd: [x]\n");
  YamlMap m(p.reader, p.doc, "sec", {"a", "b", "c", "d"});
  std::string s = "init";
  EXPECT_TRUE(m.read_string("a", s));
  EXPECT_EQ(s, "123");
  EXPECT_TRUE(m.read_string("b", s));
  EXPECT_EQ(s, "");
  EXPECT_FALSE(m.read_string("c", s));
  EXPECT_FALSE(m.read_string("d", s));
  ASSERT_EQ(p.reader.errors().size(), 2u);
  EXPECT_EQ(p.reader.errors()[0].line, 3);
  EXPECT_THAT(p.reader.errors()[0].message, HasSubstr("sec.c: missing value"));
  EXPECT_EQ(p.reader.errors()[1].line, 4);
  EXPECT_THAT(p.reader.errors()[1].message, HasSubstr("sec.d: expected a string, got a list"));
}

TEST(YamlReaderTest, UnknownKeysSuggestTheClosestKnownOne) {
  Parsed p("max_body: 1\nmax_queu: 2\nzzz: 3\n");
  YamlMap m(p.reader, p.doc, "limits", {"max_body_bytes", "max_queue", "max_concurrency"});
  ASSERT_EQ(p.reader.errors().size(), 3u);
  EXPECT_EQ(p.reader.errors()[0].message, "unknown key 'max_body' in limits (did you mean 'max_body_bytes'?)");
  EXPECT_EQ(p.reader.errors()[1].message, "unknown key 'max_queu' in limits (did you mean 'max_queue'?)");
  EXPECT_EQ(p.reader.errors()[2].message, "unknown key 'zzz' in limits");
  EXPECT_EQ(p.reader.errors()[2].line, 3);
}

TEST(YamlReaderTest, StringListsCarryLines) {
  Parsed p("l:\n  - a\n  - b\n");
  YamlMap m(p.reader, p.doc, "", {"l"});
  std::vector<YamlMap::Item> items;
  ASSERT_TRUE(m.read_string_list("l", items));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].text, "a");
  EXPECT_EQ(items[0].line, 2);
  EXPECT_EQ(items[1].line, 3);
}

TEST(YamlReaderTest, NonScalarKeysAndSyntaxErrors) {
  Parsed p("? [a, b]\n: 1\nok: 2\n");
  YamlMap m(p.reader, p.doc, "x", {"ok"});
  EXPECT_TRUE(m.has("ok"));
  ASSERT_EQ(p.reader.errors().size(), 1u);
  EXPECT_THAT(p.reader.errors()[0].message, HasSubstr("keys must be plain names"));

  YamlReader r("broken.yaml");
  EXPECT_FALSE(r.parse("a: {b: 1\n").has_value());
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors()[0].file, "broken.yaml");
  EXPECT_THAT(r.errors()[0].message, HasSubstr("invalid YAML"));
}

}  // namespace
}  // namespace sluice
