#include "engine/tokenizer/special_token_matcher.h"

#include <algorithm>

namespace sluice {

void SpecialTokenMatcher::add(std::string text, std::int32_t id, bool control) {
  if (text.empty()) return;
  const auto first = static_cast<unsigned char>(text[0]);
  const auto index = static_cast<std::uint32_t>(entries_.size());
  entries_.push_back(Entry{std::move(text), id, control});
  auto& bucket = by_first_byte_[first];
  // Longest first; equal lengths keep insertion order, so the lower id wins a duplicate text.
  const auto at = std::upper_bound(bucket.begin(), bucket.end(), index, [this](std::uint32_t a, std::uint32_t b) {
    return entries_[a].text.size() > entries_[b].text.size();
  });
  bucket.insert(at, index);
}

SpecialTokenMatcher::Match SpecialTokenMatcher::find(std::string_view text, std::size_t from,
                                                     bool parse_control) const {
  for (std::size_t pos = from; pos < text.size(); ++pos) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    for (std::uint32_t index : bucket) {
      const Entry& e = entries_[index];
      if (e.control && !parse_control) continue;
      if (text.size() - pos >= e.text.size() && text.compare(pos, e.text.size(), e.text) == 0) {
        return Match{pos, e.text.size(), e.id};
      }
    }
  }
  return Match{text.size(), 0, -1};
}

}  // namespace sluice
