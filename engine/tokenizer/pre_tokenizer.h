// Pre-tokenizers of byte-level BPE models: the split rules that cut text into pieces before merges run.
//
// Each family's reference is a regular expression run by Oniguruma inside Hugging Face `tokenizers`; the
// rules here are the same expressions written as hand matchers over classified code points (leftmost match,
// alternatives tried in order, with the backtracking of `\s+(?!\S)` and `\s*[\r\n]+` worked out), so no
// regex engine runs at encode time:
//   gpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm every \p{N} code point isolated first (HF Digits, individual_digits), then gpt2 on the rest
//   llama3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//          \s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2  llama3 with \p{N} instead of \p{N}{1,3}
// Adding a family is one matcher function and one row of the name table in pre_tokenizer.cpp.
//
// Bytes that are not valid UTF-8 are units of their own, classified as neither letter, number nor space.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "engine/tokenizer/unicode_class.h"

namespace sluice {

enum class PreTokenizerKind : std::uint8_t { gpt2, smollm, llama3, qwen2 };

struct PreTokenizerInfo {
  PreTokenizerKind kind = PreTokenizerKind::gpt2;
  // The model's reference BPE looks a whole piece up in the vocabulary before merging (HF "ignore_merges").
  bool ignore_merges = false;
};

// Maps the GGUF `tokenizer.ggml.pre` value to a pre-tokenizer; nullopt for names this build does not know.
std::optional<PreTokenizerInfo> pre_tokenizer_from_name(std::string_view gguf_name);

// The names pre_tokenizer_from_name accepts, comma-separated, for error messages.
std::string_view known_pre_tokenizer_names();

// Splits text into pieces. An instance only holds buffers reused between calls: keep one per thread (it is
// not thread-safe) and pass the kind each time.
class PreTokenizer {
 public:
  // Appends the pieces of `text` (views into it, in order, covering it exactly) to `pieces`.
  void split(PreTokenizerKind kind, std::string_view text, std::vector<std::string_view>& pieces);

 private:
  using CharClass = unicode::CharClass;

  std::size_t match_gpt2(std::size_t i, std::size_t end) const;
  std::size_t match_llama3(std::size_t i, std::size_t end, std::size_t max_digits) const;
  std::size_t whitespace_run(std::size_t i, std::size_t end, bool stop_after_last_newline) const;
  std::size_t run_of(std::size_t i, std::size_t end, CharClass cls) const;
  void emit(std::string_view text, std::size_t from, std::size_t to, std::vector<std::string_view>& out) const;

  // Per unit: the code point (0xFFFFFFFF for an invalid byte), its class and its byte offset in the text;
  // offsets_ holds one extra entry, the text's length.
  std::vector<char32_t> cps_;
  std::vector<CharClass> classes_;
  std::vector<std::size_t> offsets_;
};

}  // namespace sluice
