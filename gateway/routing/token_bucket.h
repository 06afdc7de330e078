// A token bucket: holds up to `capacity` units and refills `rate` units per second. Used for requests/s
// (one unit per request) and tokens/min (rate = tokens_per_minute / 60, capacity = one minute's worth), per
// client key and per route.
//
// Thread-safe (one mutex inside). Time is passed in by the caller, so tests drive it with a fake clock and
// the request path reads the clock once for all its buckets.
#pragma once

#include <chrono>
#include <mutex>

namespace sluice {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // What try_take reports when `n` exceeds the capacity and so can never be taken whole.
  static constexpr Clock::duration kNever = std::chrono::hours(1);

  // Starts full. A rate of 0 means unlimited: every take succeeds. Negative or non-finite arguments count
  // as 0.
  TokenBucket(double rate_per_second, double capacity, Clock::time_point now);

  // Takes n units if they are available; otherwise takes nothing and, when retry_after != nullptr, sets how
  // long until n would be available (never 0; kNever when n > capacity).
  bool try_take(double n, Clock::time_point now, Clock::duration* retry_after = nullptr);

  // Corrects an earlier estimate once the real amount is known: positive takes more (the level may go
  // negative: a debt later takes wait out), negative gives back (capped at the capacity).
  void adjust(double delta, Clock::time_point now);

  // Units available at `now` (negative while in debt); infinity when unlimited.
  double available(Clock::time_point now) const;

  // New limits after a policy reload. The current level is kept (clamped to the new capacity), so a reload
  // neither refills a drained bucket nor forgives a debt. A bucket that was unlimited starts full.
  void reconfigure(double rate_per_second, double capacity, Clock::time_point now);

  double rate() const;
  double capacity() const;

 private:
  // The level at `now` without storing it. Requires mu_.
  double level_at(Clock::time_point now) const;
  void refill(Clock::time_point now);  // Requires mu_.

  mutable std::mutex mu_;
  double rate_ = 0;
  double capacity_ = 0;
  double level_ = 0;
  Clock::time_point last_;
};

}  // namespace sluice
