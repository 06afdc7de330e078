// TokenHistory: what the penalties look at for one request — its prompt ids, the ids generated so far and
// how often each generated id occurred. Kept incrementally (append per sampled token) so applying the
// penalties costs O(distinct ids), not O(length).
//
// Owned by the request's state on the engine thread; not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace sluice {

class TokenHistory {
 public:
  TokenHistory() = default;
  explicit TokenHistory(std::span<const std::int32_t> prompt);

  void append(std::int32_t id);

  std::span<const std::int32_t> prompt() const { return prompt_; }
  std::span<const std::int32_t> generated() const { return generated_; }
  std::uint32_t num_generated() const { return static_cast<std::uint32_t>(generated_.size()); }
  // Distinct prompt ids, ascending.
  std::span<const std::int32_t> prompt_distinct() const { return prompt_distinct_; }
  bool in_prompt(std::int32_t id) const;
  // Generated id -> occurrences.
  const std::unordered_map<std::int32_t, std::uint32_t>& generated_counts() const { return generated_counts_; }

 private:
  std::vector<std::int32_t> prompt_;
  std::vector<std::int32_t> prompt_distinct_;
  std::vector<std::int32_t> generated_;
  std::unordered_map<std::int32_t, std::uint32_t> generated_counts_;
};

}  // namespace sluice
