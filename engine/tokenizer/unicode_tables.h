// Generated Unicode category tables (see unicode_tables.cpp); read through unicode_class.h.
#pragma once

#include <cstddef>

namespace sluice::unicode {

struct CodeRange {
  char32_t first;
  char32_t last;  // inclusive
};

extern const char* const unicode_tables_version;
extern const CodeRange letter_ranges[];
extern const std::size_t letter_ranges_count;
extern const CodeRange number_ranges[];
extern const std::size_t number_ranges_count;

}  // namespace sluice::unicode
