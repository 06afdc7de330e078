#include "gateway/admin/admin_routes.h"

#include <chrono>
#include <set>

#include "gateway/admin/dashboard_data.h"
#include "gateway/admin/dashboard_page.h"
#include "gateway/api/errors.h"
#include "gateway/api/json_writer.h"
#include "gateway/api/response_format.h"
#include "gateway/health/health_registry.h"
#include "gateway/metrics/registry.h"
#include "gateway/proxy/auth.h"
#include "gateway/routing/policy_store.h"

namespace sluice {

namespace asio = boost::asio;

namespace {
constexpr std::string_view kJson = "application/json";

std::string status_body(std::string_view status, std::string_view reason = {}) {
  JsonWriter w;
  w.begin_object();
  w.key("status");
  w.string(status);
  if (!reason.empty()) {
    w.key("reason");
    w.string(reason);
  }
  w.end_object();
  return w.take();
}
}  // namespace

AdminRoutes::AdminRoutes(PolicyStore& policies, const KeySet& admin_keys, MetricsRegistry& metrics,
                         HealthRegistry& health)
    : policies_(policies), admin_keys_(admin_keys), metrics_(metrics), health_(health) {}

asio::awaitable<void> AdminRoutes::method_not_allowed(Exchange& ex, std::string_view allow) {
  auto e = ApiError::method_not_allowed("Method " + ex.request().method + " is not allowed on " + ex.request().path +
                                        "; use " + std::string(allow) + ".");
  HeaderList headers;  // named: GCC 12 mis-compiles braced lists inside co_await expressions
  headers.emplace_back("Allow", std::string(allow));
  co_await ex.respond(e.status, error_body(e), kJson, std::move(headers));
}

asio::awaitable<void> AdminRoutes::handle(Exchange& ex) {
  const auto& r = ex.request();
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (r.path == "/health") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    co_await ex.respond(200, status_body("ok"), kJson);
  } else if (r.path == "/ready") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    const bool started = ready_ && !draining_ && policies_.current() != nullptr;
    const std::string unready = started && readiness_ ? readiness_() : std::string();
    const bool ready = started && unready.empty();
    const std::string_view status = ready ? "ready" : draining_ ? "draining" : !started ? "starting" : "unavailable";
    co_await ex.respond(ready ? 200 : 503, status_body(status, unready), kJson);
  } else if (r.path == "/metrics") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    if (refresh_) refresh_();
    co_await ex.respond(200, metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
  } else if (r.path == "/dashboard") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    HeaderList headers;
    headers.emplace_back("Content-Security-Policy", std::string(dashboard_csp()));
    headers.emplace_back("Cache-Control", "no-store");
    co_await ex.respond(200, std::string(dashboard_page()), "text/html; charset=utf-8", std::move(headers));
  } else if (r.path == "/dashboard/data") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    co_await dashboard_data(ex);
  } else if (r.path == "/v1/models") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    co_await models(ex);
  } else if (r.path == "/admin/health") {
    if (!get) co_return co_await method_not_allowed(ex, "GET");
    if (!co_await authorize(ex)) co_return;
    co_await ex.respond(200, health_.snapshot_json(std::chrono::steady_clock::now()), kJson);
  } else if (r.path == "/admin/reload") {
    if (r.method != "POST") co_return co_await method_not_allowed(ex, "POST");
    co_await reload(ex);
  } else {
    auto e = ApiError::not_found("Unknown path " + r.path.substr(0, 256) + ".", "unknown_url");
    co_await ex.respond(e.status, error_body(e), kJson);
  }
}

asio::awaitable<void> AdminRoutes::dashboard_data(Exchange& ex) {
  if (refresh_) refresh_();
  const auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
  std::string body = dashboard_json(metrics_, health_.snapshot(std::chrono::steady_clock::now()), unix_ms);
  HeaderList headers;
  headers.emplace_back("Cache-Control", "no-store");
  co_await ex.respond(200, std::move(body), kJson, std::move(headers));
}

asio::awaitable<void> AdminRoutes::models(Exchange& ex) {
  auto policy = policies_.current();
  std::vector<std::string> ids;
  std::set<std::string> seen;
  if (!local_model_.empty() && seen.insert(local_model_).second) ids.push_back(local_model_);
  if (policy)
    for (const auto& route : policy->routes)
      if (!route.is_glob && seen.insert(route.model).second) ids.push_back(route.model);
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
  co_await ex.respond(200, format_model_list(ids, created), kJson);
}

asio::awaitable<bool> AdminRoutes::authorize(Exchange& ex) {
  if (admin_keys_.empty()) {
    auto e = ApiError::not_found("Admin endpoints are disabled: set auth.admin_key_env and that variable.",
                                 "admin_disabled");
    co_await ex.respond(e.status, error_body(e), kJson);
    co_return false;
  }
  auto token = bearer_token(ex.request().authorization);
  if (!token || !admin_keys_.contains(*token)) {
    auto e = ApiError::unauthorized("A valid admin key is required.");
    co_await ex.respond(e.status, error_body(e), kJson);
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> AdminRoutes::reload(Exchange& ex) {
  if (!co_await authorize(ex)) co_return;
  auto r = policies_.reload();
  JsonWriter w;
  w.begin_object();
  w.key("reloaded");
  w.boolean(r.ok());
  w.key("generation");
  w.number(static_cast<std::int64_t>(policies_.generation()));
  if (!r) {
    w.key("errors");
    w.begin_array();
    for (const auto& e : r.error()) w.string(e.to_string());
    w.end_array();
  }
  w.end_object();
  co_await ex.respond(r ? 200 : 400, w.take(), kJson);
}

}  // namespace sluice
