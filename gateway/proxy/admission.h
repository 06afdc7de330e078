// Admission state: token buckets per client key and per route, and the route concurrency semaphores.
// The state lives across policy reloads for every limit whose key (route name, client key index) is
// unchanged; configure() is called with each new snapshot.
// Thread: any; the tables are guarded by a mutex, the limiters by their own.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "gateway/routing/concurrency_limiter.h"
#include "gateway/routing/policy.h"
#include "gateway/routing/token_bucket.h"

namespace sluice {

class MetricsRegistry;

struct BucketRejection {
  std::string limit;                    // "route_requests", "route_tokens", "key_requests", "key_tokens"
  std::chrono::milliseconds retry_after;
};

class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Admission(MetricsRegistry& metrics);

  void configure(const Policy& policy);

  // Takes one request and `tokens` estimated tokens from the route's and the client's buckets, or nothing.
  // client: a stable label of the client key ("" when auth is off).
  std::optional<BucketRejection> take(const Route& route, const std::string& client, double tokens,
                                      Clock::time_point now = Clock::now());
  // Corrects the token estimate with the real usage (actual - estimated; may be negative).
  void reconcile(const Route& route, const std::string& client, double delta, Clock::time_point now = Clock::now());

  // The route's semaphore (created by configure; never null for a route of the current policy).
  std::shared_ptr<ConcurrencyLimiter> limiter(const std::string& route);

 private:
  struct Buckets {
    std::unique_ptr<TokenBucket> requests;  // null = no limit
    std::unique_ptr<TokenBucket> tokens;
  };
  static void apply(Buckets& b, const BucketLimits& lim, Clock::time_point now);
  Buckets& client_buckets(const std::string& client, Clock::time_point now);

  MetricsRegistry& metrics_;
  std::mutex mu_;
  std::map<std::string, Buckets> routes_;
  std::map<std::string, Buckets> clients_;
  BucketLimits client_limits_;
  std::map<std::string, std::shared_ptr<ConcurrencyLimiter>> limiters_;
};

// Tokens charged before a request runs: prompt bytes / 4 plus max_tokens (or the route default), times n.
double estimate_tokens(std::size_t prompt_bytes, std::optional<std::int64_t> max_tokens,
                       std::int64_t default_max_tokens, int n);

}  // namespace sluice
