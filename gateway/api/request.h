// The typed form of an OpenAI request, produced by parse_request() (request_parser.cpp) from the client's
// JSON and validated there. The raw body is kept by the caller for pass-through to remote providers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/util/result.h"
#include "gateway/api/errors.h"

namespace sluice {

enum class Endpoint : std::uint8_t { chat_completions, completions };

struct ChatMessage {
  std::string role;     // system | developer | user | assistant | tool
  std::string content;  // text; an array of text parts is joined; null content (tool calls) is ""
  std::string name;     // optional participant name, "" if absent
};

// A byte range [begin, end) inside the raw body.
struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::chat_completions;
  std::string model;

  std::vector<ChatMessage> messages;                   // chat completions
  std::vector<std::string> prompts;                    // completions: text prompts
  std::vector<std::vector<std::int32_t>> prompt_ids;   // completions: token-id prompts

  bool stream = false;
  bool include_usage = false;                          // stream_options.include_usage
  std::optional<std::int64_t> max_tokens;              // max_tokens or max_completion_tokens (which wins)
  std::optional<double> temperature;                   // [0, 2]
  std::optional<double> top_p;                         // (0, 1]
  std::optional<double> presence_penalty;              // [-2, 2]
  std::optional<double> frequency_penalty;             // [-2, 2]
  int n = 1;                                           // [1, 128]
  std::vector<std::string> stop;                       // at most 4
  std::optional<std::int64_t> seed;
  std::string user;
  std::vector<std::pair<std::int32_t, double>> logit_bias;  // token id -> bias in [-100, 100]
  bool logprobs = false;
  std::optional<int> top_logprobs;                     // [0, 20]; completions: their integer logprobs (0..5)
  bool echo = false;                                   // completions

  // Sampling parameters vLLM accepts beyond OpenAI's.
  std::optional<int> top_k;                            // -1 or >= 1
  std::optional<double> min_p;                         // [0, 1]
  std::optional<double> repetition_penalty;            // (0, 2]
  std::optional<int> min_tokens;                       // >= 0
  std::vector<std::int32_t> stop_token_ids;
  bool include_stop_str_in_output = false;

  // Fields sluice passes through without interpreting (tools, tool_choice, functions, response_format, ...).
  // The local engine answers `unsupported` when any is present. Names: top-level keys as sent; inside
  // messages "messages[].tool_calls", content parts "messages[].content[].image_url". The list is capped
  // (32 names of at most 64 bytes); has_uninterpreted is exact.
  bool has_uninterpreted = false;
  std::vector<std::string> uninterpreted_fields;

  // Where things sit in the raw body, for pass-through rewriting.
  Span model_value;                                    // the JSON string token of "model", quotes included
  std::optional<Span> stream_options_member;           // `"stream_options": {...}` key through value
  std::vector<Span> vllm_only_members;                 // `"top_k": 5` etc., key through value

  std::size_t prompt_bytes = 0;                        // bytes of prompt text, for token estimates
};

// Parses and validates a request body for `endpoint`. Errors are 400 invalid_request_error with `param` set
// to the offending field.
Result<ApiRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body);

// Rewrites a client's body for a remote provider: `model` replaced; for streams,
// stream_options.include_usage forced on; vLLM-only sampling members dropped unless `keep_vllm_params`.
// Everything else is copied byte for byte.
std::string rewrite_for_upstream(std::string_view body, const ApiRequest& req, std::string_view model,
                                 bool keep_vllm_params);

}  // namespace sluice
