#include "gateway/routing/target_picker.h"

#include <map>

#include <gtest/gtest.h>

#include "gateway/proxy/target_table.h"

namespace sluice {
namespace {

Route route_of(std::vector<std::tuple<std::string, int, double>> targets) {
  Route r;
  r.name = "r";
  int i = 0;
  for (auto& [name, tier, weight] : targets) {
    PolicyTarget t;
    t.provider = name;
    t.tier = tier;
    t.weight = weight;
    t.key = "r/" + name + "//" + std::to_string(i++);
    r.targets.push_back(t);
  }
  return r;
}

TEST(PickTarget, LowestTierFirstThenTheNext) {
  auto r = route_of({{"a", 0, 1}, {"b", 1, 1}});
  std::vector<bool> tried(2, false);
  EXPECT_EQ(pick_target(r, tried, nullptr, 0.99), 0);
  tried[0] = true;
  EXPECT_EQ(pick_target(r, tried, nullptr, 0.0), 1);
  tried[1] = true;
  EXPECT_EQ(pick_target(r, tried, nullptr, 0.5), -1);
}

TEST(PickTarget, WeightsSplitTrafficWithinATier) {
  auto r = route_of({{"a", 0, 3}, {"b", 0, 1}});
  std::vector<bool> tried(2, false);
  std::map<int, int> counts;
  for (int i = 0; i < 1000; ++i) counts[pick_target(r, tried, nullptr, (i + 0.5) / 1000.0)]++;
  EXPECT_EQ(counts[0], 750);
  EXPECT_EQ(counts[1], 250);
}

TEST(PickTarget, SkippedTargetsArePassedOverButReportedWhenAlone) {
  auto r = route_of({{"a", 0, 1}, {"b", 0, 1}, {"c", 1, 1}});
  std::vector<bool> tried(3, false);
  auto skip_a = [](const PolicyTarget& t) { return t.provider == "a"; };
  for (double u : {0.0, 0.3, 0.7, 0.99}) EXPECT_EQ(pick_target(r, tried, skip_a, u), 1);
  tried[1] = true;
  EXPECT_EQ(pick_target(r, tried, skip_a, 0.5), 0);  // only the skipped one left in tier 0
}

TEST(PickTarget, ZeroWeightIsNeverPickedWhileOthersRemain) {
  auto r = route_of({{"a", 0, 0}, {"b", 0, 1}});
  std::vector<bool> tried(2, false);
  EXPECT_EQ(pick_target(r, tried, nullptr, 0.0), 1);
}

TEST(TargetTable, ConcurrencyLimitPerPolicyTarget) {
  TargetTable table;
  PolicyTarget pt;
  pt.provider = "p";
  pt.key = "r/p//0";
  pt.max_concurrency = 2;
  auto s1 = table.try_enter(pt);
  auto s2 = table.try_enter(pt);
  EXPECT_TRUE(s1);
  EXPECT_TRUE(s2);
  EXPECT_FALSE(table.try_enter(pt));
  EXPECT_EQ(table.in_flight(pt.key), 2);
  { auto gone = std::move(s1); }
  EXPECT_EQ(table.in_flight(pt.key), 1);
  EXPECT_TRUE(table.try_enter(pt));
}

TEST(TargetTable, RetryAfterSkipsAProviderUntilThen) {
  TargetTable table;
  const auto now = TargetTable::Clock::now();
  table.skip_until("p", now + std::chrono::seconds(2));
  EXPECT_TRUE(table.skipped("p", now + std::chrono::seconds(1)));
  EXPECT_FALSE(table.skipped("p", now + std::chrono::seconds(3)));
  EXPECT_FALSE(table.skipped("q", now));
}

}  // namespace
}  // namespace sluice
