#include "gateway/api/response_format.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

#include "gateway/core/target.h"

namespace sluice {
namespace {

CompletionMeta chat_meta() { return CompletionMeta{"chatcmpl-1", 1700000000, "smol", Endpoint::chat_completions}; }
CompletionMeta text_meta() { return CompletionMeta{"cmpl-1", 1700000000, "smol", Endpoint::completions}; }

class Json {
 public:
  explicit Json(const std::string& text) {
    auto err = parser_.parse(text).get(root_);
    EXPECT_FALSE(err) << simdjson::error_message(err) << " in " << text;
  }
  simdjson::dom::element root() const { return root_; }
  std::string str(const char* pointer) const {
    std::string_view s;
    EXPECT_FALSE(root_.at_pointer(pointer).get(s)) << pointer;
    return std::string(s);
  }
  std::int64_t num(const char* pointer) const {
    std::int64_t v = 0;
    EXPECT_FALSE(root_.at_pointer(pointer).get(v)) << pointer;
    return v;
  }
  bool is_null(const char* pointer) const { return root_.at_pointer(pointer).is_null(); }
  bool has(const char* pointer) const {
    simdjson::dom::element el;
    return !root_.at_pointer(pointer).get(el);
  }
  std::size_t size(const char* pointer) const {
    simdjson::dom::array arr;
    EXPECT_FALSE(root_.at_pointer(pointer).get(arr)) << pointer;
    return arr.size();
  }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

TEST(ResponseFormatTest, ChatCompletion) {
  const Json j(format_completion(chat_meta(), "Hello \"there\"\n", "stop", Usage{12, 3}));
  EXPECT_EQ(j.str("/id"), "chatcmpl-1");
  EXPECT_EQ(j.str("/object"), "chat.completion");
  EXPECT_EQ(j.num("/created"), 1700000000);
  EXPECT_EQ(j.str("/model"), "smol");
  EXPECT_EQ(j.size("/choices"), 1u);
  EXPECT_EQ(j.num("/choices/0/index"), 0);
  EXPECT_EQ(j.str("/choices/0/message/role"), "assistant");
  EXPECT_EQ(j.str("/choices/0/message/content"), "Hello \"there\"\n");
  EXPECT_EQ(j.str("/choices/0/finish_reason"), "stop");
  EXPECT_TRUE(j.is_null("/choices/0/logprobs"));
  EXPECT_EQ(j.num("/usage/prompt_tokens"), 12);
  EXPECT_EQ(j.num("/usage/completion_tokens"), 3);
  EXPECT_EQ(j.num("/usage/total_tokens"), 15);
}

TEST(ResponseFormatTest, CompletionWithSeveralChoices) {
  const Json j(format_completion(text_meta(), {{"a", "stop"}, {"b", "length"}}, Usage{1, 2}));
  EXPECT_EQ(j.str("/object"), "text_completion");
  EXPECT_EQ(j.size("/choices"), 2u);
  EXPECT_EQ(j.str("/choices/0/text"), "a");
  EXPECT_EQ(j.num("/choices/1/index"), 1);
  EXPECT_EQ(j.str("/choices/1/text"), "b");
  EXPECT_EQ(j.str("/choices/1/finish_reason"), "length");
  EXPECT_FALSE(j.has("/choices/0/message"));
  EXPECT_EQ(j.num("/usage/total_tokens"), 3);
}

TEST(ResponseFormatTest, ChatStreamChunks) {
  const Json first(format_stream_chunk(chat_meta(), "", "", true));
  EXPECT_EQ(first.str("/object"), "chat.completion.chunk");
  EXPECT_EQ(first.str("/choices/0/delta/role"), "assistant");
  EXPECT_EQ(first.str("/choices/0/delta/content"), "");
  EXPECT_TRUE(first.is_null("/choices/0/finish_reason"));
  EXPECT_FALSE(first.has("/usage"));

  const Json middle(format_stream_chunk(chat_meta(), "wor\xC3\xB6ld", "", false));
  EXPECT_FALSE(middle.has("/choices/0/delta/role"));
  EXPECT_EQ(middle.str("/choices/0/delta/content"), "wor\xC3\xB6ld");
  EXPECT_TRUE(middle.is_null("/choices/0/finish_reason"));

  const std::string last_text = format_stream_chunk(chat_meta(), "", "length", false, 2);
  const Json last(last_text);
  EXPECT_FALSE(last.has("/choices/0/delta/content"));
  EXPECT_NE(last_text.find(R"("delta":{})"), std::string::npos) << last_text;
  EXPECT_EQ(last.str("/choices/0/finish_reason"), "length");
  EXPECT_EQ(last.num("/choices/0/index"), 2);
}

TEST(ResponseFormatTest, TextCompletionStreamChunks) {
  const Json chunk(format_stream_chunk(text_meta(), "abc", "", true));
  EXPECT_EQ(chunk.str("/object"), "text_completion");
  EXPECT_EQ(chunk.str("/choices/0/text"), "abc");
  EXPECT_FALSE(chunk.has("/choices/0/delta"));
  EXPECT_TRUE(chunk.is_null("/choices/0/finish_reason"));
  const Json last(format_stream_chunk(text_meta(), "", "stop", false));
  EXPECT_EQ(last.str("/choices/0/text"), "");
  EXPECT_EQ(last.str("/choices/0/finish_reason"), "stop");
}

TEST(ResponseFormatTest, UsageOnlyChunk) {
  const Json chat(format_usage_chunk(chat_meta(), Usage{7, 8}));
  EXPECT_EQ(chat.str("/object"), "chat.completion.chunk");
  EXPECT_EQ(chat.size("/choices"), 0u);
  EXPECT_EQ(chat.num("/usage/prompt_tokens"), 7);
  EXPECT_EQ(chat.num("/usage/completion_tokens"), 8);
  EXPECT_EQ(chat.num("/usage/total_tokens"), 15);
  const Json text(format_usage_chunk(text_meta(), Usage{1, 1}));
  EXPECT_EQ(text.str("/object"), "text_completion");
  EXPECT_EQ(text.size("/choices"), 0u);
}

TEST(ResponseFormatTest, ModelList) {
  const Json j(format_model_list({"smol", "gpt-4o", "we\"ird"}, 1700000001));
  EXPECT_EQ(j.str("/object"), "list");
  EXPECT_EQ(j.size("/data"), 3u);
  EXPECT_EQ(j.str("/data/0/id"), "smol");
  EXPECT_EQ(j.str("/data/1/object"), "model");
  EXPECT_EQ(j.num("/data/1/created"), 1700000001);
  EXPECT_EQ(j.str("/data/2/id"), "we\"ird");
  EXPECT_EQ(j.str("/data/2/owned_by"), "sluice");
  EXPECT_EQ(Json(format_model_list({}, 0)).size("/data"), 0u);
}

}  // namespace
}  // namespace sluice
