#include "gateway/metrics/registry.h"

#include <thread>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(MetricsRegistry, CountersAreIdentifiedByNameAndLabels) {
  MetricsRegistry m;
  m.counter("req_total", "requests", {{"route", "a"}}).inc();
  m.counter("req_total", "requests", {{"route", "a"}}).inc(2);
  m.counter("req_total", "requests", {{"route", "b"}}).inc();
  EXPECT_EQ(m.counter_value("req_total", {{"route", "a"}}), 3u);
  EXPECT_EQ(m.counter_value("req_total", {{"route", "b"}}), 1u);
  EXPECT_EQ(m.counter_value("req_total", {{"route", "c"}}), 0u);
  EXPECT_EQ(m.counter_total("req_total"), 4u);
  EXPECT_EQ(m.counter_total("missing"), 0u);
}

TEST(MetricsRegistry, RendersPrometheusText) {
  MetricsRegistry m;
  m.counter("x_total", "help text", {{"a", "q\"uote"}}).inc(5);
  m.gauge("g", "a gauge").set(2.5);
  auto& h = m.histogram("lat_seconds", "latency", {{"route", "r"}}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(3);
  const std::string text = m.render();
  EXPECT_NE(text.find("# TYPE x_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("x_total{a=\"q\\\"uote\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("g 2.5\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"r\",le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"r\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{route=\"r\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count{route=\"r\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_sum{route=\"r\"} 3.55\n"), std::string::npos);
}

TEST(Histogram, QuantilesInterpolateWithinBuckets) {
  Histogram h({1, 2, 3, 4});
  for (int i = 0; i < 100; ++i) h.observe(1.5);  // all in (1, 2]
  EXPECT_GT(h.quantile(0.5), 1.0);
  EXPECT_LE(h.quantile(0.5), 2.0);
  EXPECT_LE(h.quantile(0.99), 2.0);
  Histogram empty({1});
  EXPECT_EQ(empty.quantile(0.5), 0);
}

TEST(MetricsRegistry, ConcurrentIncrementsAreNotLost) {
  MetricsRegistry m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.counter("c_total", "c", {{"k", "v"}}).inc();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(m.counter_value("c_total", {{"k", "v"}}), 40000u);
}

}  // namespace
}  // namespace sluice
