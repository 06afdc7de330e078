#include "gateway/routing/concurrency_limiter.h"

#include <algorithm>
#include <utility>

namespace sluice {

ConcurrencyLimiter::ConcurrencyLimiter(int max_concurrency, int max_queue)
    : max_concurrency_(std::max(0, max_concurrency)), max_queue_(std::max(0, max_queue)) {}

ConcurrencyLimiter::Admit ConcurrencyLimiter::acquire(std::function<void()> on_granted, std::uint64_t* ticket) {
  std::lock_guard lock(mu_);
  if (ticket != nullptr) *ticket = 0;
  // Waiters first: a newcomer never overtakes the queue, even when a slot is momentarily free.
  if (waiters_.empty() && (max_concurrency_ == 0 || in_use_ < max_concurrency_)) {
    ++in_use_;
    return Admit::granted;
  }
  if (static_cast<int>(waiters_.size()) >= max_queue_) return Admit::rejected;
  const std::uint64_t t = next_ticket_++;
  waiters_.emplace(t, std::move(on_granted));
  if (ticket != nullptr) *ticket = t;
  return Admit::queued;
}

bool ConcurrencyLimiter::cancel(std::uint64_t ticket) {
  std::lock_guard lock(mu_);
  return waiters_.erase(ticket) > 0;
}

void ConcurrencyLimiter::grant_waiters(Granted& out) {
  while (!waiters_.empty() && (max_concurrency_ == 0 || in_use_ < max_concurrency_)) {
    auto node = waiters_.extract(waiters_.begin());
    ++in_use_;
    out.insert(std::move(node));
  }
}

void ConcurrencyLimiter::release() {
  Granted granted;
  {
    std::lock_guard lock(mu_);
    if (in_use_ > 0) --in_use_;
    grant_waiters(granted);
  }
  for (auto& [t, fn] : granted)
    if (fn) fn();
}

void ConcurrencyLimiter::reconfigure(int max_concurrency, int max_queue) {
  Granted granted;
  {
    std::lock_guard lock(mu_);
    max_concurrency_ = std::max(0, max_concurrency);
    max_queue_ = std::max(0, max_queue);
    grant_waiters(granted);
  }
  for (auto& [t, fn] : granted)
    if (fn) fn();
}

int ConcurrencyLimiter::in_use() const {
  std::lock_guard lock(mu_);
  return in_use_;
}

int ConcurrencyLimiter::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(waiters_.size());
}

int ConcurrencyLimiter::max_concurrency() const {
  std::lock_guard lock(mu_);
  return max_concurrency_;
}

int ConcurrencyLimiter::max_queue() const {
  std::lock_guard lock(mu_);
  return max_queue_;
}

}  // namespace sluice
