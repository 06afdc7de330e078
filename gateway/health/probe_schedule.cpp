#include "gateway/health/probe_schedule.h"

#include <algorithm>
#include <cmath>

namespace sluice {

namespace {

using std::chrono::milliseconds;

double clamp_jitter(double j) {
  if (!(j >= 0)) return 0;  // negative or NaN
  return std::min(j, 0.5);
}

}  // namespace

ProbeSchedule::ProbeSchedule(const ProbeConfig& config, TimePoint now, std::uint64_t seed, double jitter)
    : interval_(std::max(milliseconds{1}, config.interval)),
      timeout_(std::max(milliseconds{1}, config.timeout)),
      jitter_(clamp_jitter(jitter)),
      rng_(seed) {
  const double u = std::uniform_real_distribution<double>(0.0, jitter_)(rng_);
  next_at_ = now + milliseconds{std::llround(static_cast<double>(interval_.count()) * u)};
}

milliseconds ProbeSchedule::wait(TimePoint now) const {
  if (now >= next_at_) return milliseconds{0};
  // Rounded up, so a timer set for the wait never wakes before the probe is due.
  return std::chrono::ceil<milliseconds>(next_at_ - now);
}

ProbeSchedule::TimePoint ProbeSchedule::start(TimePoint now) {
  const double u = std::uniform_real_distribution<double>(-jitter_, jitter_)(rng_);
  const auto wait_ms = std::max<std::int64_t>(1, std::llround(static_cast<double>(interval_.count()) * (1.0 + u)));
  const TimePoint deadline = now + timeout_;
  next_at_ = std::max(now + milliseconds{wait_ms}, deadline);
  return deadline;
}

}  // namespace sluice
