#include "gateway/admin/dashboard_data.h"

#include <simdjson.h>

#include <gtest/gtest.h>

#include "gateway/admin/dashboard_page.h"
#include "gateway/health/target_health.h"
#include "gateway/metrics/registry.h"

namespace sluice {
namespace {

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element el;
  auto err = parser.parse(json).get(el);
  EXPECT_FALSE(err) << simdjson::error_message(err) << " in " << json;
  return el;
}

std::uint64_t u64(simdjson::dom::element e, std::string_view path) { return e.at_pointer(path).get_uint64().value(); }
double dbl(simdjson::dom::element e, std::string_view path) { return e.at_pointer(path).get_double().value(); }

TEST(DashboardJson, EmptyRegistryHasTheFullShape) {
  MetricsRegistry m;
  simdjson::dom::parser parser;
  auto d = parse(parser, dashboard_json(m, {}, 1234));
  EXPECT_EQ(d["now_ms"].get_int64().value(), 1234);
  EXPECT_EQ(d["targets"].get_array().size(), 0u);
  EXPECT_EQ(u64(d, "/requests/total"), 0u);
  EXPECT_EQ(u64(d, "/fallbacks/total"), 0u);
  EXPECT_EQ(u64(d, "/limiter_rejections/total"), 0u);
  EXPECT_EQ(u64(d, "/latency/count"), 0u);
  EXPECT_EQ(d.at_pointer("/latency/buckets").get_array().size(), 0u);
  EXPECT_TRUE(d["engine"].is_null());
  EXPECT_EQ(u64(d, "/events/total"), 0u);
}

TEST(DashboardJson, TotalsQuantilesEngineAndEvents) {
  MetricsRegistry m;
  m.counter("sluice_requests_total", "", {{"route", "r"}, {"target", "a"}, {"status", "200"}}).inc(7);
  m.counter("sluice_requests_total", "", {{"route", "r"}, {"target", "a"}, {"status", "503"}}).inc(2);
  m.counter("sluice_requests_total", "", {{"route", "r"}, {"target", "b"}, {"status", "499"}}).inc(1);
  m.counter("sluice_fallbacks_total", "", {{"route", "r"}, {"reason", "timeout"}}).inc(3);
  m.counter("sluice_fallbacks_total", "", {{"route", "q"}, {"reason", "timeout"}}).inc(1);
  m.counter("sluice_limiter_rejections_total", "", {{"route", "r"}, {"limit", "route_requests"}}).inc(4);
  m.counter("sluice_tokens_in_total", "", {{"target", "a"}}).inc(70);
  m.counter("sluice_tokens_out_total", "", {{"target", "a"}}).inc(30);
  for (int i = 0; i < 100; ++i) {
    m.histogram("sluice_request_duration_seconds", "", {{"route", "r"}}).observe(0.2);
    m.histogram("sluice_time_to_first_token_seconds", "", {{"route", "r"}, {"target", "a"}}).observe(0.03);
  }
  m.histogram("sluice_request_duration_seconds", "", {{"route", "q"}}).observe(20);
  m.gauge("sluice_engine_running_sequences", "").set(3);
  m.gauge("sluice_engine_waiting_sequences", "").set(5);
  m.gauge("sluice_engine_kv_cache_usage", "").set(0.5);
  m.gauge("sluice_engine_healthy", "").set(1);
  m.events().record("fallback", "r", "a", "timeout");

  HealthSnapshot a;
  a.target = "a";
  a.state = CircuitState::open;
  a.routable = false;
  a.last_error_kind = ErrorKind::timeout;
  a.last_error_message = "upstream said: secret-looking text";
  HealthSnapshot b;
  b.target = "b";

  simdjson::dom::parser parser;
  const std::string json = dashboard_json(m, {a, b}, 99);
  EXPECT_EQ(json.find("secret-looking"), std::string::npos) << "error messages must not reach the open page";
  auto d = parse(parser, json);
  EXPECT_EQ(u64(d, "/requests/total"), 10u);
  EXPECT_EQ(u64(d, "/requests/errors"), 2u);
  EXPECT_EQ(u64(d, "/requests/by_class/2xx"), 7u);
  EXPECT_EQ(u64(d, "/requests/by_class/5xx"), 2u);
  EXPECT_EQ(u64(d, "/requests/by_class/4xx"), 1u);
  EXPECT_EQ(u64(d, "/fallbacks/total"), 4u);
  EXPECT_EQ(u64(d, "/fallbacks/by_reason/timeout"), 4u);
  EXPECT_EQ(u64(d, "/limiter_rejections/by_limit/route_requests"), 4u);
  EXPECT_EQ(u64(d, "/tokens/in"), 70u);
  EXPECT_EQ(u64(d, "/tokens/out"), 30u);

  // Both routes' latency series merged: 101 observations, p50 in (0.1, 0.25], p99 still there too.
  EXPECT_EQ(u64(d, "/latency/count"), 101u);
  EXPECT_GT(dbl(d, "/latency/p50"), 0.1);
  EXPECT_LE(dbl(d, "/latency/p50"), 0.25);
  EXPECT_LE(dbl(d, "/latency/p99"), 0.25);
  const auto bounds = d.at_pointer("/latency/bounds").get_array().value();
  const auto buckets = d.at_pointer("/latency/buckets").get_array().value();
  EXPECT_EQ(buckets.size(), bounds.size() + 1);
  EXPECT_EQ(u64(d, "/ttft/count"), 100u);
  EXPECT_LE(dbl(d, "/ttft/p50"), 0.05);

  EXPECT_EQ(d.at_pointer("/targets/0/target").get_string().value(), "a");
  EXPECT_EQ(d.at_pointer("/targets/0/state").get_string().value(), "open");
  EXPECT_FALSE(d.at_pointer("/targets/0/routable").get_bool().value());
  EXPECT_EQ(d.at_pointer("/targets/0/last_error_kind").get_string().value(), "timeout");
  EXPECT_EQ(u64(d, "/targets/0/requests"), 9u);
  EXPECT_EQ(u64(d, "/targets/0/errors"), 2u);
  EXPECT_EQ(u64(d, "/targets/0/tokens_out"), 30u);
  EXPECT_EQ(u64(d, "/targets/0/ttft/count"), 100u);
  EXPECT_EQ(u64(d, "/targets/1/requests"), 1u);
  EXPECT_EQ(u64(d, "/targets/1/errors"), 0u);
  EXPECT_EQ(u64(d, "/targets/1/ttft/count"), 0u);
  EXPECT_TRUE(d.at_pointer("/targets/1/last_error_kind").is_null());

  EXPECT_DOUBLE_EQ(dbl(d, "/engine/running"), 3);
  EXPECT_DOUBLE_EQ(dbl(d, "/engine/waiting"), 5);
  EXPECT_DOUBLE_EQ(dbl(d, "/engine/kv_cache_usage"), 0.5);
  EXPECT_TRUE(d.at_pointer("/engine/healthy").get_bool().value());

  EXPECT_EQ(u64(d, "/events/total"), 1u);
  EXPECT_EQ(d.at_pointer("/events/recent/0/route").get_string().value(), "r");
  EXPECT_EQ(d.at_pointer("/events/recent/0/reason").get_string().value(), "timeout");
  EXPECT_EQ(u64(d, "/events/recent/0/seq"), 1u);
}

TEST(DashboardPage, IsSelfContained) {
  const std::string_view page = dashboard_page();
  EXPECT_EQ(page.substr(0, 15), "<!doctype html>");
  EXPECT_NE(page.find("/dashboard/data"), std::string_view::npos);
  EXPECT_NE(page.find("</html>"), std::string_view::npos);
  // Nothing is loaded from elsewhere: no external script, stylesheet, font or image.
  for (std::string_view banned : {"http://", "https://", "src=\"", "@import", "url(", "<link rel=\"stylesheet"})
    EXPECT_EQ(page.find(banned), std::string_view::npos) << banned;
  EXPECT_NE(dashboard_csp().find("default-src 'none'"), std::string_view::npos);
}

}  // namespace
}  // namespace sluice
