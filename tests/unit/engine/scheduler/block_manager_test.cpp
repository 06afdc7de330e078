#include "engine/scheduler/block_manager.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice {
namespace {

std::vector<std::int32_t> table(const BlockManager& m, std::uint64_t seq) {
  auto t = m.block_table(seq);
  return {t.begin(), t.end()};
}

TEST(BlockManager, StartsEmptyAndHandsOutBlocksInOrder) {
  BlockManager m(8, 4);
  BlockCounters c = m.counters();
  EXPECT_EQ(c.total, 8u);
  EXPECT_EQ(c.free, 8u);
  EXPECT_EQ(c.used, 0u);
  EXPECT_EQ(m.usage(), 0.0);

  EXPECT_EQ(m.blocks_for(0), 0u);
  EXPECT_EQ(m.blocks_for(1), 1u);
  EXPECT_EQ(m.blocks_for(4), 1u);
  EXPECT_EQ(m.blocks_for(5), 2u);
  EXPECT_EQ(m.blocks_needed(1, 10), 3u);

  ASSERT_TRUE(m.allocate(1, 10).ok());
  EXPECT_EQ(table(m, 1), (std::vector<std::int32_t>{0, 1, 2}));
  EXPECT_EQ(m.blocks_needed(1, 12), 0u);
  EXPECT_EQ(m.blocks_needed(1, 13), 1u);
  ASSERT_TRUE(m.allocate(1, 12).ok());  // already covered: nothing new
  EXPECT_EQ(m.counters().allocations, 3u);
  ASSERT_TRUE(m.allocate(1, 13).ok());
  EXPECT_EQ(table(m, 1), (std::vector<std::int32_t>{0, 1, 2, 3}));
  c = m.counters();
  EXPECT_EQ(c.free, 4u);
  EXPECT_EQ(c.used, 4u);
  EXPECT_EQ(c.allocations, 4u);
  EXPECT_DOUBLE_EQ(m.usage(), 0.5);
}

TEST(BlockManager, ExhaustionIsReportedAndChangesNothing) {
  BlockManager m(4, 4);
  ASSERT_TRUE(m.allocate(1, 12).ok());
  EXPECT_FALSE(m.can_allocate(2, 8));
  auto r = m.allocate(2, 8);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, BlockError::Kind::exhausted);
  EXPECT_EQ(r.error().needed, 2u);
  EXPECT_EQ(r.error().available, 1u);
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_TRUE(m.block_table(2).empty());
  const BlockCounters c = m.counters();
  EXPECT_EQ(c.free, 1u);
  EXPECT_EQ(c.exhausted, 1u);
  EXPECT_EQ(c.allocations, 3u);
}

TEST(BlockManager, FreeReturnsBlocksAndCountsPreemptions) {
  BlockManager m(6, 2);
  ASSERT_TRUE(m.allocate(1, 4).ok());
  ASSERT_TRUE(m.allocate(2, 4).ok());
  EXPECT_TRUE(m.free(1, FreeCause::finished));
  EXPECT_FALSE(m.free(1, FreeCause::finished));  // already gone
  EXPECT_FALSE(m.has_table(1));
  EXPECT_TRUE(m.free(2, FreeCause::preempted));
  BlockCounters c = m.counters();
  EXPECT_EQ(c.free, 6u);
  EXPECT_EQ(c.frees, 4u);
  EXPECT_EQ(c.preemptions, 1u);
  // Freed blocks are reused.
  ASSERT_TRUE(m.allocate(3, 12).ok());
  EXPECT_EQ(m.counters().free, 0u);
  EXPECT_TRUE(m.free(3, FreeCause::cancelled));
  EXPECT_EQ(m.counters().free, 6u);
}

TEST(BlockManager, SharedPrefixBlocksLiveUntilTheLastReference) {
  BlockManager m(8, 4);
  ASSERT_TRUE(m.allocate(1, 12).ok());  // blocks 0, 1, 2
  ASSERT_TRUE(m.share_prefix(1, 2, 2).ok());
  EXPECT_EQ(table(m, 2), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(m.ref_count(0), 2u);
  EXPECT_EQ(m.ref_count(2), 1u);
  EXPECT_EQ(m.counters().used, 3u);

  // The sharer grows with blocks of its own.
  ASSERT_TRUE(m.allocate(2, 12).ok());
  EXPECT_EQ(table(m, 2), (std::vector<std::int32_t>{0, 1, 3}));

  EXPECT_TRUE(m.free(1, FreeCause::finished));
  EXPECT_EQ(m.ref_count(0), 1u);
  EXPECT_EQ(m.ref_count(2), 0u);
  EXPECT_EQ(m.counters().used, 3u);  // 0, 1 (still shared) and 3
  EXPECT_TRUE(m.free(2, FreeCause::finished));
  EXPECT_EQ(m.counters().used, 0u);
  EXPECT_EQ(m.counters().frees, 4u);
}

TEST(BlockManager, InvalidSharesAreErrors) {
  BlockManager m(8, 4);
  EXPECT_EQ(m.share_prefix(1, 2, 1).error().kind, BlockError::Kind::unknown_sequence);
  ASSERT_TRUE(m.allocate(1, 8).ok());
  ASSERT_TRUE(m.allocate(2, 4).ok());
  EXPECT_EQ(m.share_prefix(1, 2, 1).error().kind, BlockError::Kind::invalid_share);  // target not empty
  EXPECT_EQ(m.share_prefix(1, 3, 3).error().kind, BlockError::Kind::invalid_share);  // more than the source has
  EXPECT_EQ(m.share_prefix(1, 1, 1).error().kind, BlockError::Kind::invalid_share);
  EXPECT_EQ(m.ref_count(0), 1u);
  EXPECT_EQ(m.ref_count(-1), 0u);
  EXPECT_EQ(m.ref_count(8), 0u);
}

TEST(BlockManager, ZeroBlocksNeverCrashes) {
  BlockManager m(0, 16);
  EXPECT_EQ(m.usage(), 0.0);
  EXPECT_FALSE(m.allocate(1, 1).ok());
  EXPECT_TRUE(m.allocate(1, 0).ok());
  EXPECT_TRUE(m.free(1, FreeCause::finished));
}

}  // namespace
}  // namespace sluice
