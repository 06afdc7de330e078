// OpenAI-style errors: every failure the client sees is an ApiError, turned into a status and a body
// `{"error":{"message","type","param","code"}}` here and nowhere else.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace sluice {

struct TargetError;

struct ApiError {
  int status = 500;
  std::string type;     // invalid_request_error, authentication_error, rate_limit_error, ...
  std::string message;
  std::string param;    // "" -> null
  std::string code;     // "" -> null
  std::chrono::seconds retry_after{0};  // > 0 adds a Retry-After header

  static ApiError bad_request(std::string message, std::string param = {}, std::string code = {});
  static ApiError unauthorized(std::string message);
  static ApiError not_found(std::string message, std::string code = {});
  static ApiError method_not_allowed(std::string message);
  static ApiError payload_too_large(std::string message);
  static ApiError unsupported_media_type(std::string message);
  // retry_after is raised to at least 1 s: a 429 always carries Retry-After.
  static ApiError rate_limited(std::string message, std::chrono::seconds retry_after, std::string code = {});
  static ApiError overloaded(std::string message, std::string code = {});  // 503
  static ApiError timeout(std::string message);                             // 504
  static ApiError bad_gateway(std::string message);                         // 502
  static ApiError internal(std::string message);                            // 500
  static ApiError request_timeout(std::string message);                     // 408
  static ApiError header_too_large(std::string message);                    // 431
};

// The JSON body for `e`.
std::string error_body(const ApiError& e);

// The `data: {...}` payload (without the SSE framing) that ends a stream cut after the first byte.
std::string error_frame_payload(const ApiError& e);

// The one mapping from a target's failure to what the client sees:
//   connect_error, upstream_5xx -> 502 upstream_error      timeout -> 504 timeout_error
//   rate_limited -> 429 (Retry-After rounded up, >= 1 s)   overloaded -> 503 overloaded_error
//   context_too_long -> 400 code context_length_exceeded  unsupported -> 400 code unsupported_parameter
//   unavailable -> 503 service_unavailable_error            internal -> 500 internal_error
//   cancelled -> 499 (nginx's "client closed request"; only logs and metrics see it)
//   upstream_4xx -> the provider's 4xx status, with its message/type/param/code when its body is an OpenAI
//     error; but 401/403/407 (the provider refusing the gateway's own key) -> 502, body not relayed.
ApiError api_error_from_target(const TargetError& e);

}  // namespace sluice
