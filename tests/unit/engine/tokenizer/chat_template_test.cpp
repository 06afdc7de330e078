// Chat templates against transformers' apply_chat_template (scripts/make_tokenizer_golden.py renders each
// fixture template in tests/fixtures/tokenizer/templates with jinja2): identical text for every
// conversation, the same refusals, and errors that name the fix for templates the renderer cannot run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/model/gguf_reader.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/chat_template_library.h"
#include "tests/unit/engine/tokenizer/golden_json.h"

namespace sluice {
namespace {

using test_json::Json;

std::vector<ChatTurn> turns_of(const Json& j) {
  std::vector<ChatTurn> out;
  for (const Json& m : j.array) out.push_back(ChatTurn{m.get("role")->string, m.get("content")->string});
  return out;
}

std::string text_or_empty(const Json* j) { return j == nullptr || j->is_null() ? std::string() : j->string; }

TEST(ChatTemplate, BuiltinsAreTheFixtureTexts) {
  std::set<std::string> names;
  for (std::string_view name : builtin_template_names()) {
    names.insert(std::string(name));
    const std::string fixture =
        test_json::read_file(test_json::fixture_path("templates/" + std::string(name) + ".jinja"));
    ASSERT_FALSE(fixture.empty()) << name;
    EXPECT_EQ(builtin_template_source(name), fixture) << name;
    EXPECT_EQ(detect_template_family(fixture), name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"chatml", "smollm2", "qwen2", "llama3", "llama3.1", "mistral"}));
  EXPECT_FALSE(builtin_template_source("vicuna").has_value());
  EXPECT_EQ(detect_template_family("{{ messages }}"), "");
}

TEST(ChatTemplate, MatchesTransformersRendering) {
  const auto records = test_json::read_jsonl(test_json::fixture_path("chat_template_golden.jsonl"));
  ASSERT_GE(records.size(), 150u);
  std::set<std::string> families;
  std::size_t refusals = 0;
  for (const Json& r : records) {
    const std::string name = r.get("template")->string;
    families.insert(name);
    auto tmpl = ChatTemplate::builtin(name, text_or_empty(r.get("bos")), text_or_empty(r.get("eos")));
    ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
    const auto messages = turns_of(*r.get("messages"));
    const bool gen = r.get("add_generation_prompt")->boolean;
    auto text = render_chat(*tmpl, messages, gen);
    if (const Json* expected = r.get("expected")) {
      ASSERT_TRUE(text.ok()) << name << ": " << text.error().message;
      EXPECT_EQ(*text, expected->string) << name << " with " << messages.size() << " messages, gen=" << gen;
    } else {
      ASSERT_FALSE(text.ok()) << name << " rendered a conversation transformers refuses";
      EXPECT_EQ(text.error().kind, TemplateErrorKind::rejected);
      EXPECT_EQ(text.error().message, r.get("error")->string);
      ++refusals;
    }
  }
  EXPECT_EQ(families.size(), 6u);
  EXPECT_GT(refusals, 0u);
}

TEST(ChatTemplate, SmolLM2AddsItsDefaultSystemPrompt) {
  auto tmpl = ChatTemplate::builtin("smollm2", "<|im_start|>", "<|im_end|>");
  ASSERT_TRUE(tmpl.ok());
  auto text = render_chat(*tmpl, {{"user", "Hi"}}, true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto with_system = render_chat(*tmpl, {{"system", "Be brief."}, {"user", "Hi"}}, false);
  ASSERT_TRUE(with_system.ok());
  EXPECT_EQ(*with_system, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

std::string model_path() {
  if (const char* env = std::getenv("SLUICE_MODEL_GGUF"); env != nullptr && *env != '\0') return env;
  return std::string(SLUICE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(ChatTemplate, FromSmolLM2Gguf) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "model file absent: " << model_path();
  auto file = gguf::GgufFile::open(model_path());
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto tok = Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  auto tmpl = ChatTemplate::from_gguf(*file, *tok);
  ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
  EXPECT_EQ(tmpl->source(), builtin_template_source("smollm2"));
  EXPECT_EQ(tmpl->family(), "smollm2");
  // The model's own template renders exactly what transformers rendered for the smollm2 fixture.
  std::size_t checked = 0;
  for (const Json& r : test_json::read_jsonl(test_json::fixture_path("chat_template_golden.jsonl"))) {
    if (r.get("template")->string != "smollm2" || r.get("expected") == nullptr) continue;
    auto text = render_chat(*tmpl, turns_of(*r.get("messages")), r.get("add_generation_prompt")->boolean);
    ASSERT_TRUE(text.ok()) << text.error().message;
    EXPECT_EQ(*text, r.get("expected")->string);
    ++checked;
  }
  EXPECT_GT(checked, 20u);
  // The rendered prompt tokenizes with the chat markers as single control tokens.
  auto prompt = render_chat(*tmpl, {{"user", "Hi"}}, true);
  ASSERT_TRUE(prompt.ok());
  const auto ids = tok->encode(*prompt, true);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);

  auto overridden = ChatTemplate::from_gguf(*file, *tok, "chatml");
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->family(), "chatml");
  auto unknown = ChatTemplate::from_gguf(*file, *tok, "nonesuch");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, TemplateErrorKind::unknown);
  EXPECT_NE(unknown.error().message.find("chatml"), std::string::npos);
}

TEST(ChatTemplate, UnsupportedTemplatesNameTheFix) {
  auto macro = ChatTemplate::parse("{% macro m() %}x{% endmacro %}{{ m() }}<|start_header_id|>", "test.gguf", "", "");
  ASSERT_FALSE(macro.ok());
  EXPECT_EQ(macro.error().kind, TemplateErrorKind::unsupported);
  const std::string& msg = macro.error().message;
  EXPECT_NE(msg.find("test.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("macro"), std::string::npos) << msg;
  EXPECT_NE(msg.find("engine.chat_template"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llama3"), std::string::npos) << msg;  // the family it looks like

  auto filter = ChatTemplate::parse("line one\n{{ messages | pprint }}", "t", "", "");
  ASSERT_FALSE(filter.ok());
  EXPECT_EQ(filter.error().kind, TemplateErrorKind::unsupported);
  EXPECT_NE(filter.error().message.find("line 2"), std::string::npos) << filter.error().message;
  EXPECT_NE(filter.error().message.find("pprint"), std::string::npos);

  auto syntax = ChatTemplate::parse("{% for m in messages %}{{ m.content }}", "t", "", "");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.error().kind, TemplateErrorKind::syntax);
  EXPECT_NE(syntax.error().message.find("endfor"), std::string::npos) << syntax.error().message;

  for (const char* bad : {"{{", "{% if %}", "{{ 'unterminated }}", "{# open", "{{ a[ }}", "{{ 1 + }}", "{% endif %}",
                          "{{ a.1.b.( }}", "{% set %}", "{% for in x %}{% endfor %}", "{{ f(a=1, 2) }}", "{{ @ }}"}) {
    EXPECT_FALSE(ChatTemplate::parse(bad, "t", "", "").ok()) << bad;
  }
}

TEST(ChatTemplate, RenderFailuresAreErrors) {
  auto undefined_use = ChatTemplate::parse("{{ messages[5].role }}", "t", "", "");
  ASSERT_TRUE(undefined_use.ok());
  auto r = render_chat(*undefined_use, {{"user", "x"}}, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, TemplateErrorKind::render);

  auto loops = ChatTemplate::parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                                   "t", "", "");
  ASSERT_TRUE(loops.ok());
  auto l = render_chat(*loops, {}, false);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message.find("iteration limit"), std::string::npos) << l.error().message;

  auto big = ChatTemplate::parse("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "t", "", "");
  ASSERT_TRUE(big.ok());
  auto b = render_chat(*big, {}, false);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("output limit"), std::string::npos) << b.error().message;

  std::string deep(5000, '(');
  deep = "{{ " + deep + "1" + std::string(5000, ')') + " }}";
  auto d = ChatTemplate::parse(deep, "t", "", "");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().kind, TemplateErrorKind::unsupported);

  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  auto n = ChatTemplate::parse(nested, "t", "", "");
  ASSERT_FALSE(n.ok());

  // Long operator and filter chains build tall trees without deep parser recursion; they are refused too.
  for (const std::string& op : {std::string(" + 1"), std::string(" | trim"), std::string(".a"), std::string(" ~ 'x'")}) {
    std::string chain = "{{ 1";
    for (int i = 0; i < 100000; ++i) chain += op;
    auto c = ChatTemplate::parse(chain + " }}", "t", "", "");
    ASSERT_FALSE(c.ok()) << op;
    EXPECT_EQ(c.error().kind, TemplateErrorKind::unsupported);
  }
  std::string fine = "{{ 1";
  for (int i = 0; i < 100; ++i) fine += " + 1";
  auto f = ChatTemplate::parse(fine + " }}", "t", "", "");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*render_chat(*f, {}, false), "101");
}

TEST(ChatTemplate, MutatedTemplatesNeverCrash) {
  // Random edits of the shipped templates: each must parse and render to a value or an error, nothing else.
  std::mt19937 rng(5);
  const std::string alphabet = "{}%#-+()[]'\"|.,=~:*/ \nabcx0123";
  const std::vector<ChatTurn> conversation{{"system", "s"}, {"user", "u"}, {"assistant", "a"}, {"user", "v"}};
  std::size_t rendered = 0;
  for (std::string_view name : builtin_template_names()) {
    const std::string original(*builtin_template_source(name));
    for (int round = 0; round < 400; ++round) {
      std::string text = original;
      for (int edits = 1 + static_cast<int>(rng() % 4); edits > 0 && !text.empty(); --edits) {
        const std::size_t at = rng() % text.size();
        switch (rng() % 3) {
          case 0: text.erase(at, 1 + rng() % 8); break;
          case 1: text.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
          default: text[at] = alphabet[rng() % alphabet.size()];
        }
      }
      auto t = ChatTemplate::parse(text, "fuzz", "<s>", "</s>");
      if (!t.ok()) {
        EXPECT_FALSE(t.error().message.empty());
        continue;
      }
      auto r = render_chat(*t, conversation, true);
      rendered += r.ok();
    }
  }
  EXPECT_GT(rendered, 0u);
}

}  // namespace
}  // namespace sluice
