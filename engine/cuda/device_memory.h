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

class DeviceAllocation {
 public:
  DeviceAllocation() = default;
  ~DeviceAllocation() { reset(); }
  DeviceAllocation(DeviceAllocation&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  DeviceAllocation& operator=(DeviceAllocation&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = o.bytes_;
    }
    return *this;
  }

  cudaError_t allocate(std::size_t bytes) {
    reset();
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (err != cudaSuccess) return err;
    ptr_ = p;
    bytes_ = bytes;
    return cudaSuccess;
  }
  void reset() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  std::byte* data() const { return static_cast<std::byte*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Page-locked host memory: what makes cudaMemcpyAsync truly asynchronous.
class PinnedAllocation {
 public:
  PinnedAllocation() = default;
  ~PinnedAllocation() { reset(); }
  PinnedAllocation(const PinnedAllocation&) = delete;
  PinnedAllocation& operator=(const PinnedAllocation&) = delete;

  cudaError_t allocate(std::size_t bytes) {
    reset();
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) return err;
    ptr_ = p;
    bytes_ = bytes;
    return cudaSuccess;
  }
  void reset() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  std::byte* data() const { return static_cast<std::byte*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

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
