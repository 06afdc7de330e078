#include "engine/tokenizer/sentencepiece_encoder.h"

#include <algorithm>

#include "engine/tokenizer/utf8.h"

namespace sluice {
namespace {

struct Symbol {
  std::size_t start;
  std::size_t length;  // 0 once merged into its left neighbour
  std::int32_t prev;
  std::int32_t next;
};

struct Bigram {
  float score;
  std::int32_t left;
  std::int32_t right;
  std::size_t length;  // of the merged text when the candidate was made
  // Highest score first, then leftmost: the heap's top is the "largest" element under this order.
  bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
};

struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
};

}  // namespace

void SentencePieceEncoder::add_piece(std::string text, std::int32_t id, float score) {
  pieces_.try_emplace(std::move(text), Piece{id, score});
}

const SentencePieceEncoder::Piece* SentencePieceEncoder::find(std::string_view text) const {
  const auto it = pieces_.find(text);
  return it == pieces_.end() ? nullptr : &it->second;
}

void SentencePieceEncoder::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  if (text.empty()) return;
  thread_local Scratch scratch;
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.clear();
  heap.clear();
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t len = utf8::decode(text, pos).length;
    const auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{pos, len, n - 1, n + 1});
    pos += len;
  }
  symbols.back().next = -1;

  auto try_pair = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const std::size_t length = l.length + r.length;
    const Piece* p = find(text.substr(l.start, length));
    if (p == nullptr) return;
    heap.push_back(Bigram{p->score, left, right, length});
    std::push_heap(heap.begin(), heap.end());
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(symbols.size()); ++i) try_pair(i, i + 1);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Bigram top = heap.back();
    heap.pop_back();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != top.length) continue;
    l.length = top.length;
    r.length = 0;
    l.next = r.next;
    if (l.next >= 0) symbols[l.next].prev = top.left;
    try_pair(l.prev, top.left);
    try_pair(top.left, l.next);
  }

  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.start, s.length);
    if (const Piece* p = find(piece)) {
      out.push_back(p->id);
      continue;
    }
    const bool spellable = std::all_of(piece.begin(), piece.end(),
                                       [this](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
    if (spellable) {
      for (char c : piece) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else if (unknown_id_ >= 0) {
      // Without byte tokens the whole character is one unknown token, as sentencepiece emits it.
      out.push_back(unknown_id_);
    }
  }
}

}  // namespace sluice
