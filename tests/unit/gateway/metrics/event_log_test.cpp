#include "gateway/metrics/event_log.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(EventLog, KeepsTheNewestUpToCapacityInOrder) {
  EventLog log(3);
  const auto t0 = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000));
  for (int i = 0; i < 5; ++i)
    log.record("fallback", "r" + std::to_string(i), "local", "overloaded", t0 + std::chrono::milliseconds(i));
  auto events = log.recent();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].route, "r2");
  EXPECT_EQ(events[2].route, "r4");
  EXPECT_EQ(events[0].seq, 3u);
  EXPECT_EQ(events[2].seq, 5u);
  EXPECT_EQ(events[2].unix_ms, 1'700'000'000'004);
  EXPECT_EQ(events[2].kind, "fallback");
  EXPECT_EQ(events[2].target, "local");
  EXPECT_EQ(events[2].reason, "overloaded");
  EXPECT_EQ(log.total(), 5u);
}

TEST(EventLog, EmptyAndZeroCapacity) {
  EventLog empty;
  EXPECT_TRUE(empty.recent().empty());
  EXPECT_EQ(empty.total(), 0u);
  EventLog one(0);  // clamped to one slot rather than dropping everything
  one.record("fallback", "r", "a", "timeout");
  one.record("fallback", "r", "b", "timeout");
  ASSERT_EQ(one.recent().size(), 1u);
  EXPECT_EQ(one.recent()[0].target, "b");
}

TEST(EventLog, ConcurrentRecordsGetDistinctSequenceNumbers) {
  EventLog log(10'000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) log.record("fallback", "r", "t", "upstream_5xx");
    });
  for (auto& t : threads) t.join();
  auto events = log.recent();
  ASSERT_EQ(events.size(), 4000u);
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, i + 1);
}

}  // namespace
}  // namespace sluice
