// rewrite_for_upstream(): the client's body for a remote provider, edited in place at the byte ranges
// parse_request() recorded, so everything not edited reaches the provider exactly as the client sent it.
//
// Edits are applied right to left on the growing output, so the recorded offsets of the edits still to do
// (all further left) stay valid, and each removal decides which comma to take from the text as it is by
// then: a member followed by a comma takes that comma (and the blanks after it); the last member takes the
// comma before it. Removing several neighbouring members, the last ones included, therefore still leaves
// valid JSON.
#include <algorithm>
#include <string>
#include <vector>

#include "gateway/api/json_writer.h"
#include "gateway/api/request.h"

namespace sluice {

namespace {

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

constexpr std::string_view kUsageOptions = R"("stream_options":{"include_usage":true})";

struct Edit {
  Span span;
  enum class Kind : std::uint8_t { replace, remove_member } kind = Kind::replace;
  std::string text;  // for replace; an empty span with text is an insertion
};

void remove_member(std::string& out, Span span) {
  std::size_t after = span.end;
  while (after < out.size() && is_json_space(out[after])) ++after;
  if (after < out.size() && out[after] == ',') {
    ++after;
    while (after < out.size() && is_json_space(out[after])) ++after;
    out.erase(span.begin, after - span.begin);
    return;
  }
  std::size_t before = span.begin;
  while (before > 0 && is_json_space(out[before - 1])) --before;
  if (before > 0 && out[before - 1] == ',') {
    out.erase(before - 1, span.end - (before - 1));
    return;
  }
  out.erase(span.begin, span.end - span.begin);
}

}  // namespace

std::string rewrite_for_upstream(std::string_view body, const ApiRequest& req, std::string_view model,
                                 bool keep_vllm_params) {
  std::vector<Edit> edits;
  edits.push_back(Edit{req.model_value, Edit::Kind::replace, json_quote(model)});

  if (req.stream && !req.include_usage) {
    if (req.stream_options_member) {
      edits.push_back(Edit{*req.stream_options_member, Edit::Kind::replace, std::string(kUsageOptions)});
    } else {
      std::size_t close = body.size();
      while (close > 0 && is_json_space(body[close - 1])) --close;
      if (close > 0) --close;  // the root object's closing brace
      std::size_t last = close;
      while (last > 0 && is_json_space(body[last - 1])) --last;
      const bool empty_object = last > 0 && body[last - 1] == '{';
      edits.push_back(Edit{Span{close, close}, Edit::Kind::replace,
                           (empty_object ? "" : ",") + std::string(kUsageOptions)});
    }
  }
  if (!keep_vllm_params)
    for (const Span& s : req.vllm_only_members) edits.push_back(Edit{s, Edit::Kind::remove_member, {}});

  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.span.begin > b.span.begin; });

  std::string out(body);
  for (const Edit& e : edits) {
    if (e.kind == Edit::Kind::remove_member) {
      remove_member(out, e.span);
    } else {
      out.replace(e.span.begin, e.span.end - e.span.begin, e.text);
    }
  }
  return out;
}

}  // namespace sluice
