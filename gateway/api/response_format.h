// OpenAI JSON for what the embedded engine produces: whole responses, stream chunks, the usage object and
// the usage-only final chunk, and the /v1/models list. Remote providers' JSON is forwarded as is and never
// passes through here.
//
// All functions are pure and thread-safe; they return one JSON object (no SSE framing).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/api/request.h"

namespace sluice {

class JsonWriter;
struct Usage;  // gateway/core/target.h

// What every object of one response shares.
struct CompletionMeta {
  std::string id;         // "chatcmpl-..." or "cmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;      // the model name as the client asked for it
  Endpoint endpoint = Endpoint::chat_completions;
};

// One generated choice of a whole (non-stream) response.
struct ChoiceText {
  std::string text;
  std::string finish_reason;  // "stop", "length", ...
};

// `{"prompt_tokens":..,"completion_tokens":..,"total_tokens":..}` as the current value of `w`.
void write_usage(JsonWriter& w, const Usage& usage);

// A chat.completion or text_completion object with one choice per entry of `choices` (index = position).
std::string format_completion(const CompletionMeta& meta, const std::vector<ChoiceText>& choices,
                              const Usage& usage);
std::string format_completion(const CompletionMeta& meta, std::string_view text, std::string_view finish_reason,
                              const Usage& usage);

// One stream chunk for choice `index`. `finish_reason` empty means null (more to come). For chat, the
// first chunk of a choice carries delta.role = "assistant" and delta.content even when `text` is empty;
// later chunks carry content only when `text` is non-empty (a finishing chunk may have `"delta":{}`).
std::string format_stream_chunk(const CompletionMeta& meta, std::string_view text, std::string_view finish_reason,
                                bool first, int index = 0);

// The usage-only chunk sent before `[DONE]` when the client asked for stream_options.include_usage:
// `"choices":[]` and the usage object.
std::string format_usage_chunk(const CompletionMeta& meta, const Usage& usage);

// The /v1/models body: `{"object":"list","data":[{"id":..,"object":"model","created":..,"owned_by":..}]}`.
std::string format_model_list(const std::vector<std::string>& ids, std::int64_t created,
                              std::string_view owned_by = "sluice");

}  // namespace sluice
