// BlockManager: hands out the paged KV cache's fixed-size blocks to sequences.
//
// Each sequence has a block table: block ids for positions 0, block_size, 2*block_size, … (the layout the
// StepPlan and the backends use, see engine/backend/kv_cache.h). Blocks carry reference counts so that a
// prefix may later be shared by several sequences; a block returns to the free list when its last reference
// goes. Running out of blocks is an ordinary outcome reported as a value — the scheduler then preempts.
//
// Owned by the scheduler on the engine thread; not thread-safe. counters() is a snapshot for metrics.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/util/result.h"

namespace sluice {

struct BlockCounters {
  std::uint32_t total = 0;
  std::uint32_t free = 0;
  std::uint32_t used = 0;
  std::uint64_t allocations = 0;  // blocks handed out, cumulative
  std::uint64_t frees = 0;        // blocks returned to the free list, cumulative
  std::uint64_t preemptions = 0;  // sequences whose blocks were released by preemption
  std::uint64_t exhausted = 0;    // allocation requests refused for lack of free blocks
};

enum class FreeCause : std::uint8_t { finished, cancelled, preempted };

struct BlockError {
  enum class Kind : std::uint8_t {
    exhausted,         // not enough free blocks; nothing was allocated
    unknown_sequence,  // the source of a share has no blocks
    invalid_share,     // the target already has blocks, or more blocks were asked than the source holds
  };
  Kind kind = Kind::exhausted;
  std::uint32_t needed = 0;     // exhausted: blocks the request needed
  std::uint32_t available = 0;  // exhausted: blocks that were free
  std::string message;
};

class BlockManager {
 public:
  BlockManager(std::uint32_t num_blocks, std::uint32_t block_size);

  std::uint32_t num_blocks() const { return num_blocks_; }
  std::uint32_t block_size() const { return block_size_; }
  std::uint32_t num_free() const { return static_cast<std::uint32_t>(free_.size()); }
  // Fraction of blocks in use, in [0, 1].
  double usage() const;

  // Blocks that cover positions [0, positions).
  std::uint32_t blocks_for(std::uint64_t positions) const;
  // Blocks `seq` still lacks to cover positions [0, positions) (0 if it already does; an unknown sequence
  // has none).
  std::uint32_t blocks_needed(std::uint64_t seq, std::uint64_t positions) const;
  bool can_allocate(std::uint64_t seq, std::uint64_t positions) const {
    return blocks_needed(seq, positions) <= num_free();
  }

  // Appends blocks to `seq`'s table (creating it) until it covers positions [0, positions). On exhaustion
  // nothing changes and the error says how many blocks were needed and free.
  Status<BlockError> allocate(std::uint64_t seq, std::uint64_t positions);

  // Drops `seq`'s references; blocks nobody else references go back to the free list. Returns whether the
  // sequence had a table.
  bool free(std::uint64_t seq, FreeCause cause);

  // Gives `dst` (which must hold no blocks) references to the first `count` blocks of `src`. Only whole
  // blocks that neither sequence writes again may be shared: the caller shares full prompt blocks.
  Status<BlockError> share_prefix(std::uint64_t src, std::uint64_t dst, std::uint32_t count);

  // `seq`'s block table (empty for an unknown sequence); valid until the next call that changes it.
  std::span<const std::int32_t> block_table(std::uint64_t seq) const;
  bool has_table(std::uint64_t seq) const { return tables_.contains(seq); }
  std::uint32_t ref_count(std::int32_t block) const;

  BlockCounters counters() const;

 private:
  std::uint32_t num_blocks_;
  std::uint32_t block_size_;
  std::vector<std::int32_t> free_;  // a stack: the next block handed out is free_.back()
  std::vector<std::uint32_t> refs_;
  std::unordered_map<std::uint64_t, std::vector<std::int32_t>> tables_;
  BlockCounters counters_;
};

}  // namespace sluice
