#include "engine/util/thread_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sluice {

namespace {

constexpr auto kWorkerSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// next_ packs (job generation << 32) | next chunk index, so a worker that wakes late for an old job can never
// claim a chunk of a newer one: its compare-and-swap fails on the generation. A finished job is closed by
// setting the index to kChunkMask before the next job's fields are written (see run()).
constexpr std::uint64_t kChunkMask = 0xFFFFFFFFull;

}  // namespace

ThreadPool::ThreadPool(unsigned threads) {
  if (threads == 0) threads = 1;
  workers_.reserve(threads - 1);
  try {
    for (unsigned w = 1; w < threads; ++w) workers_.emplace_back([this, w] { worker_main(w); });
  } catch (...) {
    stop_workers();  // joinable threads must not be destroyed
    throw;
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

bool ThreadPool::claim(std::uint32_t generation, std::size_t& chunk) {
  std::uint64_t v = next_.load(std::memory_order_acquire);
  for (;;) {
    if ((v >> 32) != generation || (v & kChunkMask) >= chunks_.load(std::memory_order_relaxed)) return false;
    if (next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      chunk = static_cast<std::size_t>(v & kChunkMask);
      return true;
    }
  }
}

void ThreadPool::work_chunks(std::uint32_t generation, unsigned worker) {
  std::size_t chunk;
  while (claim(generation, chunk)) {
    const std::size_t begin = chunk * grain_;
    const std::size_t end = begin + grain_ < n_ ? begin + grain_ : n_;
    invoke_(obj_, begin, end, worker);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(std::size_t n, std::size_t grain, void* obj, Invoke invoke) {
  std::size_t chunks = (n + grain - 1) / grain;
  if (chunks >= kChunkMask) {  // keep chunk indices in 32 bits, below the closed marker
    grain = (n + kChunkMask - 2) / (kChunkMask - 1);
    chunks = (n + grain - 1) / grain;
  }
  if (workers_.empty() || chunks == 1) {
    for (std::size_t b = 0; b < n; b += grain) invoke(obj, b, b + grain < n ? b + grain : n, 0);
    return;
  }
  obj_ = obj;
  invoke_ = invoke;
  n_ = n;
  grain_ = grain;
  chunks_.store(chunks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const std::uint32_t generation = ++generation_counter_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_.store(static_cast<std::uint64_t>(generation) << 32, std::memory_order_release);
    generation_.store(generation, std::memory_order_release);
  }
  wake_.notify_all();
  work_chunks(generation, 0);
  for (unsigned spins = 0; done_.load(std::memory_order_acquire) != chunks; ++spins) {
    if (spins < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  // Close the job before the next one rewrites chunks_ and the other fields: a worker that read next_ just
  // before this store (and may yet read the next job's larger chunks_) now fails its compare-and-swap, and
  // the index kChunkMask is never below any chunk count.
  next_.store((static_cast<std::uint64_t>(generation) << 32) | kChunkMask, std::memory_order_release);
}

void ThreadPool::worker_main(unsigned worker) {
  std::uint32_t seen = 0;
  for (;;) {
    std::uint32_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto deadline = std::chrono::steady_clock::now() + kWorkerSpin;
      for (unsigned i = 1; g == seen; ++i) {
        cpu_relax();
        g = generation_.load(std::memory_order_acquire);
        if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) break;
      }
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    work_chunks(g, worker);
  }
}

}  // namespace sluice
