#include "gateway/routing/token_bucket.h"

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

// A fixed origin: the bucket only ever sees times derived from it, so the tests never read a real clock.
const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1000));

TEST(TokenBucketTest, StartsFullAndHoldsBurst) {
  TokenBucket b(10, 5, t0);
  EXPECT_DOUBLE_EQ(b.available(t0), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_take(1, t0)) << i;
  EXPECT_FALSE(b.try_take(1, t0));
  EXPECT_DOUBLE_EQ(b.available(t0), 0);
}

TEST(TokenBucketTest, RefillsAtRateUpToCapacity) {
  TokenBucket b(10, 5, t0);
  ASSERT_TRUE(b.try_take(5, t0));
  EXPECT_NEAR(b.available(t0 + 100ms), 1, 1e-9);
  EXPECT_NEAR(b.available(t0 + 250ms), 2.5, 1e-9);
  EXPECT_FALSE(b.try_take(3, t0 + 250ms));
  EXPECT_TRUE(b.try_take(2, t0 + 250ms));
  EXPECT_NEAR(b.available(t0 + 250ms), 0.5, 1e-9);
  EXPECT_DOUBLE_EQ(b.available(t0 + 1h), 5);  // never above capacity
}

TEST(TokenBucketTest, FailedTakeTakesNothing) {
  TokenBucket b(1, 10, t0);
  ASSERT_TRUE(b.try_take(7, t0));
  EXPECT_FALSE(b.try_take(4, t0));
  EXPECT_DOUBLE_EQ(b.available(t0), 3);
}

TEST(TokenBucketTest, RetryAfterSaysWhenEnoughIsBack) {
  TokenBucket b(10, 10, t0);
  ASSERT_TRUE(b.try_take(10, t0));
  Clock::duration wait{};
  EXPECT_FALSE(b.try_take(1, t0, &wait));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(wait), 100ms);
  EXPECT_FALSE(b.try_take(1, t0 + wait - 1ms));
  EXPECT_TRUE(b.try_take(1, t0 + wait));

  EXPECT_FALSE(b.try_take(5, t0 + wait, &wait));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(wait), 500ms);
}

TEST(TokenBucketTest, RetryAfterIsNeverZero) {
  TokenBucket b(1e9, 1, t0);
  ASSERT_TRUE(b.try_take(1, t0));
  Clock::duration wait{};
  EXPECT_FALSE(b.try_take(1e-12, t0, &wait));
  EXPECT_GT(wait, Clock::duration::zero());
}

TEST(TokenBucketTest, MoreThanCapacityIsNeverAvailable) {
  TokenBucket b(100, 10, t0);
  Clock::duration wait{};
  EXPECT_FALSE(b.try_take(11, t0, &wait));
  EXPECT_EQ(wait, TokenBucket::kNever);
  EXPECT_GT(wait, 1min);
  EXPECT_DOUBLE_EQ(b.available(t0), 10);  // nothing taken
}

TEST(TokenBucketTest, AdjustCanGoIntoDebtAndGiveBack) {
  TokenBucket b(10, 100, t0);
  ASSERT_TRUE(b.try_take(50, t0));  // an estimate
  b.adjust(80, t0);                 // the real cost was 130
  EXPECT_DOUBLE_EQ(b.available(t0), -30);
  Clock::duration wait{};
  EXPECT_FALSE(b.try_take(1, t0, &wait));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(wait), 3100ms);  // pay 30, then 1 more
  EXPECT_FALSE(b.try_take(1, t0 + 3s));
  EXPECT_TRUE(b.try_take(1, t0 + 3100ms));

  b.adjust(-1000, t0 + 3100ms);  // an estimate far too high: give back, but not beyond capacity
  EXPECT_DOUBLE_EQ(b.available(t0 + 3100ms), 100);
}

TEST(TokenBucketTest, RateZeroIsUnlimited) {
  TokenBucket b(0, 0, t0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.try_take(1e6, t0));
  b.adjust(1e9, t0);
  EXPECT_TRUE(b.try_take(1, t0));
  EXPECT_TRUE(std::isinf(b.available(t0)));
}

TEST(TokenBucketTest, ReconfigureKeepsLevelClamped) {
  TokenBucket b(10, 100, t0);
  ASSERT_TRUE(b.try_take(40, t0));
  b.reconfigure(1, 50, t0 + 1s);  // refilled to 70 under the old rate, then clamped to 50
  EXPECT_DOUBLE_EQ(b.available(t0 + 1s), 50);
  EXPECT_DOUBLE_EQ(b.rate(), 1);
  EXPECT_DOUBLE_EQ(b.capacity(), 50);
  ASSERT_TRUE(b.try_take(50, t0 + 1s));
  b.reconfigure(5, 200, t0 + 1s);  // a larger bucket does not refill a drained one
  EXPECT_DOUBLE_EQ(b.available(t0 + 1s), 0);
  EXPECT_NEAR(b.available(t0 + 2s), 5, 1e-9);
}

TEST(TokenBucketTest, ReconfigureFromUnlimitedStartsFull) {
  TokenBucket b(0, 0, t0);
  b.reconfigure(10, 20, t0);
  EXPECT_DOUBLE_EQ(b.available(t0), 20);
  b.reconfigure(0, 0, t0);
  EXPECT_TRUE(b.try_take(1e9, t0));
}

TEST(TokenBucketTest, OlderTimeNeitherRefillsNorDrains) {
  TokenBucket b(10, 10, t0 + 10s);
  ASSERT_TRUE(b.try_take(10, t0 + 10s));
  EXPECT_FALSE(b.try_take(1, t0));
  EXPECT_DOUBLE_EQ(b.available(t0), 0);
  EXPECT_NEAR(b.available(t0 + 10500ms), 5, 1e-9);
}

TEST(TokenBucketTest, ConcurrentTakesNeverExceedCapacity) {
  TokenBucket b(1, 1000, t0);
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (b.try_take(1, t0)) taken.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(taken.load(), 1000);
  EXPECT_DOUBLE_EQ(b.available(t0), 0);
}

}  // namespace
}  // namespace sluice
