#include "engine/core/backend_factory.h"

#include <fmt/format.h>


#include "engine/cpu/cpu_backend.h"
#ifdef SLUICE_HAS_CUDA
#include "engine/cuda/cuda_backend.h"
#include "kernels/cuda/device_error.h"
#endif

namespace sluice {

std::optional<EngineDevice> parse_engine_device(std::string_view name) {
  if (name == "auto") return EngineDevice::automatic;
  if (name == "cpu") return EngineDevice::cpu;
  if (name == "cuda") return EngineDevice::cuda;
  return std::nullopt;
}

namespace {

Result<EngineBackend, EngineError> create_cpu(const EngineConfig& config, std::shared_ptr<const ModelWeights> weights,
                                              std::string note) {
  CpuBackendOptions bo;
  bo.threads = config.threads == 0 ? 1 : config.threads;
  bo.kv_cache_bytes = config.kv_cache_bytes;
  bo.block_size = config.block_size;
  bo.max_batched_tokens = config.max_num_batched_tokens;
  auto backend = CpuBackend::create(std::move(weights), bo);
  if (!backend)
    return fail(
        EngineError{fmt::format("CPU backend: {} (lower engine.kv_cache_bytes or "
                                "engine.max_num_batched_tokens)",
                                backend.error().message)});
  EngineBackend out;
  out.backend = std::move(backend.value());
  out.note = std::move(note);
  return out;
}


}  // namespace

Result<EngineBackend, EngineError> create_engine_backend(const EngineConfig& config,
                                                         std::shared_ptr<const ModelWeights> weights,
                                                         std::uint32_t max_model_len) {
  if (config.device == EngineDevice::cpu) return create_cpu(config, std::move(weights), "engine.device is cpu");
#ifdef SLUICE_HAS_CUDA
  const bool automatic = config.device == EngineDevice::automatic;
  if (!cuda::device_available()) {
    if (automatic) {
      return create_cpu(config, std::move(weights), "engine.device is auto and no CUDA device is visible: CPU");
    }
    return fail(
        EngineError{"engine.device is cuda but no CUDA device is visible (check the NVIDIA driver and "
                    "CUDA_VISIBLE_DEVICES), or set engine.device: cpu"});
  }
  CudaBackendOptions co;
  co.gpu_memory_utilization = config.gpu_memory_utilization;
  co.max_model_len = max_model_len;
  co.max_num_seqs = config.max_num_seqs;
  co.max_batched_tokens = config.max_num_batched_tokens;
  co.block_size = config.block_size;
  co.enforce_eager = config.enforce_eager;
  auto backend = create_cuda_backend(weights, co);
  if (!backend) {
    // Under auto, a model the GPU kernels do not support (head_dim, sliding window, block_size) still runs, on
    // the CPU; memory and device errors are reported, since they are what the operator must fix.
    if (automatic && backend.error().kind == BackendError::Kind::invalid_config) {
      return create_cpu(
          config, std::move(weights),
          "engine.device is auto and the CUDA backend cannot serve this model (" + backend.error().message + "): CPU");
    }
    return fail(EngineError{backend.error().message});  // already names the CUDA backend and the fix
  }
  EngineBackend out;
  out.note = "CUDA";
  if (auto* cb = dynamic_cast<CudaBackend*>(backend.value().get()); cb != nullptr) {
    out.note = "CUDA: " + cb->memory_budget().summary;
  }
  out.backend = std::move(backend.value());
  return out;
#else
  if (config.device == EngineDevice::cuda) {
    return fail(
        EngineError{"engine.device is cuda but this build has no CUDA support (rebuild where nvcc is "
                    "installed, with -DSLUICE_CUDA=ON), or set engine.device: cpu"});
  }
  return create_cpu(config, std::move(weights), "engine.device is auto and this build has no CUDA support: CPU");
#endif
}

}  // namespace sluice
