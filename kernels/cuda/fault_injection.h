// A kernel that faults on purpose, for tests of the device-error path: it stores through an address no
// allocation can have, which the GPU reports as cudaErrorIllegalAddress at the next synchronization. The
// error is sticky: the process's CUDA context is unusable afterwards, exactly as after a real fault.
// Never launched outside tests (the CUDA backend launches it only when its test hook asks).
#pragma once

#include <cuda_runtime_api.h>

namespace sluice::cuda {

cudaError_t launch_illegal_address_fault(cudaStream_t stream);

}  // namespace sluice::cuda
