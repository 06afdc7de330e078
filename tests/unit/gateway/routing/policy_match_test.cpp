#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "gateway/routing/policy.h"

namespace sluice {
namespace {

std::string route(const std::string& name, const std::string& model) {
  return "  - name: " + name + "\n    model: \"" + model + "\"\n    targets: [{provider: local}]\n";
}

std::shared_ptr<const Policy> build(const std::vector<std::pair<std::string, std::string>>& files) {
  auto r = parse_policy_texts(files, {});
  if (!r.ok()) {
    for (const auto& e : r.error()) ADD_FAILURE() << e.to_string();
    return nullptr;
  }
  return r.value();
}

TEST(GlobMatchTest, Table) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"*", "", true},
      {"*", "anything", true},
      {"", "", true},
      {"", "a", false},
      {"gpt-4o", "gpt-4o", true},
      {"gpt-4o", "gpt-4o-mini", false},
      {"gpt-*", "gpt-4o-mini", true},
      {"gpt-*", "gpt-", true},
      {"gpt-*", "gpt", false},
      {"*-mini", "gpt-4o-mini", true},
      {"*-mini", "gpt-4o-minis", false},
      {"gpt-?o", "gpt-4o", true},
      {"gpt-?o", "gpt-o", false},
      {"gpt-?o", "gpt-44o", false},
      {"?", "é", true},  // one character, two bytes
      {"??", "é", false},
      {"a*b*c", "aXbYc", true},
      {"a*b*c", "abc", true},
      {"a*b*c", "aXbY", false},
      {"*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
      {"meta-llama/*", "meta-llama/Llama-3.1-8B-Instruct", true},
      {"**", "x", true},
      {"*?", "", false},
      {"*?", "x", true},
      {"Gpt-*", "gpt-4", false},  // case matters
  };
  for (const Case& c : cases)
    EXPECT_EQ(glob_match(c.pattern, c.text), c.match) << "pattern '" << c.pattern << "' text '" << c.text << "'";
}

TEST(GlobMatchTest, LongPathologicalInputStaysFast) {
  const std::string text(20000, 'a');
  const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match(pattern, text));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(PolicyMatchTest, ExactBeatsGlobWhereverItIs) {
  // The glob comes first in file-name order, the exact route last: the exact one still wins.
  auto p = build({{"b.yaml", "routes:\n" + route("exact", "gpt-4o")},
                  {"a.yaml", "routes:\n" + route("all-gpt", "gpt-*") + route("any", "*")}});
  ASSERT_NE(p, nullptr);
  ASSERT_NE(p->match("gpt-4o"), nullptr);
  EXPECT_EQ(p->match("gpt-4o")->name, "exact");
  EXPECT_EQ(p->match("gpt-4o-mini")->name, "all-gpt");
  EXPECT_EQ(p->match("llama")->name, "any");
}

TEST(PolicyMatchTest, FirstGlobInFileNameThenFileOrder) {
  auto p = build({{"20.yaml", "routes:\n" + route("late", "gpt-4*")},
                  {"10.yaml", "routes:\n" + route("broad", "gpt-*") + route("narrow", "gpt-4o*")}});
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->routes.size(), 3u);
  EXPECT_EQ(p->routes[0].name, "broad");
  EXPECT_EQ(p->routes[1].name, "narrow");
  EXPECT_EQ(p->routes[2].name, "late");
  // All three match; the first in file-name order, then file order, wins.
  EXPECT_EQ(p->match("gpt-4o-mini")->name, "broad");
}

TEST(PolicyMatchTest, NoMatchIsNull) {
  auto p = build({{"a.yaml", "routes:\n" + route("one", "gpt-4o") + route("two", "claude-?")}});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->match("gpt-4"), nullptr);
  EXPECT_EQ(p->match("claude-10"), nullptr);
  EXPECT_EQ(p->match(""), nullptr);
  EXPECT_EQ(p->match("claude-3")->name, "two");
}

TEST(PolicyMatchTest, WorksOnAHandBuiltPolicy) {
  Policy p;
  Route glob;
  glob.name = "g";
  glob.model = "*";
  glob.is_glob = true;
  Route exact;
  exact.name = "e";
  exact.model = "m";
  p.routes = {glob, exact};
  EXPECT_EQ(p.match("m")->name, "e");
  EXPECT_EQ(p.match("n")->name, "g");
}

}  // namespace
}  // namespace sluice
