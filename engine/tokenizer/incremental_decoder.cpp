#include "engine/tokenizer/incremental_decoder.h"

#include "engine/tokenizer/utf8.h"

namespace sluice {

IncrementalDecoder::IncrementalDecoder(Tokenizer tokenizer, DecodeOptions options)
    : tokenizer_(std::move(tokenizer)), options_(options) {}

std::string IncrementalDecoder::push(std::int32_t id) {
  if (options_.skip_special) {
    const TokenType t = tokenizer_.token_type(id);
    if (t == TokenType::control || t == TokenType::unknown) return {};
  }
  std::string_view bytes = tokenizer_.token_bytes(id);
  if (bytes.empty()) return {};
  if (at_start_) {
    at_start_ = false;
    if (options_.strip_leading_space && tokenizer_.model() == TokenizerModel::sentencepiece_bpe && bytes[0] == ' ') {
      bytes.remove_prefix(1);
    }
  }
  pending_.append(bytes);
  const std::size_t ready = utf8::complete_prefix_length(pending_);
  std::string out;
  if (ready == 0) return out;
  utf8::append_repaired(out, std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out;
  utf8::append_repaired(out, pending_);
  pending_.clear();
  at_start_ = true;
  return out;
}

}  // namespace sluice
