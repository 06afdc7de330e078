// Owners of device and pinned host allocations for the CUDA backend, and a carver that lays out several
// arrays inside one allocation (one cudaMalloc per arena keeps allocation count and fragmentation low, and
// lets a size pass and a placement pass share one function).
//
// Destructors ignore errors: after a device fault the context is unusable and freeing fails, which must not
// turn into an abort.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace sluice::cuda {

// Memory kinds for Allocation: how a block is obtained and returned.
struct DeviceMemory {
  static cudaError_t allocate(void** p, std::size_t bytes) { return cudaMalloc(p, bytes); }
  static void release(void* p) { cudaFree(p); }
};
// Page-locked host memory: what makes cudaMemcpyAsync truly asynchronous.
struct PinnedHostMemory {
  static cudaError_t allocate(void** p, std::size_t bytes) { return cudaHostAlloc(p, bytes, cudaHostAllocDefault); }
  static void release(void* p) { cudaFreeHost(p); }
};

// One owned block of Kind memory (at least one byte is requested, so a zero-size allocation still has an
// address); movable, not copyable.
template <class Kind>
class Allocation {
 public:
  Allocation() = default;
  ~Allocation() { reset(); }
  Allocation(Allocation&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  Allocation& operator=(Allocation&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }

  cudaError_t allocate(std::size_t bytes) {
    reset();
    void* p = nullptr;
    const cudaError_t err = Kind::allocate(&p, bytes == 0 ? 1 : bytes);
    if (err != cudaSuccess) return err;
    ptr_ = p;
    bytes_ = bytes;
    return cudaSuccess;
  }
  void reset() {
    if (ptr_ != nullptr) Kind::release(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  std::byte* data() const { return static_cast<std::byte*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

using DeviceAllocation = Allocation<DeviceMemory>;
using PinnedAllocation = Allocation<PinnedHostMemory>;

// Hands out aligned sub-ranges of a base pointer. With a null base it only measures: run the same sequence of
// take() calls once to size an arena and once to place the arrays in it.
class Carver {
 public:
  explicit Carver(std::byte* base = nullptr, std::size_t alignment = 256) : base_(base), alignment_(alignment) {}

  template <class T>
  T* take(std::size_t count) {
    offset_ = (offset_ + alignment_ - 1) / alignment_ * alignment_;
    T* p = base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + offset_);
    offset_ += count * sizeof(T);
    return p;
  }
  std::size_t size() const { return (offset_ + alignment_ - 1) / alignment_ * alignment_; }

 private:
  std::byte* base_;
  std::size_t alignment_;
  std::size_t offset_ = 0;
};

}  // namespace sluice::cuda
