// Picks and creates the backend an Engine runs on, from EngineConfig::device:
//   cpu:  the CPU backend (kv_cache_bytes, threads);
//   cuda: the CUDA backend (gpu_memory_utilization, enforce_eager); an error when the build has no CUDA or no
//         device is visible;
//   automatic: cuda when the build has CUDA and a device is visible and the CUDA backend supports the model
//         (head_dim, attention window); otherwise the CPU backend, with the reason in the note.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend/backend.h"
#include "engine/core/engine.h"
#include "engine/model/weights.h"
#include "engine/util/result.h"

namespace sluice {

struct EngineBackend {
  std::unique_ptr<Backend> backend;
  std::string note;  // one line for the log: where the model runs and why, memory plan on the GPU
};

Result<EngineBackend, EngineError> create_engine_backend(const EngineConfig& config,
                                                         std::shared_ptr<const ModelWeights> weights,
                                                         std::uint32_t max_model_len);

}  // namespace sluice
