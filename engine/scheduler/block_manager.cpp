#include "engine/scheduler/block_manager.h"

#include <algorithm>

namespace sluice {

BlockManager::BlockManager(std::uint32_t num_blocks, std::uint32_t block_size)
    : num_blocks_(num_blocks), block_size_(std::max<std::uint32_t>(block_size, 1)), refs_(num_blocks, 0) {
  // Handed out in ascending order at first, which keeps plans in tests readable.
  free_.reserve(num_blocks);
  for (std::uint32_t b = num_blocks; b > 0; --b) free_.push_back(static_cast<std::int32_t>(b - 1));
  counters_.total = num_blocks;
}

double BlockManager::usage() const {
  if (num_blocks_ == 0) return 0.0;
  return static_cast<double>(num_blocks_ - num_free()) / static_cast<double>(num_blocks_);
}

std::uint32_t BlockManager::blocks_for(std::uint64_t positions) const {
  const std::uint64_t n = (positions + block_size_ - 1) / block_size_;
  return n > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(n);
}

std::uint32_t BlockManager::blocks_needed(std::uint64_t seq, std::uint64_t positions) const {
  const std::uint32_t want = blocks_for(positions);
  const auto it = tables_.find(seq);
  const std::uint32_t have = it == tables_.end() ? 0 : static_cast<std::uint32_t>(it->second.size());
  return want > have ? want - have : 0;
}

Status<BlockError> BlockManager::allocate(std::uint64_t seq, std::uint64_t positions) {
  const std::uint32_t needed = blocks_needed(seq, positions);
  if (needed > num_free()) {
    ++counters_.exhausted;
    return fail(BlockError{BlockError::Kind::exhausted, needed, num_free(),
                           "KV cache exhausted: " + std::to_string(needed) + " blocks needed, " +
                               std::to_string(num_free()) + " free"});
  }
  std::vector<std::int32_t>& table = tables_[seq];
  for (std::uint32_t i = 0; i < needed; ++i) {
    const std::int32_t b = free_.back();
    free_.pop_back();
    refs_[static_cast<std::size_t>(b)] = 1;
    table.push_back(b);
  }
  counters_.allocations += needed;
  return Ok{};
}

bool BlockManager::free(std::uint64_t seq, FreeCause cause) {
  const auto it = tables_.find(seq);
  if (it == tables_.end()) return false;
  // Released last block first so that the stack hands the sequence's first block out next.
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) {
    std::uint32_t& r = refs_[static_cast<std::size_t>(*b)];
    if (r > 0 && --r == 0) {
      free_.push_back(*b);
      ++counters_.frees;
    }
  }
  tables_.erase(it);
  if (cause == FreeCause::preempted) ++counters_.preemptions;
  return true;
}

Status<BlockError> BlockManager::share_prefix(std::uint64_t src, std::uint64_t dst, std::uint32_t count) {
  const auto s = tables_.find(src);
  if (s == tables_.end()) {
    return fail(BlockError{BlockError::Kind::unknown_sequence, 0, 0, "source sequence holds no blocks"});
  }
  if (src == dst || count > s->second.size() || (tables_.contains(dst) && !tables_[dst].empty())) {
    return fail(BlockError{BlockError::Kind::invalid_share, 0, 0,
                           "a shared prefix needs an empty target and at most the source's blocks"});
  }
  // Copy first: inserting `dst` may rehash and move the source's vector.
  std::vector<std::int32_t> shared(s->second.begin(), s->second.begin() + count);
  for (std::int32_t b : shared) ++refs_[static_cast<std::size_t>(b)];
  tables_[dst] = std::move(shared);
  return Ok{};
}

std::span<const std::int32_t> BlockManager::block_table(std::uint64_t seq) const {
  const auto it = tables_.find(seq);
  if (it == tables_.end()) return {};
  return it->second;
}

std::uint32_t BlockManager::ref_count(std::int32_t block) const {
  if (block < 0 || static_cast<std::uint32_t>(block) >= num_blocks_) return 0;
  return refs_[static_cast<std::size_t>(block)];
}

BlockCounters BlockManager::counters() const {
  BlockCounters c = counters_;
  c.free = num_free();
  c.used = num_blocks_ - c.free;
  return c;
}

}  // namespace sluice
