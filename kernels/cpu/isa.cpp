#include "kernels/cpu/isa.h"

namespace sluice::kernels {

namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

Isa& current() {
  static Isa isa = cpu_has_avx2() ? Isa::avx2 : Isa::scalar;
  return isa;
}

}  // namespace

Isa active_isa() {
  return current();
}

bool select_isa(Isa isa) {
  if (isa == Isa::avx2 && !cpu_has_avx2()) return false;
  current() = isa;
  return true;
}

const char* isa_name(Isa isa) {
  return isa == Isa::avx2 ? "avx2" : "scalar";
}

}  // namespace sluice::kernels
