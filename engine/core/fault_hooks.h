// Fault injection for tests of the engine's failure handling (the watchdog, device faults, fallback). The
// product never installs hooks: only the test-only executable built from tests/hooks/ does, so in `sluice`
// these stay empty and cost one branch per step.
#pragma once

#include <cstdint>
#include <functional>

namespace sluice {

struct EngineFaultHooks {
  // Called on the engine thread inside step `step` (counting from 1), before the backend runs; it may block
  // to simulate a hung step.
  std::function<void(std::uint64_t step)> before_execute;
  // Called right after; true makes the step fail as a device fault (what a CUDA error would report).
  std::function<bool(std::uint64_t step)> fail_step;
};

// Installs hooks for every engine created afterwards (call before Engine::create).
void set_engine_fault_hooks(EngineFaultHooks hooks);
const EngineFaultHooks& engine_fault_hooks();

}  // namespace sluice
