#include "engine/core/fault_hooks.h"

#include <utility>

namespace sluice {

namespace {
EngineFaultHooks& hooks() {
  static EngineFaultHooks h;
  return h;
}
}  // namespace

void set_engine_fault_hooks(EngineFaultHooks h) { hooks() = std::move(h); }
const EngineFaultHooks& engine_fault_hooks() { return hooks(); }

}  // namespace sluice
