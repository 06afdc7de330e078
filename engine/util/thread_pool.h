// The engine's compute threads: a fixed pool that runs one parallel_for at a time over index ranges.
//
// parallel_for(n, grain, fn) hands out chunks [begin, end) of [0, n), `grain` indices each (the last may be
// shorter), to the calling thread and the workers, and returns when every chunk is done. Chunks are claimed
// dynamically (an atomic counter), which balances load on a machine shared with other processes; results
// stay deterministic because callers split work by output rows, so which thread computes a row never changes
// its value. fn receives the worker index in [0, size()) so it can use per-thread scratch space.
//
// Threads: parallel_for must be called from one thread at a time (the engine thread); fn runs concurrently on
// all pool threads. Workers spin briefly after each job (decode issues hundreds of short jobs a step) and then
// sleep on a condition variable. Destruction joins the workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice {

class ThreadPool {
 public:
  // `threads` counts the caller too: 1 runs everything inline, 0 is treated as 1. Throws std::system_error
  // when a thread cannot be started (after stopping the ones that were).
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  template <class Fn>
  void parallel_for(std::size_t n, std::size_t grain, Fn&& fn) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    auto* obj = &fn;
    run(n, grain, obj,
        [](void* o, std::size_t b, std::size_t e, unsigned w) { (*static_cast<decltype(obj)>(o))(b, e, w); });
  }

 private:
  using Invoke = void (*)(void*, std::size_t, std::size_t, unsigned);

  void run(std::size_t n, std::size_t grain, void* obj, Invoke invoke);
  bool claim(std::uint32_t generation, std::size_t& chunk);
  void work_chunks(std::uint32_t generation, unsigned worker);
  void worker_main(unsigned worker);
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;

  // The current job. The caller writes these fields, then publishes the job by storing next_ (release);
  // a worker reads them only after its compare-and-swap on next_ (acquire) claimed a chunk of that job.
  void* obj_ = nullptr;
  Invoke invoke_ = nullptr;
  std::size_t n_ = 0;
  std::size_t grain_ = 1;
  std::atomic<std::size_t> chunks_{0};
  std::atomic<std::uint64_t> next_{0};  // (generation << 32) | next chunk index
  std::atomic<std::size_t> done_{0};    // chunks finished in the current job
  std::atomic<std::uint32_t> generation_{0};
  std::uint32_t generation_counter_ = 0;  // caller-only
};

}  // namespace sluice
