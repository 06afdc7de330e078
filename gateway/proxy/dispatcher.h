// The completion path: authentication → parse and validate → route → token buckets → route semaphore →
// targets in priority order with retries and fallback → the response, streamed or whole.
// Fallback is possible until the first byte reaches the client; after it a failure ends the stream with an
// error frame and a closed connection, never `data: [DONE]`.
#pragma once

#include <atomic>
#include <memory>
#include <random>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "gateway/api/request.h"
#include "gateway/http/exchange.h"
#include "gateway/proxy/admission.h"
#include "gateway/proxy/auth.h"
#include "gateway/proxy/target_table.h"
#include "gateway/routing/policy_store.h"

namespace sluice {

class MetricsRegistry;
class HealthRegistry;

struct DispatcherOptions {
  std::chrono::milliseconds request_timeout{300'000};
  std::size_t output_buffer_bytes = 1 << 20;
};

class Dispatcher {
 public:
  Dispatcher(DispatcherOptions opts, PolicyStore& policies, Admission& admission, TargetTable& targets,
             HealthRegistry& health, const KeySet& client_keys, MetricsRegistry& metrics);

  boost::asio::awaitable<void> handle(Exchange& ex, Endpoint endpoint);

 private:
  struct Attempt;
  // `queued`: how long the request waited for a concurrency slot (not the gateway's own overhead).
  boost::asio::awaitable<void> run(Exchange& ex, const ApiRequest& req, const Route& route,
                                   std::chrono::steady_clock::duration queued,
                                   const std::string& client, double estimate);
  int pick(const Route& route, const std::vector<bool>& tried);

  DispatcherOptions opts_;
  PolicyStore& policies_;
  Admission& admission_;
  TargetTable& targets_;
  HealthRegistry& health_;
  const KeySet& client_keys_;
  MetricsRegistry& metrics_;
  std::atomic<std::uint64_t> next_id_{1};
  std::mutex rng_mu_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace sluice
