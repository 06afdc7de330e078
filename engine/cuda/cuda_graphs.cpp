// The decode CUDA graphs of the CUDA backend: one per batch-size bucket, captured on the bucket's first step
// (right after running that step eagerly) and replayed afterwards. See cuda_backend.h.
#include <fmt/format.h>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/forward_pass.h"
#include "kernels/cuda/device_error.h"

namespace sluice {

cudaError_t CudaBackend::enqueue_forward(const ForwardShape& shape) {
  cuda::ForwardBuffers b;
  b.spec = &spec_;
  b.weights = &weights_;
  b.act = &act_;
  b.k_cache = k_cache_;
  b.v_cache = v_cache_;
  b.layer_elements = layer_elements_;
  b.num_blocks = num_blocks_;
  b.block_size = limits_.block_size;
  b.sample = !options_.return_logits;
  cuda::DeviceLauncher launcher(*gemm_, stream_);
  return cuda::run_forward(b, shape, launcher, forward_error_);
}

cudaError_t CudaBackend::run_graph(const ForwardShape& shape, std::size_t bucket_index) {
  cudaGraphExec_t& exec = graphs_[bucket_index];
  if (exec == nullptr) {
    // First step of this bucket: run it eagerly (which also lets cuBLASLt pick and cache its algorithms and
    // loads every kernel, neither of which may happen during capture), then capture the same launches.
    const cudaError_t err = enqueue_forward(shape);
    if (err != cudaSuccess) return err;
    capture_graph(shape, bucket_index);
    return cudaSuccess;
  }
  if (const cudaError_t err = cudaGraphLaunch(exec, stream_); err != cudaSuccess) {
    forward_error_ = fmt::format("launching the decode graph of batch {}", buckets_[bucket_index]);
    return err;
  }
  ++graph_replays_;
  return cudaSuccess;
}

void CudaBackend::capture_graph(const ForwardShape& shape, std::size_t bucket_index) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::string why;
  // Thread-local mode: only this thread's unsafe calls (allocation, synchronization) invalidate the capture.
  cudaError_t err = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    why = "cudaStreamBeginCapture: " + cuda::error_text(err);
  } else {
    const cudaError_t forward_err = enqueue_forward(shape);
    // Ending the capture is required whatever happened, to return the stream to normal operation.
    err = cudaStreamEndCapture(stream_, &graph);
    if (forward_err != cudaSuccess) {
      why = forward_error_ + ": " + cuda::error_text(forward_err);
    } else if (err != cudaSuccess) {
      why = "cudaStreamEndCapture: " + cuda::error_text(err);
    } else if (err = cudaGraphInstantiateWithFlags(&exec, graph, 0); err != cudaSuccess) {
      why = "cudaGraphInstantiate: " + cuda::error_text(err);
      exec = nullptr;
    }
  }
  if (graph != nullptr) cudaGraphDestroy(graph);
  if (exec != nullptr) {
    graphs_[bucket_index] = exec;
    return;
  }
  // Capture problems are not device faults: clear the (non-sticky) error and run eagerly from now on. A real
  // fault would be sticky and surfaces at the step's synchronization.
  cudaGetLastError();
  graphs_enabled_ = false;
  graph_disabled_reason_ = fmt::format("capturing the decode graph of batch {} failed ({}); decode steps run eagerly",
                                       buckets_[bucket_index], why);
}

}  // namespace sluice
