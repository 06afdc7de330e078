#include "gateway/proxy/admission.h"

#include <gtest/gtest.h>

#include "gateway/metrics/registry.h"

namespace sluice {
namespace {

Policy policy_with(double rps, double burst, double tpm, int concurrency) {
  Policy p;
  Route r;
  r.name = "r";
  r.model = "*";
  r.is_glob = true;
  r.limits.bucket = {rps, burst, tpm};
  r.limits.max_concurrency = concurrency;
  r.limits.max_queue = 1;
  p.routes.push_back(r);
  return p;
}

TEST(Admission, RouteRequestBucketRejectsWithRetryAfterAndCounts) {
  MetricsRegistry m;
  Admission a(m);
  auto p = policy_with(2, 2, 0, 0);
  a.configure(p);
  const auto t0 = Admission::Clock::now();
  EXPECT_FALSE(a.take(p.routes[0], "", 10, t0));
  EXPECT_FALSE(a.take(p.routes[0], "", 10, t0));
  auto rej = a.take(p.routes[0], "", 10, t0);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->limit, "route_requests");
  EXPECT_GT(rej->retry_after.count(), 0);
  EXPECT_LE(rej->retry_after.count(), 500);
  EXPECT_EQ(m.counter_value("sluice_limiter_rejections_total", {{"route", "r"}, {"limit", "route_requests"}}), 1u);
  // Half a second later one request's worth has refilled.
  EXPECT_FALSE(a.take(p.routes[0], "", 10, t0 + std::chrono::milliseconds(500)));
}

TEST(Admission, TokenBucketIsReconciledWithRealUsage) {
  MetricsRegistry m;
  Admission a(m);
  auto p = policy_with(0, 0, 600, 0);  // 600 tokens a minute
  a.configure(p);
  const auto t0 = Admission::Clock::now();
  EXPECT_FALSE(a.take(p.routes[0], "", 500, t0));
  EXPECT_TRUE(a.take(p.routes[0], "", 500, t0));  // only 100 left
  a.reconcile(p.routes[0], "", -450, t0);          // the request used 50, not 500
  EXPECT_FALSE(a.take(p.routes[0], "", 500, t0));
}

TEST(Admission, RejectionTakesNothingFromOtherBuckets) {
  MetricsRegistry m;
  Admission a(m);
  auto p = policy_with(100, 100, 100, 0);
  p.client_limits = {1, 1, 0};
  a.configure(p);
  const auto t0 = Admission::Clock::now();
  EXPECT_FALSE(a.take(p.routes[0], "key0", 10, t0));
  auto rej = a.take(p.routes[0], "key0", 10, t0);
  ASSERT_TRUE(rej);
  EXPECT_EQ(rej->limit, "key_requests");
  // Another client still has the route's full budget minus the first request.
  EXPECT_FALSE(a.take(p.routes[0], "key1", 90, t0));
}

TEST(Admission, LimiterStateSurvivesAReloadWithTheSameRoute) {
  MetricsRegistry m;
  Admission a(m);
  auto p = policy_with(0, 0, 0, 1);
  a.configure(p);
  auto lim = a.limiter("r");
  ASSERT_TRUE(lim);
  std::uint64_t ticket = 0;
  EXPECT_EQ(lim->acquire([] {}, &ticket), ConcurrencyLimiter::Admit::granted);
  a.configure(policy_with(0, 0, 0, 1));
  EXPECT_EQ(a.limiter("r"), lim);
  EXPECT_EQ(lim->in_use(), 1);
  lim->release();
}

TEST(EstimateTokens, PromptBytesOverFourPlusMaxTokensTimesN) {
  EXPECT_DOUBLE_EQ(estimate_tokens(400, 50, 256, 1), 150);
  EXPECT_DOUBLE_EQ(estimate_tokens(400, std::nullopt, 256, 2), 100 + 512);
}

}  // namespace
}  // namespace sluice
