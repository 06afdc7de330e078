// The merge step of byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2): a piece starts as one symbol per byte
// and the adjacent pair with the lowest merge rank is merged until no pair has a rank; equal ranks merge
// leftmost first. This is the order of HF `tokenizers`' BPE word merging, so results are identical to it.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sluice {

class BpeMerger {
 public:
  BpeMerger();

  void set_byte_token(std::uint8_t byte, std::int32_t id) { byte_ids_[byte] = id; }
  // Registers merge (left, right) → merged with the given rank; a pair seen before keeps its first rank.
  void add_merge(std::int32_t left, std::int32_t right, std::int32_t merged, std::int32_t rank);
  std::size_t merge_count() const { return count_; }

  // Appends the ids of one pre-tokenized piece. Bytes without a token are dropped, as HF BPE does without
  // an unknown token. Thread-safe (scratch buffers are per thread).
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;

  // Working state of one piece; public only for the scratch buffers in the .cpp.
  struct Symbol {
    std::int32_t id;  // -1 once merged into its left neighbour
    std::int32_t prev;
    std::int32_t next;
  };
  struct Candidate {
    std::int32_t rank;
    std::int32_t pos;
    std::int32_t left;
    std::int32_t right;
    std::int32_t merged;
    // Lowest rank first, then leftmost.
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };

 private:
  struct Slot {
    std::uint64_t key = 0;  // (left << 32) | right; 0 marks an empty slot (pairs of token 0 use `used`)
    std::int32_t rank = 0;
    std::int32_t merged = 0;
    bool used = false;
  };
  const Slot* lookup(std::int32_t left, std::int32_t right) const;
  void merge_small(std::vector<Symbol>& symbols) const;
  void merge_large(std::vector<Symbol>& symbols, std::vector<Candidate>& heap) const;
  void grow();

  std::array<std::int32_t, 256> byte_ids_;
  std::vector<Slot> slots_;  // open addressing, linear probing, power-of-two size
  std::size_t count_ = 0;
};

}  // namespace sluice
