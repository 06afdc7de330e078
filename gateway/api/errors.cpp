#include "gateway/api/errors.h"

#include <simdjson.h>

#include <algorithm>
#include <utility>

#include "gateway/api/json_writer.h"
#include "gateway/core/target.h"

namespace sluice {

namespace {

ApiError make(int status, std::string type, std::string message, std::string param = {},
              std::string code = {}) {
  ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

// A relayed upstream text is bounded so a provider cannot make the gateway echo megabytes.
constexpr std::size_t kMaxRelayedText = 2048;

std::string bounded(std::string_view s) {
  return std::string(s.substr(0, std::min(s.size(), kMaxRelayedText)));
}

// Reads a string-or-null member value; numbers (some providers send numeric codes) are kept as text.
bool read_text(simdjson::ondemand::value v, std::string& out) {
  simdjson::ondemand::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case simdjson::ondemand::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return false;
      out = bounded(s);
      return true;
    }
    case simdjson::ondemand::json_type::number: {
      std::string_view raw = v.raw_json_token();
      while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' ||
                              raw.back() == '\t'))
        raw.remove_suffix(1);
      out = bounded(raw);
      return true;
    }
    case simdjson::ondemand::json_type::null:
      out.clear();
      return true;
    default:
      return false;
  }
}

// Fills `e` from an OpenAI error body `{"error":{"message":..,"type":..,"param":..,"code":..}}`.
// Returns false (leaving `e` alone) if the body is not one.
bool relay_openai_error(std::string_view body, ApiError& e) {
  if (body.empty()) return false;
  simdjson::padded_string padded(body);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return false;
  simdjson::ondemand::object root;
  if (doc.get_object().get(root)) return false;
  simdjson::ondemand::object err;
  if (root.find_field_unordered("error").get_object().get(err)) return false;

  std::string message, type, param, code;
  bool have_message = false;
  for (auto field : err) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    simdjson::ondemand::value v;
    if (field.value().get(v)) return false;
    std::string* slot = nullptr;
    if (key == "message") {
      std::string_view text;
      if (v.get_string().get(text)) return false;
      message = bounded(text);
      have_message = true;
    } else if (key == "type") {
      slot = &type;
    } else if (key == "param") {
      slot = &param;
    } else if (key == "code") {
      slot = &code;
    }
    if (slot != nullptr && !read_text(v, *slot)) return false;
  }
  if (!have_message || message.empty()) return false;
  e.message = std::move(message);
  if (!type.empty()) e.type = std::move(type);
  e.param = std::move(param);
  e.code = std::move(code);
  return true;
}

// "prefix: detail", or just the prefix when the target gave no detail.
std::string described(std::string_view prefix, const std::string& detail) {
  std::string out(prefix);
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  return out;
}

std::string_view type_for_4xx(int status) {
  switch (status) {
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return "invalid_request_error";
  }
}

void write_error_object(JsonWriter& w, const ApiError& e) {
  w.begin_object();
  w.key("error");
  w.begin_object();
  w.key("message");
  w.string(e.message);
  w.key("type");
  w.string(e.type);
  w.key("param");
  if (e.param.empty()) w.null(); else w.string(e.param);
  w.key("code");
  if (e.code.empty()) w.null(); else w.string(e.code);
  w.end_object();
  w.end_object();
}

}  // namespace

ApiError ApiError::bad_request(std::string message, std::string param, std::string code) {
  return make(400, "invalid_request_error", std::move(message), std::move(param), std::move(code));
}

ApiError ApiError::unauthorized(std::string message) {
  return make(401, "authentication_error", std::move(message), {}, "invalid_api_key");
}

ApiError ApiError::not_found(std::string message, std::string code) {
  return make(404, "not_found_error", std::move(message), {}, std::move(code));
}

ApiError ApiError::method_not_allowed(std::string message) {
  return make(405, "invalid_request_error", std::move(message), {}, "method_not_allowed");
}

ApiError ApiError::payload_too_large(std::string message) {
  return make(413, "invalid_request_error", std::move(message), {}, "payload_too_large");
}

ApiError ApiError::unsupported_media_type(std::string message) {
  return make(415, "invalid_request_error", std::move(message), {}, "unsupported_media_type");
}

ApiError ApiError::rate_limited(std::string message, std::chrono::seconds retry_after, std::string code) {
  ApiError e = make(429, "rate_limit_error", std::move(message), {}, std::move(code));
  e.retry_after = std::max(retry_after, std::chrono::seconds(1));
  return e;
}

ApiError ApiError::overloaded(std::string message, std::string code) {
  return make(503, "overloaded_error", std::move(message), {}, std::move(code));
}

ApiError ApiError::timeout(std::string message) {
  return make(504, "timeout_error", std::move(message));
}

ApiError ApiError::bad_gateway(std::string message) {
  return make(502, "upstream_error", std::move(message));
}

ApiError ApiError::internal(std::string message) {
  return make(500, "internal_error", std::move(message));
}

ApiError ApiError::request_timeout(std::string message) {
  return make(408, "invalid_request_error", std::move(message), {}, "request_timeout");
}

ApiError ApiError::header_too_large(std::string message) {
  return make(431, "invalid_request_error", std::move(message), {}, "header_too_large");
}

std::string error_body(const ApiError& e) {
  JsonWriter w;
  write_error_object(w, e);
  return w.take();
}

std::string error_frame_payload(const ApiError& e) { return error_body(e); }

ApiError api_error_from_target(const TargetError& e) {
  switch (e.kind) {
    case ErrorKind::connect_error:
      return ApiError::bad_gateway(described("could not reach the model provider", e.message));
    case ErrorKind::timeout:
      return ApiError::timeout(described("the model provider did not answer in time", e.message));
    case ErrorKind::upstream_5xx:
      return ApiError::bad_gateway(described("the model provider failed", e.message));
    case ErrorKind::rate_limited: {
      // Retry-After is whole seconds on the wire: round up so a client never retries too early.
      const auto ms = std::max<std::int64_t>(e.retry_after.count(), 0);
      const auto secs = std::max<std::int64_t>((ms + 999) / 1000, 1);
      return ApiError::rate_limited(described("rate limited by the model provider", e.message),
                                    std::chrono::seconds(secs), "rate_limit_exceeded");
    }
    case ErrorKind::overloaded:
      return ApiError::overloaded(described("the model is overloaded, try again later", e.message));
    case ErrorKind::context_too_long:
      return ApiError::bad_request(e.message.empty() ? "the prompt does not fit the model's context" : e.message,
                                  {}, "context_length_exceeded");
    case ErrorKind::unsupported:
      return ApiError::bad_request(
          e.message.empty() ? "the model cannot serve this request" : e.message, {}, "unsupported_parameter");
    case ErrorKind::unavailable:
      return make(503, "service_unavailable_error", described("the model is not available", e.message), {},
                  "model_unavailable");
    case ErrorKind::upstream_4xx: {
      const int status = e.upstream_status;
      if (status < 400 || status > 499)
        return ApiError::bad_gateway(described("the model provider rejected the request", e.message));
      // A provider refusing the gateway's own credentials is the gateway's misconfiguration, not the
      // client's; its body is not relayed (providers echo part of the key in it).
      if (status == 401 || status == 403 || status == 407)
        return ApiError::bad_gateway("the model provider refused the gateway's credentials (HTTP " +
                                     std::to_string(status) + ")");
      ApiError out = make(status, std::string(type_for_4xx(status)),
                          e.message.empty() ? "the model provider rejected the request" : e.message);
      relay_openai_error(e.upstream_body, out);
      if (status == 429) {
        const auto secs = std::max<std::int64_t>((e.retry_after.count() + 999) / 1000, 1);
        out.retry_after = std::chrono::seconds(secs);
      }
      return out;
    }
    case ErrorKind::cancelled:
      // 499 is the de-facto "client closed request" status: it only reaches logs and metrics, since the
      // client is gone. A request stopped by its own deadline reports `timeout` instead.
      return make(499, "cancelled_error", described("the request was cancelled", e.message));
    case ErrorKind::internal:
      break;
  }
  return ApiError::internal(described("internal error", e.message));
}

}  // namespace sluice
