#include "gateway/health/probe_schedule.h"

#include <chrono>
#include <set>

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using TimePoint = ProbeSchedule::TimePoint;

const TimePoint kT0 = TimePoint{} + 1000h;

ProbeConfig probe(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
  ProbeConfig p;
  p.interval = interval;
  p.timeout = timeout;
  return p;
}

TEST(ProbeSchedule, FirstProbeComesWithinTheJitterOfStart) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    ProbeSchedule s(probe(5s, 2s), kT0, seed, 0.2);
    EXPECT_GE(s.next_at(), kT0);
    EXPECT_LE(s.next_at(), kT0 + 1s);
  }
  ProbeSchedule none(probe(5s, 2s), kT0, 1, 0.0);
  EXPECT_EQ(none.next_at(), kT0);
  EXPECT_TRUE(none.due(kT0));
}

TEST(ProbeSchedule, StartReturnsTheDeadlineAndSchedulesAJitteredNext) {
  ProbeSchedule s(probe(10s, 2s), kT0, 7, 0.1);
  TimePoint now = s.next_at();
  std::set<TimePoint::rep> waits;
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(s.due(now));
    const TimePoint deadline = s.start(now);
    EXPECT_EQ(deadline, now + 2s);
    EXPECT_FALSE(s.due(now));
    const auto wait = s.next_at() - now;
    EXPECT_GE(wait, 9s);
    EXPECT_LE(wait, 11s);
    waits.insert(wait.count());
    now = s.next_at();
  }
  EXPECT_GT(waits.size(), 100u);  // the jitter varies
}

TEST(ProbeSchedule, WithoutJitterTheIntervalIsExact) {
  ProbeSchedule s(probe(5s, 1s), kT0, 3, 0.0);
  s.start(kT0);
  EXPECT_EQ(s.next_at(), kT0 + 5s);
  EXPECT_EQ(s.wait(kT0 + 1s), 4s);
  EXPECT_EQ(s.wait(kT0 + 5s), 0ms);
  EXPECT_EQ(s.wait(kT0 + 6s), 0ms);
  EXPECT_TRUE(s.due(kT0 + 5s));
  EXPECT_FALSE(s.due(kT0 + 4999ms));
}

TEST(ProbeSchedule, WaitRoundsUpSoATimerNeverFiresEarly) {
  ProbeSchedule s(probe(5s, 1s), kT0, 3, 0.0);
  s.start(kT0);
  EXPECT_EQ(s.wait(kT0 + 4999us), 4996ms);  // 4995.001 ms left
}

TEST(ProbeSchedule, ALongTimeoutDelaysTheNextProbeSoTheyNeverOverlap) {
  ProbeSchedule s(probe(1s, 3s), kT0, 3, 0.1);
  const TimePoint deadline = s.start(kT0);
  EXPECT_EQ(deadline, kT0 + 3s);
  EXPECT_EQ(s.next_at(), deadline);
}

TEST(ProbeSchedule, SameSeedSameSequence) {
  ProbeSchedule a(probe(5s, 1s), kT0, 42, 0.3);
  ProbeSchedule b(probe(5s, 1s), kT0, 42, 0.3);
  EXPECT_EQ(a.next_at(), b.next_at());
  for (int i = 0; i < 20; ++i) {
    a.start(a.next_at());
    b.start(b.next_at());
    EXPECT_EQ(a.next_at(), b.next_at());
  }
}

TEST(ProbeSchedule, OutOfRangeSettingsAreClamped) {
  ProbeSchedule wild(probe(0ms, -5ms), kT0, 1, 7.0);
  EXPECT_EQ(wild.interval(), 1ms);
  EXPECT_EQ(wild.timeout(), 1ms);
  EXPECT_EQ(wild.jitter(), 0.5);
  ProbeSchedule nan(probe(5s, 1s), kT0, 1, std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(nan.jitter(), 0.0);
  ProbeSchedule neg(probe(5s, 1s), kT0, 1, -0.2);
  EXPECT_EQ(neg.jitter(), 0.0);
  // Even at the widest jitter the next probe is at least 1 ms away.
  for (int i = 0; i < 100; ++i) {
    const TimePoint now = wild.next_at();
    wild.start(now);
    EXPECT_GE(wild.next_at() - now, 1ms);
  }
}

}  // namespace
}  // namespace sluice
