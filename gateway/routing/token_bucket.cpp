#include "gateway/routing/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sluice {

namespace {

double sanitize(double v) { return std::isfinite(v) && v > 0 ? v : 0.0; }

}  // namespace

TokenBucket::TokenBucket(double rate_per_second, double capacity, Clock::time_point now)
    : rate_(sanitize(rate_per_second)), capacity_(sanitize(capacity)), level_(capacity_), last_(now) {}

double TokenBucket::level_at(Clock::time_point now) const {
  // A caller that passes an older time (clocks read on different threads) refills nothing rather than
  // draining the bucket.
  if (now <= last_) return level_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return std::min(capacity_, level_ + elapsed * rate_);
}

void TokenBucket::refill(Clock::time_point now) {
  level_ = level_at(now);
  if (now > last_) last_ = now;
}

bool TokenBucket::try_take(double n, Clock::time_point now, Clock::duration* retry_after) {
  std::lock_guard lock(mu_);
  if (rate_ == 0) return true;
  if (!(n > 0)) return true;
  refill(now);
  if (level_ >= n) {
    level_ -= n;
    return true;
  }
  if (retry_after != nullptr) {
    if (n > capacity_) {
      *retry_after = kNever;
    } else {
      const double seconds = (n - level_) / rate_;
      const double cap = std::chrono::duration<double>(kNever).count();
      if (!(seconds < cap)) {
        *retry_after = kNever;  // also keeps the conversion below from overflowing
      } else {
        const auto wait = std::chrono::ceil<Clock::duration>(std::chrono::duration<double>(seconds));
        *retry_after = std::max(wait, Clock::duration(1));
      }
    }
  }
  return false;
}

void TokenBucket::adjust(double delta, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (rate_ == 0 || !std::isfinite(delta)) return;
  refill(now);
  level_ = std::min(capacity_, level_ - delta);
}

double TokenBucket::available(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  if (rate_ == 0) return std::numeric_limits<double>::infinity();
  return level_at(now);
}

void TokenBucket::reconfigure(double rate_per_second, double capacity, Clock::time_point now) {
  std::lock_guard lock(mu_);
  const bool was_unlimited = rate_ == 0;
  refill(now);
  rate_ = sanitize(rate_per_second);
  capacity_ = sanitize(capacity);
  level_ = was_unlimited ? capacity_ : std::min(level_, capacity_);
}

double TokenBucket::rate() const {
  std::lock_guard lock(mu_);
  return rate_;
}

double TokenBucket::capacity() const {
  std::lock_guard lock(mu_);
  return capacity_;
}

}  // namespace sluice
