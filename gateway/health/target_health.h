// The health of one target: a single state machine that combines the circuit breaker (passive outlier
// ejection from real request outcomes), active probe results and, for `local`, the engine's own health.
// The router reads a lock-free view of it (routable); the dispatcher takes a HealthPermit before each attempt
// and records the attempt's outcome on it.
//
// Circuit breaker
//   closed    -> open       after `failure_threshold` consecutive failures, or when over the last `window`
//                           counted outcomes (at least `min_requests` of them) the failure ratio exceeds
//                           `failure_ratio` (strictly greater).
//   open      -> half_open  once `next_attempt_at` is reached (applied lazily by try_acquire, tick and
//                           snapshot), or at once on an active probe success.
//   half_open -> closed     on the first success of a trial request.
//   half_open -> open       on the first failure of a trial request.
// Failures are the kinds that say the target itself is in trouble: connect_error, timeout, upstream_5xx.
// Successes are requests the target answered. Every other kind is neutral: it moves no counter of the
// machine (upstream_4xx is the client's fault, cancelled the client's choice, rate_limited has its own
// Retry-After skip in the target table, overloaded is admission, not health). A neutral trial frees its slot.
//
// Each opening (an ejection) lasts open_duration * 2^k, capped at max_open_duration, where k counts the
// openings since the circuit was last stable: k grows on every opening and goes back to 0 when the circuit has
// stayed closed for max_open_duration. A target that keeps failing right after it recovers is therefore
// ejected for longer and longer.
//
// Half-open admits at most `half_open_max_probes` trial requests at a time. Trials are counted per half-open
// episode: a HealthPermit taken in an earlier episode no longer holds a slot, and its outcome decides nothing.
// Outcomes of ordinary (non-trial) requests arriving while the circuit is open or half-open are counted in
// the totals but move no state (they were admitted before the circuit opened).
//
// Active probes: `unhealthy_threshold` consecutive probe failures make the probe status unhealthy (not
// routable, whatever the circuit says); `healthy_threshold` consecutive successes make it healthy again.
// Until the first verdict the status is `unknown`, which is routable. A probe success while the circuit is
// open moves it to half-open early: the probe shows the target is back, real traffic confirms it.
//
// Engine health (`local`): mark_unhealthy(reason) makes the target not routable until mark_healthy(),
// regardless of the circuit and probes. The engine watchdog and device-error paths call these.
//
// Time is always passed in (`now`), never read here, so tests drive it with a fake clock.
// Thread: every member is safe to call from any thread. Writes take the target's mutex; routable() reads
// atomics only, so the router's hot path never blocks. The atomics are published together after each write,
// so routable() may see a view that is one write old; try_acquire() is the authoritative check.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/target.h"

namespace sluice {

class Counter;
class Gauge;
class MetricsRegistry;

// Active probe settings (config/README.md, providers[].health.probe).
struct ProbeConfig {
  std::string path = "/models";  // an API path: BaseUrl::api_target places it
  std::chrono::milliseconds interval{5'000};
  std::chrono::milliseconds timeout{2'000};
  int healthy_threshold = 2;
  int unhealthy_threshold = 3;
  bool enabled = false;
};

// Circuit-breaker settings, one per target. Durations are `*_ms` keys in YAML.
struct HealthConfig {
  int failure_threshold = 5;                          // consecutive failures that open; 0 disables this trigger
  double failure_ratio = 0.5;                         // failures / outcomes in the window; >= 1 disables it
  int window = 20;                                    // outcomes the ratio is computed over
  int min_requests = 10;                              // the ratio is not judged on fewer outcomes
  std::chrono::milliseconds open_duration{5'000};     // the first ejection; doubles on each re-opening
  std::chrono::milliseconds max_open_duration{60'000};// cap of the growth; also the stable period that resets it
  int half_open_max_probes = 1;                       // concurrent trial requests while half-open
  ProbeConfig probe;
};

// Why `config` is not usable (naming the field), or nullopt. For the config parser; TargetHealth clamps
// anything out of range rather than misbehave.
std::optional<std::string> health_config_problem(const HealthConfig& config);

enum class CircuitState : std::uint8_t { closed = 0, half_open = 1, open = 2 };  // values are the gauge's
std::string_view to_string(CircuitState state);

enum class ProbeStatus : std::uint8_t { unknown, healthy, unhealthy };
std::string_view to_string(ProbeStatus status);

// What one attempt against the target came to.
struct Outcome {
  bool ok = true;
  ErrorKind kind = ErrorKind::internal;  // meaningful when !ok
  std::string message;                   // when !ok; kept (truncated) as the last error

  static Outcome success() { return Outcome{}; }
  static Outcome failure(ErrorKind kind, std::string message = {}) { return Outcome{false, kind, std::move(message)}; }
  static Outcome from_error(const TargetError& e) { return failure(e.kind, e.message); }
};

// Whether an outcome of this kind counts against the target (the circuit's failure kinds above).
bool counts_as_failure(ErrorKind kind);

class TargetHealth;

// Permission to send one attempt, from TargetHealth::try_acquire. Move-only. A trial admission holds one of
// the half-open slots until it is recorded or destroyed (destroying it unrecorded frees the slot as a neutral
// outcome), so an attempt abandoned on any path cannot wedge the circuit in half-open.
// The TargetHealth must outlive its admissions.
class [[nodiscard]] HealthPermit {
 public:
  HealthPermit() = default;
  HealthPermit(HealthPermit&& o) noexcept;
  HealthPermit& operator=(HealthPermit&& o) noexcept;
  HealthPermit(const HealthPermit&) = delete;
  HealthPermit& operator=(const HealthPermit&) = delete;
  ~HealthPermit();

  bool allowed() const { return allowed_; }
  bool is_trial() const { return trial_; }
  explicit operator bool() const { return allowed_; }

 private:
  friend class TargetHealth;
  HealthPermit(TargetHealth* owner, bool trial, std::uint64_t epoch)
      : owner_(owner), allowed_(true), trial_(trial), epoch_(epoch) {}
  void release();

  TargetHealth* owner_ = nullptr;  // null once recorded, released, or when not allowed
  bool allowed_ = false;
  bool trial_ = false;
  std::uint64_t epoch_ = 0;        // the half-open episode a trial belongs to
};

// A consistent copy of one target's state, for /admin/health and the dashboard.
struct HealthSnapshot {
  using TimePoint = std::chrono::steady_clock::time_point;

  std::string target;
  CircuitState state = CircuitState::closed;
  bool routable = true;
  int consecutive_failures = 0;
  std::optional<ErrorKind> last_error_kind;      // the last counted failure
  std::string last_error_message;
  std::optional<TimePoint> last_error_at;
  std::optional<TimePoint> opened_at;            // set while open or half-open
  std::optional<TimePoint> next_attempt_at;      // set while open
  std::chrono::milliseconds current_open_duration{0};  // the ejection length in force, or the next one
  int open_streak = 0;                           // openings since the circuit was last stable (k above)
  int trials_in_flight = 0;
  int half_open_max_probes = 1;
  int window_outcomes = 0;
  int window_failures = 0;

  bool probe_enabled = false;
  ProbeStatus probe_status = ProbeStatus::unknown;
  int probe_consecutive_successes = 0;
  int probe_consecutive_failures = 0;
  std::string probe_last_error;
  std::optional<TimePoint> probe_last_at;

  bool engine_healthy = true;
  std::string engine_reason;                     // why it was marked unhealthy

  std::uint64_t successes = 0;
  std::uint64_t failures = 0;                    // counted failures (the circuit's kinds)
  std::uint64_t neutral = 0;                     // outcomes of every other kind
  std::uint64_t ejections = 0;                   // closed/half_open -> open transitions
};

class TargetHealth {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // With `metrics`, maintains sluice_circuit_state{target}, sluice_target_healthy{target} and
  // sluice_circuit_transitions_total{target,to}. `metrics` must outlive this object.
  TargetHealth(std::string name, const HealthConfig& config, MetricsRegistry* metrics = nullptr);
  TargetHealth(const TargetHealth&) = delete;
  TargetHealth& operator=(const TargetHealth&) = delete;

  const std::string& name() const { return name_; }
  const HealthConfig& config() const { return config_; }

  // The router's question: may a request be sent now? True when the engine and probes do not mark the target
  // unhealthy and the circuit is closed, or half-open with a free trial slot, or open with its wait elapsed.
  // Lock-free; reserves no trial slot (try_acquire does).
  bool routable(TimePoint now) const;

  // Takes permission to send one attempt: a plain admission when closed, a trial slot when half-open (moving
  // open -> half_open first if the wait has elapsed). Not allowed when not routable.
  HealthPermit try_acquire(TimePoint now);

  // Records what the admitted attempt came to and spends the admission. Recording a spent or not-allowed
  // admission does nothing.
  void record(HealthPermit& admission, const Outcome& outcome, TimePoint now);

  // Active probe results.
  void record_probe(bool ok, TimePoint now, std::string_view error = {});

  // Engine health (`local`).
  void mark_unhealthy(std::string_view reason);
  void mark_healthy();

  // Applies time-based transitions (open -> half_open) so gauges and snapshots are current without traffic.
  void tick(TimePoint now);

  CircuitState state() const { return static_cast<CircuitState>(view_state_.load(std::memory_order_acquire)); }
  HealthSnapshot snapshot(TimePoint now);

 private:
  friend class HealthPermit;

  // All private members below are called with mu_ held.
  void advance(TimePoint now);
  void open(TimePoint now);
  void to_half_open();
  void close(TimePoint now);
  void transition_metric(CircuitState to);
  void push_window(bool failure);
  void clear_window();
  bool ratio_exceeded() const;
  int effective_streak(TimePoint now) const;
  std::chrono::milliseconds duration_for_streak(int streak) const;
  void publish();
  void release_trial(std::uint64_t epoch);  // takes mu_ itself

  const std::string name_;
  HealthConfig config_;

  mutable std::mutex mu_;
  CircuitState state_ = CircuitState::closed;
  int consecutive_failures_ = 0;
  std::vector<std::uint8_t> window_;   // ring of the last outcomes, 1 = failure
  std::size_t window_head_ = 0;
  int window_count_ = 0;
  int window_failures_ = 0;
  std::optional<ErrorKind> last_error_kind_;
  std::string last_error_message_;
  std::optional<TimePoint> last_error_at_;
  TimePoint opened_at_{};
  TimePoint next_attempt_at_{};
  std::chrono::milliseconds current_open_duration_{0};
  int open_streak_ = 0;
  std::optional<TimePoint> closed_since_;  // when the circuit last closed after an opening
  std::uint64_t epoch_ = 0;                // bumped on each entry to half_open
  int trials_in_flight_ = 0;

  ProbeStatus probe_status_ = ProbeStatus::unknown;
  int probe_successes_ = 0;
  int probe_failures_ = 0;
  std::string probe_last_error_;
  std::optional<TimePoint> probe_last_at_;

  bool engine_healthy_ = true;
  std::string engine_reason_;

  std::uint64_t successes_ = 0;
  std::uint64_t failures_ = 0;
  std::uint64_t neutral_ = 0;
  std::uint64_t ejections_ = 0;

  // The router's lock-free view, written by publish().
  std::atomic<std::uint8_t> view_state_{0};
  std::atomic<Clock::rep> view_next_attempt_{0};
  std::atomic<int> view_trials_{0};
  std::atomic<bool> view_blocked_{false};  // the engine or the probes say unhealthy

  Gauge* state_gauge_ = nullptr;
  Gauge* healthy_gauge_ = nullptr;
  Counter* to_closed_ = nullptr;
  Counter* to_half_open_ = nullptr;
  Counter* to_open_ = nullptr;
};

}  // namespace sluice
