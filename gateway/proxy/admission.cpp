#include "gateway/proxy/admission.h"

#include "gateway/metrics/registry.h"

namespace sluice {

Admission::Admission(MetricsRegistry& metrics) : metrics_(metrics) {}

void Admission::apply(Buckets& b, const BucketLimits& lim, Clock::time_point now) {
  const double burst = lim.burst > 0 ? lim.burst : lim.requests_per_second;
  if (lim.requests_per_second > 0) {
    if (b.requests) b.requests->reconfigure(lim.requests_per_second, burst, now);
    else b.requests = std::make_unique<TokenBucket>(lim.requests_per_second, burst, now);
  } else {
    b.requests.reset();
  }
  if (lim.tokens_per_minute > 0) {
    // A minute's worth of tokens is the bucket; it refills continuously.
    if (b.tokens) b.tokens->reconfigure(lim.tokens_per_minute / 60.0, lim.tokens_per_minute, now);
    else b.tokens = std::make_unique<TokenBucket>(lim.tokens_per_minute / 60.0, lim.tokens_per_minute, now);
  } else {
    b.tokens.reset();
  }
}

void Admission::configure(const Policy& policy) {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  std::map<std::string, Buckets> routes;
  std::map<std::string, std::shared_ptr<ConcurrencyLimiter>> limiters;
  for (const auto& r : policy.routes) {
    auto it = routes_.find(r.name);
    Buckets b = it != routes_.end() ? std::move(it->second) : Buckets{};
    apply(b, r.limits.bucket, now);
    routes.emplace(r.name, std::move(b));
    auto lit = limiters_.find(r.name);
    if (lit != limiters_.end()) {
      lit->second->reconfigure(r.limits.max_concurrency, r.limits.max_queue);
      limiters.emplace(r.name, lit->second);
    } else {
      limiters.emplace(r.name, std::make_shared<ConcurrencyLimiter>(r.limits.max_concurrency, r.limits.max_queue));
    }
  }
  routes_ = std::move(routes);
  limiters_ = std::move(limiters);
  client_limits_ = policy.client_limits;
  for (auto& [_, b] : clients_) apply(b, client_limits_, now);
}

Admission::Buckets& Admission::client_buckets(const std::string& client, Clock::time_point now) {
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    it = clients_.emplace(client, Buckets{}).first;
    apply(it->second, client_limits_, now);
  }
  return it->second;
}

std::optional<BucketRejection> Admission::take(const Route& route, const std::string& client, double tokens,
                                               Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto rit = routes_.find(route.name);
  Buckets* rb = rit == routes_.end() ? nullptr : &rit->second;
  Buckets* cb = client.empty() ? nullptr : &client_buckets(client, now);

  // Check every bucket before taking from any, so a rejection takes nothing.
  struct Check {
    TokenBucket* bucket;
    double n;
    const char* name;
  };
  Check checks[] = {{cb ? cb->requests.get() : nullptr, 1, "key_requests"},
                    {cb ? cb->tokens.get() : nullptr, tokens, "key_tokens"},
                    {rb ? rb->requests.get() : nullptr, 1, "route_requests"},
                    {rb ? rb->tokens.get() : nullptr, tokens, "route_tokens"}};
  for (auto& c : checks) {
    if (!c.bucket) continue;
    Clock::duration wait{};
    if (c.bucket->available(now) < c.n) {
      c.bucket->try_take(c.n, now, &wait);  // fails: only computes the wait
      metrics_
          .counter("sluice_limiter_rejections_total", "requests rejected by a limit",
                   {{"route", route.name}, {"limit", c.name}})
          .inc();
      return BucketRejection{c.name, std::chrono::duration_cast<std::chrono::milliseconds>(wait)};
    }
  }
  for (auto& c : checks)
    if (c.bucket) c.bucket->try_take(c.n, now);
  return std::nullopt;
}

void Admission::reconcile(const Route& route, const std::string& client, double delta, Clock::time_point now) {
  if (delta == 0) return;
  std::lock_guard lock(mu_);
  if (auto it = routes_.find(route.name); it != routes_.end() && it->second.tokens)
    it->second.tokens->adjust(delta, now);
  if (!client.empty()) {
    auto& cb = client_buckets(client, now);
    if (cb.tokens) cb.tokens->adjust(delta, now);
  }
}

std::shared_ptr<ConcurrencyLimiter> Admission::limiter(const std::string& route) {
  std::lock_guard lock(mu_);
  auto it = limiters_.find(route);
  return it == limiters_.end() ? nullptr : it->second;
}

double estimate_tokens(std::size_t prompt_bytes, std::optional<std::int64_t> max_tokens,
                       std::int64_t default_max_tokens, int n) {
  const double prompt = static_cast<double>(prompt_bytes) / 4.0;
  const double out = static_cast<double>(max_tokens.value_or(default_max_tokens));
  return prompt + out * static_cast<double>(n < 1 ? 1 : n);
}

}  // namespace sluice
