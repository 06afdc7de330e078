// See fault_injection.h. One thread, one volatile store: the compiler may not drop it, and the address
// (taken from an argument, so nothing is known about it at compile time) lies in the unmapped first page.
#include "kernels/cuda/fault_injection.h"

#include <cstdint>

namespace sluice::cuda {

namespace {

__global__ void illegal_store_kernel(std::uintptr_t address) {
  *reinterpret_cast<volatile int*>(address) = 1;
}

}  // namespace

cudaError_t launch_illegal_address_fault(cudaStream_t stream) {
  illegal_store_kernel<<<1, 1, 0, stream>>>(std::uintptr_t{16});
  return cudaGetLastError();
}

}  // namespace sluice::cuda
