#include "engine/tokenizer/byte_level.h"

#include <array>

#include "engine/tokenizer/utf8.h"

namespace sluice::byte_level {
namespace {

bool maps_to_itself(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Alphabet {
  std::array<char32_t, 256> to_cp{};
  std::array<std::int16_t, 324> from_cp{};  // code points 0..323 cover the whole alphabet
  Alphabet() {
    from_cp.fill(-1);
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      to_cp[b] = maps_to_itself(b) ? static_cast<char32_t>(b) : next++;
      from_cp[to_cp[b]] = static_cast<std::int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_to_code_point(std::uint8_t byte) { return alphabet().to_cp[byte]; }

std::optional<std::uint8_t> code_point_to_byte(char32_t cp) {
  const Alphabet& a = alphabet();
  if (cp >= a.from_cp.size() || a.from_cp[cp] < 0) return std::nullopt;
  return static_cast<std::uint8_t>(a.from_cp[cp]);
}

std::optional<std::string> decode(std::string_view token_text) {
  std::string out;
  out.reserve(token_text.size());
  std::size_t pos = 0;
  while (pos < token_text.size()) {
    const utf8::Decoded d = utf8::decode(token_text, pos);
    if (!d.valid) return std::nullopt;
    const auto b = code_point_to_byte(d.code_point);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    pos += d.length;
  }
  return out;
}

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8::append_code_point(out, byte_to_code_point(static_cast<std::uint8_t>(c)));
  return out;
}

}  // namespace sluice::byte_level
