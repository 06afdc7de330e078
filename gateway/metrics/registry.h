// A small metrics registry: counters, gauges and histograms, each a family with fixed label names.
// Label values are configured names only (routes, targets, status classes), never strings a client sent.
// Series are created once and then updated lock-free; render() writes Prometheus text format.
// Tests assert on these counters rather than on log lines.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/metrics/event_log.h"

namespace sluice {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;
  const std::vector<double>& bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }  // non-cumulative
  // The q-quantile (0..1) estimated from the buckets by linear interpolation; 0 when empty.
  double quantile(double q) const;
  // Adds `other`'s observations to this one (to aggregate series of one family). False, and nothing added,
  // when the bucket bounds differ.
  bool merge(const Histogram& other);

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micro_{0};                // sum in millionths, to stay lock-free
};

// Latency buckets in seconds, from 100 us to 60 s.
std::vector<double> latency_buckets();

class MetricsRegistry {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Series are identified by name + label values; the same call returns the same object. References stay
  // valid for the registry's lifetime.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                       std::vector<double> bounds = latency_buckets());

  // Value of a counter series, 0 if it was never created (for tests and the dashboard).
  std::uint64_t counter_value(std::string_view name, const Labels& labels = {}) const;
  // Sum of a counter family over all its label values.
  std::uint64_t counter_total(std::string_view name) const;

  // Every series of one family with its labels, in render order; empty when the name is unknown or of
  // another kind. Histogram pointers stay valid for the registry's lifetime (read them lock-free).
  std::vector<std::pair<Labels, std::uint64_t>> counters(std::string_view name) const;
  std::vector<std::pair<Labels, double>> gauges(std::string_view name) const;
  std::vector<std::pair<Labels, const Histogram*>> histograms(std::string_view name) const;

  std::string render() const;  // Prometheus text exposition format 0.0.4

  // Recent routing events for the dashboard; lives as long as the registry.
  EventLog& events() { return events_; }
  const EventLog& events() const { return events_; }

 private:
  enum class Kind { counter, gauge, histogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // key: rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, Labels> labels;  // rendered label set -> the labels it was made from
  };
  Family& family(std::string_view name, std::string_view help, Kind kind);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
  EventLog events_;
};

// Renders labels as `{a="x",b="y"}` (escaped), "" when empty.
std::string render_labels(const MetricsRegistry::Labels& labels);

}  // namespace sluice
