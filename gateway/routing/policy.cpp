#include "gateway/routing/policy.h"

namespace sluice {

namespace {

// The end of the UTF-8 sequence that starts at `i`, so `?` and `*` step over whole characters.
std::size_t next_char(std::string_view text, std::size_t i) {
  ++i;
  while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  return i;
}

}  // namespace

// Iterative matching with one backtrack point (the last `*` seen): linear in practice, and never recursive,
// so a pattern like "*a*a*a*..." cannot blow the stack.
bool glob_match(std::string_view pattern, std::string_view text) {
  constexpr std::size_t kNone = std::string_view::npos;
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = kNone;  // pattern index just after the last `*`
  std::size_t resume = 0;    // text index that `*` will next absorb up to
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = ++p;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      t = next_char(text, t);
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != kNone) {
      resume = next_char(text, resume);
      t = resume;
      p = star;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

const Route* Policy::match(std::string_view model) const {
  for (const Route& r : routes)
    if (!r.is_glob && r.model == model) return &r;
  for (const Route& r : routes)
    if (r.is_glob && glob_match(r.model, model)) return &r;
  return nullptr;
}

}  // namespace sluice
