// The Jinja subset against jinja2 itself: each case in tests/fixtures/tokenizer/jinja_golden.jsonl was
// rendered by jinja2 in the environment transformers uses (scripts/make_tokenizer_golden.py).
#include <gtest/gtest.h>

#include <string>

#include "engine/tokenizer/template_parser.h"
#include "engine/tokenizer/template_renderer.h"
#include "tests/unit/engine/tokenizer/golden_json.h"

namespace sluice::jinja {
namespace {

using test_json::Json;

Value to_value(const Json& j) {
  switch (j.kind) {
    case Json::Kind::null: return Value(None{});
    case Json::Kind::boolean: return Value(j.boolean);
    case Json::Kind::number:
      return j.integer ? Value(static_cast<std::int64_t>(j.number)) : Value(j.number);
    case Json::Kind::string: return Value(j.string);
    case Json::Kind::array: {
      List l;
      for (const Json& x : j.array) l.push_back(to_value(x));
      return Value(std::move(l));
    }
    case Json::Kind::object: {
      Dict d;
      for (std::size_t i = 0; i < j.keys.size(); ++i) d.set(j.keys[i], to_value(j.values[i]));
      return Value(std::move(d));
    }
  }
  return Value();
}

TEST(TemplateRenderer, MatchesJinja2) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("jinja_golden.jsonl"));
  ASSERT_GE(records.size(), 40u);
  for (const Json& r : records) {
    const std::string& source = r.get("source")->string;
    Dict context;
    const Json& ctx = *r.get("context");
    for (std::size_t i = 0; i < ctx.keys.size(); ++i) context.set(ctx.keys[i], to_value(ctx.values[i]));
    auto program = parse_template(source);
    ASSERT_TRUE(program.ok()) << source << "\n" << program.error().message;
    auto text = render(*program, context);
    if (const Json* expected = r.get("expected")) {
      ASSERT_TRUE(text.ok()) << source << "\n" << text.error().message;
      EXPECT_EQ(*text, expected->string) << source;
    } else {
      ASSERT_FALSE(text.ok()) << source << " rendered: " << *text;
      if (source.find("raise_exception") != std::string::npos) {
        EXPECT_EQ(text.error().kind, ErrorKind::raised);
        EXPECT_EQ(text.error().message, r.get("error")->string);
      }
    }
  }
}

TEST(TemplateRenderer, FloatAndJsonFormatting) {
  EXPECT_EQ(repr(Value(1e16)), "1e+16");
  EXPECT_EQ(repr(Value(1e15)), "1000000000000000.0");
  EXPECT_EQ(repr(Value(0.0001)), "0.0001");
  EXPECT_EQ(repr(Value(0.00001)), "1e-05");
  EXPECT_EQ(repr(Value(-2.5)), "-2.5");
  EXPECT_EQ(repr(Value(1.0 / 3)), "0.3333333333333333");
  std::string json;
  ASSERT_TRUE(to_json(Value(List{Value("a\"b"), Value(None{}), Value(true)}), -1, json));
  EXPECT_EQ(json, "[\"a\\\"b\", null, true]");
  std::string bad;
  EXPECT_FALSE(to_json(Value::undefined("x"), -1, bad));
}

}  // namespace
}  // namespace sluice::jinja
