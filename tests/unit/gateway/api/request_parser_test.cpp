#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/api/request.h"

namespace sluice {
namespace {

const std::string kUserMessage = R"({"role":"user","content":"hi"})";

// A valid chat body with `extra` members appended (`extra` starts without a comma).
std::string chat(const std::string& extra = {}) {
  return R"({"model":"m","messages":[)" + kUserMessage + "]" + (extra.empty() ? "" : "," + extra) + "}";
}
std::string chat_messages(const std::string& messages) {
  return R"({"model":"m","messages":)" + messages + "}";
}
std::string completion(const std::string& extra = {}) {
  return R"({"model":"m","prompt":"hello")" + (extra.empty() ? "" : "," + extra) + "}";
}
std::string completion_prompt(const std::string& prompt) { return R"({"model":"m","prompt":)" + prompt + "}"; }

std::string nested_arrays(int levels) {
  return std::string(static_cast<std::size_t>(levels), '[') + std::string(static_cast<std::size_t>(levels), ']');
}

std::string many_logit_bias(int n) {
  std::string s = R"("logit_bias":{)";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::string("\"") + std::to_string(i) + "\":1";
  return s + "}";
}

std::string many_stop_ids(int n) {
  std::string s = R"("stop_token_ids":[)";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(i);
  return s + "]";
}

struct BadCase {
  const char* name;
  Endpoint endpoint;
  std::string body;
  std::string message;  // a substring of the expected message
  std::string param;    // the expected param exactly
};

constexpr Endpoint kChat = Endpoint::chat_completions;
constexpr Endpoint kText = Endpoint::completions;

std::vector<BadCase> bad_cases() {
  return {
      // The body as a whole.
      {"empty body", kChat, "", "must be a JSON object", ""},
      {"blank body", kChat, "  \n", "must be a JSON object", ""},
      {"array body", kChat, "[1,2]", "must be a JSON object", ""},
      {"string body", kChat, R"("model")", "must be a JSON object", ""},
      {"unclosed object", kChat, R"({"model":"m")", "not valid JSON", ""},
      {"trailing comma", kChat, R"({"model":"m",})", "not valid JSON", ""},
      {"missing comma", kChat, R"({"model":"m" "n":1})", "not valid JSON", ""},
      {"second document", kChat, chat() + " {}", "content after the JSON object", ""},
      {"extra brace", kChat, chat() + "}", "content after the JSON object", ""},
      {"unterminated string", kChat, R"({"model":"m)", "not valid JSON", ""},
      {"invalid utf-8", kChat, chat("\"user\":\"a\xFF\""), "not valid JSON", ""},
      {"bad literal in unknown field", kChat, chat(R"("foo":tru)"), "not valid JSON", ""},
      {"NaN number", kChat, chat(R"("foo":NaN)"), "not valid JSON", ""},
      {"mismatched brackets", kChat, chat(R"("foo":[1,2})"), "not valid JSON", ""},
      {"duplicate model", kChat, R"({"model":"a","messages":[{"role":"user","content":"x"}],"model":"b"})",
       "\"model\" more than once", "model"},
      {"duplicate via escape", kChat, R"({"model":"a","mo\u0064el":"b","messages":[{"role":"user","content":"x"}]})",
       "\"model\" more than once", "model"},
      {"duplicate in message", kChat, chat_messages(R"([{"role":"user","content":"x","role":"system"}])"),
       "messages[0] has the key \"role\" more than once", "messages[0]"},
      {"duplicate in unknown field", kChat, chat(R"("tools":[{"a":1,"a":2}])"), "\"a\" more than once", ""},
      {"too deep", kChat, chat("\"foo\":" + nested_arrays(64)), "deeper than 64", ""},
      {"far too deep", kChat, chat("\"foo\":" + nested_arrays(100000)), "deeper than 64", ""},

      // model and messages.
      {"model missing", kChat, R"({"messages":[{"role":"user","content":"x"}]})", "model is required", "model"},
      {"model empty", kChat, R"({"model":"","messages":[{"role":"user","content":"x"}]})", "non-empty string", "model"},
      {"model number", kChat, R"({"model":5,"messages":[{"role":"user","content":"x"}]})", "model must be a string",
       "model"},
      {"model null", kChat, R"({"model":null,"messages":[{"role":"user","content":"x"}]})",
       "model must be a string", "model"},
      {"messages missing", kChat, R"({"model":"m"})", "messages is required", "messages"},
      {"messages empty", kChat, chat_messages("[]"), "non-empty array", "messages"},
      {"messages null", kChat, chat_messages("null"), "non-empty array", "messages"},
      {"messages string", kChat, chat_messages(R"("hi")"), "messages must be a non-empty array", "messages"},
      {"message not object", kChat, chat_messages("[5]"), "messages[0] must be an object", "messages[0]"},
      {"role missing", kChat, chat_messages(R"([{"content":"x"}])"), "messages[0].role is required",
       "messages[0].role"},
      {"role unknown", kChat,
       chat_messages(R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"wizard","content":"c"}])"),
       "messages[2].role must be one of", "messages[2].role"},
      {"role number", kChat, chat_messages(R"([{"role":1,"content":"x"}])"), "messages[0].role must be a string",
       "messages[0].role"},
      {"user content missing", kChat, chat_messages(R"([{"role":"user"}])"),
       "messages[0].content is required for role user", "messages[0].content"},
      {"system content null", kChat, chat_messages(R"([{"role":"system","content":null}])"),
       "content is required for role system", "messages[0].content"},
      {"content number", kChat, chat_messages(R"([{"role":"user","content":5}])"),
       "must be a string, an array of content parts, or null", "messages[0].content"},
      {"content empty array", kChat, chat_messages(R"([{"role":"user","content":[]}])"),
       "must not be an empty array", "messages[0].content"},
      {"content part not object", kChat, chat_messages(R"([{"role":"user","content":["x"]}])"),
       "messages[0].content[0] must be an object", "messages[0].content[0]"},
      {"content part without type", kChat, chat_messages(R"([{"role":"user","content":[{"text":"x"}]}])"),
       "messages[0].content[0].type is required", "messages[0].content[0].type"},
      {"text part without text", kChat,
       chat_messages(R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text"}]}])"),
       "messages[0].content[1].text must be a string", "messages[0].content[1].text"},
      {"text part text number", kChat, chat_messages(R"([{"role":"user","content":[{"type":"text","text":1}]}])"),
       "messages[0].content[0].text must be a string", "messages[0].content[0].text"},
      {"name number", kChat, chat_messages(R"([{"role":"user","content":"x","name":5}])"),
       "messages[0].name must be a string", "messages[0].name"},
      {"tool_calls object", kChat, chat_messages(R"([{"role":"assistant","tool_calls":{}}])"),
       "messages[0].tool_calls must be an array", "messages[0].tool_calls"},

      // Sampling parameters.
      {"temperature high", kChat, chat(R"("temperature":2.5)"), "temperature must be a number in [0, 2]",
       "temperature"},
      {"temperature negative", kChat, chat(R"("temperature":-0.1)"), "temperature must be a number in [0, 2]",
       "temperature"},
      {"temperature string", kChat, chat(R"("temperature":"1")"), "temperature must be a number", "temperature"},
      {"top_p zero", kChat, chat(R"("top_p":0)"), "top_p must be a number in (0, 1]", "top_p"},
      {"top_p high", kChat, chat(R"("top_p":1.01)"), "top_p must be a number in (0, 1]", "top_p"},
      {"n zero", kChat, chat(R"("n":0)"), "n must be an integer in [1, 128]", "n"},
      {"n unbounded", kChat, chat(R"("n":100000)"), "n must be an integer in [1, 128]", "n"},
      {"n fraction", kChat, chat(R"("n":1.5)"), "n must be an integer", "n"},
      {"max_tokens zero", kChat, chat(R"("max_tokens":0)"), "max_tokens must be an integer >= 1", "max_tokens"},
      {"max_tokens string", kChat, chat(R"("max_tokens":"10")"), "max_tokens must be an integer", "max_tokens"},
      {"max_tokens exponent", kChat, chat(R"("max_tokens":1e3)"), "max_tokens must be an integer", "max_tokens"},
      {"max_tokens huge", kChat, chat(R"("max_tokens":99999999999999999999)"), "max_tokens must be an integer",
       "max_tokens"},
      {"max_completion_tokens negative", kChat, chat(R"("max_completion_tokens":-1)"),
       "max_completion_tokens must be an integer >= 1", "max_completion_tokens"},
      {"stop empty string", kChat, chat(R"("stop":"")"), "stop must be a non-empty string", "stop"},
      {"stop number", kChat, chat(R"("stop":5)"), "stop must be a non-empty string", "stop"},
      {"stop five", kChat, chat(R"("stop":["a","b","c","d","e"])"), "at most 4", "stop"},
      {"stop empty element", kChat, chat(R"("stop":["a",""])"), "stop[1] must not be empty", "stop[1]"},
      {"stop non-string element", kChat, chat(R"("stop":[1])"), "stop[0] must be a string", "stop[0]"},
      {"seed fraction", kChat, chat(R"("seed":1.5)"), "seed must be a 64-bit signed integer", "seed"},
      {"seed too large", kChat, chat(R"("seed":18446744073709551615)"), "seed must be a 64-bit signed integer",
       "seed"},
      {"stream string", kChat, chat(R"("stream":"true")"), "stream must be a boolean", "stream"},
      {"stream_options without stream", kChat, chat(R"("stream_options":{"include_usage":true})"),
       "only allowed when stream is true", "stream_options"},
      {"stream_options number", kChat, chat(R"("stream":true,"stream_options":5)"),
       "stream_options must be an object", "stream_options"},
      {"include_usage string", kChat, chat(R"("stream":true,"stream_options":{"include_usage":"yes"})"),
       "stream_options.include_usage must be a boolean", "stream_options.include_usage"},
      {"presence_penalty high", kChat, chat(R"("presence_penalty":3)"), "must be a number in [-2, 2]",
       "presence_penalty"},
      {"frequency_penalty low", kChat, chat(R"("frequency_penalty":-2.5)"), "must be a number in [-2, 2]",
       "frequency_penalty"},
      {"logit_bias array", kChat, chat(R"("logit_bias":[])"), "logit_bias must be an object", "logit_bias"},
      {"logit_bias word key", kChat, chat(R"("logit_bias":{"abc":1})"), "keys must be token ids", "logit_bias.abc"},
      {"logit_bias negative key", kChat, chat(R"("logit_bias":{"-1":1})"), "keys must be token ids",
       "logit_bias.-1"},
      {"logit_bias value", kChat, chat(R"("logit_bias":{"5":101})"), "must be a number in [-100, 100]",
       "logit_bias.5"},
      {"logit_bias too many", kChat, chat(many_logit_bias(301)), "at most 300 entries", "logit_bias"},
      {"logit_bias same token", kChat, chat(R"("logit_bias":{"1":1,"01":2})"), "token 1 more than once",
       "logit_bias"},
      {"chat logprobs integer", kChat, chat(R"("logprobs":1)"), "logprobs must be a boolean", "logprobs"},
      {"top_logprobs high", kChat, chat(R"("logprobs":true,"top_logprobs":21)"),
       "top_logprobs must be an integer in [0, 20]", "top_logprobs"},
      {"top_logprobs without logprobs", kChat, chat(R"("top_logprobs":2)"), "requires logprobs", "top_logprobs"},
      {"user number", kChat, chat(R"("user":5)"), "user must be a string", "user"},

      // vLLM extras.
      {"top_k zero", kChat, chat(R"("top_k":0)"), "top_k must be -1", "top_k"},
      {"top_k below -1", kChat, chat(R"("top_k":-2)"), "top_k must be an integer", "top_k"},
      {"min_p high", kChat, chat(R"("min_p":1.5)"), "min_p must be a number in [0, 1]", "min_p"},
      {"repetition_penalty zero", kChat, chat(R"("repetition_penalty":0)"), "must be a number in (0, 2]",
       "repetition_penalty"},
      {"repetition_penalty high", kChat, chat(R"("repetition_penalty":2.5)"), "must be a number in (0, 2]",
       "repetition_penalty"},
      {"min_tokens negative", kChat, chat(R"("min_tokens":-1)"), "min_tokens must be an integer", "min_tokens"},
      {"min_tokens above max_tokens", kChat, chat(R"("min_tokens":10,"max_tokens":5)"),
       "min_tokens must not exceed max_tokens", "min_tokens"},
      {"stop_token_ids negative", kChat, chat(R"("stop_token_ids":[1,-1])"), "stop_token_ids[1] must be a token id",
       "stop_token_ids[1]"},
      {"stop_token_ids too many", kChat, chat(many_stop_ids(65)), "at most 64", "stop_token_ids"},
      {"stop_token_ids string", kChat, chat(R"("stop_token_ids":"1")"), "must be an array", "stop_token_ids"},
      {"include_stop_str number", kChat, chat(R"("include_stop_str_in_output":1)"), "must be a boolean",
       "include_stop_str_in_output"},

      // Fields passed through must still have their shape.
      {"tools object", kChat, chat(R"("tools":{})"), "tools must be an array", "tools"},
      {"tools element", kChat, chat(R"("tools":[1])"), "tools[0] must be an object", "tools[0]"},
      {"response_format string", kChat, chat(R"("response_format":"json")"), "response_format must be an object",
       "response_format"},
      {"response_format without type", kChat, chat(R"("response_format":{})"), "must have a string \"type\"",
       "response_format.type"},
      {"tool_choice number", kChat, chat(R"("tool_choice":5)"), "tool_choice must be a string or an object",
       "tool_choice"},
      {"parallel_tool_calls string", kChat, chat(R"("parallel_tool_calls":"yes")"), "must be a boolean",
       "parallel_tool_calls"},

      // Completions.
      {"prompt missing", kText, R"({"model":"m"})", "prompt is required", "prompt"},
      {"prompt empty string", kText, completion_prompt(R"("")"), "prompt must not be empty", "prompt"},
      {"prompt empty array", kText, completion_prompt("[]"), "prompt must not be empty", "prompt"},
      {"prompt mixed", kText, completion_prompt(R"([1,"a"])"), "prompt[1] does not match", "prompt[1]"},
      {"prompt empty inner", kText, completion_prompt("[[1],[]]"), "prompt[1] must not be empty", "prompt[1]"},
      {"prompt negative id", kText, completion_prompt("[-1]"), "prompt[0] must be a token id", "prompt[0]"},
      {"prompt id too large", kText, completion_prompt("[2147483648]"), "prompt[0] must be a token id", "prompt[0]"},
      {"prompt fraction id", kText, completion_prompt("[[1,2.5]]"), "prompt[0][1] must be a token id",
       "prompt[0][1]"},
      {"prompt number", kText, completion_prompt("5"), "prompt must be a non-empty string", "prompt"},
      {"prompt object", kText, completion_prompt(R"({"a":1})"), "prompt must be a non-empty string", "prompt"},
      {"prompt array of objects", kText, completion_prompt(R"([{"a":1}])"), "prompt must be a non-empty string",
       "prompt[0]"},
      {"completions logprobs high", kText, completion(R"("logprobs":6)"), "logprobs must be an integer in [0, 5]",
       "logprobs"},
      {"completions logprobs bool", kText, completion(R"("logprobs":true)"), "logprobs must be an integer",
       "logprobs"},
      {"best_of high", kText, completion(R"("best_of":21)"), "best_of must be an integer in [1, 20]", "best_of"},
      {"best_of below n", kText, completion(R"("best_of":1,"n":2)"), "best_of must be >= n", "best_of"},
      {"echo string", kText, completion(R"("echo":"yes")"), "echo must be a boolean", "echo"},
      {"suffix number", kText, completion(R"("suffix":5)"), "suffix must be a string", "suffix"},
  };
}

TEST(RequestParserTest, RejectsBadInputsWithFieldAndRule) {
  const auto cases = bad_cases();
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_request(c.endpoint, c.body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().type, "invalid_request_error");
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().param, c.param) << r.error().message;
  }
}

TEST(RequestParserTest, ParsesEveryChatParameter) {
  const std::string body = R"({
    "model": "llama-3",
    "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], "name": "bob"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]},
      {"role": "tool", "content": "42", "tool_call_id": "c1"}
    ],
    "stream": true, "stream_options": {"include_usage": true},
    "max_tokens": 100, "max_completion_tokens": 50,
    "temperature": 0.5, "top_p": 1, "n": 3, "stop": ["END", "STOP"], "seed": -7,
    "presence_penalty": -2, "frequency_penalty": 1.5,
    "logit_bias": {"50256": -100, "7": 2.5},
    "logprobs": true, "top_logprobs": 20, "user": "u-1",
    "top_k": -1, "min_p": 0.05, "repetition_penalty": 1.1, "min_tokens": 5,
    "stop_token_ids": [2, 128001], "include_stop_str_in_output": true
  })";
  auto r = parse_request(Endpoint::chat_completions, body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ApiRequest& q = *r;
  EXPECT_EQ(q.endpoint, Endpoint::chat_completions);
  EXPECT_EQ(q.model, "llama-3");
  ASSERT_EQ(q.messages.size(), 4u);
  EXPECT_EQ(q.messages[0].role, "system");
  EXPECT_EQ(q.messages[0].content, "be brief");
  EXPECT_EQ(q.messages[1].content, "one\ntwo");
  EXPECT_EQ(q.messages[1].name, "bob");
  EXPECT_EQ(q.messages[2].role, "assistant");
  EXPECT_EQ(q.messages[2].content, "");
  EXPECT_EQ(q.messages[3].content, "42");
  EXPECT_TRUE(q.stream);
  EXPECT_TRUE(q.include_usage);
  EXPECT_EQ(q.max_tokens, 50);  // max_completion_tokens wins
  EXPECT_EQ(q.temperature, 0.5);
  EXPECT_EQ(q.top_p, 1.0);
  EXPECT_EQ(q.n, 3);
  EXPECT_EQ(q.stop, (std::vector<std::string>{"END", "STOP"}));
  EXPECT_EQ(q.seed, -7);
  EXPECT_EQ(q.presence_penalty, -2.0);
  EXPECT_EQ(q.frequency_penalty, 1.5);
  EXPECT_EQ(q.logit_bias, (std::vector<std::pair<std::int32_t, double>>{{50256, -100.0}, {7, 2.5}}));
  EXPECT_TRUE(q.logprobs);
  EXPECT_EQ(q.top_logprobs, 20);
  EXPECT_EQ(q.user, "u-1");
  EXPECT_EQ(q.top_k, -1);
  EXPECT_EQ(q.min_p, 0.05);
  EXPECT_EQ(q.repetition_penalty, 1.1);
  EXPECT_EQ(q.min_tokens, 5);
  EXPECT_EQ(q.stop_token_ids, (std::vector<std::int32_t>{2, 128001}));
  EXPECT_TRUE(q.include_stop_str_in_output);
  EXPECT_EQ(q.prompt_bytes, std::string("be brief").size() + std::string("one\ntwo").size() + 2);
  // The assistant's tool_calls are passed through, not interpreted.
  EXPECT_TRUE(q.has_uninterpreted);
  EXPECT_EQ(q.uninterpreted_fields, (std::vector<std::string>{"messages[].tool_calls"}));
}

TEST(RequestParserTest, DefaultsWhenParametersAreAbsentOrNull) {
  auto r = parse_request(Endpoint::chat_completions,
                         chat(R"("temperature":null,"max_tokens":null,"stop":null,"stream":null,)"
                              R"("stream_options":null,"tools":null,"top_k":null,"n":null)"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->temperature);
  EXPECT_FALSE(r->max_tokens);
  EXPECT_TRUE(r->stop.empty());
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->top_k);
  EXPECT_EQ(r->n, 1);
  EXPECT_FALSE(r->has_uninterpreted);
  EXPECT_EQ(r->prompt_bytes, 2u);
}

TEST(RequestParserTest, MaxTokensAloneIsUsed) {
  auto r = parse_request(Endpoint::chat_completions, chat(R"("max_tokens":7)"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->max_tokens, 7);
}

TEST(RequestParserTest, RecordsUninterpretedFields) {
  auto r = parse_request(Endpoint::chat_completions,
                         chat(R"("tools":[{"type":"function","function":{"name":"f","parameters":{}}}],)"
                              R"("tool_choice":"auto","parallel_tool_calls":false,"store":true,)"
                              R"("response_format":{"type":"json_object"},"x_custom":{"a":[1,2]})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->has_uninterpreted);
  EXPECT_EQ(r->uninterpreted_fields,
            (std::vector<std::string>{"tools", "tool_choice", "response_format", "x_custom"}));
}

TEST(RequestParserTest, UninterpretedNamesAreBounded) {
  std::string extra;
  for (int i = 0; i < 1000; ++i) extra += (i ? ",\"" : "\"") + std::to_string(i) + std::string(100, 'k') + "\":1";
  auto r = parse_request(Endpoint::chat_completions, chat(extra));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->has_uninterpreted);
  EXPECT_EQ(r->uninterpreted_fields.size(), 32u);
  EXPECT_EQ(r->uninterpreted_fields[0], "0" + std::string(63, 'k'));
}

TEST(RequestParserTest, PlainTextResponseFormatIsNotUninterpreted) {
  auto r = parse_request(Endpoint::chat_completions, chat(R"("response_format":{"type":"text"})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->has_uninterpreted);
}

TEST(RequestParserTest, ImagePartsAreUninterpretedAndTextIsKept) {
  auto r = parse_request(
      Endpoint::chat_completions,
      chat_messages(R"([{"role":"user","content":[{"type":"text","text":"what is this","cache_control":{}},)"
                    R"({"type":"image_url","image_url":{"url":"data:..."}}]}])"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->messages[0].content, "what is this");
  EXPECT_EQ(r->uninterpreted_fields, (std::vector<std::string>{"messages[].content[].image_url"}));
}

TEST(RequestParserTest, EscapedKeysAreRecognised) {
  auto r = parse_request(Endpoint::chat_completions,
                         R"({"mo\u0064el":"m\u00e9","messages":[{"role":"user","content":"a\nb"}]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->model, "m\xC3\xA9");
  EXPECT_EQ(r->messages[0].content, "a\nb");
}

TEST(RequestParserTest, NestingUpToTheLimitIsAccepted) {
  // The root object is level 1, so a member may hold 63 nested arrays.
  EXPECT_TRUE(parse_request(Endpoint::chat_completions, chat("\"foo\":" + nested_arrays(63))).ok());
  EXPECT_FALSE(parse_request(Endpoint::chat_completions, chat("\"foo\":" + nested_arrays(64))).ok());
}

TEST(RequestParserTest, ParsesCompletionPrompts) {
  auto text = parse_request(Endpoint::completions, completion_prompt(R"("hello")"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->endpoint, Endpoint::completions);
  EXPECT_EQ(text->prompts, (std::vector<std::string>{"hello"}));
  EXPECT_EQ(text->prompt_bytes, 5u);

  auto texts = parse_request(Endpoint::completions, completion_prompt(R"(["ab","cde"])"));
  ASSERT_TRUE(texts.ok());
  EXPECT_EQ(texts->prompts, (std::vector<std::string>{"ab", "cde"}));
  EXPECT_EQ(texts->prompt_bytes, 5u);

  auto ids = parse_request(Endpoint::completions, completion_prompt("[1, 2, 3]"));
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_ids, (std::vector<std::vector<std::int32_t>>{{1, 2, 3}}));
  EXPECT_EQ(ids->prompt_bytes, 12u);

  auto id_lists = parse_request(Endpoint::completions, completion_prompt("[[1], [2147483647, 0]]"));
  ASSERT_TRUE(id_lists.ok());
  EXPECT_EQ(id_lists->prompt_ids, (std::vector<std::vector<std::int32_t>>{{1}, {2147483647, 0}}));
  EXPECT_EQ(id_lists->prompt_bytes, 12u);
}

TEST(RequestParserTest, ParsesCompletionParameters) {
  auto r = parse_request(Endpoint::completions,
                         completion(R"("logprobs":3,"echo":true,"best_of":2,"n":2,"suffix":"","max_tokens":9)"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_TRUE(r->echo);
  EXPECT_EQ(r->n, 2);
  EXPECT_EQ(r->max_tokens, 9);
  EXPECT_FALSE(r->has_uninterpreted);  // best_of == n and an empty suffix change nothing

  auto wider = parse_request(Endpoint::completions, completion(R"("best_of":4,"suffix":"end")"));
  ASSERT_TRUE(wider.ok()) << wider.error().message;
  EXPECT_EQ(wider->uninterpreted_fields, (std::vector<std::string>{"suffix", "best_of"}));
}

TEST(RequestParserTest, ChatOnlyFieldsAreNotInterpretedForCompletions) {
  auto r = parse_request(Endpoint::completions, completion(R"("messages":[])"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->uninterpreted_fields, (std::vector<std::string>{"messages"}));
}

std::string slice(const std::string& body, Span s) { return body.substr(s.begin, s.end - s.begin); }

TEST(RequestParserTest, RecordsSpansOfModelStreamOptionsAndVllmMembers) {
  const std::string body =
      "{ \"top_k\" : 5 ,\n  \"model\" :  \"gpt\\\"x\"  ,\"messages\":[{\"role\":\"user\",\"content\":\"}\"}],"
      "\"stream\":true, \"stream_options\" : {\"include_usage\": false} ,"
      "\"min_p\":0.1,\"stop_token_ids\":[1, 2],\"temperature\":1,\n"
      "\"repetition_penalty\":1.2\n}\n";
  auto r = parse_request(Endpoint::chat_completions, body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->model, "gpt\"x");
  EXPECT_EQ(slice(body, r->model_value), "\"gpt\\\"x\"");
  ASSERT_TRUE(r->stream_options_member);
  EXPECT_EQ(slice(body, *r->stream_options_member), "\"stream_options\" : {\"include_usage\": false}");
  ASSERT_EQ(r->vllm_only_members.size(), 4u);
  EXPECT_EQ(slice(body, r->vllm_only_members[0]), "\"top_k\" : 5");
  EXPECT_EQ(slice(body, r->vllm_only_members[1]), "\"min_p\":0.1");
  EXPECT_EQ(slice(body, r->vllm_only_members[2]), "\"stop_token_ids\":[1, 2]");
  EXPECT_EQ(slice(body, r->vllm_only_members[3]), "\"repetition_penalty\":1.2");
}

TEST(RequestParserTest, RecordsSpansOfNullMembers) {
  const std::string body = R"({"model":"m","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}],"min_tokens":null})";
  auto r = parse_request(Endpoint::chat_completions, body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->stream_options_member);
  EXPECT_EQ(slice(body, *r->stream_options_member), R"("stream_options":null)");
  ASSERT_EQ(r->vllm_only_members.size(), 1u);
  EXPECT_EQ(slice(body, r->vllm_only_members[0]), R"("min_tokens":null)");
  EXPECT_FALSE(r->min_tokens);
}

TEST(RequestParserTest, RandomTruncationsNeverCrash) {
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x\u00e9"}]}],)"
                           R"("logit_bias":{"1":2},"stop":["a"],"tools":[{"a":{"b":[1,2.5e3,true,null]}}]})";
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto r = parse_request(Endpoint::chat_completions, body.substr(0, n));
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.error().status, 400);
  }
  EXPECT_TRUE(parse_request(Endpoint::chat_completions, body).ok());
}

}  // namespace
}  // namespace sluice
