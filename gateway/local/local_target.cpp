#include "gateway/local/local_target.h"

#include <mutex>

#include <fmt/format.h>

#include "engine/core/engine.h"
#include "gateway/api/request.h"

namespace sluice {

namespace {

ErrorKind to_error_kind(GenerationErrorKind k) {
  switch (k) {
    case GenerationErrorKind::overloaded: return ErrorKind::overloaded;
    case GenerationErrorKind::context_too_long: return ErrorKind::context_too_long;
    case GenerationErrorKind::invalid: return ErrorKind::unsupported;
    case GenerationErrorKind::cancelled: return ErrorKind::cancelled;
    case GenerationErrorKind::internal: return ErrorKind::internal;
  }
  return ErrorKind::internal;
}

}  // namespace

// Relays one engine request to the Sink. The engine calls it on the engine thread; abandon() comes from a
// gateway thread. Once abandoned (or ended) the Sink is never touched again: the dispatcher may already have
// moved on and destroyed it, while the engine still holds this stream until it processes the cancel.
class LocalTarget::SinkStream final : public GenerationStream {
 public:
  explicit SinkStream(Sink& sink) : sink_(&sink) {}
  void on_text(std::string text, std::int32_t tokens) override {
    std::lock_guard lock(mu_);
    if (sink_ == nullptr) return;
    started_ = true;
    sink_->delta(Delta{std::move(text), {}, tokens});
  }
  void on_finish(std::string_view reason, std::int64_t prompt_tokens, std::int64_t completion_tokens) override {
    std::lock_guard lock(mu_);
    if (sink_ == nullptr) return;
    sink_->usage(Usage{prompt_tokens, completion_tokens});
    sink_->finish(std::string(reason));
    sink_ = nullptr;
  }
  void on_error(GenerationErrorKind kind, std::string message) override {
    std::lock_guard lock(mu_);
    if (sink_ == nullptr) return;
    sink_->error(TargetError{to_error_kind(kind), std::move(message)});
    sink_ = nullptr;
  }
  bool has_room() const override {
    std::lock_guard lock(mu_);
    return sink_ == nullptr || sink_->has_room();
  }
  // Ends the request with `unavailable` (a fallback trigger) if it has produced no output yet; a request
  // that already streamed text keeps waiting for the engine (it can no longer move elsewhere).
  bool abandon(const std::string& reason) {
    std::lock_guard lock(mu_);
    if (sink_ == nullptr || started_) return false;
    sink_->error(TargetError{ErrorKind::unavailable, reason});
    sink_ = nullptr;
    return true;
  }

 private:
  mutable std::mutex mu_;
  Sink* sink_;
  bool started_ = false;
};

namespace {

// What the engine cannot do (yet) for this request; "" when it can serve it.
std::string unsupported_reason(const ApiRequest& r) {
  if (r.n != 1) return "the local engine serves n = 1 only";
  if (r.has_uninterpreted) {
    std::string fields;
    for (const auto& f : r.uninterpreted_fields) fields += (fields.empty() ? "" : ", ") + f;
    return "the local engine does not support: " + (fields.empty() ? std::string("tools or structured output") : fields);
  }
  if (r.logprobs || r.top_logprobs) return "the local engine does not return logprobs";
  if (r.echo) return "the local engine does not support echo";
  if (r.endpoint == Endpoint::completions && r.prompts.size() + r.prompt_ids.size() != 1)
    return "the local engine serves one prompt per request";
  return {};
}

}  // namespace

LocalTarget::LocalTarget(std::shared_ptr<Engine> engine) : engine_(std::move(engine)) {}

void LocalTarget::start(RequestContext& ctx, Sink& sink) {
  const ApiRequest& r = *ctx.request;
  if (auto why = unsupported_reason(r); !why.empty()) {
    sink.error(TargetError{ErrorKind::unsupported, std::move(why)});
    return;
  }

  GenerationRequest g;
  if (r.endpoint == Endpoint::chat_completions) {
    std::vector<ChatTurn> turns;
    turns.reserve(r.messages.size());
    for (const auto& m : r.messages) turns.push_back(ChatTurn{m.role == "developer" ? "system" : m.role, m.content});
    auto ids = engine_->encode_chat(turns);
    if (!ids) {
      sink.error(TargetError{ErrorKind::unsupported, "chat template: " + ids.error()});
      return;
    }
    g.prompt = std::move(ids.value());
  } else if (!r.prompts.empty()) {
    g.prompt = engine_->encode_text(r.prompts.front());
  } else {
    g.prompt = r.prompt_ids.front();
  }
  if (g.prompt.size() >= engine_->max_model_len()) {
    sink.error(TargetError{ErrorKind::context_too_long,
                           fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens.",
                                       engine_->max_model_len(), g.prompt.size())});
    return;
  }

  SamplingParams& p = g.params;
  p.temperature = static_cast<float>(r.temperature.value_or(1.0));
  if (r.top_p) p.top_p = static_cast<float>(*r.top_p);
  if (r.top_k) p.top_k = *r.top_k;
  if (r.min_p) p.min_p = static_cast<float>(*r.min_p);
  if (r.seed) p.seed = static_cast<std::uint64_t>(*r.seed);
  if (r.presence_penalty) p.presence_penalty = static_cast<float>(*r.presence_penalty);
  if (r.frequency_penalty) p.frequency_penalty = static_cast<float>(*r.frequency_penalty);
  if (r.repetition_penalty) p.repetition_penalty = static_cast<float>(*r.repetition_penalty);
  for (const auto& [id, bias] : r.logit_bias) p.logit_bias.emplace_back(id, static_cast<float>(bias));
  if (r.min_tokens) p.min_tokens = static_cast<std::uint32_t>(*r.min_tokens);
  const std::uint32_t room = engine_->max_model_len() - static_cast<std::uint32_t>(g.prompt.size());
  p.max_tokens = r.max_tokens ? static_cast<std::uint32_t>(std::min<std::int64_t>(*r.max_tokens, room)) : room;
  if (r.max_tokens && *r.max_tokens > room) {
    sink.error(TargetError{ErrorKind::context_too_long,
                           fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens "
                                       "and max_tokens asks for {} more.",
                                       engine_->max_model_len(), g.prompt.size(), *r.max_tokens)});
    return;
  }
  p.stop = r.stop;
  p.stop_token_ids = r.stop_token_ids;
  p.include_stop_str_in_output = r.include_stop_str_in_output;

  auto stream = std::make_shared<SinkStream>(sink);
  g.stream = stream;
  auto id = engine_->submit(std::move(g));
  if (id) {
    std::lock_guard lock(mu_);
    std::erase_if(live_, [](const auto& entry) { return entry.second.expired(); });
    live_.emplace_back(id.value(), stream);
  }
  if (!id) {
    sink.error(TargetError{to_error_kind(id.error().first), id.error().second});
    return;
  }
  ctx.cancel.on_cancel([engine = engine_, rid = id.value()] { engine->cancel(rid); });
}

std::size_t LocalTarget::abandon_unstarted(const std::string& reason) {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<SinkStream>>> streams;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, weak] : live_)
      if (auto s = weak.lock()) streams.emplace_back(id, std::move(s));
  }
  std::size_t n = 0;
  for (auto& [id, s] : streams) {
    if (!s->abandon(reason)) continue;
    engine_->cancel(id);  // frees its KV blocks once the engine runs again
    ++n;
  }
  return n;
}

}  // namespace sluice
