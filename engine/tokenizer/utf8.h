// UTF-8 decoding and repair shared by the tokenizers, the streaming detokenizer and the template renderer.
//
// Invalid input is never an error here: a decoder reports how many bytes form the next unit and whether
// they are a valid scalar value, and repair replaces each maximal invalid subpart with U+FFFD exactly as
// Rust's String::from_utf8_lossy and Python's bytes.decode(errors="replace") do (the Unicode "substitution
// of maximal subparts" practice), so text repaired here matches the references byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::utf8 {

inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";

struct Decoded {
  char32_t code_point = 0;  // valid only when `valid`
  std::uint32_t length = 1; // bytes consumed: the sequence, or the maximal invalid subpart (at least 1)
  bool valid = false;
};

// Decodes the unit starting at text[pos] (pos < text.size()). An invalid unit's length is its maximal
// subpart: the longest prefix that could start a valid sequence, or one byte.
Decoded decode(std::string_view text, std::size_t pos);

// Length of the prefix of `text` that a streaming decoder can release now: everything except a trailing
// incomplete sequence that later bytes could still complete. Invalid subparts before that tail count as
// releasable (they are repaired, not held).
std::size_t complete_prefix_length(std::string_view text);

// Appends `text` to `out` with each maximal invalid subpart replaced by U+FFFD.
void append_repaired(std::string& out, std::string_view text);

// Appends the UTF-8 encoding of `cp` (which must be a scalar value; others become U+FFFD).
void append_code_point(std::string& out, char32_t cp);

bool is_valid(std::string_view text);

}  // namespace sluice::utf8
