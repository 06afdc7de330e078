#include "gateway/routing/target_picker.h"

#include <climits>

namespace sluice {

int pick_target(const Route& route, const std::vector<bool>& tried,
                const std::function<bool(const PolicyTarget&)>& skipped, double uniform01) {
  int tier = INT_MAX;
  for (std::size_t i = 0; i < route.targets.size(); ++i)
    if (!tried[i] && route.targets[i].tier < tier) tier = route.targets[i].tier;
  if (tier == INT_MAX) return -1;
  std::vector<int> eligible;
  int first = -1;
  double total = 0;
  for (std::size_t i = 0; i < route.targets.size(); ++i) {
    const auto& t = route.targets[i];
    if (tried[i] || t.tier != tier) continue;
    if (first < 0) first = static_cast<int>(i);
    if (t.weight <= 0 || (skipped && skipped(t))) continue;
    eligible.push_back(static_cast<int>(i));
    total += t.weight;
  }
  if (eligible.empty()) return first;
  double r = uniform01 * total;
  for (int i : eligible) {
    r -= route.targets[i].weight;
    if (r < 0) return i;
  }
  return eligible.back();
}

}  // namespace sluice
