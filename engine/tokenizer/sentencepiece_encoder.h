// SentencePiece-style BPE (Llama 2, Mistral v0.1, GGUF tokenizer.ggml.model = "llama"): the text, with
// spaces already escaped to U+2581 "▁", starts as one symbol per UTF-8 character; the adjacent pair whose
// concatenation is a vocabulary piece with the highest score merges first (ties: leftmost), until no pair
// forms a piece. A final symbol that is not a piece is spelled with byte-fallback tokens <0xNN>, or the
// unknown token where the vocabulary has no byte tokens. This is llama.cpp's and sentencepiece's BPE order.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice {

class SentencePieceEncoder {
 public:
  SentencePieceEncoder() { byte_ids_.fill(-1); }

  // Pieces that merges may produce (normal vocabulary entries). A text seen before keeps its first id.
  void add_piece(std::string text, std::int32_t id, float score);
  void set_byte_token(std::uint8_t byte, std::int32_t id) { byte_ids_[byte] = id; }
  void set_unknown_token(std::int32_t id) { unknown_id_ = id; }

  // Appends the ids for `text` (already escaped). Thread-safe.
  void encode(std::string_view text, std::vector<std::int32_t>& out) const;

 private:
  struct Piece {
    std::int32_t id;
    float score;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const Piece* find(std::string_view text) const;

  std::unordered_map<std::string, Piece, Hash, std::equal_to<>> pieces_;
  std::array<std::int32_t, 256> byte_ids_;
  std::int32_t unknown_id_ = -1;
};

}  // namespace sluice
