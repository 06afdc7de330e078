// Which instruction-set path the CPU kernels take. Detected once: AVX2 + FMA + F16C when the CPU has them,
// else portable scalar code. Both paths are deterministic; they are not bit-identical to each other, so a
// process must not switch paths between computations it compares — select_isa() exists for tests that run
// every kernel on both paths against a naive reference.
#pragma once

namespace sluice::kernels {

enum class Isa { scalar, avx2 };

Isa active_isa();
// Returns false (changing nothing) when the CPU lacks `isa`. Not thread-safe: call before kernels run.
bool select_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace sluice::kernels
