// A route's concurrency semaphore with a bounded FIFO wait queue: at most `max_concurrency` requests hold a
// slot; up to `max_queue` more wait in arrival order; beyond that a request is rejected (503).
//
// Thread-safe (one mutex inside). Callbacks of waiters run outside the lock, on the thread whose release()
// (or reconfigure()) freed the slot: they must be quick and may not block — typically they post the
// request's continuation onto its connection's executor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace sluice {

class ConcurrencyLimiter {
 public:
  // max_concurrency 0 = unlimited (everything is granted, nothing waits). Negative values count as 0.
  ConcurrencyLimiter(int max_concurrency, int max_queue);

  enum class Admit { granted, queued, rejected };

  // granted: a slot is held now (on_granted is NOT called). queued: on_granted is called later exactly once,
  // when a slot is handed over, unless cancel(*ticket) returned true first. rejected: the queue is full.
  // *ticket (when ticket != nullptr) is set to the waiter's ticket for queued, to 0 otherwise.
  // Whoever holds a slot calls release() exactly once, also when it got the slot through on_granted.
  Admit acquire(std::function<void()> on_granted, std::uint64_t* ticket);

  // True if the ticket was still waiting (it is now removed and on_granted will not run); false if it was
  // already granted (its holder must release) or is unknown.
  bool cancel(std::uint64_t ticket);

  // Frees a slot, or hands it straight to the oldest waiter.
  void release();

  int in_use() const;
  int queued() const;
  int max_concurrency() const;
  int max_queue() const;

  // New limits after a policy reload. Held slots are never taken away (in_use may exceed a lowered limit
  // until enough are released); waiters already queued stay queued; a raised limit grants waiters at once.
  void reconfigure(int max_concurrency, int max_queue);

 private:
  using Granted = std::map<std::uint64_t, std::function<void()>>;
  // Moves as many waiters as the limit allows into `out`, oldest first. Requires mu_.
  void grant_waiters(Granted& out);

  mutable std::mutex mu_;
  int max_concurrency_ = 0;
  int max_queue_ = 0;
  int in_use_ = 0;
  std::uint64_t next_ticket_ = 1;
  Granted waiters_;  // by ticket; tickets increase, so begin() is the oldest
};

}  // namespace sluice
