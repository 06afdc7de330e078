// Small-m GEMM ("GEMV"): the GemmArgs product D[m][n] = A[m][k] · W[n][k]ᵀ (+ bias[n]) for m ≤ 8 rows, the
// shape of batch-1..8 decode. At these sizes a GEMM is a stream over W (n·k·2 bytes of weights against m·k·2
// bytes of activations), so the kernel is built to read W once at memory bandwidth: each warp owns a few
// output features at a time, streams their weight rows through shared memory with asynchronous 16-byte copies
// (several steps in flight per warp), takes the activations from L1, accumulates in fp32 and reduces across
// the warp with shuffles. Conventions: device_error.h.
//
// Accepted arguments (gemv_supported): 1 ≤ m ≤ kGemvMaxRows, k a multiple of 8, A's row stride a multiple of 8
// and A, W 16-byte aligned (every load is a whole 8-element vector). D, its stride and the bias have no
// alignment requirement. out_fp32 and accumulate work as in gemm.h, accumulate for both output types.
// The launch allocates nothing and never synchronizes, so it can be captured in a CUDA graph.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace sluice::cuda {

inline constexpr std::uint32_t kGemvMaxRows = 8;

bool gemv_supported(const GemmArgs& args);

// Launch parameters; 0 in a field lets the launcher choose from the shape. The defaults are what Gemm::run
// uses; the fields exist so that tests and measurements can compare the alternatives.
struct GemvTuning {
  std::uint32_t rows_per_warp = 0;  // output features a warp computes together: 1, 2 or 4
  std::uint32_t stages = 0;         // weight copies in flight per warp, counted in steps: 3 or 5
  std::uint32_t blocks_per_sm = 0;  // resident blocks per SM the grid is sized for (capped by occupancy)
};

// Launches the kernel; cudaErrorInvalidValue for arguments gemv_supported rejects or an unknown tuning.
cudaError_t launch_gemv(const GemmArgs& args, cudaStream_t stream, const GemvTuning& tuning = {});

}  // namespace sluice::cuda
