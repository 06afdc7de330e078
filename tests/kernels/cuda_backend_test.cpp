// CudaBackend against CpuBackend on the same plans, teacher-forced (DESIGN.md "Numerics"): two tiny random
// models (cuda_backend_test_util.h) — a llama (interleaved RoPE, grouped KV heads, Q8_0 MLP matrices,
// head_dim 64) and a qwen2 (rotate-half RoPE, QKV bias, tied embeddings, head_dim 128, a vocabulary that is
// not a multiple of 8) — through prefill, chunked prefill past one decode partition, decode (CUDA graphs and
// eager) and mixed batches. Every logits row must be within 2e-2 relative of the CPU's (bf16 weights and
// activations against fp32), with the same argmax wherever the CPU's top two differ by more than 0.1. Then
// device sampling, the device-fault path (a real illegal address, in a child process) and creation errors.
// The host-only parts (memory plan, input packing, weight layout, the forward pass on CPU references) are in
// cuda_backend_host_test.cpp.
#include "engine/cuda/cuda_backend.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/core/engine.h"
#include "tests/kernels/cuda_backend_test_util.h"

namespace sluice {
namespace {

using namespace sluice::test;

// ---- numerics against the CPU backend ----

struct NumericsCase {
  const TinyShape* shape;
  bool eager;
};

void PrintTo(const NumericsCase& c, std::ostream* os) {
  *os << c.shape->name << (c.eager ? " eager" : " graphs");
}

class CudaVsCpu : public ::testing::TestWithParam<NumericsCase> {};

TEST_P(CudaVsCpu, PrefillChunksDecodeAndMixedBatches) {
  SLUICE_REQUIRE_GPU();
  const NumericsCase c = GetParam();
  auto weights = make_model(*c.shape, 1234);
  ASSERT_NE(weights, nullptr);
  auto cpu = make_cpu(weights);
  auto gpu = make_gpu(weights, gpu_options(c.eager, true));
  ASSERT_TRUE(cpu && gpu);
  auto* cuda = dynamic_cast<CudaBackend*>(gpu.get());
  ASSERT_NE(cuda, nullptr);
  run_scenario(*gpu, *cpu, c.shape->vocab);
  if (c.eager) {
    EXPECT_EQ(cuda->graphs_captured(), 0u);
    EXPECT_EQ(cuda->graph_replays(), 0u);
  } else {
    EXPECT_EQ(cuda->graph_disabled_reason(), "");
    EXPECT_EQ(cuda->graphs_captured(), 4u);  // buckets 1, 2, 4 and 8 were used
    EXPECT_GE(cuda->graph_replays(), 10u);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CudaVsCpu,
                         ::testing::Values(NumericsCase{&kLlama, false}, NumericsCase{&kLlama, true},
                                           NumericsCase{&kQwen, false}, NumericsCase{&kQwen, true}),
                         [](const auto& info) {
                           return std::string(info.param.shape->name) + (info.param.eager ? "_eager" : "_graphs");
                         });

// ---- device sampling ----

TEST(CudaBackendSampling, DeviceIdsMatchCpuGreedyAndHostRowsCarryLogits) {
  SLUICE_REQUIRE_GPU();
  auto weights = make_model(kLlama, 4321);
  ASSERT_NE(weights, nullptr);
  auto cpu = make_cpu(weights);
  auto gpu = make_gpu(weights, gpu_options(false, false));
  ASSERT_TRUE(cpu && gpu);
  DualDriver d(*gpu, *cpu, 5);
  std::mt19937_64 rng(11);
  // 1: greedy; 2: temperature with top_k = 1 (still the argmax: checks the per-row parameters arrive);
  // 3: host_sample (logits come back, no id); 4 and 5: the same prompt, seed and token index with a real
  // draw (top_k 3), which must give the same token whatever the row.
  SequenceSampling greedy;
  SequenceSampling top1;
  top1.temperature = 0.8f;
  top1.top_k = 1;
  top1.seed = 77;
  SequenceSampling host;
  host.host_sample = true;
  SequenceSampling draw;
  draw.temperature = 1.0f;
  draw.top_k = 3;
  const auto twin_prompt = random_tokens(9, kLlama.vocab, rng);
  std::map<std::uint64_t, std::int32_t> next;
  for (int step = 0; step < 8; ++step) {
    draw.seed = 1000 + static_cast<std::uint64_t>(step);
    draw.token_index = static_cast<std::uint32_t>(step);
    top1.token_index = static_cast<std::uint32_t>(step);
    std::vector<DualDriver::Work> work;
    if (step == 0) {
      work = {{1, random_tokens(21, kLlama.vocab, rng), true, greedy},
              {2, random_tokens(30, kLlama.vocab, rng), true, top1},
              {3, random_tokens(12, kLlama.vocab, rng), true, host},
              {4, twin_prompt, true, draw},
              {5, twin_prompt, true, draw}};
    } else {
      work = {{1, {next[1]}, true, greedy},
              {2, {next[2]}, true, top1},
              {3, {next[3]}, true, host},
              {4, {next[4]}, true, draw},
              {5, {next[4]}, true, draw}};
    }
    const auto rows = d.step(work);
    ASSERT_EQ(rows.size(), 5u);
    for (const auto& r : rows) {
      const std::string what = "step " + std::to_string(step) + " seq " + std::to_string(r.seq);
      if (r.seq == 3) {
        EXPECT_EQ(r.gpu_id, -1) << what;
        expect_row_close(r.gpu, r.cpu, what);
      } else {
        EXPECT_TRUE(r.gpu.empty()) << what << ": a device-sampled row carried logits";
        ASSERT_GE(r.gpu_id, 0) << what;
        ASSERT_LT(r.gpu_id, static_cast<std::int32_t>(kLlama.vocab)) << what;
        if (r.seq <= 2 && top_two_gap(r.cpu) > 0.1f) {
          EXPECT_EQ(r.gpu_id, argmax(r.cpu)) << what;
        }
      }
      next[r.seq] = r.seq <= 2 ? argmax(r.cpu) : (r.seq == 3 ? argmax(r.cpu) : r.gpu_id);
    }
    // The twins share prompt, inputs, seed and token index: one draw.
    EXPECT_EQ(rows[3].gpu_id, rows[4].gpu_id) << "step " << step;
    // top_k 3: the draw is one of the three most likely tokens (checked where the 3rd and 4th are apart).
    std::vector<float> sorted = rows[3].cpu;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    if (sorted[2] - sorted[3] > 0.1f) {
      EXPECT_GE(rows[3].cpu[rows[3].gpu_id], sorted[2]) << "step " << step;
    }
  }
}

// ---- device faults ----

// Runs in a child process (a real illegal address poisons the CUDA context for good): the faulting step
// reports device_fault, later steps are refused with device_fault, and destroying the backend neither crashes
// nor hangs.
void fault_scenario() {
  auto weights = make_model(kLlama, 1);
  if (weights == nullptr) std::exit(2);
  CudaBackendOptions o = gpu_options(false, false);
  o.test_fault_at_step = 2;
  auto b = create_cuda_backend(weights, o);
  if (!b.ok()) std::exit(3);
  StepPlan plan(StepPlanLimits{4, 64, 64});
  const std::vector<std::int32_t> table = {0, 1};
  const auto run = [&](std::int32_t pos, std::vector<std::int32_t> tokens) {
    plan.clear();
    plan.add_sequence(1, tokens, pos, table, true);
    return (*b)->execute(plan);
  };
  if (!run(0, {1, 2, 3}).ok()) std::exit(4);
  auto faulted = run(3, {4});
  if (faulted.ok() || faulted.error().kind != BackendError::Kind::device_fault) std::exit(5);
  if (faulted.error().message.find("illegal") == std::string::npos &&
      faulted.error().message.find("Illegal") == std::string::npos)
    std::exit(6);
  auto later = run(4, {5});
  if (later.ok() || later.error().kind != BackendError::Kind::device_fault) std::exit(7);
  b.value().reset();
  std::exit(0);
}

TEST(CudaBackendDeathTest, InjectedIllegalAddressBecomesDeviceFault) {
  SLUICE_REQUIRE_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child starts afresh: no CUDA state inherited
  EXPECT_EXIT(fault_scenario(), ::testing::ExitedWithCode(0), "");
}

// ---- creation ----

TEST(CudaBackendCreate, RandomWeightsRunAStep) {
  SLUICE_REQUIRE_GPU();
  ModelSpec s;
  s.architecture = "llama";
  s.vocab = 1000;
  s.hidden = 512;
  s.layers = 3;
  s.heads = 8;
  s.kv_heads = 2;
  s.head_dim = 64;
  s.ffn = 1024;
  s.max_position = 2048;
  CudaBackendOptions o = gpu_options(false, true);
  auto b = create_cuda_backend_random(s, 42, o);
  ASSERT_TRUE(b.ok()) << b.error().message;
  StepPlan plan(StepPlanLimits{4, 64, 64});
  const std::vector<std::int32_t> table = {3, 7};
  plan.add_sequence(9, std::vector<std::int32_t>{5, 6, 7, 8, 9}, 0, table, true);
  auto out = (*b)->execute(plan);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->num_rows, 1u);
  auto row = out->row_logits(0);
  ASSERT_EQ(row.size(), s.vocab);
  for (float x : row) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(top_two_gap(row), 0.0f);
}

TEST(CudaBackendCreate, WeightsTooLargeIsOutOfMemoryNamingTheFix) {
  SLUICE_REQUIRE_GPU();
  ModelSpec s;  // ~340 GB of bf16 weights: more than any single GPU
  s.architecture = "llama";
  s.vocab = 128256;
  s.hidden = 16384;
  s.layers = 100;
  s.heads = 128;
  s.kv_heads = 8;
  s.head_dim = 128;
  s.ffn = 53248;
  s.max_position = 8192;
  auto b = create_cuda_backend_random(s, 1, gpu_options(false, false));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::out_of_memory);
  EXPECT_NE(b.error().message.find("gpu_memory_utilization"), std::string::npos) << b.error().message;
}

TEST(CudaBackendCreate, KvCacheTooSmallNamesMaxModelLen) {
  SLUICE_REQUIRE_GPU();
  auto weights = make_model(kLlama, 3);
  ASSERT_NE(weights, nullptr);
  CudaBackendOptions o = gpu_options(false, false);
  std::size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  // A budget of ~64 MiB beyond what is in use: the weights fit, the 256 MiB reserve and the KV cache do not.
  o.gpu_memory_utilization =
      (static_cast<double>(total_bytes - free_bytes) + 64.0 * (1 << 20)) / static_cast<double>(total_bytes);
  auto b = create_cuda_backend(weights, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::out_of_memory);
  EXPECT_NE(b.error().message.find("max_model_len"), std::string::npos) << b.error().message;
}

// No GPU needed: options are checked before any device call.
TEST(CudaBackendCreate, RefusesWhatTheKernelsDoNotSupport) {
  auto weights = make_model(kLlama, 3);
  ASSERT_NE(weights, nullptr);
  CudaBackendOptions o = gpu_options(false, false);
  o.block_size = 8;
  auto b = create_cuda_backend(weights, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::invalid_config);
  EXPECT_NE(b.error().message.find("block_size"), std::string::npos);

  o = gpu_options(false, false);
  o.max_model_len = 4096;  // beyond the model's 1024
  b = create_cuda_backend(weights, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::invalid_config);

  auto tiny = ModelWeights::load_hf_dir(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/models/tiny_llama");
  ASSERT_TRUE(tiny.ok());
  b = create_cuda_backend(std::shared_ptr<const ModelWeights>(std::move(*tiny)), gpu_options(false, false));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, BackendError::Kind::invalid_config);
  EXPECT_NE(b.error().message.find("head_dim"), std::string::npos) << b.error().message;
}

// No GPU needed. An engine asked for cuda says what is wrong; auto serves a model the GPU kernels do not
// support (head_dim 16) on the CPU.
TEST(CudaBackendCreate, EngineDeviceSelection) {
  EngineConfig c;
  c.model_path = std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/models/tiny_llama_chat";
  c.threads = 1;
  c.kv_cache_bytes = std::uint64_t{4} << 20;
  c.max_num_seqs = 4;
  c.max_num_batched_tokens = 64;
  c.device = EngineDevice::cuda;
  auto e = Engine::create(c);
  ASSERT_FALSE(e.ok());
  if (cuda::device_available()) {
    EXPECT_NE(e.error().message.find("head_dim"), std::string::npos) << e.error().message;
  } else {
    EXPECT_NE(e.error().message.find("no CUDA device"), std::string::npos) << e.error().message;
  }
  c.device = EngineDevice::automatic;
  auto a = Engine::create(c);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ((*a)->backend_name(), "cpu");
  EXPECT_FALSE((*a)->backend_note().empty());

  EXPECT_EQ(parse_engine_device("auto"), EngineDevice::automatic);
  EXPECT_EQ(parse_engine_device("cpu"), EngineDevice::cpu);
  EXPECT_EQ(parse_engine_device("cuda"), EngineDevice::cuda);
  EXPECT_FALSE(parse_engine_device("gpu").has_value());
}

}  // namespace
}  // namespace sluice
