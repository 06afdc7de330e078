// Finds added tokens (control and user-defined vocabulary entries) in raw text before pre-tokenization, the
// way HF `tokenizers` splits on its added vocabulary: scanning left to right, the leftmost position where any
// token matches wins, and there the longest token.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class SpecialTokenMatcher {
 public:
  struct Match {
    std::size_t position = 0;  // byte offset in the searched text; == text.size() when nothing matched
    std::size_t length = 0;
    std::int32_t id = -1;
  };

  // `control` tokens are matched only when the caller asks for special-token parsing; user-defined tokens
  // always are. Empty texts are ignored.
  void add(std::string text, std::int32_t id, bool control);

  // The first match at or after `from`.
  Match find(std::string_view text, std::size_t from, bool parse_control) const;

  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string text;
    std::int32_t id;
    bool control;
  };
  // Entry indices bucketed by first byte, each bucket longest first.
  std::array<std::vector<std::uint32_t>, 256> by_first_byte_{};
  std::vector<Entry> entries_;
};

}  // namespace sluice
