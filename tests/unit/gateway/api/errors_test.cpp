#include "gateway/api/errors.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

#include "gateway/core/target.h"

namespace sluice {
namespace {

TargetError target_error(ErrorKind kind, std::string message = "detail") {
  TargetError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

struct Parsed {
  std::string message, type;
  bool param_null = false, code_null = false;
  std::string param, code;
};

Parsed reparse(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  EXPECT_FALSE(parser.parse(body).get(root)) << body;
  Parsed p;
  simdjson::dom::object err;
  EXPECT_FALSE(root["error"].get(err)) << body;
  EXPECT_EQ(err.size(), 4u);
  std::string_view s;
  EXPECT_FALSE(err["message"].get(s));
  p.message = std::string(s);
  EXPECT_FALSE(err["type"].get(s));
  p.type = std::string(s);
  p.param_null = err["param"].is_null();
  if (!p.param_null && !err["param"].get(s)) p.param = std::string(s);
  p.code_null = err["code"].is_null();
  if (!p.code_null && !err["code"].get(s)) p.code = std::string(s);
  return p;
}

TEST(ErrorsTest, FactoriesSetStatusAndType) {
  EXPECT_EQ(ApiError::bad_request("m", "temperature").status, 400);
  EXPECT_EQ(ApiError::bad_request("m").type, "invalid_request_error");
  EXPECT_EQ(ApiError::unauthorized("m").status, 401);
  EXPECT_EQ(ApiError::unauthorized("m").type, "authentication_error");
  EXPECT_EQ(ApiError::not_found("m", "model_not_found").status, 404);
  EXPECT_EQ(ApiError::not_found("m", "model_not_found").type, "not_found_error");
  EXPECT_EQ(ApiError::not_found("m", "model_not_found").code, "model_not_found");
  EXPECT_EQ(ApiError::method_not_allowed("m").status, 405);
  EXPECT_EQ(ApiError::request_timeout("m").status, 408);
  EXPECT_EQ(ApiError::payload_too_large("m").status, 413);
  EXPECT_EQ(ApiError::unsupported_media_type("m").status, 415);
  EXPECT_EQ(ApiError::header_too_large("m").status, 431);
  const ApiError limited = ApiError::rate_limited("m", std::chrono::seconds(3));
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.type, "rate_limit_error");
  EXPECT_EQ(limited.retry_after, std::chrono::seconds(3));
  EXPECT_EQ(ApiError::rate_limited("m", std::chrono::seconds(0)).retry_after, std::chrono::seconds(1));
  EXPECT_EQ(ApiError::overloaded("m").status, 503);
  EXPECT_EQ(ApiError::overloaded("m").type, "overloaded_error");
  EXPECT_EQ(ApiError::timeout("m").status, 504);
  EXPECT_EQ(ApiError::bad_gateway("m").status, 502);
  EXPECT_EQ(ApiError::internal("m").status, 500);
  EXPECT_EQ(ApiError::internal("m").type, "internal_error");
}

TEST(ErrorsTest, BodyIsTheOpenAIShapeWithNulls) {
  const Parsed p = reparse(error_body(ApiError::bad_request("temperature must be \"small\"\n", "temperature")));
  EXPECT_EQ(p.message, "temperature must be \"small\"\n");
  EXPECT_EQ(p.type, "invalid_request_error");
  EXPECT_EQ(p.param, "temperature");
  EXPECT_TRUE(p.code_null);

  const Parsed q = reparse(error_body(ApiError::internal("x")));
  EXPECT_TRUE(q.param_null);
  EXPECT_TRUE(q.code_null);

  const ApiError e = ApiError::not_found("no such model", "model_not_found");
  EXPECT_EQ(error_frame_payload(e), error_body(e));
  EXPECT_EQ(reparse(error_frame_payload(e)).code, "model_not_found");
}

TEST(ErrorsTest, MapsEveryErrorKind) {
  struct Case {
    ErrorKind kind;
    int status;
    const char* type;
    const char* code;  // "" for null
  };
  const Case cases[] = {
      {ErrorKind::connect_error, 502, "upstream_error", ""},
      {ErrorKind::timeout, 504, "timeout_error", ""},
      {ErrorKind::upstream_5xx, 502, "upstream_error", ""},
      {ErrorKind::rate_limited, 429, "rate_limit_error", "rate_limit_exceeded"},
      {ErrorKind::overloaded, 503, "overloaded_error", ""},
      {ErrorKind::context_too_long, 400, "invalid_request_error", "context_length_exceeded"},
      {ErrorKind::unsupported, 400, "invalid_request_error", "unsupported_parameter"},
      {ErrorKind::unavailable, 503, "service_unavailable_error", "model_unavailable"},
      {ErrorKind::cancelled, 499, "cancelled_error", ""},
      {ErrorKind::internal, 500, "internal_error", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.kind)));
    const ApiError e = api_error_from_target(target_error(c.kind, "the detail"));
    EXPECT_EQ(e.status, c.status);
    EXPECT_EQ(e.type, c.type);
    EXPECT_EQ(e.code, c.code);
    EXPECT_NE(e.message.find("the detail"), std::string::npos) << e.message;
    reparse(error_body(e));
  }
}

TEST(ErrorsTest, EmptyDetailGivesAMessageWithoutDanglingColon) {
  const ApiError e = api_error_from_target(target_error(ErrorKind::timeout, ""));
  EXPECT_FALSE(e.message.empty());
  EXPECT_NE(e.message.back(), ' ');
  EXPECT_FALSE(api_error_from_target(target_error(ErrorKind::context_too_long, "")).message.empty());
}

TEST(ErrorsTest, RateLimitedRoundsRetryAfterUp) {
  TargetError e = target_error(ErrorKind::rate_limited);
  e.retry_after = std::chrono::milliseconds(1500);
  EXPECT_EQ(api_error_from_target(e).retry_after, std::chrono::seconds(2));
  e.retry_after = std::chrono::milliseconds(1000);
  EXPECT_EQ(api_error_from_target(e).retry_after, std::chrono::seconds(1));
  e.retry_after = std::chrono::milliseconds(0);
  EXPECT_EQ(api_error_from_target(e).retry_after, std::chrono::seconds(1));
  e.retry_after = std::chrono::milliseconds(1);
  EXPECT_EQ(api_error_from_target(e).retry_after, std::chrono::seconds(1));
}

TEST(ErrorsTest, Upstream4xxRelaysTheProvidersOpenAIError) {
  TargetError e = target_error(ErrorKind::upstream_4xx, "HTTP 400");
  e.upstream_status = 400;
  e.upstream_body =
      R"({"error":{"message":"Invalid 'messages[0].role'","type":"invalid_request_error","param":"messages[0].role","code":null}})";
  const ApiError a = api_error_from_target(e);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.message, "Invalid 'messages[0].role'");
  EXPECT_EQ(a.type, "invalid_request_error");
  EXPECT_EQ(a.param, "messages[0].role");
  EXPECT_EQ(a.code, "");

  e.upstream_status = 404;
  e.upstream_body = R"({"error":{"code":"model_not_found","message":"The model `x` does not exist"}})";
  const ApiError b = api_error_from_target(e);
  EXPECT_EQ(b.status, 404);
  EXPECT_EQ(b.type, "not_found_error");
  EXPECT_EQ(b.code, "model_not_found");
  EXPECT_EQ(b.message, "The model `x` does not exist");

  e.upstream_status = 422;
  e.upstream_body = R"({"error":{"message":"bad","code":422}})";  // numeric codes are kept as text
  EXPECT_EQ(api_error_from_target(e).code, "422");
}

TEST(ErrorsTest, Upstream4xxWithoutAnOpenAIBodyUsesTheTargetMessage) {
  for (const char* body : {"", "<html>nope</html>", R"({"detail":"x"})", R"({"error":"flat string"})",
                           R"({"error":{"message":5}})"}) {
    SCOPED_TRACE(body);
    TargetError e = target_error(ErrorKind::upstream_4xx, "provider said 422");
    e.upstream_status = 422;
    e.upstream_body = body;
    const ApiError a = api_error_from_target(e);
    EXPECT_EQ(a.status, 422);
    EXPECT_EQ(a.type, "invalid_request_error");
    EXPECT_EQ(a.message, "provider said 422");
  }
}

TEST(ErrorsTest, Upstream4xxCredentialFailuresAreTheGatewaysProblem) {
  for (int status : {401, 403}) {
    TargetError e = target_error(ErrorKind::upstream_4xx);
    e.upstream_status = status;
    e.upstream_body = R"({"error":{"message":"Incorrect API key provided: sk-abc***xyz","type":"invalid_request_error"}})";
    const ApiError a = api_error_from_target(e);
    EXPECT_EQ(a.status, 502);
    EXPECT_EQ(a.message.find("sk-"), std::string::npos) << a.message;
  }
}

TEST(ErrorsTest, Upstream4xxWithANon4xxStatusIsABadGateway) {
  TargetError e = target_error(ErrorKind::upstream_4xx);
  e.upstream_status = 0;
  EXPECT_EQ(api_error_from_target(e).status, 502);
  e.upstream_status = 500;
  EXPECT_EQ(api_error_from_target(e).status, 502);
}

TEST(ErrorsTest, Upstream429KeepsRetryAfter) {
  TargetError e = target_error(ErrorKind::upstream_4xx);
  e.upstream_status = 429;
  e.retry_after = std::chrono::milliseconds(2500);
  const ApiError a = api_error_from_target(e);
  EXPECT_EQ(a.status, 429);
  EXPECT_EQ(a.type, "rate_limit_error");
  EXPECT_EQ(a.retry_after, std::chrono::seconds(3));
}

}  // namespace
}  // namespace sluice
