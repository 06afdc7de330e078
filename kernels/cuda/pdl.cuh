// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl may start while the kernel before
// it in the stream is still finishing, so its launch and its CTAs' start-up overlap the other's tail.
//
// The contract for every kernel launched this way: call pdl_wait() before touching memory that an earlier
// kernel writes (its inputs, or outputs that an earlier kernel may still read); only work on data no earlier
// kernel of the step writes (the weights) may come first. pdl_wait() returns once the previous kernel has
// completed and its writes are visible; a kernel launched without the attribute passes through it at once.
// pdl_launch_dependents() lets the next kernel begin launching; it is called right after pdl_wait(), so at
// most one kernel waits ahead of the running one. Kernels launched by others (cuBLASLt) never overlap: their
// launches carry no attribute.
//
// SLUICE_PDL=0 in the environment turns the attribute off for the process (plain stream order), for
// comparisons.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace sluice::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

inline bool pdl_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SLUICE_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// kernel<<<grid, block, smem, stream>>>(args...) with the programmatic-serialization attribute; returns the
// launch's error (cudaGetLastError is not needed after it).
template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                       Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace sluice::cuda
