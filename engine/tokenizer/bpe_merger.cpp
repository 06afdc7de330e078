#include "engine/tokenizer/bpe_merger.h"

#include <algorithm>
#include <queue>

namespace sluice {
namespace {

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Pieces up to this many bytes merge by rescanning, longer ones through a heap.
constexpr std::size_t small_piece = 24;

struct Scratch {
  std::vector<BpeMerger::Symbol> symbols;
  std::vector<BpeMerger::Candidate> heap;
};

}  // namespace

BpeMerger::BpeMerger() {
  byte_ids_.fill(-1);
  slots_.resize(1024);
}

void BpeMerger::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.size() * 2, Slot{});
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (!s.used) continue;
    std::size_t i = mix(s.key) & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void BpeMerger::add_merge(std::int32_t left, std::int32_t right, std::int32_t merged, std::int32_t rank) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const std::uint64_t key = pair_key(left, right);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = mix(key) & mask;
  while (slots_[i].used) {
    if (slots_[i].key == key) return;
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{key, rank, merged, true};
  ++count_;
}

const BpeMerger::Slot* BpeMerger::lookup(std::int32_t left, std::int32_t right) const {
  const std::uint64_t key = pair_key(left, right);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = mix(key) & mask;
  while (slots_[i].used) {
    if (slots_[i].key == key) return &slots_[i];
    i = (i + 1) & mask;
  }
  return nullptr;
}

void BpeMerger::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  thread_local Scratch scratch;
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.clear();
  heap.clear();
  for (char c : piece) {
    const std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id < 0) continue;
    const auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, n + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  if (symbols.size() == 1) {
    out.push_back(symbols[0].id);
    return;
  }

  if (symbols.size() <= small_piece) {
    merge_small(symbols);
  } else {
    merge_large(symbols, heap);
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

// Short pieces (most words): keep each adjacent pair's merge, scan for the lowest rank each round and
// look up only the two pairs a merge changes. No heap.
void BpeMerger::merge_small(std::vector<Symbol>& symbols) const {
  const Slot* pair[small_piece];
  auto refresh = [&](std::int32_t i) {
    if (i < 0) return;
    const std::int32_t next = symbols[i].next;
    pair[i] = next < 0 ? nullptr : lookup(symbols[i].id, symbols[next].id);
  };
  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) refresh(i);
  while (true) {
    const Slot* best = nullptr;
    std::int32_t best_pos = -1;
    for (std::int32_t i = 0; i >= 0; i = symbols[i].next) {
      if (pair[i] != nullptr && (best == nullptr || pair[i]->rank < best->rank)) {
        best = pair[i];
        best_pos = i;
      }
    }
    if (best == nullptr) return;
    Symbol& left = symbols[best_pos];
    const std::int32_t right = left.next;
    left.id = best->merged;
    left.next = symbols[right].next;
    if (left.next >= 0) symbols[left.next].prev = best_pos;
    symbols[right].id = -1;
    refresh(left.prev);
    refresh(best_pos);
  }
}

// Long pieces: candidates in a heap ordered by (rank, position), stale ones skipped when popped.
void BpeMerger::merge_large(std::vector<Symbol>& symbols, std::vector<Candidate>& heap) const {
  const auto greater = std::greater<Candidate>();
  auto push = [&](std::int32_t pos) {
    if (pos < 0) return;
    const std::int32_t next = symbols[pos].next;
    if (next < 0) return;
    const Slot* s = lookup(symbols[pos].id, symbols[next].id);
    if (s == nullptr) return;
    heap.push_back(Candidate{s->rank, pos, symbols[pos].id, symbols[next].id, s->merged});
    std::push_heap(heap.begin(), heap.end(), greater);
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(symbols.size()); ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    // Stale candidates: the left symbol was absorbed or changed, or its right neighbour changed.
    if (left.id != top.left || left.next < 0 || symbols[left.next].id != top.right) continue;
    const std::int32_t right = left.next;
    left.id = top.merged;
    left.next = symbols[right].next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    symbols[right].id = -1;
    push(left.prev);
    push(top.pos);
  }
}

}  // namespace sluice
