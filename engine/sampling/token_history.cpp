#include "engine/sampling/token_history.h"

#include <algorithm>

namespace sluice {

TokenHistory::TokenHistory(std::span<const std::int32_t> prompt)
    : prompt_(prompt.begin(), prompt.end()), prompt_distinct_(prompt.begin(), prompt.end()) {
  std::sort(prompt_distinct_.begin(), prompt_distinct_.end());
  prompt_distinct_.erase(std::unique(prompt_distinct_.begin(), prompt_distinct_.end()), prompt_distinct_.end());
}

void TokenHistory::append(std::int32_t id) {
  generated_.push_back(id);
  ++generated_counts_[id];
}

bool TokenHistory::in_prompt(std::int32_t id) const {
  return std::binary_search(prompt_distinct_.begin(), prompt_distinct_.end(), id);
}

}  // namespace sluice
