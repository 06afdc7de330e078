#include "gateway/health/target_health.h"

#include <algorithm>
#include <utility>

#include "gateway/metrics/registry.h"

namespace sluice {

namespace {

using std::chrono::milliseconds;

// Messages come from upstream failures and can be long; the snapshot keeps a bounded prefix, cut on a
// UTF-8 character boundary.
constexpr std::size_t kMaxMessageBytes = 256;

std::string bounded(std::string_view s) {
  if (s.size() <= kMaxMessageBytes) return std::string(s);
  std::size_t n = kMaxMessageBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// Openings beyond this many double nothing more (2^30 * any sane base is past every cap) and keep the
// shift below int overflow.
constexpr int kMaxStreak = 30;

HealthConfig sanitized(HealthConfig c) {
  c.failure_threshold = std::max(0, c.failure_threshold);
  if (!(c.failure_ratio > 0)) c.failure_ratio = 1;  // NaN or non-positive: the ratio trigger is off
  c.window = std::clamp(c.window, 1, 100'000);
  c.min_requests = std::max(1, c.min_requests);
  c.open_duration = std::max(milliseconds{0}, c.open_duration);
  c.max_open_duration = std::max(c.open_duration, c.max_open_duration);
  c.half_open_max_probes = std::max(1, c.half_open_max_probes);
  c.probe.healthy_threshold = std::max(1, c.probe.healthy_threshold);
  c.probe.unhealthy_threshold = std::max(1, c.probe.unhealthy_threshold);
  return c;
}

}  // namespace

std::optional<std::string> health_config_problem(const HealthConfig& c) {
  if (c.failure_threshold < 0) return "failure_threshold must be 0 (off) or more";
  if (!(c.failure_ratio > 0 && c.failure_ratio <= 1)) return "failure_ratio must be in (0, 1]";
  if (c.window < 1 || c.window > 10'000) return "window must be between 1 and 10000";
  if (c.min_requests < 1 || c.min_requests > c.window) return "min_requests must be between 1 and window";
  if (c.open_duration.count() < 1) return "open_duration_ms must be at least 1";
  if (c.max_open_duration < c.open_duration) return "max_open_duration_ms must be at least open_duration_ms";
  if (c.half_open_max_probes < 1 || c.half_open_max_probes > 1'000)
    return "half_open_max_probes must be between 1 and 1000";
  if (c.probe.path.empty() || c.probe.path.front() != '/') return "probe.path must start with '/'";
  if (c.probe.interval.count() < 1) return "probe.interval_ms must be at least 1";
  if (c.probe.timeout.count() < 1) return "probe.timeout_ms must be at least 1";
  if (c.probe.healthy_threshold < 1) return "probe.healthy_threshold must be at least 1";
  if (c.probe.unhealthy_threshold < 1) return "probe.unhealthy_threshold must be at least 1";
  return std::nullopt;
}

std::string_view to_string(CircuitState state) {
  switch (state) {
    case CircuitState::closed: return "closed";
    case CircuitState::half_open: return "half_open";
    case CircuitState::open: return "open";
  }
  return "closed";
}

std::string_view to_string(ProbeStatus status) {
  switch (status) {
    case ProbeStatus::unknown: return "unknown";
    case ProbeStatus::healthy: return "healthy";
    case ProbeStatus::unhealthy: return "unhealthy";
  }
  return "unknown";
}

bool counts_as_failure(ErrorKind kind) {
  return kind == ErrorKind::connect_error || kind == ErrorKind::timeout || kind == ErrorKind::upstream_5xx;
}

// ---- HealthPermit ----

HealthPermit::HealthPermit(HealthPermit&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)),
      allowed_(std::exchange(o.allowed_, false)),
      trial_(std::exchange(o.trial_, false)),
      epoch_(o.epoch_) {}

HealthPermit& HealthPermit::operator=(HealthPermit&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::exchange(o.owner_, nullptr);
    allowed_ = std::exchange(o.allowed_, false);
    trial_ = std::exchange(o.trial_, false);
    epoch_ = o.epoch_;
  }
  return *this;
}

HealthPermit::~HealthPermit() { release(); }

void HealthPermit::release() {
  TargetHealth* owner = std::exchange(owner_, nullptr);
  if (owner && trial_) owner->release_trial(epoch_);
}

// ---- TargetHealth ----

TargetHealth::TargetHealth(std::string name, const HealthConfig& config, MetricsRegistry* metrics)
    : name_(std::move(name)), config_(sanitized(config)) {
  window_.assign(static_cast<std::size_t>(config_.window), 0);
  if (metrics) {
    state_gauge_ = &metrics->gauge("sluice_circuit_state", "circuit state by target: 0 closed, 1 half-open, 2 open",
                                   {{"target", name_}});
    healthy_gauge_ = &metrics->gauge("sluice_target_healthy",
                                     "1 unless the engine or the active probes mark the target unhealthy",
                                     {{"target", name_}});
    constexpr std::string_view help = "circuit state changes by target and new state";
    to_closed_ = &metrics->counter("sluice_circuit_transitions_total", help, {{"target", name_}, {"to", "closed"}});
    to_half_open_ =
        &metrics->counter("sluice_circuit_transitions_total", help, {{"target", name_}, {"to", "half_open"}});
    to_open_ = &metrics->counter("sluice_circuit_transitions_total", help, {{"target", name_}, {"to", "open"}});
  }
  std::lock_guard lock(mu_);
  publish();
}

bool TargetHealth::routable(TimePoint now) const {
  const auto state = static_cast<CircuitState>(view_state_.load(std::memory_order_acquire));
  if (view_blocked_.load(std::memory_order_acquire)) return false;
  switch (state) {
    case CircuitState::closed: return true;
    case CircuitState::half_open:
      return view_trials_.load(std::memory_order_acquire) < config_.half_open_max_probes;
    case CircuitState::open:
      return now.time_since_epoch().count() >= view_next_attempt_.load(std::memory_order_acquire);
  }
  return false;
}

HealthPermit TargetHealth::try_acquire(TimePoint now) {
  std::lock_guard lock(mu_);
  advance(now);
  HealthPermit admission;
  if (engine_healthy_ && probe_status_ != ProbeStatus::unhealthy) {
    if (state_ == CircuitState::closed) {
      admission = HealthPermit(this, false, epoch_);
    } else if (state_ == CircuitState::half_open && trials_in_flight_ < config_.half_open_max_probes) {
      ++trials_in_flight_;
      admission = HealthPermit(this, true, epoch_);
    }
  }
  publish();
  return admission;
}

void TargetHealth::record(HealthPermit& admission, const Outcome& outcome, TimePoint now) {
  if (admission.owner_ != this) return;  // spent, never allowed, or another target's
  admission.owner_ = nullptr;

  std::lock_guard lock(mu_);
  advance(now);
  const bool failure = !outcome.ok && counts_as_failure(outcome.kind);
  const bool neutral = !outcome.ok && !failure;
  if (outcome.ok) {
    ++successes_;
  } else if (failure) {
    ++failures_;
    last_error_kind_ = outcome.kind;
    last_error_message_ = bounded(outcome.message);
    last_error_at_ = now;
  } else {
    ++neutral_;
  }

  const bool current_trial =
      admission.trial_ && state_ == CircuitState::half_open && admission.epoch_ == epoch_;
  if (current_trial) {
    if (trials_in_flight_ > 0) --trials_in_flight_;
    if (outcome.ok) {
      close(now);
    } else if (failure) {
      ++consecutive_failures_;
      open(now);
    }
  } else if (state_ == CircuitState::closed && !neutral) {
    // Includes a trial of an episode that has since closed: it is a fresh observation of a closed circuit.
    if (outcome.ok) {
      consecutive_failures_ = 0;
      push_window(false);
    } else {
      ++consecutive_failures_;
      push_window(true);
      if ((config_.failure_threshold > 0 && consecutive_failures_ >= config_.failure_threshold) || ratio_exceeded())
        open(now);
    }
  }
  publish();
}

void TargetHealth::record_probe(bool ok, TimePoint now, std::string_view error) {
  std::lock_guard lock(mu_);
  advance(now);
  probe_last_at_ = now;
  if (ok) {
    probe_failures_ = 0;
    ++probe_successes_;
    if (probe_status_ == ProbeStatus::unknown ||
        (probe_status_ == ProbeStatus::unhealthy && probe_successes_ >= config_.probe.healthy_threshold))
      probe_status_ = ProbeStatus::healthy;
    if (state_ == CircuitState::open) to_half_open();
  } else {
    probe_successes_ = 0;
    ++probe_failures_;
    probe_last_error_ = bounded(error);
    if (probe_failures_ >= config_.probe.unhealthy_threshold) probe_status_ = ProbeStatus::unhealthy;
  }
  publish();
}

void TargetHealth::mark_unhealthy(std::string_view reason) {
  std::lock_guard lock(mu_);
  engine_healthy_ = false;
  engine_reason_ = bounded(reason);
  publish();
}

void TargetHealth::mark_healthy() {
  std::lock_guard lock(mu_);
  engine_healthy_ = true;
  engine_reason_.clear();
  publish();
}

void TargetHealth::tick(TimePoint now) {
  std::lock_guard lock(mu_);
  advance(now);
  publish();
}

HealthSnapshot TargetHealth::snapshot(TimePoint now) {
  std::lock_guard lock(mu_);
  advance(now);
  publish();

  HealthSnapshot s;
  s.target = name_;
  s.state = state_;
  s.routable = engine_healthy_ && probe_status_ != ProbeStatus::unhealthy &&
               (state_ == CircuitState::closed ||
                (state_ == CircuitState::half_open && trials_in_flight_ < config_.half_open_max_probes));
  s.consecutive_failures = consecutive_failures_;
  s.last_error_kind = last_error_kind_;
  s.last_error_message = last_error_message_;
  s.last_error_at = last_error_at_;
  if (state_ != CircuitState::closed) s.opened_at = opened_at_;
  if (state_ == CircuitState::open) s.next_attempt_at = next_attempt_at_;
  const int streak = effective_streak(now);
  s.open_streak = streak;
  // While open or half-open, the ejection in force; while closed, the one the next opening would get.
  s.current_open_duration = state_ == CircuitState::closed ? duration_for_streak(streak) : current_open_duration_;
  s.trials_in_flight = trials_in_flight_;
  s.half_open_max_probes = config_.half_open_max_probes;
  s.window_outcomes = window_count_;
  s.window_failures = window_failures_;
  s.probe_enabled = config_.probe.enabled;
  s.probe_status = probe_status_;
  s.probe_consecutive_successes = probe_successes_;
  s.probe_consecutive_failures = probe_failures_;
  s.probe_last_error = probe_last_error_;
  s.probe_last_at = probe_last_at_;
  s.engine_healthy = engine_healthy_;
  s.engine_reason = engine_reason_;
  s.successes = successes_;
  s.failures = failures_;
  s.neutral = neutral_;
  s.ejections = ejections_;
  return s;
}

void TargetHealth::advance(TimePoint now) {
  if (state_ == CircuitState::open && now >= next_attempt_at_) to_half_open();
}

int TargetHealth::effective_streak(TimePoint now) const {
  if (state_ == CircuitState::closed && closed_since_ && now - *closed_since_ >= config_.max_open_duration) return 0;
  return open_streak_;
}

milliseconds TargetHealth::duration_for_streak(int streak) const {
  milliseconds d = config_.open_duration;
  for (int i = 0; i < streak && d < config_.max_open_duration; ++i) d *= 2;
  return std::min(d, config_.max_open_duration);
}

void TargetHealth::open(TimePoint now) {
  const int streak = effective_streak(now);
  current_open_duration_ = duration_for_streak(streak);
  open_streak_ = std::min(streak + 1, kMaxStreak);
  state_ = CircuitState::open;
  opened_at_ = now;
  next_attempt_at_ = now + current_open_duration_;
  trials_in_flight_ = 0;
  ++ejections_;
  clear_window();
  transition_metric(CircuitState::open);
}

void TargetHealth::to_half_open() {
  state_ = CircuitState::half_open;
  ++epoch_;
  trials_in_flight_ = 0;
  transition_metric(CircuitState::half_open);
}

void TargetHealth::close(TimePoint now) {
  state_ = CircuitState::closed;
  consecutive_failures_ = 0;
  trials_in_flight_ = 0;
  closed_since_ = now;
  clear_window();
  transition_metric(CircuitState::closed);
}

void TargetHealth::transition_metric(CircuitState to) {
  Counter* c = to == CircuitState::closed ? to_closed_ : to == CircuitState::half_open ? to_half_open_ : to_open_;
  if (c) c->inc();
}

void TargetHealth::push_window(bool failure) {
  const std::size_t size = window_.size();
  if (window_count_ == static_cast<int>(size)) {
    window_failures_ -= window_[window_head_];  // the oldest outcome leaves
  } else {
    ++window_count_;
  }
  window_[window_head_] = failure ? 1 : 0;
  window_failures_ += failure ? 1 : 0;
  window_head_ = (window_head_ + 1) % size;
}

void TargetHealth::clear_window() {
  std::fill(window_.begin(), window_.end(), 0);
  window_head_ = 0;
  window_count_ = 0;
  window_failures_ = 0;
}

bool TargetHealth::ratio_exceeded() const {
  if (window_count_ < config_.min_requests) return false;
  return static_cast<double>(window_failures_) / static_cast<double>(window_count_) > config_.failure_ratio;
}

void TargetHealth::publish() {
  const bool blocked = !engine_healthy_ || probe_status_ == ProbeStatus::unhealthy;
  view_next_attempt_.store(next_attempt_at_.time_since_epoch().count(), std::memory_order_release);
  view_trials_.store(trials_in_flight_, std::memory_order_release);
  view_blocked_.store(blocked, std::memory_order_release);
  view_state_.store(static_cast<std::uint8_t>(state_), std::memory_order_release);
  if (state_gauge_) state_gauge_->set(static_cast<double>(static_cast<std::uint8_t>(state_)));
  if (healthy_gauge_) healthy_gauge_->set(blocked ? 0.0 : 1.0);
}

void TargetHealth::release_trial(std::uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (state_ == CircuitState::half_open && epoch == epoch_ && trials_in_flight_ > 0) {
    --trials_in_flight_;
    publish();
  }
}

}  // namespace sluice
