// Code point classes for the pre-tokenizer split rules: the \p{L}, \p{N} and \s of the reference regexes.
#pragma once

#include <cstdint>

namespace sluice::unicode {

enum class CharClass : std::uint8_t {
  other = 0,
  letter = 1,      // general category L*
  number = 2,      // general category N*
  whitespace = 3,  // the White_Space property (what Oniguruma's and Rust's \s match)
};

// Any char32_t is accepted; values that are not scalar values are `other`. Thread-safe; the first call
// builds a 64 KiB table for the Basic Multilingual Plane.
CharClass classify(char32_t cp);

// The Unicode version of the category tables.
const char* tables_version();

}  // namespace sluice::unicode
