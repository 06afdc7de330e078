// The GPT-2 byte-to-unicode alphabet of byte-level BPE vocabularies: every byte maps to one printable code
// point (printable Latin-1 bytes to themselves, the rest to U+0100 and up, in byte order), so vocabulary
// and merge files store arbitrary bytes as text. "Ġ" (U+0120) is the space byte, "Ċ" (U+010A) the newline.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::byte_level {

char32_t byte_to_code_point(std::uint8_t byte);

// The byte a code point of the alphabet stands for; nullopt for code points outside it.
std::optional<std::uint8_t> code_point_to_byte(char32_t cp);

// Vocabulary text → the bytes it stands for; nullopt when the text is not valid UTF-8 or holds a code point
// outside the alphabet (such entries are added tokens stored as plain text).
std::optional<std::string> decode(std::string_view token_text);

// Bytes → vocabulary text.
std::string encode(std::string_view bytes);

}  // namespace sluice::byte_level
