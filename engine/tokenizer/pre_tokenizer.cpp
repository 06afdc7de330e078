#include "engine/tokenizer/pre_tokenizer.h"

#include <array>

#include "engine/tokenizer/utf8.h"

namespace sluice {
namespace {

constexpr char32_t invalid_unit = 0xFFFFFFFF;

struct NamedPreTokenizer {
  std::string_view name;
  PreTokenizerInfo info;
};

// GGUF `tokenizer.ggml.pre` values, as written by llama.cpp's converter, and the split rules they stand for.
constexpr std::array<NamedPreTokenizer, 7> named_pre_tokenizers{{
    {"gpt2", {PreTokenizerKind::gpt2, false}},
    {"smollm", {PreTokenizerKind::smollm, false}},
    {"starcoder", {PreTokenizerKind::smollm, false}},
    {"refact", {PreTokenizerKind::smollm, false}},
    {"llama-bpe", {PreTokenizerKind::llama3, true}},
    {"llama3", {PreTokenizerKind::llama3, true}},
    {"qwen2", {PreTokenizerKind::qwen2, false}},
}};

char32_t ascii_lower(char32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }

}  // namespace

std::optional<PreTokenizerInfo> pre_tokenizer_from_name(std::string_view gguf_name) {
  for (const auto& n : named_pre_tokenizers) {
    if (n.name == gguf_name) return n.info;
  }
  return std::nullopt;
}

std::string_view known_pre_tokenizer_names() { return "gpt2, smollm, starcoder, refact, llama-bpe, llama3, qwen2"; }

std::size_t PreTokenizer::run_of(std::size_t i, std::size_t end, CharClass cls) const {
  while (i < end && classes_[i] == cls) ++i;
  return i;
}

// \s+(?!\S) then \s+ at a whitespace unit; with `stop_after_last_newline`, \s*[\r\n]+ is tried first.
std::size_t PreTokenizer::whitespace_run(std::size_t i, std::size_t end, bool stop_after_last_newline) const {
  const std::size_t k = run_of(i, end, CharClass::whitespace);
  if (stop_after_last_newline) {
    for (std::size_t p = k; p > i; --p) {
      if (is_newline(cps_[p - 1])) return p;
    }
  }
  if (k == end || k - i == 1) return k;
  return k - 1;  // leave the last space to prefix the word that follows
}

std::size_t PreTokenizer::match_gpt2(std::size_t i, std::size_t end) const {
  const char32_t c = cps_[i];
  if (c == '\'' && i + 1 < end) {
    const char32_t n1 = cps_[i + 1];
    if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') return i + 2;
    if (i + 2 < end) {
      const char32_t n2 = cps_[i + 2];
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) return i + 3;
    }
  }
  const std::size_t j = c == ' ' ? i + 1 : i;
  if (j < end && classes_[j] != CharClass::whitespace) return run_of(j, end, classes_[j]);
  if (classes_[i] == CharClass::whitespace) return whitespace_run(i, end, false);
  return i + 1;
}

std::size_t PreTokenizer::match_llama3(std::size_t i, std::size_t end, std::size_t max_digits) const {
  const char32_t c = cps_[i];
  const CharClass cls = classes_[i];
  if (c == '\'' && i + 1 < end) {
    // Oniguruma's case-insensitive match also folds U+017F LATIN SMALL LETTER LONG S to 's'.
    const char32_t n1 = cps_[i + 1] == 0x17F ? U's' : ascii_lower(cps_[i + 1]);
    if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') return i + 2;
    if (i + 2 < end) {
      const char32_t n2 = ascii_lower(cps_[i + 2]);
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) return i + 3;
    }
  }
  if (cls == CharClass::letter) return run_of(i, end, CharClass::letter);
  if (cls != CharClass::number && !is_newline(c) && i + 1 < end && classes_[i + 1] == CharClass::letter) {
    return run_of(i + 1, end, CharClass::letter);
  }
  if (cls == CharClass::number) {
    std::size_t k = i;
    while (k < end && k - i < max_digits && classes_[k] == CharClass::number) ++k;
    return k;
  }
  const std::size_t j = c == ' ' ? i + 1 : i;
  if (j < end && classes_[j] == CharClass::other) {
    std::size_t k = run_of(j, end, CharClass::other);
    while (k < end && is_newline(cps_[k])) ++k;
    return k;
  }
  if (cls == CharClass::whitespace) return whitespace_run(i, end, true);
  return i + 1;
}

void PreTokenizer::emit(std::string_view text, std::size_t from, std::size_t to,
                        std::vector<std::string_view>& out) const {
  out.push_back(text.substr(offsets_[from], offsets_[to] - offsets_[from]));
}

void PreTokenizer::split(PreTokenizerKind kind, std::string_view text, std::vector<std::string_view>& pieces) {
  cps_.clear();
  classes_.clear();
  offsets_.clear();
  std::size_t pos = 0;
  while (pos < text.size()) {
    offsets_.push_back(pos);
    const auto byte = static_cast<unsigned char>(text[pos]);
    if (byte < 0x80) {
      cps_.push_back(byte);
      classes_.push_back(unicode::classify(byte));
      ++pos;
      continue;
    }
    const utf8::Decoded d = utf8::decode(text, pos);
    if (d.valid) {
      cps_.push_back(d.code_point);
      classes_.push_back(unicode::classify(d.code_point));
      pos += d.length;
    } else {
      // An invalid byte stands alone so the piece boundaries never cut a valid sequence apart.
      cps_.push_back(invalid_unit);
      classes_.push_back(CharClass::other);
      pos += 1;
    }
  }
  offsets_.push_back(text.size());
  const std::size_t n = cps_.size();

  switch (kind) {
    case PreTokenizerKind::gpt2:
      for (std::size_t i = 0; i < n;) {
        const std::size_t e = match_gpt2(i, n);
        emit(text, i, e, pieces);
        i = e;
      }
      break;
    case PreTokenizerKind::smollm:
      // Numbers split off one code point each; the gpt2 rules then run on each stretch between them, which
      // cannot see across a number (so " 1" yields " " and "1").
      for (std::size_t start = 0; start < n;) {
        if (classes_[start] == CharClass::number) {
          emit(text, start, start + 1, pieces);
          ++start;
          continue;
        }
        std::size_t stop = start;
        while (stop < n && classes_[stop] != CharClass::number) ++stop;
        for (std::size_t i = start; i < stop;) {
          const std::size_t e = match_gpt2(i, stop);
          emit(text, i, e, pieces);
          i = e;
        }
        start = stop;
      }
      break;
    case PreTokenizerKind::llama3:
    case PreTokenizerKind::qwen2: {
      const std::size_t max_digits = kind == PreTokenizerKind::llama3 ? 3 : 1;
      for (std::size_t i = 0; i < n;) {
        const std::size_t e = match_llama3(i, n, max_digits);
        emit(text, i, e, pieces);
        i = e;
      }
      break;
    }
  }
}

}  // namespace sluice
