// The non-API endpoints: /health (liveness: the process answers), /ready (readiness), /metrics (Prometheus
// text), /v1/models, and /admin/* (admin key required). Unknown paths are 404, wrong methods 405.
#pragma once

#include <atomic>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "gateway/http/exchange.h"

namespace sluice {

class PolicyStore;
class KeySet;
class MetricsRegistry;

class AdminRoutes {
 public:
  AdminRoutes(PolicyStore& policies, const KeySet& admin_keys, MetricsRegistry& metrics);

  boost::asio::awaitable<void> handle(Exchange& ex);
  boost::asio::awaitable<void> method_not_allowed(Exchange& ex, std::string_view allow);

  void set_ready() { ready_ = true; }
  void set_draining() { draining_ = true; }

 private:
  boost::asio::awaitable<void> reload(Exchange& ex);
  boost::asio::awaitable<void> models(Exchange& ex);

  PolicyStore& policies_;
  const KeySet& admin_keys_;
  MetricsRegistry& metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace sluice
