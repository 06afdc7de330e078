// Streaming detokenization: token ids in, UTF-8 text out, never a broken sequence.
//
// A token may end inside a multi-byte character (byte-level BPE splits emoji and CJK across tokens), so
// push() releases only text up to the last complete character and holds the incomplete tail for the next
// token. Bytes that can never form a character are released at once as U+FFFD; flush() turns a held tail
// into U+FFFD. The concatenation of every push() and the final flush() equals Tokenizer::decode() of the
// same ids with the same options.
//
// One decoder per stream; not thread-safe. It keeps a copy of the Tokenizer (which shares its tables).
#pragma once

#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace sluice {

class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(Tokenizer tokenizer, DecodeOptions options = {});

  // The text that became complete with this token (possibly empty).
  std::string push(std::int32_t id);
  // Everything still held, repaired; the decoder then starts a new stream.
  std::string flush();
  // Bytes held back waiting for the rest of a character.
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  Tokenizer tokenizer_;
  DecodeOptions options_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace sluice
