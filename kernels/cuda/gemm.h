// bf16 GEMMs through cuBLASLt: D[m][n] = A[m][k] · W[n][k]ᵀ (+ bias[n]), fp32 accumulation, row-major
// activations and nn.Linear-shaped weights (one row per output feature), output bf16 or fp32.
//
// Products of at most kGemvMaxRows rows of A (decode batches) against small enough weights run on the
// bandwidth-bound kernel of gemv.h instead, when its alignment rules allow (gemm.cpp says when and why);
// everything else goes to cuBLASLt.
//
// A Gemm object owns the cuBLASLt handle and workspace and caches one algorithm per shape; it is used by one
// thread (the engine thread). Every call is graph-capturable (no allocation, no synchronization).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sluice::cuda {

struct GemmArgs {
  const __nv_bfloat16* a = nullptr;     // [m][k], row stride lda (elements)
  const __nv_bfloat16* w = nullptr;     // [n][k], row stride k
  const __nv_bfloat16* bias = nullptr;  // [n] or null
  void* d = nullptr;                    // [m][n], row stride ldd; bf16 or fp32 by out_fp32
  std::uint32_t m = 0;
  std::uint32_t n = 0;
  std::uint32_t k = 0;
  std::uint32_t lda = 0;  // 0: k
  std::uint32_t ldd = 0;  // 0: n
  bool out_fp32 = false;
  bool accumulate = false;  // D += A·Wᵀ instead of D = A·Wᵀ (bf16 output only)
};

class Gemm {
 public:
  // Creates the handle and a workspace of `workspace_bytes` on the current device.
  static std::unique_ptr<Gemm> create(std::size_t workspace_bytes, std::string* error);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // cudaSuccess, or cudaErrorUnknown with last_error() naming the cuBLAS status.
  cudaError_t run(const GemmArgs& args, cudaStream_t stream);
  const std::string& last_error() const { return last_error_; }

 private:
  Gemm() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string last_error_;
};

// Host reference: fp32 accumulation of the bf16 inputs, result rounded like the output type.
void gemm_reference(const GemmArgs& args);

}  // namespace sluice::cuda
