#include "gateway/health/health_registry.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "gateway/metrics/registry.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using TimePoint = HealthRegistry::TimePoint;

const TimePoint kT0 = TimePoint{} + 1000h;

void fail_n(TargetHealth& h, int n, TimePoint now, ErrorKind kind, const std::string& msg) {
  for (int i = 0; i < n; ++i) {
    HealthPermit a = h.try_acquire(now);
    ASSERT_TRUE(a.allowed());
    h.record(a, Outcome::failure(kind, msg), now);
  }
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element el;
  auto err = parser.parse(json).get(el);
  EXPECT_FALSE(err) << simdjson::error_message(err) << " in " << json;
  return el;
}

// The entry of `target` in a parsed /admin/health body.
simdjson::dom::object entry(simdjson::dom::element doc, std::string_view target) {
  simdjson::dom::array targets;
  EXPECT_FALSE(doc["targets"].get(targets));
  for (simdjson::dom::element t : targets) {
    std::string_view name;
    simdjson::dom::object obj;
    if (!t["target"].get(name) && name == target && !t.get(obj)) return obj;
  }
  ADD_FAILURE() << "no entry for " << target;
  return {};
}

TEST(HealthRegistry, AddsFindsAndKeepsTheFirstConfig) {
  HealthRegistry r;
  HealthConfig a;
  a.failure_threshold = 2;
  HealthConfig b;
  b.failure_threshold = 9;
  TargetHealth& first = r.add("openai", a);
  TargetHealth& again = r.add("openai", b);
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(again.config().failure_threshold, 2);
  r.add("local", HealthConfig{});
  EXPECT_EQ(r.find("openai"), &first);
  EXPECT_EQ(r.find("missing"), nullptr);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"local", "openai"}));
}

TEST(HealthRegistry, RoutableByName) {
  HealthRegistry r;
  TargetHealth& h = r.add("p", HealthConfig{});
  EXPECT_TRUE(r.routable("p", kT0));
  EXPECT_TRUE(r.routable("not-tracked", kT0));
  fail_n(h, 5, kT0, ErrorKind::connect_error, "refused");
  EXPECT_FALSE(r.routable("p", kT0));
  EXPECT_TRUE(r.routable("p", kT0 + 5s));
}

TEST(HealthRegistry, TickMovesEveryTarget) {
  MetricsRegistry m;
  HealthRegistry r(&m);
  TargetHealth& a = r.add("a", HealthConfig{});
  TargetHealth& b = r.add("b", HealthConfig{});
  fail_n(a, 5, kT0, ErrorKind::timeout, "t");
  fail_n(b, 5, kT0, ErrorKind::timeout, "t");
  EXPECT_EQ(m.gauge("sluice_circuit_state", "", {{"target", "a"}}).value(), 2);
  r.tick(kT0 + 5s);
  EXPECT_EQ(a.state(), CircuitState::half_open);
  EXPECT_EQ(b.state(), CircuitState::half_open);
  EXPECT_EQ(m.gauge("sluice_circuit_state", "", {{"target", "a"}}).value(), 1);
  EXPECT_EQ(m.gauge("sluice_circuit_state", "", {{"target", "b"}}).value(), 1);
}

TEST(HealthRegistry, SnapshotJsonDescribesEveryTarget) {
  HealthRegistry r;
  HealthConfig probed;
  probed.probe.enabled = true;
  TargetHealth& remote = r.add("remote", probed);
  TargetHealth& local = r.add("local", HealthConfig{});

  const std::string nasty = "upstream said \"no\"\n\t\x01 \\ done";
  fail_n(remote, 5, kT0, ErrorKind::upstream_5xx, nasty);
  remote.record_probe(false, kT0 + 1s, "probe \"timed\" out");
  local.mark_unhealthy("device fault: \"xid 79\"");
  {
    HealthPermit ok = local.try_acquire(kT0);  // refused: the engine is down
    EXPECT_FALSE(ok.allowed());
  }

  const TimePoint now = kT0 + 2s;
  const std::string json = r.snapshot_json(now);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, json);
  simdjson::dom::array targets;
  ASSERT_FALSE(doc["targets"].get(targets));
  ASSERT_EQ(targets.size(), 2u);
  // Sorted by name.
  EXPECT_EQ(doc["targets"].at(0)["target"].get_string().value(), "local");

  simdjson::dom::object rem = entry(doc, "remote");
  EXPECT_EQ(rem["state"].get_string().value(), "open");
  EXPECT_FALSE(rem["routable"].get_bool().value());
  EXPECT_EQ(rem["consecutive_failures"].get_int64().value(), 5);
  EXPECT_EQ(rem["last_error"]["kind"].get_string().value(), "upstream_5xx");
  EXPECT_EQ(rem["last_error"]["message"].get_string().value(), nasty);
  EXPECT_EQ(rem["last_error"]["ms_ago"].get_int64().value(), 2000);
  EXPECT_EQ(rem["opened_ms_ago"].get_int64().value(), 2000);
  EXPECT_EQ(rem["next_attempt_in_ms"].get_int64().value(), 3000);
  EXPECT_EQ(rem["open_duration_ms"].get_int64().value(), 5000);
  EXPECT_EQ(rem["open_streak"].get_int64().value(), 1);
  EXPECT_EQ(rem["trials_in_flight"].get_int64().value(), 0);
  EXPECT_EQ(rem["half_open_max_probes"].get_int64().value(), 1);
  EXPECT_EQ(rem["window"]["outcomes"].get_int64().value(), 0);
  EXPECT_TRUE(rem["probe"]["enabled"].get_bool().value());
  EXPECT_EQ(rem["probe"]["status"].get_string().value(), "unknown");
  EXPECT_EQ(rem["probe"]["consecutive_failures"].get_int64().value(), 1);
  EXPECT_EQ(rem["probe"]["last_error"].get_string().value(), "probe \"timed\" out");
  EXPECT_EQ(rem["probe"]["last_ms_ago"].get_int64().value(), 1000);
  EXPECT_TRUE(rem["engine"]["healthy"].get_bool().value());
  EXPECT_EQ(rem["counters"]["successes"].get_uint64().value(), 0u);
  EXPECT_EQ(rem["counters"]["failures"].get_uint64().value(), 5u);
  EXPECT_EQ(rem["counters"]["ejections"].get_uint64().value(), 1u);

  simdjson::dom::object loc = entry(doc, "local");
  EXPECT_EQ(loc["state"].get_string().value(), "closed");
  EXPECT_FALSE(loc["routable"].get_bool().value());
  EXPECT_TRUE(loc["last_error"].is_null());
  EXPECT_TRUE(loc["opened_ms_ago"].is_null());
  EXPECT_TRUE(loc["next_attempt_in_ms"].is_null());
  EXPECT_TRUE(loc["probe"]["last_ms_ago"].is_null());
  EXPECT_FALSE(loc["probe"]["enabled"].get_bool().value());
  EXPECT_FALSE(loc["engine"]["healthy"].get_bool().value());
  EXPECT_EQ(loc["engine"]["reason"].get_string().value(), "device fault: \"xid 79\"");
  EXPECT_EQ(loc["counters"]["failures"].get_uint64().value(), 0u);
}

TEST(HealthRegistry, SnapshotJsonOfHalfOpenAndRecoveredTargets) {
  HealthRegistry r;
  TargetHealth& h = r.add("p", HealthConfig{});
  fail_n(h, 5, kT0, ErrorKind::timeout, "slow");
  // Past next_attempt_at: the snapshot applies the transition itself.
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.snapshot_json(kT0 + 6s));
  simdjson::dom::object e = entry(doc, "p");
  EXPECT_EQ(e["state"].get_string().value(), "half_open");
  EXPECT_TRUE(e["routable"].get_bool().value());
  EXPECT_TRUE(e["next_attempt_in_ms"].is_null());
  EXPECT_EQ(e["opened_ms_ago"].get_int64().value(), 6000);

  HealthPermit trial = h.try_acquire(kT0 + 6s);
  h.record(trial, Outcome::success(), kT0 + 6s);
  doc = parse(parser, r.snapshot_json(kT0 + 7s));
  e = entry(doc, "p");
  EXPECT_EQ(e["state"].get_string().value(), "closed");
  EXPECT_EQ(e["open_duration_ms"].get_int64().value(), 10000);  // the next ejection, not yet stable
  EXPECT_EQ(e["counters"]["successes"].get_uint64().value(), 1u);
  EXPECT_EQ(e["last_error"]["kind"].get_string().value(), "timeout");  // kept for the operator
}

TEST(HealthRegistry, EmptyRegistryRendersAnEmptyList) {
  HealthRegistry r;
  EXPECT_EQ(r.snapshot_json(kT0), "{\"targets\":[]}");
}

TEST(HealthRegistry, ReadersAndWritersOnManyThreads) {
  MetricsRegistry m;
  HealthRegistry r(&m);
  HealthConfig cfg;
  cfg.open_duration = 1ms;
  cfg.max_open_duration = 4ms;
  cfg.half_open_max_probes = 2;
  for (const char* n : {"a", "b", "c"}) r.add(n, cfg);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      while (!stop.load()) {
        for (const char* n : {"a", "b", "c"}) (void)r.routable(n, kT0 + 1h);
        reads.fetch_add(1);
      }
    });
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t)
    writers.emplace_back([&, t] {
      TargetHealth* h = r.find(t == 0 ? "a" : t == 1 ? "b" : "c");
      for (int i = 0; i < 5000; ++i) {
        const TimePoint now = kT0 + std::chrono::milliseconds(i);
        HealthPermit a = h->try_acquire(now);
        if (!a) continue;
        h->record(a, i % 3 == 0 ? Outcome::success() : Outcome::failure(ErrorKind::connect_error), now);
        if (i % 500 == 0) (void)r.snapshot_json(now);
      }
    });
  for (auto& w : writers) w.join();
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(reads.load(), 0u);
  for (const HealthSnapshot& s : r.snapshot(kT0 + 1h)) {
    EXPECT_GT(s.ejections, 0u) << s.target;
    EXPECT_GT(s.successes + s.failures, 0u);
    EXPECT_LE(s.trials_in_flight, 2);
    EXPECT_EQ(m.counter_value("sluice_circuit_transitions_total", {{"target", s.target}, {"to", "open"}}),
              s.ejections);
  }
}

}  // namespace
}  // namespace sluice
