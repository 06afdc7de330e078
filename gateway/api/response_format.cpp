#include "gateway/api/response_format.h"

#include "gateway/api/json_writer.h"
#include "gateway/core/target.h"

namespace sluice {

namespace {

bool is_chat(const CompletionMeta& meta) { return meta.endpoint == Endpoint::chat_completions; }

// Opens the object and writes the members every response object starts with.
void write_head(JsonWriter& w, const CompletionMeta& meta, std::string_view object) {
  w.begin_object();
  w.key("id");
  w.string(meta.id);
  w.key("object");
  w.string(object);
  w.key("created");
  w.number(meta.created);
  w.key("model");
  w.string(meta.model);
}

void write_finish_reason(JsonWriter& w, std::string_view finish_reason) {
  w.key("finish_reason");
  if (finish_reason.empty()) w.null(); else w.string(finish_reason);
}

}  // namespace

void write_usage(JsonWriter& w, const Usage& usage) {
  w.begin_object();
  w.key("prompt_tokens");
  w.number(usage.prompt_tokens);
  w.key("completion_tokens");
  w.number(usage.completion_tokens);
  w.key("total_tokens");
  w.number(usage.prompt_tokens + usage.completion_tokens);
  w.end_object();
}

std::string format_completion(const CompletionMeta& meta, const std::vector<ChoiceText>& choices,
                              const Usage& usage) {
  JsonWriter w;
  write_head(w, meta, is_chat(meta) ? "chat.completion" : "text_completion");
  w.key("choices");
  w.begin_array();
  for (std::size_t i = 0; i < choices.size(); ++i) {
    w.begin_object();
    w.key("index");
    w.number(i);
    if (is_chat(meta)) {
      w.key("message");
      w.begin_object();
      w.key("role");
      w.string("assistant");
      w.key("content");
      w.string(choices[i].text);
      w.end_object();
    } else {
      w.key("text");
      w.string(choices[i].text);
    }
    w.key("logprobs");
    w.null();
    write_finish_reason(w, choices[i].finish_reason);
    w.end_object();
  }
  w.end_array();
  w.key("usage");
  write_usage(w, usage);
  w.end_object();
  return w.take();
}

std::string format_completion(const CompletionMeta& meta, std::string_view text, std::string_view finish_reason,
                              const Usage& usage) {
  return format_completion(meta, {ChoiceText{std::string(text), std::string(finish_reason)}}, usage);
}

std::string format_stream_chunk(const CompletionMeta& meta, std::string_view text, std::string_view finish_reason,
                                bool first, int index) {
  JsonWriter w;
  write_head(w, meta, is_chat(meta) ? "chat.completion.chunk" : "text_completion");
  w.key("choices");
  w.begin_array();
  w.begin_object();
  w.key("index");
  w.number(index);
  if (is_chat(meta)) {
    w.key("delta");
    w.begin_object();
    if (first) {
      w.key("role");
      w.string("assistant");
    }
    if (first || !text.empty()) {
      w.key("content");
      w.string(text);
    }
    w.end_object();
  } else {
    w.key("text");
    w.string(text);
  }
  w.key("logprobs");
  w.null();
  write_finish_reason(w, finish_reason);
  w.end_object();
  w.end_array();
  w.end_object();
  return w.take();
}

std::string format_usage_chunk(const CompletionMeta& meta, const Usage& usage) {
  JsonWriter w;
  write_head(w, meta, is_chat(meta) ? "chat.completion.chunk" : "text_completion");
  w.key("choices");
  w.begin_array();
  w.end_array();
  w.key("usage");
  write_usage(w, usage);
  w.end_object();
  return w.take();
}

std::string format_model_list(const std::vector<std::string>& ids, std::int64_t created,
                              std::string_view owned_by) {
  JsonWriter w;
  w.begin_object();
  w.key("object");
  w.string("list");
  w.key("data");
  w.begin_array();
  for (const auto& id : ids) {
    w.begin_object();
    w.key("id");
    w.string(id);
    w.key("object");
    w.string("model");
    w.key("created");
    w.number(created);
    w.key("owned_by");
    w.string(owned_by);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

}  // namespace sluice
