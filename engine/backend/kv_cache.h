// Paged KV cache geometry shared by the block manager and the backends.
//
// The cache is `num_blocks` blocks of `block_size` token slots. Keys and values are stored separately, each
//   [layer][block][kv_head][block_size][head_dim]
// so that one layer's pages are contiguous (a layer's attention touches nothing else) and, inside a block,
// one KV head's keys for consecutive positions are contiguous (the attention inner loop streams them).
// Element (layer l, block b, head g, slot s, dim d) sits at
//   (((l * num_blocks + b) * kv_heads + g) * block_size + s) * head_dim + d.
// A sequence's position p lives in block table[p / block_size] at slot p % block_size. Block ids are
// indices in [0, num_blocks); which block belongs to whom is the block manager's business, not the cache's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/model/model_spec.h"

namespace sluice {

struct KvCacheLayout {
  std::uint32_t layers = 0;
  std::uint32_t num_blocks = 0;
  std::uint32_t kv_heads = 0;
  std::uint32_t block_size = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t element_bytes = 4;  // 4 on the CPU (fp32); 2 for bf16/fp16 caches on the GPU

  // Elements of one block of one layer, K or V alone.
  std::size_t block_elements() const { return std::size_t{kv_heads} * block_size * head_dim; }
  std::size_t layer_elements() const { return block_elements() * num_blocks; }
  std::size_t total_elements() const { return layer_elements() * layers; }
  std::size_t offset(std::uint32_t layer, std::uint32_t block, std::uint32_t head, std::uint32_t slot) const {
    return ((std::size_t{layer} * num_blocks + block) * kv_heads + head) * std::size_t{block_size} * head_dim +
           std::size_t{slot} * head_dim;
  }
};

// Bytes one block costs across all layers, K and V together.
inline std::uint64_t kv_bytes_per_block(const ModelSpec& spec, std::uint32_t block_size, std::uint32_t element_bytes) {
  return std::uint64_t{2} * spec.layers * spec.kv_heads * block_size * spec.head_dim * element_bytes;
}

// How many whole blocks fit in `budget_bytes` (the `kv_cache_bytes` setting on the CPU); 0 when none does.
inline std::uint32_t kv_blocks_for_budget(const ModelSpec& spec, std::uint32_t block_size, std::uint32_t element_bytes,
                                          std::uint64_t budget_bytes) {
  const std::uint64_t per_block = kv_bytes_per_block(spec, block_size, element_bytes);
  if (per_block == 0) return 0;
  const std::uint64_t n = budget_bytes / per_block;
  return n > UINT32_MAX / 2 ? UINT32_MAX / 2 : static_cast<std::uint32_t>(n);
}

}  // namespace sluice
