// When to run the next active probe of one target, and by when it must have answered. The probe's HTTP I/O
// lives with the code that owns the connections; this is only the timing, so it is testable with a fake clock.
//
// Each wait is interval * (1 + u), u uniform in [-jitter, +jitter]; the first probe comes after
// interval * u', u' uniform in [0, jitter]. Jitter keeps the probes of many targets (and of several gateways
// probing one provider) from firing in lockstep. A probe whose timeout is longer than the interval delays the
// next one until its deadline, so probes of one target never overlap.
// Thread: not thread-safe; one schedule per probing loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "gateway/health/target_health.h"

namespace sluice {

class ProbeSchedule {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // `jitter` is clamped to [0, 0.5]; interval and timeout to at least 1 ms. `seed` makes the jitter
  // reproducible in tests.
  ProbeSchedule(const ProbeConfig& config, TimePoint now, std::uint64_t seed, double jitter = 0.1);

  TimePoint next_at() const { return next_at_; }
  bool due(TimePoint now) const { return now >= next_at_; }
  std::chrono::milliseconds wait(TimePoint now) const;  // until next_at(), 0 when due

  // A probe starts at `now`: returns its deadline and schedules the next probe.
  TimePoint start(TimePoint now);

  std::chrono::milliseconds interval() const { return interval_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  double jitter() const { return jitter_; }

 private:
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds timeout_;
  double jitter_;
  std::mt19937_64 rng_;
  TimePoint next_at_;
};

}  // namespace sluice
