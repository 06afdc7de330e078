// The model's tokenizer: text ↔ token ids, built from a GGUF file's tokenizer.ggml.* keys.
//
// Two vocabulary kinds: byte-level BPE (GGUF model "gpt2": GPT-2, Llama 3, Qwen2, SmolLM2, with the
// pre-tokenizer named by tokenizer.ggml.pre) and SentencePiece BPE (model "llama": Llama 2, Mistral v0.1,
// scores and <0xNN> byte fallback). Added tokens (type control or user-defined) are found in the raw text
// first, longest match; each stretch between them is then pre-tokenized and merged.
//
// A Tokenizer is immutable after creation and cheap to copy (copies share the tables); any number of threads
// may use one concurrently. encode() never fails: every byte sequence, valid UTF-8 or not, has an encoding.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/gguf_reader.h"
#include "engine/util/result.h"

namespace sluice {

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

enum class TokenizerModel : std::uint8_t { byte_level_bpe, sentencepiece_bpe };

struct TokenizerError {
  std::string message;
};

// Everything a tokenizer is built from, as the GGUF keys hold it. from_gguf() fills one; tests build small
// synthetic ones.
struct TokenizerSpec {
  std::string model;                     // tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre;                       // tokenizer.ggml.pre (byte-level only); empty means "gpt2"
  std::vector<std::string> tokens;       // tokenizer.ggml.tokens
  std::vector<std::int32_t> token_types; // tokenizer.ggml.token_type; empty means all normal
  std::vector<float> scores;             // tokenizer.ggml.scores (SentencePiece); empty means all 0
  std::vector<std::string> merges;       // tokenizer.ggml.merges (byte-level): "left right", rank = index
  std::int32_t bos_id = -1;
  std::int32_t eos_id = -1;
  std::int32_t unknown_id = -1;
  std::int32_t padding_id = -1;
  std::int32_t eot_id = -1;  // tokenizer.ggml.eot_token_id, where the model has one
  std::int32_t eom_id = -1;  // tokenizer.ggml.eom_token_id
  bool add_bos = false;      // tokenizer.ggml.add_bos_token
  bool add_eos = false;      // tokenizer.ggml.add_eos_token
  bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix (SentencePiece only)
};

struct DecodeOptions {
  bool skip_special = false;  // drop control and unknown tokens instead of writing their text
  // SentencePiece only: drop the one space that the "▁" of the first token stands for (what HF's Llama
  // decoder does when it decodes a whole text). Leave off when decoding a continuation of a prompt.
  bool strip_leading_space = false;
};

class Tokenizer {
 public:
  static Result<Tokenizer, TokenizerError> from_gguf(const gguf::GgufFile& file);
  static Result<Tokenizer, TokenizerError> create(const TokenizerSpec& spec);

  // Token ids for `text`. With parse_special, control tokens written in the text ("<|im_start|>") become
  // their ids; without it they are encoded as ordinary text. User-defined tokens always match. Neither BOS
  // nor EOS is added; see add_bos_token().
  std::vector<std::int32_t> encode(std::string_view text, bool parse_special) const;
  void encode_into(std::string_view text, bool parse_special, std::vector<std::int32_t>& out) const;

  // The text of `ids`; invalid UTF-8 across the joined token bytes becomes U+FFFD (maximal subparts), as
  // HF's decoders do. Ids outside the vocabulary contribute nothing.
  std::string decode(std::span<const std::int32_t> ids, DecodeOptions options = {}) const;

  std::size_t token_count() const;
  // The bytes a token stands for in text (byte-level alphabet and "▁" undone, <0xNN> resolved); control
  // tokens give their written text. Empty for ids outside the vocabulary.
  std::string_view token_bytes(std::int32_t id) const;
  // The token as the vocabulary stores it ("Ġthe", "▁the", "<0x0A>").
  std::string_view token_text(std::int32_t id) const;
  TokenType token_type(std::int32_t id) const;  // undefined for ids outside the vocabulary
  // The id of the vocabulary entry with exactly this stored text.
  std::optional<std::int32_t> find_token(std::string_view text) const;

  TokenizerModel model() const;
  std::string_view pre_tokenizer_name() const;
  std::int32_t bos_id() const;  // -1 when the model has none
  std::int32_t eos_id() const;
  std::int32_t unknown_id() const;
  std::int32_t padding_id() const;
  bool add_bos_token() const;  // whether prompts should start with bos_id()
  bool add_eos_token() const;
  // Tokens that end a generation: EOS, the end-of-turn and end-of-message tokens where named, and control
  // tokens whose text is a known end marker ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", ...). Sorted.
  std::span<const std::int32_t> end_of_generation_ids() const;
  bool is_end_of_generation(std::int32_t id) const;

 private:
  struct Data;
  explicit Tokenizer(std::shared_ptr<const Data> data) : d_(std::move(data)) {}
  void encode_text(std::string_view text, std::vector<std::int32_t>& out) const;

  std::shared_ptr<const Data> d_;
};

}  // namespace sluice
