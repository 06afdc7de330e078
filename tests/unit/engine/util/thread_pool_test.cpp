// ThreadPool: every index is visited exactly once for any size, grain and thread count; worker indices stay
// in range; back-to-back jobs do not leak into each other.
#include "engine/util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <vector>

namespace sluice {
namespace {

TEST(ThreadPool, VisitsEveryIndexOnce) {
  for (unsigned threads : {1u, 2u, 3u, 5u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (std::size_t n : {0u, 1u, 7u, 64u, 1000u}) {
      for (std::size_t grain : {0u, 1u, 3u, 64u, 5000u}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> bad_worker{false};
        pool.parallel_for(n, grain, [&](std::size_t b, std::size_t e, unsigned w) {
          if (w >= threads || b >= e || e > n) bad_worker = true;
          for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        EXPECT_FALSE(bad_worker);
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << n << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, ManyShortJobsInARow) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  for (int job = 0; job < 20000; ++job) {
    pool.parallel_for(8, 1, [&](std::size_t b, std::size_t e, unsigned) {
      for (std::size_t i = b; i < e; ++i) sum.fetch_add(static_cast<long>(i));
    });
  }
  EXPECT_EQ(sum.load(), 20000L * 28);
}

// Jobs of alternating sizes back to back with more threads than cores: a worker that is preempted between
// reading the job counter and claiming a chunk must never run a chunk of a job it did not see start, nor
// count a chunk twice (that once ran ranges past the end and hung the caller).
TEST(ThreadPool, StaleWorkersNeverTouchTheNextJob) {
  ThreadPool pool(8);
  for (int job = 0; job < 20000; ++job) {
    const std::size_t n = job % 2 == 0 ? 3 : 37;
    std::vector<std::atomic<int>> hits(n);
    std::atomic<int> bad{0};
    pool.parallel_for(n, 1, [&](std::size_t b, std::size_t e, unsigned) {
      if (b >= e || e > n) {
        bad.fetch_add(1);
        return;
      }
      for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    ASSERT_EQ(bad.load(), 0) << "job " << job;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << job << " index " << i;
  }
}

TEST(ThreadPool, UsesMoreThanOneThreadWhenWorkIsLong) {
  ThreadPool pool(2);
  std::mutex mu;
  std::set<unsigned> seen;
  for (int attempt = 0; attempt < 50 && seen.size() < 2; ++attempt) {
    pool.parallel_for(64, 1, [&](std::size_t, std::size_t, unsigned w) {
      volatile double x = 0;
      for (int i = 0; i < 20000; ++i) x = x + i;
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(w);
    });
  }
  EXPECT_EQ(seen.size(), 2u);
}

TEST(ThreadPool, ZeroThreadsMeansInline) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), 1u);
  int calls = 0;
  pool.parallel_for(10, 4, [&](std::size_t, std::size_t, unsigned w) {
    EXPECT_EQ(w, 0u);
    ++calls;
  });
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace sluice
