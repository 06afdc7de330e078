#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

#include "gateway/api/request.h"

namespace sluice {
namespace {

ApiRequest parsed(const std::string& body, Endpoint endpoint = Endpoint::chat_completions) {
  auto r = parse_request(endpoint, body);
  EXPECT_TRUE(r.ok()) << r.error().message << " in " << body;
  return r.ok() ? std::move(r).value() : ApiRequest{};
}

// Rewrites `body` and checks that the output is valid JSON that parse_request accepts with the new model.
std::string rewrite(const std::string& body, std::string_view model, bool keep_vllm = false,
                    Endpoint endpoint = Endpoint::chat_completions) {
  const ApiRequest req = parsed(body, endpoint);
  std::string out = rewrite_for_upstream(body, req, model, keep_vllm);
  simdjson::dom::parser parser;
  simdjson::dom::element el;
  EXPECT_FALSE(parser.parse(out).get(el)) << out;
  auto again = parse_request(endpoint, out);
  EXPECT_TRUE(again.ok()) << (again.ok() ? "" : again.error().message) << " in " << out;
  if (again.ok()) {
    EXPECT_EQ(again->model, model);
  }
  return out;
}

bool has_key(const std::string& json, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(json).get(obj)) return false;
  simdjson::dom::element el;
  return !obj[key].get(el);
}

TEST(RewriteTest, ReplacesOnlyTheModel) {
  const std::string body = R"({ "model" : "small" , "messages":[{"role":"user","content":"\"model\": \"x\""}]})";
  EXPECT_EQ(rewrite(body, "provider/large-v2"),
            R"({ "model" : "provider/large-v2" , "messages":[{"role":"user","content":"\"model\": \"x\""}]})");
}

TEST(RewriteTest, EscapesTheNewModel) {
  const std::string body = R"({"messages":[{"role":"user","content":"x"}],"model":"a"})";
  const std::string model = "we\"ird\\m\xC3\xB6" "del\n";
  EXPECT_EQ(rewrite(body, model),
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":\"we\\\"ird\\\\m\xC3\xB6" "del\\n\"}");
}

TEST(RewriteTest, ReplacesAnEscapedOriginalModel) {
  const std::string body = R"({"model":"a\u00e9\"b","messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(rewrite(body, "z"), R"({"model":"z","messages":[{"role":"user","content":"x"}]})");
}

TEST(RewriteTest, AddsStreamOptionsWhenAbsent) {
  const std::string body = "{\"model\":\"a\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n";
  const std::string out = rewrite(body, "b");
  EXPECT_EQ(out, "{\"model\":\"b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"stream_options\":{\"include_usage\":true}}\n");
  EXPECT_TRUE(parse_request(Endpoint::chat_completions, out)->include_usage);
}

TEST(RewriteTest, ForcesIncludeUsageOnWhenFalseOrNull) {
  for (const char* options : {R"({"include_usage":false})", R"({})", "null"}) {
    const std::string body = std::string(R"({"model":"a","stream":true,"stream_options": )") + options +
                             R"( ,"messages":[{"role":"user","content":"x"}]})";
    const std::string out = rewrite(body, "a");
    EXPECT_EQ(out, R"({"model":"a","stream":true,"stream_options":{"include_usage":true} ,"messages":[{"role":"user","content":"x"}]})");
    EXPECT_TRUE(parse_request(Endpoint::chat_completions, out)->include_usage);
  }
}

TEST(RewriteTest, LeavesIncludeUsageTrueAlone) {
  const std::string body =
      R"({"model":"a","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(rewrite(body, "a"), body);
}

TEST(RewriteTest, DoesNotAddStreamOptionsWithoutStream) {
  const std::string body = R"({"model":"a","stream":false,"messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(rewrite(body, "a"), body);
}

TEST(RewriteTest, DropsVllmMembersFirstMiddleAndLast) {
  const std::string first = R"({"top_k":5, "model":"a","messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(rewrite(first, "a"), R"({"model":"a","messages":[{"role":"user","content":"x"}]})");

  const std::string middle = R"({"model":"a" , "min_p" : 0.1 , "messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(rewrite(middle, "a"), R"({"model":"a" , "messages":[{"role":"user","content":"x"}]})");

  const std::string last = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\n"
                           "  \"stop_token_ids\": [1, 2]\n}";
  EXPECT_EQ(rewrite(last, "a"), "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]\n}");
}

TEST(RewriteTest, DropsNeighbouringVllmMembersAtTheEnd) {
  const std::string body = R"({"model":"a","messages":[{"role":"user","content":"x"}],"temperature":1,)"
                           R"("top_k":5,"min_p":0.5,"repetition_penalty":1.1,"min_tokens":1,)"
                           R"("stop_token_ids":[2],"include_stop_str_in_output":true})";
  const std::string out = rewrite(body, "a");
  EXPECT_EQ(out, R"({"model":"a","messages":[{"role":"user","content":"x"}],"temperature":1})");
  for (const char* k : {"top_k", "min_p", "repetition_penalty", "min_tokens", "stop_token_ids",
                        "include_stop_str_in_output"})
    EXPECT_FALSE(has_key(out, k)) << k;
}

TEST(RewriteTest, DropsVllmMembersAroundTheModelAndAddsStreamOptions) {
  const std::string body =
      R"({"min_p":0.5,"model":"a","top_k":3,"stream":true,"messages":[{"role":"user","content":"x"}],"min_tokens":2})";
  const std::string out = rewrite(body, "b");
  EXPECT_EQ(out, R"({"model":"b","stream":true,"messages":[{"role":"user","content":"x"}],)"
                 R"("stream_options":{"include_usage":true}})");
}

TEST(RewriteTest, KeepsVllmMembersForVllmProviders) {
  const std::string body = R"({"model":"a","top_k":5,"messages":[{"role":"user","content":"x"}],"min_p":0.1})";
  EXPECT_EQ(rewrite(body, "b", /*keep_vllm=*/true),
            R"({"model":"b","top_k":5,"messages":[{"role":"user","content":"x"}],"min_p":0.1})");
}

TEST(RewriteTest, RewritesCompletionsBodies) {
  const std::string body = R"({"prompt":[[1,2]],"model":"a","stream":true,"stream_options":{"include_usage":false},"top_k":2})";
  EXPECT_EQ(rewrite(body, "c", false, Endpoint::completions),
            R"({"prompt":[[1,2]],"model":"c","stream":true,"stream_options":{"include_usage":true}})");
}

}  // namespace
}  // namespace sluice
