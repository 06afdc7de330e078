#include "engine/tokenizer/utf8.h"

namespace sluice::utf8 {
namespace {

struct Scan {
  Decoded unit;
  bool truncated = false;  // the text ended while the sequence was still a valid prefix
};

// Well-formed sequences per the Unicode standard (Table 3-7); the second byte's range depends on the lead.
Scan scan(std::string_view text, std::size_t pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) return {{b0, 1, true}, false};
  std::uint32_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {{0, 1, false}, false};
  }
  std::uint32_t got = 0;
  while (got < need) {
    const std::size_t at = pos + 1 + got;
    if (at >= text.size()) return {{0, 1 + got, false}, true};
    const auto b = static_cast<unsigned char>(text[at]);
    const unsigned char first_lo = got == 0 ? lo : 0x80;
    const unsigned char first_hi = got == 0 ? hi : 0xBF;
    if (b < first_lo || b > first_hi) return {{0, 1 + got, false}, false};
    cp = (cp << 6) | (b & 0x3F);
    ++got;
  }
  return {{cp, 1 + need, true}, false};
}

}  // namespace

Decoded decode(std::string_view text, std::size_t pos) { return scan(text, pos).unit; }

std::size_t complete_prefix_length(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Scan s = scan(text, pos);
    if (s.truncated) return pos;
    pos += s.unit.length;
  }
  return pos;
}

void append_repaired(std::string& out, std::string_view text) {
  std::size_t pos = 0;
  std::size_t clean_from = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Decoded d = decode(text, pos);
    if (!d.valid) {
      out.append(text.substr(clean_from, pos - clean_from));
      out.append(replacement_character);
      clean_from = pos + d.length;
    }
    pos += d.length;
  }
  out.append(text.substr(clean_from));
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      out.append(replacement_character);
      return;
    }
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.append(replacement_character);
  }
}

bool is_valid(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Decoded d = decode(text, pos);
    if (!d.valid) return false;
    pos += d.length;
  }
  return true;
}

}  // namespace sluice::utf8
