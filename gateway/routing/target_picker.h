// Which target of a route to try next: the lowest tier with targets not yet tried; within it, a weighted
// pick among targets that are not being skipped (a provider's Retry-After, health). A pure function so the
// routing decision is testable without a server.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "gateway/routing/policy.h"

namespace sluice {

// Returns the index into route.targets, or -1 when every target was tried. When every untried target of
// the lowest tier is skipped, returns the first of them, so the caller records why it was passed over.
// `uniform01` is a random number in [0, 1).
int pick_target(const Route& route, const std::vector<bool>& tried,
                const std::function<bool(const PolicyTarget&)>& skipped, double uniform01);

}  // namespace sluice
