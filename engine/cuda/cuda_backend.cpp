// CudaBackend: creation (checks, memory plan, uploads), plan validation and the step driver. The input packing
// is step_inputs.cpp, the forward pass cuda_forward.cpp, the decode graphs cuda_graphs.cpp.
#include "engine/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/backend/plan_check.h"
#include "engine/backend/kv_cache.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_error.h"
#include "kernels/cuda/fault_injection.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/sampling.h"

namespace sluice {

namespace {

constexpr std::size_t kGemmWorkspaceBytes = std::size_t{32} << 20;  // cuBLASLt's recommendation for Hopper
constexpr std::size_t kGemmBiasBytes = std::size_t{1} << 20;        // Gemm's fp32 bias buffer
// Device memory this backend will use beyond its own allocations: lazily loaded kernel modules (ours and
// cuBLASLt's), graph executables, driver bookkeeping. Deliberately generous; it only shrinks the KV cache.
constexpr std::uint64_t kRuntimeReserveBytes = std::uint64_t{256} << 20;
constexpr std::uint64_t kGraphReserveBytes = std::uint64_t{8} << 20;  // per captured bucket

BackendError config_error(std::string m) {
  return BackendError{BackendError::Kind::invalid_config, std::move(m)};
}
BackendError oom_error(std::string m) {
  return BackendError{BackendError::Kind::out_of_memory, std::move(m)};
}
BackendError plan_error(std::string m) {
  return BackendError{BackendError::Kind::invalid_plan, std::move(m)};
}
BackendError fault_error(std::string m) {
  return BackendError{BackendError::Kind::device_fault, std::move(m)};
}

// The error kind of a failed allocation: out of memory, or a broken device.
BackendError allocation_error(std::string_view what, std::size_t bytes, cudaError_t err) {
  std::string m = fmt::format("cuda backend: allocating {} ({} bytes): {}", what, bytes, cuda::error_text(err));
  if (err == cudaErrorMemoryAllocation) {
    return oom_error(m +
                     "; lower max_model_len, max_num_seqs or max_num_batched_tokens, or raise "
                     "gpu_memory_utilization");
  }
  return fault_error(std::move(m));
}

Status<BackendError> check_options(const ModelSpec& spec, const CudaBackendOptions& o, std::uint32_t max_model_len) {
  if (!(o.gpu_memory_utilization > 0.0 && o.gpu_memory_utilization <= 1.0)) {
    return fail(config_error(
        fmt::format("cuda backend: gpu_memory_utilization must be in (0, 1], got {}", o.gpu_memory_utilization)));
  }
  if (o.block_size != 16 && o.block_size != 32) {
    return fail(config_error(fmt::format(
        "cuda backend: block_size must be 16 or 32 (what the attention kernels support), got {}", o.block_size)));
  }
  if (spec.head_dim != 64 && spec.head_dim != 128) {
    return fail(config_error(fmt::format(
        "cuda backend: the model's head_dim is {}; the attention kernels support 64 and 128 (use device: cpu)",
        spec.head_dim)));
  }
  if (o.max_num_seqs == 0 || o.max_num_seqs > 4096) {
    return fail(config_error(fmt::format("cuda backend: max_num_seqs must be in [1, 4096], got {}", o.max_num_seqs)));
  }
  if (o.max_batched_tokens == 0 || o.max_batched_tokens > (1u << 20)) {
    return fail(config_error(
        fmt::format("cuda backend: max_batched_tokens must be in [1, 2^20], got {}", o.max_batched_tokens)));
  }
  if (max_model_len == 0 || (spec.max_position > 0 && max_model_len > spec.max_position)) {
    return fail(config_error(fmt::format("cuda backend: max_model_len {} is outside [1, {}] (the model's context)",
                                         max_model_len, spec.max_position)));
  }
  // The GPU attention kernels attend the whole causal prefix; a window only matters beyond its length.
  if (spec.sliding_window != 0 && spec.sliding_window < max_model_len) {
    return fail(config_error(fmt::format(
        "cuda backend: the model uses sliding-window attention ({} positions), which the GPU kernels do not "
        "implement; set max_model_len to at most {} or use device: cpu",
        spec.sliding_window, spec.sliding_window)));
  }
  if (std::uint64_t{spec.vocab} * spec.hidden >= (std::uint64_t{1} << 40)) {
    return fail(config_error("cuda backend: the embedding is too large"));
  }
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend(std::shared_ptr<const ModelWeights> weights,
                                                                   const CudaBackendOptions& options) {
  if (weights == nullptr) return fail(config_error("cuda backend: no model weights"));
  const ModelSpec spec = weights->spec();
  return CudaBackend::build(std::move(weights), spec, 0, options);
}

Result<std::unique_ptr<Backend>, BackendError> create_cuda_backend_random(const ModelSpec& spec, std::uint64_t seed,
                                                                          const CudaBackendOptions& options) {
  if (auto v = validate(spec, "random model"); !v) return fail(config_error(v.error().message));
  return CudaBackend::build(nullptr, spec, seed, options);
}

CudaBackend::CudaBackend(const ModelSpec& spec, const CudaBackendOptions& options, const cuda::BackendLimits& limits)
    : spec_(spec), options_(options), limits_(limits) {}

CudaBackend::~CudaBackend() {
  // Errors are ignored: after a fault the context is gone and nothing here can be done about it.
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (cudaGraphExec_t g : graphs_)
    if (g != nullptr) cudaGraphExecDestroy(g);
  gemm_.reset();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::size_t CudaBackend::graphs_captured() const {
  return static_cast<std::size_t>(std::count_if(graphs_.begin(), graphs_.end(), [](auto g) { return g != nullptr; }));
}

Result<std::unique_ptr<Backend>, BackendError> CudaBackend::build(std::shared_ptr<const ModelWeights> weights,
                                                                  const ModelSpec& spec, std::uint64_t seed,
                                                                  const CudaBackendOptions& o) {
  const std::uint32_t max_model_len = o.max_model_len != 0 ? o.max_model_len : spec.max_position;
  if (auto st = check_options(spec, o, max_model_len); !st) return fail(std::move(st.error()));

  int devices = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&devices); err != cudaSuccess || devices == 0) {
    return fail(config_error(fmt::format("cuda backend: no CUDA device is available ({}); use device: cpu",
                                         err == cudaSuccess ? "none found" : cuda::error_text(err))));
  }
  if (o.device < 0 || o.device >= devices) {
    return fail(config_error(fmt::format("cuda backend: device {} does not exist ({} visible)", o.device, devices)));
  }
  cudaError_t err = cudaSetDevice(o.device);
  if (err == cudaSuccess) err = cudaFree(nullptr);  // creates the context now, so its memory counts as used
  if (err != cudaSuccess) {
    return fail(fault_error(fmt::format("cuda backend: cannot use device {}: {}", o.device, cuda::error_text(err))));
  }
  std::size_t free_bytes = 0, total_bytes = 0;
  if (err = cudaMemGetInfo(&free_bytes, &total_bytes); err != cudaSuccess) {
    return fail(fault_error("cuda backend: cudaMemGetInfo: " + cuda::error_text(err)));
  }

  const cuda::BackendLimits limits =
      cuda::make_limits(o.max_batched_tokens, o.max_num_seqs, max_model_len, o.block_size);
  const bool tied = weights != nullptr ? cuda::lm_head_is_embedding(*weights) : spec.tied_embeddings;
  const std::size_t decode_ws =
      cuda::decode_attention_workspace_bytes(limits.max_seqs, spec.heads, spec.head_dim, max_model_len);
  const std::size_t sampling_ws = cuda::sampling_workspace_bytes(limits.max_seqs, spec.vocab);
  cuda::Activations measured;
  cuda::Carver measure;
  cuda::carve_activations(measure, spec, limits, decode_ws, sampling_ws, measured);
  const std::vector<std::uint32_t> buckets =
      o.enforce_eager ? std::vector<std::uint32_t>{} : cuda::graph_buckets(limits.max_seqs);

  cuda::MemoryBudgetInput mi;
  mi.total_bytes = total_bytes;
  mi.free_bytes = free_bytes;
  mi.utilization = o.gpu_memory_utilization;
  mi.weight_bytes = cuda::device_weight_bytes(spec, tied);
  mi.activation_bytes = measure.size();
  mi.workspace_bytes = kGemmWorkspaceBytes + kGemmBiasBytes;
  mi.reserve_bytes = kRuntimeReserveBytes + kGraphReserveBytes * buckets.size();
  mi.kv_block_bytes = kv_bytes_per_block(spec, o.block_size, 2);
  mi.blocks_per_seq = limits.blocks_per_seq;
  mi.max_useful_blocks = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{limits.max_seqs} * limits.blocks_per_seq, UINT32_MAX / 2));
  mi.max_model_len = max_model_len;
  mi.block_size = o.block_size;
  auto budget = cuda::plan_device_memory(mi);
  if (!budget) return fail(oom_error("cuda backend: " + budget.error()));

  std::unique_ptr<CudaBackend> b(new CudaBackend(spec, o, limits));
  b->memory_ = std::move(budget.value());
  b->num_blocks_ = b->memory_.num_kv_blocks;
  b->buckets_ = buckets;
  b->graphs_.assign(buckets.size(), nullptr);
  b->bound_thread_ = std::this_thread::get_id();

  if (err = cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking); err != cudaSuccess) {
    b->stream_ = nullptr;
    return fail(fault_error("cuda backend: creating a stream: " + cuda::error_text(err)));
  }
  if (err = cuda::allocate_device_weights(spec, tied, b->weights_); err != cudaSuccess) {
    return fail(allocation_error("the weights", mi.weight_bytes, err));
  }
  auto loaded = weights != nullptr ? cuda::upload_weights(*weights, b->stream_, b->weights_)
                                   : cuda::fill_random_weights(spec, seed, b->stream_, b->weights_);
  if (!loaded) return fail(fault_error("cuda backend: " + loaded.error()));

  if (err = b->activation_arena_.allocate(mi.activation_bytes); err != cudaSuccess) {
    return fail(allocation_error("activations", mi.activation_bytes, err));
  }
  cuda::Carver place(b->activation_arena_.data());
  cuda::carve_activations(place, spec, limits, decode_ws, sampling_ws, b->act_);

  b->other_bytes_ = mi.activation_bytes + mi.workspace_bytes;
  std::string gemm_error;
  b->gemm_ = cuda::Gemm::create(kGemmWorkspaceBytes, &gemm_error);
  if (b->gemm_ == nullptr) return fail(fault_error("cuda backend: " + gemm_error));

  b->layer_elements_ =
      KvCacheLayout{spec.layers, b->num_blocks_, spec.kv_heads, o.block_size, spec.head_dim, 2}.layer_elements();
  const std::size_t kv_elements = b->layer_elements_ * spec.layers;
  if (err = b->kv_arena_.allocate(2 * kv_elements * sizeof(__nv_bfloat16)); err != cudaSuccess) {
    return fail(allocation_error("the KV cache", 2 * kv_elements * sizeof(__nv_bfloat16), err));
  }
  b->k_cache_ = reinterpret_cast<__nv_bfloat16*>(b->kv_arena_.data());
  b->v_cache_ = b->k_cache_ + kv_elements;
  // Zeroed once: kernels that touch a whole page (or padding rows reading block 0) then never meet NaN bit
  // patterns from uninitialized memory, which 0 × NaN would spread; and decode attention's arrival counters
  // (in the activation arena's decode workspace) must start at zero.
  err = cudaMemsetAsync(b->kv_arena_.data(), 0, b->kv_arena_.bytes(), b->stream_);
  if (err == cudaSuccess)
    err = cudaMemsetAsync(b->activation_arena_.data(), 0, b->activation_arena_.bytes(), b->stream_);
  if (err == cudaSuccess) err = cudaStreamSynchronize(b->stream_);
  if (err != cudaSuccess) return fail(fault_error("cuda backend: clearing the KV cache: " + cuda::error_text(err)));

  if (err = b->staging_.allocate(cuda::max_step_input_bytes(limits)); err == cudaSuccess) {
    err = b->host_ids_.allocate(std::size_t{limits.max_seqs} * sizeof(std::int32_t));
  }
  if (err != cudaSuccess) return fail(allocation_error("pinned host buffers", 0, err));

  const std::size_t s = limits.max_seqs;
  b->out_seq_index_.resize(s);
  b->out_seq_ids_.resize(s);
  b->out_ids_.resize(s);
  b->out_logits_row_.resize(s);
  b->out_device_row_.resize(s);
  return std::unique_ptr<Backend>(std::move(b));
}

Status<BackendError> CudaBackend::validate(const StepPlan& plan) const {
  const std::uint32_t n = plan.num_tokens();
  if (n > limits_.max_tokens) {
    return fail(
        plan_error(fmt::format("plan has {} tokens, more than max_batched_tokens = {}", n, limits_.max_tokens)));
  }
  if (plan.num_seqs() > limits_.max_seqs) {
    return fail(plan_error(
        fmt::format("plan has {} sequences, more than max_num_seqs = {}", plan.num_seqs(), limits_.max_seqs)));
  }
  if (plan.seq_ids.size() < plan.num_seqs() || plan.sampling.size() < plan.num_seqs() || plan.token_ids.size() < n ||
      plan.block_ids.size() < plan.num_table_entries()) {
    return fail(plan_error("plan counts exceed its arrays"));
  }
  return check_plan_sequences(
      plan, PlanBounds{limits_.max_model_len, "max_model_len ", "", limits_.block_size, num_blocks_,
                       static_cast<std::uint32_t>(spec_.vocab)});
}

Failure<BackendError> CudaBackend::device_fault(const std::string& what, cudaError_t err) {
  faulted_ = true;
  fault_message_ = fmt::format("CUDA device fault in {}: {}", what, cuda::error_text(err));
  return fail(fault_error(fault_message_));
}

cudaError_t CudaBackend::ensure_host_logits(std::size_t rows) {
  if (rows <= host_logits_rows_) return cudaSuccess;
  const std::size_t want = std::max<std::size_t>(rows, std::min<std::size_t>(limits_.max_seqs, host_logits_rows_ * 2));
  host_logits_rows_ = 0;
  const cudaError_t err = host_logits_.allocate(want * spec_.vocab * sizeof(float));
  if (err == cudaSuccess) host_logits_rows_ = want;
  return err;
}

Result<StepOutput, BackendError> CudaBackend::execute(const StepPlan& plan) {
  if (faulted_) {
    return fail(fault_error("the CUDA backend is unusable after an earlier device fault (" + fault_message_ + ")"));
  }
  if (std::this_thread::get_id() != bound_thread_) {
    if (const cudaError_t err = cudaSetDevice(options_.device); err != cudaSuccess)
      return device_fault("cudaSetDevice", err);
    bound_thread_ = std::this_thread::get_id();
  }
  if (auto ok = validate(plan); !ok) return fail(std::move(ok.error()));
  StepOutput out;
  out.vocab = spec_.vocab;
  const std::uint32_t n = plan.num_tokens();
  if (n == 0) return out;
  ++steps_;

  bool pure_decode = true;
  for (std::uint32_t i = 0; i < plan.num_seqs() && pure_decode; ++i) pure_decode = plan.token_count[i] == 1;
  std::uint32_t bucket = 0;
  std::size_t bucket_index = 0;
  if (pure_decode && graphs_enabled_ && !buckets_.empty()) {
    bucket = cuda::bucket_for(buckets_, n);
    bucket_index = static_cast<std::size_t>(std::find(buckets_.begin(), buckets_.end(), bucket) - buckets_.begin());
  }
  const bool graph = bucket != 0;
  cuda::StepRows out_rows{out_seq_index_, out_seq_ids_, out_device_row_, 0};
  const ForwardShape shape = cuda::pack_step_inputs(plan, limits_, bucket, staging_.data(), out_rows);
  const std::uint32_t rows = out_rows.count;
  std::uint32_t host_rows = 0;
  for (std::uint32_t r = 0; r < rows; ++r) host_rows += plan.sampling[out_seq_index_[r]].host_sample ? 1 : 0;
  // Pinned buffers grow before anything is queued: freeing pinned memory synchronizes the device.
  const std::size_t logits_rows_needed = options_.return_logits ? shape.logit_rows : host_rows;
  if (const cudaError_t err = ensure_host_logits(logits_rows_needed); err != cudaSuccess) {
    return device_fault("allocating pinned memory for logits", err);
  }

  cudaError_t err = cudaMemcpyAsync(act_.inputs, staging_.data(), shape.bytes, cudaMemcpyHostToDevice, stream_);
  if (err != cudaSuccess) return device_fault("copying the step's inputs", err);
  if (options_.test_fault_at_step != 0 && steps_ == options_.test_fault_at_step) {
    if (err = cuda::launch_illegal_address_fault(stream_); err != cudaSuccess) return device_fault("test fault", err);
  }
  err = graph ? run_graph(shape, bucket_index) : enqueue_forward(shape);
  if (err != cudaSuccess) return device_fault(forward_error_, err);

  const std::size_t row_bytes = std::size_t{spec_.vocab} * sizeof(float);
  auto* host_logits = reinterpret_cast<float*>(host_logits_.data());
  if (options_.return_logits) {
    if (shape.logit_rows > 0) {
      err = cudaMemcpyAsync(host_logits, act_.logits, shape.logit_rows * row_bytes, cudaMemcpyDeviceToHost, stream_);
    }
  } else if (shape.logit_rows > 0) {
    err = cudaMemcpyAsync(host_ids_.data(), act_.sampled, shape.logit_rows * sizeof(std::int32_t),
                          cudaMemcpyDeviceToHost, stream_);
    std::uint32_t h = 0;
    for (std::uint32_t r = 0; r < rows && err == cudaSuccess; ++r) {
      if (!plan.sampling[out_seq_index_[r]].host_sample) continue;
      err = cudaMemcpyAsync(host_logits + std::size_t{h++} * spec_.vocab,
                            act_.logits + std::size_t{out_device_row_[r]} * spec_.vocab, row_bytes,
                            cudaMemcpyDeviceToHost, stream_);
    }
  }
  if (err != cudaSuccess) return device_fault("copying the step's results", err);
  if (err = cudaStreamSynchronize(stream_); err != cudaSuccess) return device_fault("the step", err);

  out.num_rows = rows;
  out.seq_index = {out_seq_index_.data(), rows};
  out.seq_ids = {out_seq_ids_.data(), rows};
  if (options_.return_logits) {
    for (std::uint32_t r = 0; r < rows; ++r) out_logits_row_[r] = static_cast<std::int32_t>(out_device_row_[r]);
    out.logits = {host_logits, std::size_t{shape.logit_rows} * spec_.vocab};
    out.logits_row = {out_logits_row_.data(), rows};
    return out;
  }
  const auto* ids = reinterpret_cast<const std::int32_t*>(host_ids_.data());
  std::int32_t h = 0;
  for (std::uint32_t r = 0; r < rows; ++r) {
    out_ids_[r] = ids[out_device_row_[r]];
    out_logits_row_[r] = plan.sampling[out_seq_index_[r]].host_sample ? h++ : -1;
  }
  out.token_ids = {out_ids_.data(), rows};
  out.logits_row = {out_logits_row_.data(), rows};
  if (h > 0) out.logits = {host_logits, static_cast<std::size_t>(h) * spec_.vocab};
  return out;
}

}  // namespace sluice
