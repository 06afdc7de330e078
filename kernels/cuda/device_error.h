// Shared conventions of the CUDA kernels.
//
// Every kernel has a launch header (this folder, plain C++: no device code) holding a params struct, a
// launcher `cudaError_t launch_<name>(const <Name>Params&, cudaStream_t)` and a CPU reference
// `void <name>_reference(...)` on host memory. Launchers never abort and never synchronize: they validate
// the params (cudaErrorInvalidValue when out of range) and return the launch error, if any. bf16 tensors are
// `__nv_bfloat16` (cuda_bf16.h); references take and return the same bit patterns through host arrays.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

namespace sluice::cuda {

// "cudaErrorMemoryAllocation: out of memory" style text for logs and BackendError messages.
inline std::string error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

// True when at least one CUDA device is usable (driver present, device visible).
inline bool device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace sluice::cuda
