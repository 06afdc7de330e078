#include "gateway/supervisor/restart_policy.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using Clock = RestartPolicy::Clock;

SupervisorSection section() {
  SupervisorSection s;
  s.restart_backoff = milliseconds(100);
  s.restart_backoff_max = milliseconds(500);
  s.crash_loop_restarts = 5;
  s.crash_loop_window = milliseconds(60'000);
  return s;
}

TEST(RestartPolicy, BackoffDoublesUpToTheMaximum) {
  RestartPolicy p(section());
  const auto t0 = Clock::now();
  std::vector<long long> delays;
  for (int i = 0; i < 5; ++i) delays.push_back(p.next_restart(t0 + milliseconds(i))->count());
  EXPECT_EQ(delays, (std::vector<long long>{100, 200, 400, 500, 500}));
}

TEST(RestartPolicy, GivesUpPastTheCrashLoopLimitWithinTheWindow) {
  RestartPolicy p(section());
  const auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(p.next_restart(t0 + milliseconds(i * 1000))) << i;
  EXPECT_FALSE(p.next_restart(t0 + milliseconds(10'000)));
  EXPECT_EQ(p.restarts_in_window(), 5u);
}

TEST(RestartPolicy, RestartsOlderThanTheWindowNoLongerCount) {
  RestartPolicy p(section());
  const auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(p.next_restart(t0 + milliseconds(i)));
  // The first restart leaves the window exactly 60 s after it happened; the others are still inside.
  EXPECT_TRUE(p.next_restart(t0 + milliseconds(60'000)));
  EXPECT_FALSE(p.next_restart(t0 + milliseconds(60'000)));
}

TEST(RestartPolicy, AStableWorkerResetsTheBackoffButNotTheWindow) {
  RestartPolicy p(section());
  const auto t0 = Clock::now();
  EXPECT_EQ(p.next_restart(t0)->count(), 100);
  EXPECT_EQ(p.next_restart(t0)->count(), 200);
  p.worker_stable();
  EXPECT_EQ(p.next_restart(t0)->count(), 100);
  EXPECT_EQ(p.restarts_in_window(), 3u);
}

TEST(RestartPolicy, ZeroRestartsAllowedGivesUpAtOnce) {
  SupervisorSection s = section();
  s.crash_loop_restarts = 0;
  RestartPolicy p(s);
  EXPECT_FALSE(p.next_restart(Clock::now()));
}

TEST(RestartPolicy, ZeroBackoffStaysZero) {
  SupervisorSection s = section();
  s.restart_backoff = milliseconds(0);
  s.restart_backoff_max = milliseconds(0);
  RestartPolicy p(s);
  EXPECT_EQ(p.next_restart(Clock::now())->count(), 0);
  EXPECT_EQ(p.next_restart(Clock::now())->count(), 0);
}

}  // namespace
}  // namespace sluice
