#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <unordered_map>

#include "engine/tokenizer/bpe_merger.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/sentencepiece_encoder.h"
#include "engine/tokenizer/special_token_matcher.h"
#include "engine/tokenizer/utf8.h"

namespace sluice {
namespace {

constexpr std::string_view space_marker = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

// Control-token texts that mark the end of a turn or of a text in common chat formats (ChatML, Llama 3,
// Phi, Gemma, GPT-2 style <|endoftext|>); a model that names such a token generates nothing after it.
constexpr std::array<std::string_view, 9> end_marker_texts{
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "<|end_of_text|>", "<|return|>"};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TextIndex = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

TokenizerError error(std::string message) { return TokenizerError{"tokenizer: " + std::move(message)}; }

// "<0x0A>" → 0x0A.
std::optional<std::uint8_t> parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]);
  const int lo = hex(text[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<std::uint8_t>(hi * 16 + lo);
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    const std::size_t at = text.find(from, pos);
    if (at == std::string_view::npos) break;
    out.append(text.substr(pos, at - pos));
    out.append(to);
    pos = at + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace

struct Tokenizer::Data {
  TokenizerModel model = TokenizerModel::byte_level_bpe;
  std::string pre_name;
  PreTokenizerInfo pre;
  std::vector<std::string> texts;
  std::vector<std::string> bytes;
  std::vector<TokenType> types;
  TextIndex text_index;   // stored text → first id with it
  TextIndex bytes_index;  // byte-level: normal tokens' bytes → id (the whole-piece lookup of ignore_merges)
  BpeMerger merger;
  SentencePieceEncoder sentencepiece;
  SpecialTokenMatcher specials;
  std::vector<std::int32_t> end_of_generation;
  std::int32_t bos_id = -1, eos_id = -1, unknown_id = -1, padding_id = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = true;
};

Result<Tokenizer, TokenizerError> Tokenizer::create(const TokenizerSpec& spec) {
  auto d = std::make_shared<Data>();
  const std::size_t n = spec.tokens.size();
  if (n == 0) return fail(error("the vocabulary is empty"));
  if (n > static_cast<std::size_t>(INT32_MAX)) return fail(error("the vocabulary is too large"));
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return fail(error("token_type has " + std::to_string(spec.token_types.size()) + " entries for " +
                      std::to_string(n) + " tokens"));
  }
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return fail(error("scores has " + std::to_string(spec.scores.size()) + " entries for " + std::to_string(n) +
                      " tokens"));
  }
  const auto count = static_cast<std::int32_t>(n);
  struct NamedId {
    const char* name;
    std::int32_t id;
  };
  for (NamedId k : {NamedId{"bos", spec.bos_id}, NamedId{"eos", spec.eos_id}, NamedId{"unknown", spec.unknown_id},
                    NamedId{"padding", spec.padding_id}, NamedId{"eot", spec.eot_id}, NamedId{"eom", spec.eom_id}}) {
    if (k.id < -1 || k.id >= count) {
      return fail(error(std::string(k.name) + " token id " + std::to_string(k.id) +
                        " is outside the vocabulary of " + std::to_string(n) + " tokens"));
    }
  }

  if (spec.model == "gpt2") {
    d->model = TokenizerModel::byte_level_bpe;
    d->pre_name = spec.pre.empty() ? "gpt2" : spec.pre;
    const auto pre = pre_tokenizer_from_name(d->pre_name);
    if (!pre) {
      return fail(error("pre-tokenizer '" + d->pre_name + "' (tokenizer.ggml.pre) is not supported; known: " +
                        std::string(known_pre_tokenizer_names())));
    }
    d->pre = *pre;
  } else if (spec.model == "llama") {
    d->model = TokenizerModel::sentencepiece_bpe;
  } else {
    return fail(error("tokenizer model '" + spec.model +
                      "' (tokenizer.ggml.model) is not supported; supported: gpt2 (byte-level BPE), llama "
                      "(SentencePiece BPE)"));
  }

  d->texts = spec.tokens;
  d->types.resize(n, TokenType::normal);
  d->bytes.resize(n);
  d->text_index.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = static_cast<std::int32_t>(i);
    if (!spec.token_types.empty()) {
      const std::int32_t t = spec.token_types[i];
      d->types[i] = (t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::undefined;
    }
    const std::string& text = d->texts[i];
    d->text_index.try_emplace(text, id);
    const TokenType type = d->types[i];
    std::string& bytes = d->bytes[i];
    if (d->model == TokenizerModel::byte_level_bpe) {
      std::optional<std::string> decoded;
      if (type == TokenType::normal || type == TokenType::undefined) decoded = byte_level::decode(text);
      bytes = decoded ? std::move(*decoded) : text;
      if (type == TokenType::normal || type == TokenType::undefined) d->bytes_index.try_emplace(bytes, id);
    } else if (type == TokenType::byte) {
      const auto b = parse_byte_token(text);
      bytes = b ? std::string(1, static_cast<char>(*b)) : text;
      if (b) d->sentencepiece.set_byte_token(*b, id);
    } else if (type == TokenType::normal || type == TokenType::user_defined || type == TokenType::undefined) {
      bytes = replace_all(text, space_marker, " ");
      if (type != TokenType::user_defined) {
        d->sentencepiece.add_piece(text, id, spec.scores.empty() ? 0.0f : spec.scores[i]);
      }
    } else {
      bytes = text;
    }
    if (type == TokenType::control || type == TokenType::user_defined) {
      d->specials.add(text, id, type == TokenType::control);
    }
  }

  if (d->model == TokenizerModel::byte_level_bpe) {
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = d->text_index.find(byte_level::encode(std::string(1, static_cast<char>(b))));
      if (it != d->text_index.end()) d->merger.set_byte_token(static_cast<std::uint8_t>(b), it->second);
    }
    for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
      const std::string& merge = spec.merges[rank];
      bool added = false;
      // Token texts of byte-level vocabularies hold no space, so the separator is the only one; still try
      // every space so an added token with one cannot make a well-formed merge unreadable.
      for (std::size_t sp = merge.find(' '); sp != std::string::npos && !added; sp = merge.find(' ', sp + 1)) {
        const std::string_view left = std::string_view(merge).substr(0, sp);
        const std::string_view right = std::string_view(merge).substr(sp + 1);
        const auto l = d->text_index.find(left);
        const auto r = d->text_index.find(right);
        if (l == d->text_index.end() || r == d->text_index.end()) continue;
        std::string joined;
        joined.reserve(left.size() + right.size());
        joined.append(left).append(right);
        const auto m = d->text_index.find(joined);
        if (m == d->text_index.end()) continue;
        d->merger.add_merge(l->second, r->second, m->second, static_cast<std::int32_t>(rank));
        added = true;
      }
      if (!added) {
        return fail(error("merge " + std::to_string(rank) + " ('" + merge +
                          "') does not join two vocabulary tokens into a third"));
      }
    }
  } else {
    if (spec.unknown_id >= 0) d->sentencepiece.set_unknown_token(spec.unknown_id);
  }

  d->bos_id = spec.bos_id;
  d->eos_id = spec.eos_id;
  d->unknown_id = spec.unknown_id;
  d->padding_id = spec.padding_id;
  d->add_bos = spec.add_bos;
  d->add_eos = spec.add_eos;
  d->add_space_prefix = spec.add_space_prefix;
  for (std::int32_t id : {spec.eos_id, spec.eot_id, spec.eom_id}) {
    if (id >= 0) d->end_of_generation.push_back(id);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (d->types[i] != TokenType::control) continue;
    if (std::find(end_marker_texts.begin(), end_marker_texts.end(), d->texts[i]) != end_marker_texts.end()) {
      d->end_of_generation.push_back(static_cast<std::int32_t>(i));
    }
  }
  std::sort(d->end_of_generation.begin(), d->end_of_generation.end());
  d->end_of_generation.erase(std::unique(d->end_of_generation.begin(), d->end_of_generation.end()),
                             d->end_of_generation.end());
  return Tokenizer(std::move(d));
}

Result<Tokenizer, TokenizerError> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  TokenizerSpec spec;
  auto fail_key = [&](const gguf::GgufError& e) { return fail(error(e.message)); };
  auto model = file.get_string("tokenizer.ggml.model");
  if (!model) return fail_key(model.error());
  spec.model = std::string(*model);
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return fail_key(tokens.error());
  spec.tokens.assign(tokens->begin(), tokens->end());
  if (file.contains("tokenizer.ggml.pre")) {
    auto pre = file.get_string("tokenizer.ggml.pre");
    if (!pre) return fail_key(pre.error());
    spec.pre = std::string(*pre);
  }
  if (file.contains("tokenizer.ggml.token_type")) {
    auto types = file.get_i32_array("tokenizer.ggml.token_type");
    if (!types) return fail_key(types.error());
    spec.token_types.assign(types->begin(), types->end());
  }
  if (file.contains("tokenizer.ggml.scores")) {
    auto scores = file.get_f32_array("tokenizer.ggml.scores");
    if (!scores) return fail_key(scores.error());
    spec.scores.assign(scores->begin(), scores->end());
  }
  if (file.contains("tokenizer.ggml.merges")) {
    auto merges = file.get_string_array("tokenizer.ggml.merges");
    if (!merges) return fail_key(merges.error());
    spec.merges.assign(merges->begin(), merges->end());
  }
  struct IdKey {
    const char* key;
    std::int32_t* out;
  };
  for (IdKey k : {IdKey{"tokenizer.ggml.bos_token_id", &spec.bos_id}, IdKey{"tokenizer.ggml.eos_token_id", &spec.eos_id},
                  IdKey{"tokenizer.ggml.unknown_token_id", &spec.unknown_id},
                  IdKey{"tokenizer.ggml.padding_token_id", &spec.padding_id},
                  IdKey{"tokenizer.ggml.eot_token_id", &spec.eot_id},
                  IdKey{"tokenizer.ggml.eom_token_id", &spec.eom_id}}) {
    if (!file.contains(k.key)) continue;
    auto v = file.get_i64(k.key);
    if (!v) return fail_key(v.error());
    if (*v < -1 || *v > INT32_MAX) return fail(error(std::string(k.key) + " = " + std::to_string(*v) + " is out of range"));
    *k.out = static_cast<std::int32_t>(*v);
  }
  struct FlagKey {
    const char* key;
    bool* out;
  };
  spec.add_space_prefix = spec.model == "llama";
  for (FlagKey k : {FlagKey{"tokenizer.ggml.add_bos_token", &spec.add_bos}, FlagKey{"tokenizer.ggml.add_eos_token", &spec.add_eos},
                    FlagKey{"tokenizer.ggml.add_space_prefix", &spec.add_space_prefix}}) {
    if (!file.contains(k.key)) continue;
    auto v = file.get_bool(k.key);
    if (!v) return fail_key(v.error());
    *k.out = *v;
  }
  auto t = create(spec);
  if (!t) return fail(TokenizerError{file.path() + ": " + t.error().message});
  return t;
}

void Tokenizer::encode_text(std::string_view text, std::vector<std::int32_t>& out) const {
  const Data& d = *d_;
  if (d.model == TokenizerModel::sentencepiece_bpe) {
    std::string escaped;
    escaped.reserve(text.size() + 3);
    // As llama.cpp tokenizes SentencePiece vocabularies: the space prefix goes before every stretch of
    // text, each of which starts the text or follows an added token.
    if (d.add_space_prefix) escaped.append(space_marker);
    escaped.append(replace_all(text, " ", space_marker));
    d.sentencepiece.encode(escaped, out);
    return;
  }
  thread_local PreTokenizer splitter;
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  splitter.split(d.pre.kind, text, pieces);
  for (std::string_view piece : pieces) {
    if (d.pre.ignore_merges) {
      const auto it = d.bytes_index.find(piece);
      if (it != d.bytes_index.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    d.merger.encode_piece(piece, out);
  }
}

void Tokenizer::encode_into(std::string_view text, bool parse_special, std::vector<std::int32_t>& out) const {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const SpecialTokenMatcher::Match m = d_->specials.find(text, pos, parse_special);
    if (m.position > pos) encode_text(text.substr(pos, m.position - pos), out);
    if (m.id < 0) break;
    out.push_back(m.id);
    pos = m.position + m.length;
  }
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, parse_special, out);
  return out;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, DecodeOptions options) const {
  std::string joined;
  for (std::int32_t id : ids) {
    if (options.skip_special) {
      const TokenType t = token_type(id);
      if (t == TokenType::control || t == TokenType::unknown) continue;
    }
    joined.append(token_bytes(id));
  }
  std::string_view view = joined;
  if (options.strip_leading_space && d_->model == TokenizerModel::sentencepiece_bpe && !view.empty() &&
      view.front() == ' ') {
    view.remove_prefix(1);
  }
  std::string out;
  out.reserve(view.size());
  utf8::append_repaired(out, view);
  return out;
}

std::size_t Tokenizer::token_count() const { return d_->texts.size(); }

std::string_view Tokenizer::token_bytes(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= d_->bytes.size()) return {};
  return d_->bytes[static_cast<std::size_t>(id)];
}

std::string_view Tokenizer::token_text(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= d_->texts.size()) return {};
  return d_->texts[static_cast<std::size_t>(id)];
}

TokenType Tokenizer::token_type(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= d_->types.size()) return TokenType::undefined;
  return d_->types[static_cast<std::size_t>(id)];
}

std::optional<std::int32_t> Tokenizer::find_token(std::string_view text) const {
  const auto it = d_->text_index.find(text);
  if (it == d_->text_index.end()) return std::nullopt;
  return it->second;
}

TokenizerModel Tokenizer::model() const { return d_->model; }
std::string_view Tokenizer::pre_tokenizer_name() const { return d_->pre_name; }
std::int32_t Tokenizer::bos_id() const { return d_->bos_id; }
std::int32_t Tokenizer::eos_id() const { return d_->eos_id; }
std::int32_t Tokenizer::unknown_id() const { return d_->unknown_id; }
std::int32_t Tokenizer::padding_id() const { return d_->padding_id; }
bool Tokenizer::add_bos_token() const { return d_->add_bos; }
bool Tokenizer::add_eos_token() const { return d_->add_eos; }

std::span<const std::int32_t> Tokenizer::end_of_generation_ids() const { return d_->end_of_generation; }

bool Tokenizer::is_end_of_generation(std::int32_t id) const {
  return std::binary_search(d_->end_of_generation.begin(), d_->end_of_generation.end(), id);
}

}  // namespace sluice
