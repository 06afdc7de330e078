// parse_request(): the client's JSON body -> a validated ApiRequest, with simdjson On-Demand.
//
// Every value in the body is consumed (known parameters by their readers, everything else by
// validate_value()), so malformed JSON anywhere is a 400 rather than something a provider or a later
// reader trips over. Objects must not repeat a key (after unescaping: `"mo\u0064el"` is `model`), because
// parsers disagree on which copy wins and the gateway must see what the provider sees. Nesting is bounded
// by kMaxDepth; the walk recurses at most that deep.
//
// Choices where the OpenAI API leaves room:
// - null for an optional parameter means "absent" (the official clients send it for None);
// - max_completion_tokens wins over max_tokens when both are present;
// - text parts of an array content are joined with "\n" (what vLLM does);
// - completions' integer `logprobs` k sets logprobs = true and top_logprobs = k;
// - best_of equal to n (or 1) is served as is; a larger best_of is recorded as uninterpreted;
// - unknown keys at the top level and in messages are recorded as uninterpreted (never silently dropped),
//   except a few that cannot change the generated text (kNoEffectFields);
//   extra keys inside a text content part (e.g. cache_control hints) are validated and ignored.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "gateway/api/request.h"

namespace sluice {

namespace {

namespace od = simdjson::ondemand;

constexpr int kMaxDepth = 64;  // the top-level object is depth 1
constexpr int kMaxN = 128;
constexpr int kMaxBestOf = 20;
constexpr std::size_t kMaxStops = 4;
constexpr std::size_t kMaxStopTokenIds = 64;
constexpr std::size_t kMaxLogitBias = 300;
constexpr std::int64_t kMaxTokenId = std::numeric_limits<std::int32_t>::max();
constexpr std::size_t kMaxUninterpreted = 32;
constexpr std::size_t kMaxFieldName = 64;
constexpr std::int64_t kMaxInt = std::numeric_limits<int>::max();
constexpr std::int64_t kMinInt64 = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();

constexpr std::array<std::string_view, 5> kRoles{"system", "developer", "user", "assistant", "tool"};

// Accepted top-level fields that the engine has no use for and that cannot change the generated text.
constexpr std::array<std::string_view, 4> kNoEffectFields{"parallel_tool_calls", "store", "metadata",
                                                          "service_tier"};

// The vLLM sampling parameters, dropped for providers that do not take them.
constexpr std::array<std::string_view, 6> kVllmOnly{"top_k",      "min_p",          "repetition_penalty",
                                                    "min_tokens", "stop_token_ids", "include_stop_str_in_output"};

// The floating-point parameters and their ranges ([lo, hi], or (lo, hi] when lo_open).
struct NumberParam {
  std::string_view key;
  double lo, hi;
  bool lo_open;
  std::optional<double> ApiRequest::*field;
};
const NumberParam kNumberParams[] = {
    {"temperature", 0, 2, false, &ApiRequest::temperature},
    {"top_p", 0, 1, true, &ApiRequest::top_p},
    {"presence_penalty", -2, 2, false, &ApiRequest::presence_penalty},
    {"frequency_penalty", -2, 2, false, &ApiRequest::frequency_penalty},
    {"min_p", 0, 1, false, &ApiRequest::min_p},
    {"repetition_penalty", 0, 2, true, &ApiRequest::repetition_penalty},
};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

using Problem = std::optional<ApiError>;

ApiError bad(std::string param, std::string message) {
  return ApiError::bad_request(std::move(message), std::move(param));
}

ApiError invalid_json(simdjson::error_code err) {
  return ApiError::bad_request(std::string("request body is not valid JSON: ") + simdjson::error_message(err));
}

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string fmt_double(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string element(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

// The JSON type of `v`; a malformed token is reported as invalid JSON.
Problem type_of(od::value& v, od::json_type& t) {
  if (auto err = v.type().get(t)) return invalid_json(err);
  return std::nullopt;
}

// True (and the literal checked) when `v` is null.
Problem check_null(od::value& v, bool& is_null) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  is_null = t == od::json_type::null;
  if (is_null) {
    bool really = false;
    if (auto err = v.is_null().get(really); err || !really) return invalid_json(err ? err : simdjson::N_ATOM_ERROR);
  }
  return std::nullopt;
}

Problem validate_value(od::value& v, int depth);

// Consumes an array's elements with `on_element(value, index)`; `count` receives how many there were.
template <class OnElement>
Problem for_each_element(od::array& arr, OnElement&& on_element, std::size_t* count = nullptr) {
  std::size_t i = 0;
  for (auto item : arr) {
    od::value e;
    if (auto err = std::move(item).get(e)) return invalid_json(err);
    if (auto p = on_element(e, i++)) return p;
  }
  if (count != nullptr) *count = i;
  return std::nullopt;
}

// Consumes an object's members with `on_member(key, value)`, rejecting repeated keys.
template <class OnMember>
Problem for_each_member(od::object& obj, const std::string& path, OnMember&& on_member) {
  std::vector<std::string_view> keys;
  for (auto member : obj) {
    od::field field;
    if (auto err = std::move(member).get(field)) return invalid_json(err);
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) return invalid_json(err);
    keys.push_back(key);
    if (auto p = on_member(key, field.value())) return p;
  }
  std::sort(keys.begin(), keys.end());
  if (auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end())
    return bad(path, (path.empty() ? std::string("the request") : path) + " has the key \"" + std::string(*dup) +
                         "\" more than once");
  return std::nullopt;
}

// Consumes any value, checking that it is well-formed, that no object repeats a key and that it does not
// nest deeper than kMaxDepth. `depth` is the depth `v` would have as a container.
Problem validate_value(od::value& v, int depth) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if ((t == od::json_type::object || t == od::json_type::array) && depth > kMaxDepth)
    return ApiError::bad_request("request body nests deeper than " + std::to_string(kMaxDepth) + " levels");
  switch (t) {
    case od::json_type::object: {
      od::object obj;
      if (auto err = v.get_object().get(obj)) return invalid_json(err);
      return for_each_member(obj, "", [&](std::string_view, od::value& m) { return validate_value(m, depth + 1); });
    }
    case od::json_type::array: {
      od::array arr;
      if (auto err = v.get_array().get(arr)) return invalid_json(err);
      return for_each_element(arr, [&](od::value& e, std::size_t) { return validate_value(e, depth + 1); });
    }
    case od::json_type::number: {
      double d;
      auto err = v.get_double().get(d);
      return err ? Problem(invalid_json(err)) : std::nullopt;
    }
    case od::json_type::string: {
      std::string_view str;
      auto err = v.get_string().get(str);
      return err ? Problem(invalid_json(err)) : std::nullopt;
    }
    case od::json_type::boolean: {
      bool b;
      auto err = v.get_bool().get(b);
      return err ? Problem(invalid_json(err)) : std::nullopt;
    }
    case od::json_type::null: {
      bool n = false;
      return check_null(v, n);
    }
  }
  return invalid_json(simdjson::TAPE_ERROR);
}

Problem read_bool(od::value& v, const std::string& param, bool& out) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::boolean || v.get_bool().get(out)) return bad(param, param + " must be a boolean");
  return std::nullopt;
}

Problem read_string(od::value& v, const std::string& param, std::string_view& out) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::string) return bad(param, param + " must be a string");
  if (auto err = v.get_string().get(out)) return invalid_json(err);
  return std::nullopt;
}

// A number in [lo, hi]; `lo_open` excludes lo. `rule` describes the range for the message.
Problem read_number(od::value& v, const std::string& param, double lo, double hi, bool lo_open,
                    double& out) {
  const std::string rule = std::string(lo_open ? "(" : "[") + fmt_double(lo) + ", " + fmt_double(hi) + "]";
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::number || v.get_double().get(out))
    return bad(param, param + " must be a number in " + rule);
  if (out > hi || out < lo || (lo_open && out == lo))
    return bad(param, param + " must be a number in " + rule + ", got " + fmt_double(out));
  return std::nullopt;
}

// An integer (no fraction, no exponent) in [lo, hi].
Problem read_int(od::value& v, const std::string& param, std::int64_t lo, std::int64_t hi,
                 std::int64_t& out) {
  const std::string rule = hi == kMaxInt64
                               ? "an integer >= " + std::to_string(lo)
                               : "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::number) return bad(param, param + " must be " + rule);
  od::number_type nt;
  if (v.get_number_type().get(nt) || nt != od::number_type::signed_integer || v.get_int64().get(out))
    return bad(param, param + " must be " + rule);
  if (out < lo || out > hi) return bad(param, param + " must be " + rule + ", got " + std::to_string(out));
  return std::nullopt;
}

Problem get_array(od::value& v, const std::string& param, const char* what, od::array& out) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::array) return bad(param, param + " must be " + what);
  if (auto err = v.get_array().get(out)) return invalid_json(err);
  return std::nullopt;
}

Problem get_object(od::value& v, const std::string& param, const char* what, od::object& out) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t != od::json_type::object) return bad(param, param + " must be " + what);
  if (auto err = v.get_object().get(out)) return invalid_json(err);
  return std::nullopt;
}

// Reads one request body. Owns nothing: string views point into the parser's buffers, which outlive it.
class RequestReader {
 public:
  RequestReader(Endpoint endpoint, const char* base, ApiRequest& req)
      : chat_(endpoint == Endpoint::chat_completions), base_(base), req_(req) {
    req_.endpoint = endpoint;
  }

  Problem read(od::document& doc, std::string_view body);

 private:
  enum class Mark : std::uint8_t { none, stream_options, vllm };

  Problem member(std::string_view key, od::value& v, Mark& mark);
  Problem messages(od::value& v);
  Problem message(od::value& v, std::size_t index);
  Problem content(od::value& v, const std::string& path, std::string& text, bool& is_null);
  Problem prompt(od::value& v);
  Problem token_ids(od::array& arr, const std::string& path, std::vector<std::int32_t>& out,
                    std::size_t max = std::numeric_limits<std::size_t>::max());
  Problem stop(od::value& v);
  Problem logit_bias(od::value& v);
  Problem stop_token_ids(od::value& v);
  Problem stream_options(od::value& v);
  Problem uninterpreted(std::string_view key, od::value& v);
  Problem finish();
  void note_uninterpreted(std::string name);

  const bool chat_;
  const char* base_;
  ApiRequest& req_;

  bool have_model_ = false;
  bool have_messages_ = false;
  bool have_prompt_ = false;
  bool stream_options_given_ = false;
  std::optional<std::int64_t> max_tokens_;
  std::optional<std::int64_t> max_completion_tokens_;
  std::optional<std::int64_t> best_of_;
  bool top_logprobs_given_ = false;
};

// The list names what a client sent, so it is bounded in length and count (it is for messages and logs);
// has_uninterpreted alone decides what the engine does.
void RequestReader::note_uninterpreted(std::string name) {
  req_.has_uninterpreted = true;
  if (name.size() > kMaxFieldName) name.resize(kMaxFieldName);
  if (req_.uninterpreted_fields.size() < kMaxUninterpreted &&
      std::find(req_.uninterpreted_fields.begin(), req_.uninterpreted_fields.end(), name) ==
      req_.uninterpreted_fields.end())
    req_.uninterpreted_fields.push_back(std::move(name));
}

Problem RequestReader::read(od::document& doc, std::string_view body) {
  od::json_type root_type;
  if (auto err = doc.type().get(root_type)) return invalid_json(err);
  if (root_type != od::json_type::object) return ApiError::bad_request("request body must be a JSON object");
  od::object root;
  if (auto err = doc.get_object().get(root)) return invalid_json(err);

  // Offsets of every top-level member's key, to find where each member ends (just before the separator
  // that precedes the next key, or before the closing brace).
  std::vector<std::size_t> key_begin;
  std::vector<std::pair<std::size_t, Mark>> marked;
  std::vector<std::string_view> keys;
  for (auto item : root) {
    od::field field;
    if (auto err = std::move(item).get(field)) return invalid_json(err);
    key_begin.push_back(static_cast<std::size_t>(field.key().raw() - base_) - 1);
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) return invalid_json(err);
    keys.push_back(key);
    Mark mark = Mark::none;
    if (auto p = member(key, field.value(), mark)) return p;
    if (mark != Mark::none) marked.emplace_back(key_begin.size() - 1, mark);
  }
  const char* trailing = nullptr;
  if (!doc.current_location().get(trailing))
    return ApiError::bad_request("request body has content after the JSON object");

  std::sort(keys.begin(), keys.end());
  if (auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end())
    return bad(std::string(*dup), "the request has the key \"" + std::string(*dup) + "\" more than once");

  std::size_t close = body.size();
  while (close > 0 && is_json_space(body[close - 1])) --close;
  --close;  // the root object's closing brace
  for (const auto& [index, mark] : marked) {
    std::size_t end = index + 1 < key_begin.size() ? key_begin[index + 1] : close;
    while (end > 0 && is_json_space(body[end - 1])) --end;
    if (index + 1 < key_begin.size()) {
      --end;  // the comma
      while (end > 0 && is_json_space(body[end - 1])) --end;
    }
    const Span span{key_begin[index], end};
    if (mark == Mark::stream_options) req_.stream_options_member = span;
    else req_.vllm_only_members.push_back(span);
  }
  return finish();
}

Problem RequestReader::member(std::string_view key, od::value& v, Mark& mark) {
  const std::string param(key);
  if (key == "model") {
    std::string_view token = v.raw_json_token();
    std::string_view model;
    if (auto p = read_string(v, param, model)) return p;
    if (model.empty()) return bad(param, "model must be a non-empty string");
    while (!token.empty() && is_json_space(token.back())) token.remove_suffix(1);
    const auto begin = static_cast<std::size_t>(token.data() - base_);
    req_.model_value = Span{begin, begin + token.size()};
    req_.model = std::string(model);
    have_model_ = true;
    return std::nullopt;
  }
  if (one_of(kVllmOnly, key)) mark = Mark::vllm;
  bool is_null = false;
  if (auto p = check_null(v, is_null)) return p;
  if (is_null) {
    if (key == "stream_options") mark = Mark::stream_options;
    if (key == "messages" && chat_) return bad(param, "messages must be a non-empty array");
    if (key == "prompt" && !chat_) return bad(param, "prompt must be a non-empty string or array");
    return std::nullopt;
  }

  if (chat_ && key == "messages") return messages(v);
  if (!chat_ && key == "prompt") return prompt(v);
  if (key == "stream") return read_bool(v, param, req_.stream);
  if (key == "stream_options") {
    mark = Mark::stream_options;
    return stream_options(v);
  }
  if (key == "max_tokens" || (chat_ && key == "max_completion_tokens")) {
    std::int64_t n = 0;
    if (auto p = read_int(v, param, 1, kMaxInt64, n)) return p;
    (key == "max_tokens" ? max_tokens_ : max_completion_tokens_) = n;
    return std::nullopt;
  }
  for (const NumberParam& np : kNumberParams) {
    if (key != np.key) continue;
    double d = 0;
    if (auto p = read_number(v, param, np.lo, np.hi, np.lo_open, d)) return p;
    req_.*np.field = d;
    return std::nullopt;
  }
  if (key == "n") {
    std::int64_t n = 0;
    if (auto p = read_int(v, param, 1, kMaxN, n)) return p;
    req_.n = static_cast<int>(n);
    return std::nullopt;
  }
  if (key == "stop") return stop(v);
  if (key == "seed") {
    std::int64_t s = 0;
    if (read_int(v, param, kMinInt64, kMaxInt64, s)) return bad(param, "seed must be a 64-bit signed integer");
    req_.seed = s;
    return std::nullopt;
  }
  if (key == "user") {
    std::string_view s;
    if (auto p = read_string(v, param, s)) return p;
    req_.user = std::string(s);
    return std::nullopt;
  }
  if (key == "logit_bias") return logit_bias(v);
  if (key == "logprobs") {
    if (chat_) return read_bool(v, param, req_.logprobs);
    std::int64_t k = 0;
    if (auto p = read_int(v, param, 0, 5, k)) return p;
    req_.logprobs = true;
    req_.top_logprobs = static_cast<int>(k);
    return std::nullopt;
  }
  if (chat_ && key == "top_logprobs") {
    std::int64_t k = 0;
    if (auto p = read_int(v, param, 0, 20, k)) return p;
    req_.top_logprobs = static_cast<int>(k);
    top_logprobs_given_ = true;
    return std::nullopt;
  }
  if (!chat_ && key == "echo") return read_bool(v, param, req_.echo);
  if (!chat_ && key == "best_of") {
    std::int64_t b = 0;
    if (auto p = read_int(v, param, 1, kMaxBestOf, b)) return p;
    best_of_ = b;
    return std::nullopt;
  }
  if (!chat_ && key == "suffix") {
    std::string_view s;
    if (auto p = read_string(v, param, s)) return p;
    if (!s.empty()) note_uninterpreted(param);
    return std::nullopt;
  }
  if (key == "top_k") {
    std::int64_t k = 0;
    if (auto p = read_int(v, param, -1, kMaxInt, k)) return p;
    if (k == 0) return bad(param, "top_k must be -1 (disabled) or an integer >= 1, got 0");
    req_.top_k = static_cast<int>(k);
    return std::nullopt;
  }
  if (key == "min_tokens") {
    std::int64_t k = 0;
    if (auto p = read_int(v, param, 0, kMaxInt, k)) return p;
    req_.min_tokens = static_cast<int>(k);
    return std::nullopt;
  }
  if (key == "stop_token_ids") return stop_token_ids(v);
  if (key == "include_stop_str_in_output") return read_bool(v, param, req_.include_stop_str_in_output);
  return uninterpreted(key, v);
}

Problem RequestReader::uninterpreted(std::string_view key, od::value& v) {
  const std::string param(key);
  if (key == "tools" || key == "functions") {
    od::array arr;
    if (auto p = get_array(v, param, "an array of objects", arr)) return p;
    auto p = for_each_element(arr, [&](od::value& e, std::size_t i) -> Problem {
      od::json_type t;
      if (auto q = type_of(e, t)) return q;
      if (t != od::json_type::object) return bad(element(param, i), element(param, i) + " must be an object");
      return validate_value(e, 3);
    });
    if (p) return p;
  } else if (key == "tool_choice" || key == "function_call") {
    od::json_type t;
    if (auto p = type_of(v, t)) return p;
    if (t != od::json_type::string && t != od::json_type::object)
      return bad(param, param + " must be a string or an object");
    if (auto p = validate_value(v, 2)) return p;
  } else if (key == "response_format") {
    od::object obj;
    if (auto p = get_object(v, param, "an object with a string \"type\"", obj)) return p;
    std::string_view type;
    bool have_type = false;
    auto p = for_each_member(obj, param, [&](std::string_view k, od::value& m) -> Problem {
      if (k != "type") return validate_value(m, 3);
      have_type = true;
      return read_string(m, param + ".type", type);
    });
    if (p) return p;
    if (!have_type) return bad(param + ".type", "response_format must have a string \"type\"");
    if (type == "text") return std::nullopt;  // the default output format: nothing to interpret
  } else if (key == "parallel_tool_calls") {
    bool b = false;
    if (auto p = read_bool(v, param, b)) return p;
  } else {
    if (auto p = validate_value(v, 2)) return p;
  }
  if (!one_of(kNoEffectFields, key)) note_uninterpreted(param);
  return std::nullopt;
}

Problem RequestReader::messages(od::value& v) {
  od::array arr;
  if (auto p = get_array(v, "messages", "a non-empty array", arr)) return p;
  std::size_t count = 0;
  if (auto p = for_each_element(arr, [&](od::value& m, std::size_t i) { return message(m, i); }, &count)) return p;
  if (count == 0) return bad("messages", "messages must be a non-empty array");
  have_messages_ = true;
  return std::nullopt;
}

Problem RequestReader::message(od::value& v, std::size_t index) {
  const std::string path = element("messages", index);
  od::object obj;
  if (auto p = get_object(v, path, "an object", obj)) return p;
  ChatMessage msg;
  bool have_role = false, have_content = false, content_null = false;
  auto p = for_each_member(obj, path, [&](std::string_view key, od::value& m) -> Problem {
    const std::string param = path + "." + std::string(key);
    if (key == "role") {
      std::string_view role;
      if (auto q = read_string(m, param, role)) return q;
      if (!one_of(kRoles, role))
        return bad(param, param + " must be one of system, developer, user, assistant, tool");
      msg.role = std::string(role);
      have_role = true;
      return std::nullopt;
    }
    if (key == "content") {
      have_content = true;
      return content(m, param, msg.content, content_null);
    }
    bool is_null = false;
    if (auto q = check_null(m, is_null)) return q;
    if (is_null) return std::nullopt;
    if (key == "name" || key == "tool_call_id" || key == "refusal") {
      std::string_view s;
      if (auto q = read_string(m, param, s)) return q;
      if (key == "name") msg.name = std::string(s);
      if (key == "refusal" && !s.empty()) note_uninterpreted("messages[].refusal");
      return std::nullopt;
    }
    if (key == "tool_calls") {
      od::array calls;
      if (auto q = get_array(m, param, "an array", calls)) return q;
      if (auto q = for_each_element(calls, [](od::value& c, std::size_t) { return validate_value(c, 5); })) return q;
    } else if (auto q = validate_value(m, 4)) {
      return q;
    }
    note_uninterpreted("messages[]." + std::string(key));
    return std::nullopt;
  });
  if (p) return p;
  if (!have_role) return bad(path + ".role", path + ".role is required");
  if ((!have_content || content_null) && msg.role != "assistant" && msg.role != "tool")
    return bad(path + ".content", path + ".content is required for role " + msg.role);
  req_.prompt_bytes += msg.content.size();
  req_.messages.push_back(std::move(msg));
  return std::nullopt;
}

Problem RequestReader::content(od::value& v, const std::string& path, std::string& text, bool& is_null) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t == od::json_type::null) return check_null(v, is_null);
  if (t == od::json_type::string) {
    std::string_view s;
    if (auto err = v.get_string().get(s)) return invalid_json(err);
    text = std::string(s);
    return std::nullopt;
  }
  if (t != od::json_type::array)
    return bad(path, path + " must be a string, an array of content parts, or null");
  od::array parts;
  if (auto err = v.get_array().get(parts)) return invalid_json(err);
  std::size_t count = 0;
  bool any_text = false;
  auto problem = for_each_element(parts, [&](od::value& part, std::size_t j) -> Problem {
    const std::string part_path = element(path, j);
    od::object obj;
    if (auto p = get_object(part, part_path, "an object with a string \"type\"", obj)) return p;
    std::string_view type, part_text;
    bool have_type = false, have_text = false;
    auto p = for_each_member(obj, part_path, [&](std::string_view key, od::value& m) -> Problem {
      if (key == "type") {
        have_type = true;
        return read_string(m, part_path + ".type", type);
      }
      if (key == "text") {
        od::json_type tt;
        if (auto q = type_of(m, tt)) return q;
        if (tt == od::json_type::string) {
          have_text = true;
          if (auto err = m.get_string().get(part_text)) return invalid_json(err);
          return std::nullopt;
        }
      }
      return validate_value(m, 6);
    });
    if (p) return p;
    if (!have_type) return bad(part_path + ".type", part_path + ".type is required");
    if (type == "text") {
      if (!have_text) return bad(part_path + ".text", part_path + ".text must be a string");
      if (any_text) text.push_back('\n');
      text.append(part_text);
      any_text = true;
    } else {
      note_uninterpreted("messages[].content[]." + std::string(type));
    }
    return std::nullopt;
  }, &count);
  if (problem) return problem;
  if (count == 0) return bad(path, path + " must not be an empty array");
  return std::nullopt;
}

Problem RequestReader::token_ids(od::array& arr, const std::string& path, std::vector<std::int32_t>& out,
                                 std::size_t max) {
  return for_each_element(arr, [&](od::value& e, std::size_t i) -> Problem {
    if (i >= max) return bad(path, path + " may hold at most " + std::to_string(max) + " ids");
    std::int64_t id = 0;
    const std::string p = element(path, i);
    if (read_int(e, p, 0, kMaxTokenId, id))
      return bad(p, p + " must be a token id (an integer in [0, " + std::to_string(kMaxTokenId) + "])");
    out.push_back(static_cast<std::int32_t>(id));
    return std::nullopt;
  });
}

Problem RequestReader::prompt(od::value& v) {
  const std::string rule = "prompt must be a non-empty string, array of strings, array of token ids, or array "
                           "of token-id arrays";
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  if (t == od::json_type::string) {
    std::string_view s;
    if (auto err = v.get_string().get(s)) return invalid_json(err);
    if (s.empty()) return bad("prompt", "prompt must not be empty");
    req_.prompts.emplace_back(s);
    req_.prompt_bytes += s.size();
    have_prompt_ = true;
    return std::nullopt;
  }
  if (t != od::json_type::array) return bad("prompt", rule);
  od::array arr;
  if (auto err = v.get_array().get(arr)) return invalid_json(err);
  std::optional<od::json_type> kind;  // the element type every element must share
  std::vector<std::int32_t> flat_ids;
  std::size_t count = 0;
  auto problem = for_each_element(arr, [&](od::value& e, std::size_t i) -> Problem {
    const std::string path = element("prompt", i);
    od::json_type et;
    if (auto p = type_of(e, et)) return p;
    if (!kind) kind = et;
    if (et != *kind) return bad(path, path + " does not match the type of prompt[0] (" + rule + ")");
    if (et == od::json_type::string) {
      std::string_view s;
      if (auto err = e.get_string().get(s)) return invalid_json(err);
      if (s.empty()) return bad(path, path + " must not be empty");
      req_.prompts.emplace_back(s);
      req_.prompt_bytes += s.size();
    } else if (et == od::json_type::number) {
      std::int64_t id = 0;
      if (read_int(e, path, 0, kMaxTokenId, id))
        return bad(path, path + " must be a token id (an integer in [0, " + std::to_string(kMaxTokenId) + "])");
      flat_ids.push_back(static_cast<std::int32_t>(id));
    } else if (et == od::json_type::array) {
      od::array inner;
      if (auto err = e.get_array().get(inner)) return invalid_json(err);
      std::vector<std::int32_t> ids;
      if (auto p = token_ids(inner, path, ids)) return p;
      if (ids.empty()) return bad(path, path + " must not be empty");
      req_.prompt_bytes += 4 * ids.size();
      req_.prompt_ids.push_back(std::move(ids));
    } else {
      return bad(path, rule);
    }
    return std::nullopt;
  }, &count);
  if (problem) return problem;
  if (count == 0) return bad("prompt", "prompt must not be empty");
  if (!flat_ids.empty()) {
    req_.prompt_bytes += 4 * flat_ids.size();
    req_.prompt_ids.push_back(std::move(flat_ids));
  }
  have_prompt_ = true;
  return std::nullopt;
}

Problem RequestReader::stop(od::value& v) {
  od::json_type t;
  if (auto p = type_of(v, t)) return p;
  const std::string rule = "stop must be a non-empty string or an array of at most " + std::to_string(kMaxStops) +
                           " non-empty strings";
  if (t == od::json_type::string) {
    std::string_view s;
    if (auto err = v.get_string().get(s)) return invalid_json(err);
    if (s.empty()) return bad("stop", rule);
    req_.stop.emplace_back(s);
    return std::nullopt;
  }
  if (t != od::json_type::array) return bad("stop", rule);
  od::array arr;
  if (auto err = v.get_array().get(arr)) return invalid_json(err);
  return for_each_element(arr, [&](od::value& e, std::size_t i) -> Problem {
    const std::string path = element("stop", i);
    if (i >= kMaxStops) return bad("stop", rule);
    std::string_view s;
    if (auto p = read_string(e, path, s)) return p;
    if (s.empty()) return bad(path, path + " must not be empty");
    req_.stop.emplace_back(s);
    return std::nullopt;
  });
}

Problem RequestReader::logit_bias(od::value& v) {
  od::object obj;
  if (auto p = get_object(v, "logit_bias", "an object mapping token ids to numbers", obj)) return p;
  auto p = for_each_member(obj, "logit_bias", [&](std::string_view key, od::value& m) -> Problem {
    const std::string path = "logit_bias." + std::string(key.substr(0, 32));
    if (req_.logit_bias.size() >= kMaxLogitBias)
      return bad("logit_bias", "logit_bias may hold at most " + std::to_string(kMaxLogitBias) + " entries");
    std::int64_t id = 0;
    const auto res = std::from_chars(key.data(), key.data() + key.size(), id);
    if (key.empty() || res.ec != std::errc() || res.ptr != key.data() + key.size() || id < 0 ||
        id > kMaxTokenId || key.front() == '+' || key.front() == '-')
      return bad(path, "logit_bias keys must be token ids (decimal integers in [0, " + std::to_string(kMaxTokenId) +
                           "])");
    double bias = 0;
    if (auto q = read_number(m, path, -100, 100, false, bias)) return q;
    req_.logit_bias.emplace_back(static_cast<std::int32_t>(id), bias);
    return std::nullopt;
  });
  if (p) return p;
  auto sorted = req_.logit_bias;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first == sorted[i - 1].first)
      return bad("logit_bias", "logit_bias names token " + std::to_string(sorted[i].first) + " more than once");
  return std::nullopt;
}

Problem RequestReader::stop_token_ids(od::value& v) {
  od::array arr;
  if (auto p = get_array(v, "stop_token_ids", "an array of token ids", arr)) return p;
  return token_ids(arr, "stop_token_ids", req_.stop_token_ids, kMaxStopTokenIds);
}

Problem RequestReader::stream_options(od::value& v) {
  od::object obj;
  if (auto p = get_object(v, "stream_options", "an object", obj)) return p;
  stream_options_given_ = true;
  return for_each_member(obj, "stream_options", [&](std::string_view key, od::value& m) -> Problem {
    if (key != "include_usage") return validate_value(m, 3);
    bool is_null = false;
    if (auto p = check_null(m, is_null)) return p;
    if (is_null) return std::nullopt;
    return read_bool(m, "stream_options.include_usage", req_.include_usage);
  });
}

Problem RequestReader::finish() {
  if (!have_model_) return bad("model", "model is required");
  if (chat_ && !have_messages_) return bad("messages", "messages is required");
  if (!chat_ && !have_prompt_) return bad("prompt", "prompt is required");
  if (stream_options_given_ && !req_.stream)
    return bad("stream_options", "stream_options is only allowed when stream is true");
  if (top_logprobs_given_ && !req_.logprobs)
    return bad("top_logprobs", "top_logprobs requires logprobs to be true");
  req_.max_tokens = max_completion_tokens_ ? max_completion_tokens_ : max_tokens_;
  if (req_.min_tokens && req_.max_tokens && *req_.min_tokens > *req_.max_tokens)
    return bad("min_tokens", "min_tokens must not exceed max_tokens");
  if (best_of_) {
    if (*best_of_ < req_.n) return bad("best_of", "best_of must be >= n");
    if (*best_of_ > req_.n) note_uninterpreted("best_of");
  }
  return std::nullopt;
}

}  // namespace
Result<ApiRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body) {
  const simdjson::padded_string padded(body);
  od::parser parser;
  if (parser.allocate(padded.size(), kMaxDepth + 1))
    return fail(ApiError::internal("out of memory parsing the request"));
  od::document doc;
  if (auto err = parser.iterate(padded).get(doc)) {
    if (err == simdjson::EMPTY) return fail(ApiError::bad_request("request body must be a JSON object"));
    return fail(invalid_json(err));
  }
  ApiRequest req;
  RequestReader reader(endpoint, padded.data(), req);
  if (auto p = reader.read(doc, body)) return fail(std::move(*p));
  return req;
}

}  // namespace sluice
