// The per-family accessors the dashboard reads, and Histogram::merge.
#include <gtest/gtest.h>

#include "gateway/metrics/registry.h"

namespace sluice {
namespace {

using Labels = MetricsRegistry::Labels;

TEST(MetricsRegistrySeries, CountersComeBackWithTheirLabels) {
  MetricsRegistry m;
  m.counter("req_total", "r", {{"route", "b"}, {"status", "500"}}).inc(2);
  m.counter("req_total", "r", {{"route", "a"}, {"status", "200"}}).inc(3);
  auto series = m.counters("req_total");
  ASSERT_EQ(series.size(), 2u);
  std::uint64_t sum = 0;
  for (const auto& [labels, v] : series) {
    ASSERT_EQ(labels.size(), 2u);
    if (labels[0].second == "a") {
      EXPECT_EQ(labels[1], (std::pair<std::string, std::string>{"status", "200"}));
      EXPECT_EQ(v, 3u);
    } else {
      EXPECT_EQ(labels[0].second, "b");
      EXPECT_EQ(v, 2u);
    }
    sum += v;
  }
  EXPECT_EQ(sum, m.counter_total("req_total"));
  EXPECT_TRUE(m.counters("missing").empty());
  EXPECT_TRUE(m.gauges("req_total").empty());  // a counter family has no gauge series
}

TEST(MetricsRegistrySeries, GaugesAndHistograms) {
  MetricsRegistry m;
  m.gauge("g", "g", {{"target", "local"}}).set(0.25);
  auto gauges = m.gauges("g");
  ASSERT_EQ(gauges.size(), 1u);
  EXPECT_EQ(gauges[0].first, (Labels{{"target", "local"}}));
  EXPECT_DOUBLE_EQ(gauges[0].second, 0.25);

  auto& h = m.histogram("lat", "l", {{"route", "r"}}, {0.1, 1});
  h.observe(0.5);
  auto hs = m.histograms("lat");
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].second, &h);  // the live series, not a copy
  h.observe(0.5);
  EXPECT_EQ(hs[0].second->count(), 2u);
}

TEST(HistogramMerge, AddsBucketsCountAndSumWhenBoundsMatch) {
  Histogram a({1, 2}), b({1, 2}), c({1, 3});
  a.observe(0.5);
  b.observe(1.5);
  b.observe(5);
  ASSERT_TRUE(a.merge(b));
  EXPECT_EQ(a.count(), 3u);
  EXPECT_DOUBLE_EQ(a.sum(), 7.0);
  EXPECT_EQ(a.bucket(0), 1u);
  EXPECT_EQ(a.bucket(1), 1u);
  EXPECT_EQ(a.bucket(2), 1u);
  EXPECT_EQ(b.count(), 2u);  // the source is unchanged
  EXPECT_FALSE(a.merge(c));
  EXPECT_EQ(a.count(), 3u);
}

}  // namespace
}  // namespace sluice
