#include "gateway/health/target_health.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/metrics/registry.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = TargetHealth::Clock;
using TimePoint = TargetHealth::TimePoint;

// Time only moves when a test moves it.
struct FakeClock {
  TimePoint t = TimePoint{} + 1000h;
  TimePoint now() const { return t; }
  void advance(std::chrono::milliseconds d) { t += d; }
};

Outcome fail_5xx(std::string msg = "bad gateway") { return Outcome::failure(ErrorKind::upstream_5xx, std::move(msg)); }

// Sends one ordinary request and records `outcome`; expects it to be admitted.
void send(TargetHealth& h, const Outcome& outcome, TimePoint now) {
  HealthPermit a = h.try_acquire(now);
  ASSERT_TRUE(a.allowed());
  h.record(a, outcome, now);
}

void fail_n(TargetHealth& h, int n, TimePoint now) {
  for (int i = 0; i < n; ++i) send(h, fail_5xx(), now);
}

TEST(TargetHealth, StartsClosedAndRoutable) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  EXPECT_EQ(h.state(), CircuitState::closed);
  EXPECT_TRUE(h.routable(c.now()));
  HealthPermit a = h.try_acquire(c.now());
  EXPECT_TRUE(a.allowed());
  EXPECT_FALSE(a.is_trial());
  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.target, "p");
  EXPECT_TRUE(s.routable);
  EXPECT_EQ(s.probe_status, ProbeStatus::unknown);
  EXPECT_FALSE(s.opened_at.has_value());
  EXPECT_FALSE(s.next_attempt_at.has_value());
  EXPECT_FALSE(s.last_error_kind.has_value());
}

TEST(TargetHealth, ConsecutiveFailuresOpenTheCircuit) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});  // failure_threshold 5
  fail_n(h, 4, c.now());
  send(h, Outcome::success(), c.now());  // resets the run
  fail_n(h, 4, c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
  EXPECT_EQ(h.snapshot(c.now()).consecutive_failures, 4);

  send(h, Outcome::failure(ErrorKind::timeout, "first byte timeout"), c.now());
  EXPECT_EQ(h.state(), CircuitState::open);
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());

  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::open);
  EXPECT_FALSE(s.routable);
  EXPECT_EQ(s.consecutive_failures, 5);
  ASSERT_TRUE(s.last_error_kind.has_value());
  EXPECT_EQ(*s.last_error_kind, ErrorKind::timeout);
  EXPECT_EQ(s.last_error_message, "first byte timeout");
  ASSERT_TRUE(s.opened_at && s.next_attempt_at);
  EXPECT_EQ(*s.opened_at, c.now());
  EXPECT_EQ(*s.next_attempt_at, c.now() + 5s);
  EXPECT_EQ(s.current_open_duration, 5s);
  EXPECT_EQ(s.successes, 1u);
  EXPECT_EQ(s.failures, 9u);
  EXPECT_EQ(s.ejections, 1u);
}

TEST(TargetHealth, OnlyConnectTimeoutAnd5xxCountAsFailures) {
  EXPECT_TRUE(counts_as_failure(ErrorKind::connect_error));
  EXPECT_TRUE(counts_as_failure(ErrorKind::timeout));
  EXPECT_TRUE(counts_as_failure(ErrorKind::upstream_5xx));
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  const ErrorKind neutral[] = {ErrorKind::rate_limited, ErrorKind::overloaded,   ErrorKind::context_too_long,
                               ErrorKind::unsupported,  ErrorKind::unavailable,  ErrorKind::upstream_4xx,
                               ErrorKind::cancelled,    ErrorKind::internal};
  for (ErrorKind k : neutral) {
    EXPECT_FALSE(counts_as_failure(k)) << to_string(k);
    for (int i = 0; i < 10; ++i) send(h, Outcome::failure(k, "x"), c.now());
  }
  HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::closed);
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.neutral, 80u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.window_outcomes, 0);
  EXPECT_FALSE(s.last_error_kind.has_value());

  // Neutral outcomes do not break a run of failures either.
  fail_n(h, 4, c.now());
  send(h, Outcome::failure(ErrorKind::upstream_4xx), c.now());
  send(h, Outcome::failure(ErrorKind::cancelled), c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
  send(h, Outcome::failure(ErrorKind::connect_error, "refused"), c.now());
  EXPECT_EQ(h.state(), CircuitState::open);
}

TEST(TargetHealth, OpenBecomesHalfOpenWhenTheWaitEnds) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(4999ms);
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());
  EXPECT_EQ(h.state(), CircuitState::open);
  c.advance(1ms);
  // The lock-free view already says yes; the transition itself happens on the next write.
  EXPECT_TRUE(h.routable(c.now()));
  EXPECT_EQ(h.state(), CircuitState::open);

  HealthPermit trial = h.try_acquire(c.now());
  ASSERT_TRUE(trial.allowed());
  EXPECT_TRUE(trial.is_trial());
  EXPECT_EQ(h.state(), CircuitState::half_open);
  // half_open_max_probes = 1: the only slot is taken.
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());
  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.trials_in_flight, 1);
  EXPECT_FALSE(s.routable);
  EXPECT_TRUE(s.opened_at.has_value());
  EXPECT_FALSE(s.next_attempt_at.has_value());
}

TEST(TargetHealth, TrialSuccessClosesTheCircuit) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(5s);
  HealthPermit trial = h.try_acquire(c.now());
  ASSERT_TRUE(trial.is_trial());
  h.record(trial, Outcome::success(), c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
  EXPECT_TRUE(h.routable(c.now()));
  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.trials_in_flight, 0);
  EXPECT_FALSE(s.opened_at.has_value());
  // Closed again: requests are ordinary, not trials.
  HealthPermit a = h.try_acquire(c.now());
  EXPECT_TRUE(a.allowed());
  EXPECT_FALSE(a.is_trial());
}

TEST(TargetHealth, TrialFailureReopensWithADoubledDurationUpToTheCap) {
  FakeClock c;
  HealthConfig cfg;
  cfg.open_duration = 1s;
  cfg.max_open_duration = 10s;
  TargetHealth h("p", cfg);
  fail_n(h, 5, c.now());
  const std::chrono::milliseconds expected[] = {2s, 4s, 8s, 10s, 10s};
  std::chrono::milliseconds wait = 1s;
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, wait);
  for (auto next : expected) {
    c.advance(wait - 1ms);
    EXPECT_FALSE(h.try_acquire(c.now()).allowed());
    c.advance(1ms);
    HealthPermit trial = h.try_acquire(c.now());
    ASSERT_TRUE(trial.is_trial());
    h.record(trial, Outcome::failure(ErrorKind::connect_error, "refused"), c.now());
    EXPECT_EQ(h.state(), CircuitState::open);
    const HealthSnapshot s = h.snapshot(c.now());
    EXPECT_EQ(s.current_open_duration, next);
    EXPECT_EQ(*s.next_attempt_at, c.now() + next);
    EXPECT_EQ(*s.opened_at, c.now());
    wait = next;
  }
  EXPECT_EQ(h.snapshot(c.now()).ejections, 6u);
}

TEST(TargetHealth, GrowthCarriesOverWhenFlappingAndResetsAfterAStablePeriod) {
  FakeClock c;
  HealthConfig cfg;
  cfg.open_duration = 1s;
  cfg.max_open_duration = 30s;  // also the stable period
  TargetHealth h("p", cfg);

  auto recover = [&] {
    c.advance(h.snapshot(c.now()).current_open_duration);
    HealthPermit trial = h.try_acquire(c.now());
    ASSERT_TRUE(trial.is_trial());
    h.record(trial, Outcome::success(), c.now());
    ASSERT_EQ(h.state(), CircuitState::closed);
  };

  fail_n(h, 5, c.now());
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 1s);
  recover();
  // Closed, but not yet stable: the next ejection would be longer.
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 2s);
  EXPECT_EQ(h.snapshot(c.now()).open_streak, 1);
  c.advance(29s);
  fail_n(h, 5, c.now());
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 2s);
  recover();
  fail_n(h, 5, c.now());
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 4s);
  recover();

  // Closed for the whole stable period: back to the base duration.
  c.advance(30s);
  EXPECT_EQ(h.snapshot(c.now()).open_streak, 0);
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 1s);
  fail_n(h, 5, c.now());
  EXPECT_EQ(h.snapshot(c.now()).current_open_duration, 1s);
}

TEST(TargetHealth, NeutralTrialFreesItsSlotWithoutDeciding) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(5s);
  HealthPermit trial = h.try_acquire(c.now());
  ASSERT_TRUE(trial.is_trial());
  h.record(trial, Outcome::failure(ErrorKind::upstream_4xx, "bad request"), c.now());
  EXPECT_EQ(h.state(), CircuitState::half_open);
  EXPECT_TRUE(h.routable(c.now()));
  HealthPermit next = h.try_acquire(c.now());
  EXPECT_TRUE(next.is_trial());
}

TEST(TargetHealth, AnAbandonedTrialAdmissionFreesItsSlot) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(5s);
  {
    HealthPermit trial = h.try_acquire(c.now());
    ASSERT_TRUE(trial.is_trial());
    HealthPermit moved = std::move(trial);  // the slot moves with it, and is freed once
    EXPECT_FALSE(trial.allowed());
    EXPECT_FALSE(h.routable(c.now()));
  }
  EXPECT_EQ(h.snapshot(c.now()).trials_in_flight, 0);
  EXPECT_TRUE(h.routable(c.now()));
  HealthPermit again = h.try_acquire(c.now());
  EXPECT_TRUE(again.is_trial());
}

TEST(TargetHealth, RecordingASpentOrRefusedAdmissionDoesNothing) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  TargetHealth other("q", HealthConfig{});
  HealthPermit a = h.try_acquire(c.now());
  h.record(a, Outcome::success(), c.now());
  for (int i = 0; i < 10; ++i) h.record(a, fail_5xx(), c.now());  // spent
  HealthPermit foreign = other.try_acquire(c.now());
  for (int i = 0; i < 10; ++i) h.record(foreign, fail_5xx(), c.now());  // another target's
  HealthPermit none;
  h.record(none, fail_5xx(), c.now());
  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::closed);
  EXPECT_EQ(s.successes, 1u);
  EXPECT_EQ(s.failures, 0u);
  // The foreign admission is still good for its own target.
  other.record(foreign, fail_5xx(), c.now());
  EXPECT_EQ(other.snapshot(c.now()).failures, 1u);
}

TEST(TargetHealth, OutcomesOfRequestsAdmittedBeforeTheOpeningMoveNoState) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  std::vector<HealthPermit> early;
  for (int i = 0; i < 4; ++i) early.push_back(h.try_acquire(c.now()));
  fail_n(h, 5, c.now());
  ASSERT_EQ(h.state(), CircuitState::open);
  h.record(early[0], Outcome::success(), c.now());
  h.record(early[1], Outcome::success(), c.now());
  EXPECT_EQ(h.state(), CircuitState::open);
  EXPECT_EQ(*h.snapshot(c.now()).next_attempt_at, c.now() + 5s);

  // While half-open, only the trial decides: a late ordinary success does not close, a failure does not re-open.
  c.advance(5s);
  HealthPermit trial = h.try_acquire(c.now());
  ASSERT_TRUE(trial.is_trial());
  h.record(early[2], Outcome::success(), c.now());
  h.record(early[3], fail_5xx(), c.now());
  HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::half_open);
  EXPECT_EQ(s.trials_in_flight, 1);
  EXPECT_EQ(s.successes, 3u);
  EXPECT_EQ(s.failures, 6u);  // counted in the totals all the same
  EXPECT_EQ(s.ejections, 1u);
}

TEST(TargetHealth, TrialsOfAnEarlierEpisodeDecideNothing) {
  FakeClock c;
  HealthConfig cfg;
  cfg.half_open_max_probes = 2;
  TargetHealth h("p", cfg);
  fail_n(h, 5, c.now());
  c.advance(5s);
  HealthPermit a = h.try_acquire(c.now());
  HealthPermit b = h.try_acquire(c.now());
  ASSERT_TRUE(a.is_trial() && b.is_trial());
  EXPECT_FALSE(h.routable(c.now()));
  h.record(b, fail_5xx(), c.now());  // re-opens for 10 s
  ASSERT_EQ(h.state(), CircuitState::open);
  c.advance(10s);
  HealthPermit fresh = h.try_acquire(c.now());
  ASSERT_TRUE(fresh.is_trial());
  h.record(a, Outcome::success(), c.now());  // a's episode is over
  EXPECT_EQ(h.state(), CircuitState::half_open);
  EXPECT_EQ(h.snapshot(c.now()).trials_in_flight, 1);  // fresh still holds its slot
  h.record(fresh, Outcome::success(), c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
}

TEST(TargetHealth, ALateTrialAfterClosingCountsAsAnOrdinaryOutcome) {
  FakeClock c;
  HealthConfig cfg;
  cfg.half_open_max_probes = 2;
  TargetHealth h("p", cfg);
  fail_n(h, 5, c.now());
  c.advance(5s);
  HealthPermit a = h.try_acquire(c.now());
  HealthPermit b = h.try_acquire(c.now());
  h.record(a, Outcome::success(), c.now());
  ASSERT_EQ(h.state(), CircuitState::closed);
  h.record(b, fail_5xx(), c.now());
  const HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::closed);
  EXPECT_EQ(s.consecutive_failures, 1);
  EXPECT_EQ(s.window_outcomes, 1);
  EXPECT_EQ(s.window_failures, 1);
}

TEST(TargetHealth, FailureRatioOpensOnlyWithEnoughOutcomes) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});  // ratio 0.5, window 20, min 10, threshold 5
  // F F S repeated: never 5 in a row, 2/3 failing.
  const bool pattern[] = {true, true, false, true, true, false, true, true, false};
  for (bool f : pattern) send(h, f ? fail_5xx() : Outcome::success(), c.now());
  HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::closed);  // 6/9, but fewer than min_requests
  EXPECT_EQ(s.window_outcomes, 9);
  EXPECT_EQ(s.window_failures, 6);
  send(h, fail_5xx(), c.now());  // 7/10
  s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::open);
  EXPECT_EQ(s.consecutive_failures, 1);  // the ratio, not a run, opened it
  EXPECT_EQ(s.window_outcomes, 0);  // a new window after each opening
}

TEST(TargetHealth, FailureRatioMustBeExceededOverTheRollingWindow) {
  FakeClock c;
  HealthConfig cfg;
  cfg.window = 10;
  cfg.min_requests = 10;
  TargetHealth h("p", cfg);
  for (int i = 0; i < 10; ++i) send(h, i % 2 == 0 ? fail_5xx() : Outcome::success(), c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);  // exactly 0.5 is not "exceeds"
  send(h, fail_5xx(), c.now());                // evicts the oldest failure: still 5/10
  EXPECT_EQ(h.state(), CircuitState::closed);
  EXPECT_EQ(h.snapshot(c.now()).window_outcomes, 10);
  EXPECT_EQ(h.snapshot(c.now()).window_failures, 5);
  send(h, fail_5xx(), c.now());  // evicts a success: 6/10
  EXPECT_EQ(h.state(), CircuitState::open);
}

TEST(TargetHealth, ConsecutiveTriggerCanBeTurnedOff) {
  FakeClock c;
  HealthConfig cfg;
  cfg.failure_threshold = 0;
  cfg.min_requests = 20;
  TargetHealth h("p", cfg);
  fail_n(h, 19, c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
  send(h, fail_5xx(), c.now());
  EXPECT_EQ(h.state(), CircuitState::open);
}

TEST(TargetHealth, HalfOpenAdmitsAtMostTheConfiguredTrialsUnderConcurrency) {
  FakeClock c;
  HealthConfig cfg;
  cfg.half_open_max_probes = 3;
  TargetHealth h("p", cfg);
  fail_n(h, 5, c.now());
  c.advance(5s);
  const TimePoint now = c.now();

  constexpr int kThreads = 16;
  std::vector<HealthPermit> got(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      got[i] = h.try_acquire(now);
    });
  go = true;
  for (auto& t : threads) t.join();
  const auto allowed = std::count_if(got.begin(), got.end(), [](const HealthPermit& a) { return a.allowed(); });
  EXPECT_EQ(allowed, 3);
  for (const auto& a : got) EXPECT_TRUE(!a.allowed() || a.is_trial());
  EXPECT_EQ(h.snapshot(now).trials_in_flight, 3);
  EXPECT_FALSE(h.routable(now));
}

TEST(TargetHealth, TrialSlotsAreNeverOverCommittedWhileThreadsChurn) {
  FakeClock c;
  HealthConfig cfg;
  cfg.half_open_max_probes = 2;
  TargetHealth h("p", cfg);
  fail_n(h, 5, c.now());
  c.advance(5s);
  const TimePoint now = c.now();

  std::atomic<int> holding{0};
  std::atomic<int> max_holding{0};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        HealthPermit a = h.try_acquire(now);
        if (!a.allowed()) continue;
        EXPECT_TRUE(a.is_trial());
        const int n = holding.fetch_add(1) + 1;
        int prev = max_holding.load();
        while (n > prev && !max_holding.compare_exchange_weak(prev, n)) {
        }
        admitted.fetch_add(1);
        holding.fetch_sub(1);
        // Alternate a neutral record and an abandoned admission; neither decides the circuit.
        if (i % 2 == 0) h.record(a, Outcome::failure(ErrorKind::cancelled), now);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_LE(max_holding.load(), 2);
  EXPECT_GT(admitted.load(), 0);
  const HealthSnapshot s = h.snapshot(now);
  EXPECT_EQ(s.state, CircuitState::half_open);
  EXPECT_EQ(s.trials_in_flight, 0);
}

TEST(TargetHealth, ProbeFailuresMarkUnhealthyAndSuccessesHealthyAgain) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});  // unhealthy after 3, healthy after 2
  h.record_probe(false, c.now(), "connection refused");
  h.record_probe(false, c.now(), "connection refused");
  HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.probe_status, ProbeStatus::unknown);  // not yet a verdict
  EXPECT_TRUE(h.routable(c.now()));
  h.record_probe(false, c.now(), "connection refused");
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());
  s = h.snapshot(c.now());
  EXPECT_EQ(s.probe_status, ProbeStatus::unhealthy);
  EXPECT_EQ(s.probe_consecutive_failures, 3);
  EXPECT_EQ(s.probe_last_error, "connection refused");
  EXPECT_EQ(s.state, CircuitState::closed);  // probes do not move the circuit
  EXPECT_FALSE(s.routable);

  c.advance(5s);
  h.record_probe(true, c.now());
  EXPECT_FALSE(h.routable(c.now()));  // one success is not enough
  h.record_probe(false, c.now(), "timeout");
  h.record_probe(true, c.now());
  EXPECT_FALSE(h.routable(c.now()));  // the failure restarted the count
  h.record_probe(true, c.now());
  EXPECT_TRUE(h.routable(c.now()));
  s = h.snapshot(c.now());
  EXPECT_EQ(s.probe_status, ProbeStatus::healthy);
  EXPECT_EQ(s.probe_consecutive_successes, 2);
  EXPECT_EQ(s.probe_consecutive_failures, 0);
  EXPECT_EQ(*s.probe_last_at, c.now());
}

TEST(TargetHealth, FirstProbeSuccessGivesAVerdictAtOnce) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  h.record_probe(true, c.now());
  EXPECT_EQ(h.snapshot(c.now()).probe_status, ProbeStatus::healthy);
}

TEST(TargetHealth, ProbeSuccessWhileOpenMovesToHalfOpenEarly) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(1s);
  h.record_probe(false, c.now(), "refused");
  EXPECT_EQ(h.state(), CircuitState::open);
  h.record_probe(true, c.now());
  EXPECT_EQ(h.state(), CircuitState::half_open);
  EXPECT_TRUE(h.routable(c.now()));
  HealthPermit trial = h.try_acquire(c.now());
  ASSERT_TRUE(trial.is_trial());
  h.record(trial, Outcome::success(), c.now());
  EXPECT_EQ(h.state(), CircuitState::closed);
}

TEST(TargetHealth, EngineUnhealthyOverridesTheCircuit) {
  FakeClock c;
  TargetHealth h("local", HealthConfig{});
  h.mark_unhealthy("CUDA error: an illegal memory access was encountered");
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());
  HealthSnapshot s = h.snapshot(c.now());
  EXPECT_EQ(s.state, CircuitState::closed);
  EXPECT_FALSE(s.engine_healthy);
  EXPECT_FALSE(s.routable);
  EXPECT_EQ(s.engine_reason, "CUDA error: an illegal memory access was encountered");
  // Probe successes do not override the engine either.
  h.record_probe(true, c.now());
  h.record_probe(true, c.now());
  EXPECT_FALSE(h.routable(c.now()));
  h.mark_healthy();
  EXPECT_TRUE(h.routable(c.now()));
  s = h.snapshot(c.now());
  EXPECT_TRUE(s.engine_healthy);
  EXPECT_EQ(s.engine_reason, "");

  // Also while half-open: no trial is handed out.
  fail_n(h, 5, c.now());
  c.advance(5s);
  h.mark_unhealthy("watchdog: no progress for 30 s");
  EXPECT_FALSE(h.routable(c.now()));
  EXPECT_FALSE(h.try_acquire(c.now()).allowed());
  EXPECT_EQ(h.state(), CircuitState::half_open);
  EXPECT_EQ(h.snapshot(c.now()).trials_in_flight, 0);
  h.mark_healthy();
  EXPECT_TRUE(h.try_acquire(c.now()).is_trial());
}

TEST(TargetHealth, TickAppliesTheTimedTransition) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  fail_n(h, 5, c.now());
  c.advance(4s);
  h.tick(c.now());
  EXPECT_EQ(h.state(), CircuitState::open);
  c.advance(1s);
  h.tick(c.now());
  EXPECT_EQ(h.state(), CircuitState::half_open);
}

TEST(TargetHealth, MaintainsGaugesAndTransitionCounters) {
  FakeClock c;
  MetricsRegistry m;
  TargetHealth h("prov", HealthConfig{}, &m);
  auto gauge = [&](std::string_view name) { return m.gauge(name, "", {{"target", "prov"}}).value(); };
  auto moves = [&](std::string_view to) {
    return m.counter_value("sluice_circuit_transitions_total", {{"target", "prov"}, {"to", std::string(to)}});
  };
  EXPECT_EQ(gauge("sluice_circuit_state"), 0);
  EXPECT_EQ(gauge("sluice_target_healthy"), 1);

  fail_n(h, 5, c.now());
  EXPECT_EQ(gauge("sluice_circuit_state"), 2);
  EXPECT_EQ(moves("open"), 1u);
  c.advance(5s);
  HealthPermit trial = h.try_acquire(c.now());
  EXPECT_EQ(gauge("sluice_circuit_state"), 1);
  EXPECT_EQ(moves("half_open"), 1u);
  h.record(trial, Outcome::success(), c.now());
  EXPECT_EQ(gauge("sluice_circuit_state"), 0);
  EXPECT_EQ(moves("closed"), 1u);
  EXPECT_EQ(m.counter_total("sluice_circuit_transitions_total"), 3u);

  for (int i = 0; i < 3; ++i) h.record_probe(false, c.now(), "down");
  EXPECT_EQ(gauge("sluice_target_healthy"), 0);
  h.record_probe(true, c.now());
  h.record_probe(true, c.now());
  EXPECT_EQ(gauge("sluice_target_healthy"), 1);
  h.mark_unhealthy("device fault");
  EXPECT_EQ(gauge("sluice_target_healthy"), 0);
  h.mark_healthy();
  EXPECT_EQ(gauge("sluice_target_healthy"), 1);

  const std::string text = m.render();
  EXPECT_NE(text.find("sluice_circuit_transitions_total{target=\"prov\",to=\"open\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_circuit_state{target=\"prov\"} 0\n"), std::string::npos);
}

TEST(TargetHealth, LongMessagesAreCutOnACharacterBoundary) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  std::string msg;
  for (int i = 0; i < 300; ++i) msg += "\xC3\xA9";  // é, two bytes
  send(h, fail_5xx(msg), c.now());
  h.mark_unhealthy(msg);
  const HealthSnapshot s = h.snapshot(c.now());
  for (const std::string* m : {&s.last_error_message, &s.engine_reason}) {
    EXPECT_LE(m->size(), 256u);
    EXPECT_GE(m->size(), 200u);
    EXPECT_EQ(m->size() % 2, 0u);
    EXPECT_EQ(msg.compare(0, m->size(), *m), 0);
  }
}

TEST(TargetHealth, OutOfRangeConfigIsClampedNotObeyed) {
  FakeClock c;
  HealthConfig cfg;
  cfg.half_open_max_probes = 0;
  cfg.window = 0;
  cfg.max_open_duration = 1s;  // below open_duration: raised to it
  TargetHealth h("p", cfg);
  EXPECT_EQ(h.config().half_open_max_probes, 1);
  EXPECT_EQ(h.config().window, 1);
  EXPECT_EQ(h.config().max_open_duration, h.config().open_duration);
  fail_n(h, 5, c.now());
  c.advance(5s);
  EXPECT_TRUE(h.try_acquire(c.now()).is_trial());
}

TEST(HealthConfig, ProblemsNameTheField) {
  EXPECT_FALSE(health_config_problem(HealthConfig{}).has_value());
  auto problem = [](auto mutate) {
    HealthConfig c;
    mutate(c);
    return health_config_problem(c).value_or("");
  };
  EXPECT_NE(problem([](HealthConfig& c) { c.failure_threshold = -1; }).find("failure_threshold"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.failure_ratio = 0; }).find("failure_ratio"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.failure_ratio = 1.5; }).find("failure_ratio"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.min_requests = 21; }).find("min_requests"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.window = 0; }).find("window"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.max_open_duration = std::chrono::milliseconds{100}; })
                .find("max_open_duration_ms"),
            std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.half_open_max_probes = 0; }).find("half_open_max_probes"),
            std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.probe.path = "v1/models"; }).find("probe.path"), std::string::npos);
  EXPECT_NE(problem([](HealthConfig& c) { c.probe.healthy_threshold = 0; }).find("probe.healthy_threshold"),
            std::string::npos);
}

TEST(TargetHealth, RoutableViewAgreesWithTheSnapshot) {
  FakeClock c;
  TargetHealth h("p", HealthConfig{});
  auto agree = [&] { EXPECT_EQ(h.routable(c.now()), h.snapshot(c.now()).routable); };
  agree();
  fail_n(h, 5, c.now());
  agree();
  c.advance(5s);
  HealthPermit trial = h.try_acquire(c.now());
  agree();
  h.record(trial, Outcome::success(), c.now());
  agree();
  h.mark_unhealthy("x");
  agree();
}

}  // namespace
}  // namespace sluice
