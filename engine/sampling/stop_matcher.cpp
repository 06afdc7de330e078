#include "engine/sampling/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace sluice {

StopMatcher::StopMatcher(std::vector<std::string> stops, bool include_stop_str_in_output)
    : stops_(std::move(stops)), include_stop_(include_stop_str_in_output) {}

StopMatcher::Output StopMatcher::push(std::string_view piece) {
  Output out;
  if (stopped_) {
    out.stopped = true;
    return out;
  }
  held_.append(piece);

  // `held_` had no complete stop string before this piece, so every occurrence found ends inside the piece;
  // the first occurrence of each stop string is its earliest-ending one.
  std::size_t best_end = std::string::npos;
  std::size_t best_start = 0;
  for (std::size_t i = 0; i < stops_.size(); ++i) {
    const std::string& s = stops_[i];
    if (s.empty()) continue;
    const std::size_t pos = held_.find(s);
    if (pos == std::string::npos) continue;
    const std::size_t end = pos + s.size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_end = end;
      best_start = pos;
      out.stop_index = static_cast<int>(i);
    }
  }
  if (best_end != std::string::npos) {
    out.text = held_.substr(0, include_stop_ ? best_end : best_start);
    out.stopped = true;
    stopped_ = true;
    held_.clear();
    return out;
  }

  const std::size_t emit = held_.size() - hold_length();
  out.text = held_.substr(0, emit);
  held_.erase(0, emit);
  return out;
}

std::string StopMatcher::flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

// The longest tail of `held_` that is a proper prefix of some stop string.
std::size_t StopMatcher::hold_length() const {
  std::size_t hold = 0;
  for (const std::string& s : stops_) {
    if (s.size() < 2) continue;
    for (std::size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace sluice
