#include "gateway/routing/concurrency_limiter.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

using Admit = ConcurrencyLimiter::Admit;

TEST(ConcurrencyLimiterTest, GrantsThenQueuesThenRejects) {
  ConcurrencyLimiter l(2, 1);
  std::uint64_t ticket = 99;
  EXPECT_EQ(l.acquire(nullptr, &ticket), Admit::granted);
  EXPECT_EQ(ticket, 0u);
  EXPECT_EQ(l.acquire(nullptr, &ticket), Admit::granted);
  EXPECT_EQ(l.in_use(), 2);
  int called = 0;
  EXPECT_EQ(l.acquire([&] { ++called; }, &ticket), Admit::queued);
  EXPECT_NE(ticket, 0u);
  EXPECT_EQ(l.queued(), 1);
  std::uint64_t rejected_ticket = 99;
  EXPECT_EQ(l.acquire([&] { ADD_FAILURE() << "a rejected request was granted"; }, &rejected_ticket),
            Admit::rejected);
  EXPECT_EQ(rejected_ticket, 0u);
  EXPECT_EQ(called, 0);

  l.release();  // handed straight to the waiter
  EXPECT_EQ(called, 1);
  EXPECT_EQ(l.in_use(), 2);
  EXPECT_EQ(l.queued(), 0);
  l.release();
  l.release();
  EXPECT_EQ(l.in_use(), 0);
  EXPECT_EQ(called, 1);  // exactly once
}

TEST(ConcurrencyLimiterTest, WaitersAreGrantedInArrivalOrder) {
  ConcurrencyLimiter l(1, 10);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(l.acquire([&order, i] { order.push_back(i); }, nullptr), Admit::queued);
  for (int i = 0; i < 5; ++i) l.release();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(l.in_use(), 1);
  l.release();
  EXPECT_EQ(l.in_use(), 0);
}

TEST(ConcurrencyLimiterTest, ZeroQueueRejectsAtOnce) {
  ConcurrencyLimiter l(1, 0);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  EXPECT_EQ(l.acquire(nullptr, nullptr), Admit::rejected);
}

TEST(ConcurrencyLimiterTest, UnlimitedGrantsEverything) {
  ConcurrencyLimiter l(0, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  EXPECT_EQ(l.in_use(), 1000);
  for (int i = 0; i < 1000; ++i) l.release();
  EXPECT_EQ(l.in_use(), 0);
}

TEST(ConcurrencyLimiterTest, CancelRemovesAWaiter) {
  ConcurrencyLimiter l(1, 3);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  std::uint64_t a = 0, b = 0, c = 0;
  int a_called = 0, b_called = 0, c_called = 0;
  ASSERT_EQ(l.acquire([&] { ++a_called; }, &a), Admit::queued);
  ASSERT_EQ(l.acquire([&] { ++b_called; }, &b), Admit::queued);
  ASSERT_EQ(l.acquire([&] { ++c_called; }, &c), Admit::queued);
  EXPECT_NE(a, b);
  EXPECT_TRUE(l.cancel(b));
  EXPECT_FALSE(l.cancel(b));  // already gone
  EXPECT_FALSE(l.cancel(12345));
  EXPECT_EQ(l.queued(), 2);
  // A cancelled waiter frees its queue place.
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::queued);

  l.release();
  EXPECT_EQ(a_called, 1);
  EXPECT_FALSE(l.cancel(a));  // granted: its holder must release instead
  l.release();
  EXPECT_EQ(b_called, 0);
  EXPECT_EQ(c_called, 1);
}

TEST(ConcurrencyLimiterTest, NewcomersDoNotOvertakeTheQueue) {
  ConcurrencyLimiter l(1, 5);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  bool first = false;
  ASSERT_EQ(l.acquire([&] { first = true; }, nullptr), Admit::queued);
  l.reconfigure(1, 5);  // no change: still one slot, held
  EXPECT_FALSE(first);
  EXPECT_EQ(l.acquire(nullptr, nullptr), Admit::queued);
}

TEST(ConcurrencyLimiterTest, RaisingTheLimitGrantsWaiters) {
  ConcurrencyLimiter l(1, 5);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  int granted = 0;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(l.acquire([&] { ++granted; }, nullptr), Admit::queued);
  l.reconfigure(3, 5);
  EXPECT_EQ(granted, 2);
  EXPECT_EQ(l.in_use(), 3);
  EXPECT_EQ(l.queued(), 1);
  l.reconfigure(0, 5);  // unlimited
  EXPECT_EQ(granted, 3);
  EXPECT_EQ(l.queued(), 0);
  EXPECT_EQ(l.in_use(), 4);
}

TEST(ConcurrencyLimiterTest, LoweringTheLimitKeepsHeldSlots) {
  ConcurrencyLimiter l(4, 2);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  int granted = 0;
  ASSERT_EQ(l.acquire([&] { ++granted; }, nullptr), Admit::queued);
  ASSERT_EQ(l.acquire([&] { ++granted; }, nullptr), Admit::queued);
  l.reconfigure(2, 1);
  EXPECT_EQ(l.in_use(), 4);
  EXPECT_EQ(l.queued(), 2);  // queued before the change: they stay
  EXPECT_EQ(l.acquire(nullptr, nullptr), Admit::rejected);
  l.release();  // 3 held, limit 2: nobody is granted yet
  l.release();  // 2 held
  EXPECT_EQ(granted, 0);
  l.release();  // 1 held: one waiter gets the slot
  EXPECT_EQ(granted, 1);
  EXPECT_EQ(l.in_use(), 2);
  EXPECT_EQ(l.max_concurrency(), 2);
  EXPECT_EQ(l.max_queue(), 1);
}

TEST(ConcurrencyLimiterTest, CallbackRunsOutsideTheLock) {
  ConcurrencyLimiter l(1, 2);
  ASSERT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  int seen_in_use = -1;
  Admit inner = Admit::rejected;
  ASSERT_EQ(l.acquire(
                [&] {
                  // Re-entering the limiter from the callback would deadlock if it ran under the lock.
                  seen_in_use = l.in_use();
                  inner = l.acquire(nullptr, nullptr);
                  l.release();
                },
                nullptr),
            Admit::queued);
  l.release();
  EXPECT_EQ(seen_in_use, 1);
  EXPECT_EQ(inner, Admit::queued);  // the slot was handed over, so the re-entrant request waits
  // The callback's release() handed its slot to that re-entrant waiter (a null callback).
  EXPECT_EQ(l.in_use(), 1);
  EXPECT_EQ(l.queued(), 0);
}

TEST(ConcurrencyLimiterTest, ReleaseWithoutHolderDoesNotGoNegative) {
  ConcurrencyLimiter l(1, 1);
  l.release();
  EXPECT_EQ(l.in_use(), 0);
  EXPECT_EQ(l.acquire(nullptr, nullptr), Admit::granted);
  EXPECT_EQ(l.acquire(nullptr, nullptr), Admit::queued);
}

// Many threads acquire, hold briefly and release; queued ones wait for their grant. The limit must hold at
// every moment, every queued request must be granted exactly once, and everything must drain.
TEST(ConcurrencyLimiterTest, ThreadedSmoke) {
  constexpr int kLimit = 3;
  constexpr int kThreads = 8;
  constexpr int kIterations = 300;
  ConcurrencyLimiter l(kLimit, 4);
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> done{0};
  std::atomic<int> rejected{0};
  std::atomic<int> grants_by_callback{0};

  auto work = [&] {
    const int now = running.fetch_add(1) + 1;
    int prev = peak.load();
    while (now > prev && !peak.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::yield();
    running.fetch_sub(1);
    done.fetch_add(1);
    l.release();
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        std::mutex mu;
        std::condition_variable cv;
        bool granted = false;
        const Admit a = l.acquire(
            [&] {
              grants_by_callback.fetch_add(1);
              std::lock_guard lock(mu);
              granted = true;
              cv.notify_one();
            },
            nullptr);
        if (a == Admit::rejected) {
          rejected.fetch_add(1);
          continue;
        }
        if (a == Admit::queued) {
          std::unique_lock lock(mu);
          ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return granted; }));
        }
        work();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(peak.load(), kLimit);
  EXPECT_EQ(done.load() + rejected.load(), kThreads * kIterations);
  EXPECT_GT(done.load(), 0);
  EXPECT_EQ(l.in_use(), 0);
  EXPECT_EQ(l.queued(), 0);
}

}  // namespace
}  // namespace sluice
