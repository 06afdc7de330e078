#include "engine/tokenizer/unicode_class.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "engine/tokenizer/unicode_tables.h"

namespace sluice::unicode {
namespace {

bool in_ranges(const CodeRange* ranges, std::size_t count, char32_t cp) {
  const CodeRange* end = ranges + count;
  const CodeRange* it =
      std::upper_bound(ranges, end, cp, [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != ranges && cp <= (it - 1)->last;
}

bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

CharClass classify_slow(char32_t cp) {
  if (is_white_space(cp)) return CharClass::whitespace;
  if (in_ranges(letter_ranges, letter_ranges_count, cp)) return CharClass::letter;
  if (in_ranges(number_ranges, number_ranges_count, cp)) return CharClass::number;
  return CharClass::other;
}

struct BmpTable {
  std::array<CharClass, 0x10000> classes{};
  BmpTable() {
    for (char32_t cp = 0; cp < 0x10000; ++cp) classes[cp] = classify_slow(cp);
  }
};

}  // namespace

CharClass classify(char32_t cp) {
  static const BmpTable table;
  if (cp < 0x10000) return table.classes[cp];
  if (cp > 0x10FFFF) return CharClass::other;
  return classify_slow(cp);
}

const char* tables_version() { return unicode_tables_version; }

}  // namespace sluice::unicode
