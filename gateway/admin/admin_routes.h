// The non-API endpoints: /health (liveness: the process answers), /ready (readiness), /metrics (Prometheus
// text), /dashboard and /dashboard/data (the live operations page and its JSON; open, and free of secrets
// and client-sent strings), /v1/models, and /admin/* (admin key required). Unknown paths are 404, wrong
// methods 405.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "gateway/http/exchange.h"

namespace sluice {

class PolicyStore;
class KeySet;
class MetricsRegistry;
class HealthRegistry;

class AdminRoutes {
 public:
  AdminRoutes(PolicyStore& policies, const KeySet& admin_keys, MetricsRegistry& metrics, HealthRegistry& health);

  boost::asio::awaitable<void> handle(Exchange& ex);
  boost::asio::awaitable<void> method_not_allowed(Exchange& ex, std::string_view allow);

  void set_ready() { ready_ = true; }
  // The embedded engine's model name, listed by /v1/models.
  void set_local_model(std::string name) { local_model_ = std::move(name); }
  // Runs before /metrics and /dashboard/data are rendered, to bring gauges that are sampled rather than
  // counted up to date.
  void on_metrics_scrape(std::function<void()> refresh) { refresh_ = std::move(refresh); }
  void set_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  // /ready asks this once started: "" when traffic can be served, else why not (503 "unavailable" with the
  // reason). Called on an I/O thread; must be cheap and thread-safe.
  void set_readiness_check(std::function<std::string()> check) { readiness_ = std::move(check); }

 private:
  boost::asio::awaitable<void> reload(Exchange& ex);
  // True when the request carries the admin key; otherwise answers 401/404 itself.
  boost::asio::awaitable<bool> authorize(Exchange& ex);
  boost::asio::awaitable<void> models(Exchange& ex);
  boost::asio::awaitable<void> dashboard_data(Exchange& ex);

  PolicyStore& policies_;
  const KeySet& admin_keys_;
  MetricsRegistry& metrics_;
  HealthRegistry& health_;
  std::string local_model_;
  std::function<void()> refresh_;
  std::function<std::string()> readiness_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace sluice
