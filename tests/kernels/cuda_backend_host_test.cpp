// The CUDA backend's host-side parts, checked without a GPU: the weight layout (fusion, bf16 rounding), the
// packing of a step's inputs (slot mapping, table compaction, attention lists, graph padding), the memory plan,
// and the whole forward pass run on the kernels' CPU references against the CPU backend — which checks how
// the pass wires the kernels together (strides, offsets, biases, RoPE style, KV layout, padding rows) on any
// machine. The GPU's own numerics are cuda_backend_test.cpp's business.
#include <gtest/gtest.h>

#include "engine/cuda/cuda_weights.h"
#include "engine/cuda/forward_pass.h"
#include "engine/cuda/memory_plan.h"
#include "engine/cuda/step_inputs.h"
#include "kernels/cpu/weight_view.h"
#include "tests/kernels/cuda_backend_test_util.h"

namespace sluice {
namespace {

using namespace sluice::test;

// ---- weight layout (host only) ----

// Converts into host memory standing in for the device arena.
class HostSink final : public cuda::WeightSink {
 public:
  Status<std::string> put(__nv_bfloat16* dst, const float* src, std::size_t count) override {
    for (std::size_t i = 0; i < count; ++i) dst[i] = __float2bfloat16(src[i]);
    puts_ += count;
    return Ok{};
  }
  std::size_t elements() const { return puts_; }

 private:
  std::size_t puts_ = 0;
};

// Row `r` of a matrix as the device should hold it: dequantized, rounded to bf16.
std::vector<float> bf16_row(const kernels::WeightView& w, std::uint32_t r) {
  std::vector<float> row(w.cols);
  kernels::dequantize_row(w, r, row.data());
  for (float& x : row) x = __bfloat162float(__float2bfloat16(x));
  return row;
}

std::vector<float> device_row(const __nv_bfloat16* base, std::size_t row, std::size_t cols) {
  std::vector<float> v(cols);
  for (std::size_t i = 0; i < cols; ++i) v[i] = __bfloat162float(base[row * cols + i]);
  return v;
}

TEST(CudaWeights, FusedLayoutHoldsEveryTensorInBf16) {
  for (const TinyShape* shape : {&kLlama, &kQwen}) {
    SCOPED_TRACE(shape->name);
    auto w = make_model(*shape, 5);
    ASSERT_NE(w, nullptr);
    const ModelSpec& s = w->spec();
    const bool tied = cuda::lm_head_is_embedding(*w);
    EXPECT_EQ(tied, shape->tied);
    std::vector<std::byte> arena(cuda::device_weight_bytes(s, tied));
    cuda::DeviceWeights d;
    cuda::place_weights(s, tied, arena.data(), d);
    HostSink sink;
    ASSERT_TRUE(cuda::stream_weights(*w, d, sink).ok());
    const std::size_t h = s.hidden, q = s.q_dim(), kv = s.kv_dim(), f = s.ffn;
    // Every element of every tensor went out once.
    const std::size_t per_layer = (q + 2 * kv) * h + h * q + 2 * f * h + h * f + 2 * h + (s.qkv_bias ? q + 2 * kv : 0);
    EXPECT_EQ(sink.elements(), std::size_t{s.vocab} * h * (tied ? 1 : 2) + h + s.layers * per_layer);
    EXPECT_EQ(d.lm_head == d.embedding, tied);
    EXPECT_EQ(device_row(d.embedding, 7, h), bf16_row(w->token_embedding(), 7));
    EXPECT_EQ(device_row(d.lm_head, 9, h), bf16_row(w->lm_head(), 9));
    for (std::uint32_t l = 0; l < s.layers; ++l) {
      const LayerWeights& L = w->layers()[l];
      const cuda::DeviceLayer& D = d.layers[l];
      EXPECT_EQ(device_row(D.qkv, 3, h), bf16_row(L.wq, 3));
      EXPECT_EQ(device_row(D.qkv, q + 1, h), bf16_row(L.wk, 1));
      EXPECT_EQ(device_row(D.qkv, q + kv + kv - 1, h), bf16_row(L.wv, kv - 1));
      EXPECT_EQ(device_row(D.wo, h - 1, q), bf16_row(L.wo, static_cast<std::uint32_t>(h - 1)));
      EXPECT_EQ(device_row(D.gate_up, 2, h), bf16_row(L.gate, 2));
      EXPECT_EQ(device_row(D.gate_up, f + 2, h), bf16_row(L.up, 2));
      EXPECT_EQ(device_row(D.down, 5, f), bf16_row(L.down, 5));
      EXPECT_FLOAT_EQ(__bfloat162float(D.ffn_norm[4]), __bfloat162float(__float2bfloat16(L.ffn_norm[4])));
      if (s.qkv_bias) {
        EXPECT_FLOAT_EQ(__bfloat162float(D.qkv_bias[q + kv + 2]), __bfloat162float(__float2bfloat16(L.bv[2])));
        EXPECT_FLOAT_EQ(__bfloat162float(D.qkv_bias[q + 2]), __bfloat162float(__float2bfloat16(L.bk[2])));
      } else {
        EXPECT_EQ(D.qkv_bias, nullptr);
      }
    }
    // Tensors never overlap: the arena holds them in order.
    EXPECT_LT(reinterpret_cast<std::byte*>(d.layers.back().ffn_norm + h), arena.data() + arena.size() + 1);
  }
}

// ---- step input packing (host only) ----

struct Packed {
  std::vector<std::byte> buffer;
  std::vector<std::uint32_t> seq_index, device_row;
  std::vector<std::uint64_t> seq_ids;
  cuda::StepRows rows;
  cuda::StepShape shape;

  Packed(const StepPlan& plan, const cuda::BackendLimits& limits, std::uint32_t bucket)
      : buffer(cuda::max_step_input_bytes(limits)),
        seq_index(limits.max_seqs),
        device_row(limits.max_seqs),
        seq_ids(limits.max_seqs),
        rows{seq_index, seq_ids, device_row, 0},
        shape(cuda::pack_step_inputs(plan, limits, bucket, buffer.data(), rows)) {}

  std::vector<std::int32_t> ints(std::size_t offset, std::size_t n) const {
    std::vector<std::int32_t> v(n);
    std::memcpy(v.data(), buffer.data() + offset, n * 4);
    return v;
  }
  cuda::RowSampling sampling(std::size_t r) const {
    cuda::RowSampling s;
    std::memcpy(&s, buffer.data() + shape.layout.row_sampling + r * sizeof(s), sizeof(s));
    return s;
  }
};

TEST(CudaStepInputs, MixedStepListsPrefillAndDecodeAndMapsSlots) {
  using V = std::vector<std::int32_t>;
  const cuda::BackendLimits limits = cuda::make_limits(64, 8, 128, 16);
  StepPlan plan(StepPlanLimits{8, 64, 64});
  V p10(20), p12(16);
  std::iota(p10.begin(), p10.end(), 100);
  std::iota(p12.begin(), p12.end(), 200);
  ASSERT_TRUE(plan.add_sequence(10, p10, 0, V{5, 9}, true));
  SequenceSampling s;
  s.temperature = 0.5f;
  s.top_k = 7;
  s.seed = 3;
  s.token_index = 4;
  plan.set_sampling(s);
  ASSERT_TRUE(plan.add_sequence(11, V{77}, 33, V{1, 2, 3}, true));
  ASSERT_TRUE(plan.add_sequence(12, p12, 16, V{7, 8, 4}, false));  // one table entry more than needed
  const Packed p(plan, limits, 0);
  const cuda::StepShape& sh = p.shape;
  EXPECT_EQ(sh.tokens, 37u);
  EXPECT_EQ(sh.decode_tokens, 1u);
  EXPECT_EQ(sh.decode_max_context, 34u);
  EXPECT_EQ(sh.prefill_seqs, 2u);
  EXPECT_EQ(sh.prefill_max_tokens, 20u);
  EXPECT_EQ(sh.logit_rows, 2u);
  const cuda::StepInputLayout& L = sh.layout;
  EXPECT_EQ(sh.bytes, L.block_tables + 7 * 4);  // 2 + 3 + 2 entries: the unneeded one stays behind
  EXPECT_EQ(p.ints(L.block_tables, 7), (V{5, 9, 1, 2, 3, 7, 8}));
  const V tok = p.ints(L.token_ids, 37), pos = p.ints(L.positions, 37), slot = p.ints(L.slot_mapping, 37),
          tto = p.ints(L.token_table_offset, 37);
  EXPECT_EQ(tok[0], 100);
  EXPECT_EQ(tok[20], 77);
  EXPECT_EQ(tok[36], 215);
  EXPECT_EQ(pos[17], 17);
  EXPECT_EQ(slot[17], 9 * 16 + 1);  // position 17: second block (9), slot 1
  EXPECT_EQ(pos[20], 33);
  EXPECT_EQ(slot[20], 3 * 16 + 1);  // position 33: third block (3)
  EXPECT_EQ(pos[21], 16);
  EXPECT_EQ(slot[21], 8 * 16);  // sequence 12's position 16: its second block (8)
  EXPECT_EQ(slot[36], 8 * 16 + 15);
  EXPECT_EQ(tto[0], 0);
  EXPECT_EQ(tto[20], 2);
  EXPECT_EQ(tto[36], 5);
  EXPECT_EQ(p.ints(L.decode_rows, 1), (V{20}));
  EXPECT_EQ(p.ints(L.prefill_token_begin, 2), (V{0, 21}));
  EXPECT_EQ(p.ints(L.prefill_token_count, 2), (V{20, 16}));
  EXPECT_EQ(p.ints(L.prefill_start_pos, 2), (V{0, 16}));
  EXPECT_EQ(p.ints(L.prefill_table_offset, 2), (V{0, 5}));
  EXPECT_EQ(p.ints(L.logit_rows, 2), (V{19, 20}));
  EXPECT_FLOAT_EQ(p.sampling(0).temperature, 0.5f);
  EXPECT_EQ(p.sampling(0).top_k, 7);
  EXPECT_EQ(p.sampling(0).seed, 3u);
  EXPECT_EQ(p.sampling(0).token_index, 4u);
  EXPECT_FLOAT_EQ(p.sampling(1).temperature, 0.0f);  // greedy by default
  ASSERT_EQ(p.rows.count, 2u);
  EXPECT_EQ(p.seq_index[1], 1u);
  EXPECT_EQ(p.seq_ids[1], 11u);
  EXPECT_EQ(p.device_row[0], 0u);
  EXPECT_EQ(p.device_row[1], 1u);
}

TEST(CudaStepInputs, DecodeGraphStepIsPaddedToTheBucket) {
  using V = std::vector<std::int32_t>;
  const cuda::BackendLimits limits = cuda::make_limits(64, 8, 128, 16);
  StepPlan plan(StepPlanLimits{8, 64, 64});
  ASSERT_TRUE(plan.add_sequence(1, V{11}, 5, V{6}, true));
  ASSERT_TRUE(plan.add_sequence(2, V{12}, 40, V{0, 1, 2}, false));
  ASSERT_TRUE(plan.add_sequence(3, V{13}, 0, V{4}, true));
  SequenceSampling s;
  s.seed = 99;
  plan.set_sampling(s);
  const Packed p(plan, limits, 4);
  const cuda::StepShape& sh = p.shape;
  const cuda::StepInputLayout& L = sh.layout;
  // The layout of (4, 4) whatever the plan: what the bucket's graph was captured with.
  EXPECT_EQ(L.block_tables, cuda::layout_step_inputs(4, 4).block_tables);
  EXPECT_EQ(sh.tokens, 4u);
  EXPECT_EQ(sh.decode_tokens, 4u);
  EXPECT_EQ(sh.decode_max_context, 128u);
  EXPECT_EQ(sh.prefill_seqs, 0u);
  EXPECT_EQ(sh.logit_rows, 4u);
  EXPECT_EQ(p.ints(L.block_tables, 6), (V{6, 0, 1, 2, 4, 0}));  // + the padding rows' entry (block 0)
  EXPECT_EQ(sh.bytes, L.block_tables + 6 * 4);
  EXPECT_EQ(p.ints(L.token_ids, 4), (V{11, 12, 13, 0}));
  EXPECT_EQ(p.ints(L.positions, 4), (V{5, 40, 0, 0}));
  EXPECT_EQ(p.ints(L.slot_mapping, 4), (V{6 * 16 + 5, 2 * 16 + 8, 4 * 16, -1}));
  EXPECT_EQ(p.ints(L.token_table_offset, 4), (V{0, 1, 4, 5}));
  EXPECT_EQ(p.ints(L.decode_rows, 4), (V{0, 1, 2, 3}));
  EXPECT_EQ(p.ints(L.logit_rows, 4), (V{0, 1, 2, 3}));
  EXPECT_EQ(p.sampling(2).seed, 99u);
  EXPECT_EQ(p.sampling(3).seed, 0u);
  ASSERT_EQ(p.rows.count, 2u);  // sequence 2 wants no logits
  EXPECT_EQ(p.seq_ids[1], 3u);
  EXPECT_EQ(p.device_row[0], 0u);
  EXPECT_EQ(p.device_row[1], 2u);  // the graph's row of sequence 3
}

// ---- the memory plan (pure arithmetic) ----

TEST(CudaMemoryPlan, GraphBuckets) {
  using V = std::vector<std::uint32_t>;
  EXPECT_EQ(cuda::graph_buckets(1), (V{1}));
  EXPECT_EQ(cuda::graph_buckets(3), (V{1, 2, 3}));
  EXPECT_EQ(cuda::graph_buckets(16), (V{1, 2, 4, 8, 16}));
  EXPECT_EQ(cuda::graph_buckets(20), (V{1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(cuda::graph_buckets(256), (V{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256}));
  const V b = cuda::graph_buckets(100);
  EXPECT_EQ(b.back(), 100u);
  EXPECT_EQ(cuda::bucket_for(b, 1), 1u);
  EXPECT_EQ(cuda::bucket_for(b, 3), 4u);
  EXPECT_EQ(cuda::bucket_for(b, 17), 24u);
  EXPECT_EQ(cuda::bucket_for(b, 97), 100u);
  EXPECT_EQ(cuda::bucket_for(b, 101), 0u);
}

TEST(CudaMemoryPlan, StepInputsKeepTablesLastAndAligned) {
  const cuda::StepInputLayout small = cuda::layout_step_inputs(4, 4);
  const cuda::StepInputLayout big = cuda::layout_step_inputs(1024, 16);
  for (const auto* l : {&small, &big}) {
    const std::size_t offsets[] = {l->token_ids,           l->positions,         l->slot_mapping,
                                   l->token_table_offset,  l->decode_rows,       l->prefill_token_begin,
                                   l->prefill_token_count, l->prefill_start_pos, l->prefill_table_offset,
                                   l->logit_rows,          l->row_sampling,      l->block_tables};
    for (std::size_t i = 0; i < std::size(offsets); ++i) {
      EXPECT_EQ(offsets[i] % 16, 0u);
      if (i > 0) {
        EXPECT_GT(offsets[i], offsets[i - 1]);
      }
    }
  }
  EXPECT_GE(small.row_sampling - small.logit_rows, 4 * sizeof(std::int32_t));
  EXPECT_GE(small.block_tables - small.row_sampling, 4 * sizeof(cuda::RowSampling));
  EXPECT_EQ(small.bytes(10), small.block_tables + 40);
  const cuda::BackendLimits lim = cuda::make_limits(1024, 16, 1000, 16);
  EXPECT_EQ(lim.blocks_per_seq, 63u);
  EXPECT_EQ(lim.max_table_entries, 16u * 63 + 1);
  EXPECT_GE(cuda::max_step_input_bytes(lim), big.bytes(lim.max_table_entries));
  EXPECT_EQ(cuda::make_limits(8, 16, 64, 16).max_seqs, 8u);  // never more sequences than tokens
}

TEST(CudaMemoryPlan, BudgetSplitsAndFailsWithTheNumbers) {
  constexpr std::uint64_t GiB = std::uint64_t{1} << 30;
  cuda::MemoryBudgetInput in;
  in.total_bytes = 140 * GiB;
  in.free_bytes = 139 * GiB;  // 1 GiB used (the context)
  in.utilization = 0.9;
  in.weight_bytes = 16 * GiB;
  in.activation_bytes = 2 * GiB;
  in.workspace_bytes = GiB / 4;
  in.reserve_bytes = GiB / 4;
  in.kv_block_bytes = 2 * 1024 * 1024;  // 8B-class: 128 KiB per token × 16
  in.blocks_per_seq = 512;
  in.max_useful_blocks = 256 * 512;
  in.max_model_len = 8192;
  in.block_size = 16;
  auto ok = cuda::plan_device_memory(in);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->used_by_others, GiB);
  EXPECT_EQ(ok->budget_bytes, static_cast<std::uint64_t>(0.9 * 140 * GiB) - GiB);
  const std::uint64_t rest = ok->budget_bytes - (16 * GiB + 2 * GiB + GiB / 2);
  EXPECT_EQ(ok->num_kv_blocks, rest / in.kv_block_bytes);
  EXPECT_EQ(ok->kv_bytes, std::uint64_t{ok->num_kv_blocks} * in.kv_block_bytes);
  EXPECT_FALSE(ok->summary.empty());

  // More blocks than max_num_seqs sequences of max_model_len can ever use are not allocated.
  cuda::MemoryBudgetInput capped = in;
  capped.max_useful_blocks = 1000;
  EXPECT_EQ(cuda::plan_device_memory(capped)->num_kv_blocks, 1000u);

  cuda::MemoryBudgetInput heavy = in;
  heavy.weight_bytes = 130 * GiB;
  auto e = cuda::plan_device_memory(heavy);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("weights"), std::string::npos) << e.error();
  EXPECT_NE(e.error().find("gpu_memory_utilization"), std::string::npos) << e.error();

  cuda::MemoryBudgetInput crowded = in;
  crowded.free_bytes = 30 * GiB;  // another process holds 110 GiB
  e = cuda::plan_device_memory(crowded);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().find("already in use"), std::string::npos) << e.error();

  cuda::MemoryBudgetInput tight = in;
  tight.weight_bytes = 122 * GiB;  // leaves less than 512 blocks (1 GiB) for the KV cache
  e = cuda::plan_device_memory(tight);
  ASSERT_FALSE(e.ok());
  for (const char* word : {"max_model_len", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization"})
    EXPECT_NE(e.error().find(word), std::string::npos) << word << " in: " << e.error();
}

// ---- the forward pass on the kernels' CPU references ----

// Runs each kernel's CPU reference on host memory; the prefill kernel's sequences become per-row positions,
// as its reference expects.
class HostLauncher final : public cuda::KernelLauncher {
 public:
  cudaError_t embedding(const cuda::EmbeddingParams& p) override { return done(cuda::embedding_reference, p); }
  cudaError_t rmsnorm(const cuda::RmsNormParams& p) override { return done(cuda::rmsnorm_reference, p); }
  cudaError_t rope(const cuda::RopeParams& p) override { return done(cuda::rope_reference, p); }
  cudaError_t decode_attention(const cuda::DecodeAttentionParams& p) override {
    ++decode_launches;
    return done(cuda::attention_reference, p);
  }
  cudaError_t prefill_attention(const cuda::PrefillAttentionParams& p) override {
    ++prefill_launches;
    std::vector<std::int32_t> rows, positions, tables;
    for (std::uint32_t s = 0; s < p.num_seqs; ++s) {
      EXPECT_LE(static_cast<std::uint32_t>(p.token_count[s]), p.max_tokens_per_seq);
      for (std::int32_t k = 0; k < p.token_count[s]; ++k) {
        const auto row = static_cast<std::size_t>(p.token_begin[s] + k);
        if (positions.size() <= row) {
          positions.resize(row + 1, -1);
          tables.resize(row + 1, 0);
        }
        rows.push_back(static_cast<std::int32_t>(row));
        positions[row] = p.start_pos[s] + k;
        tables[row] = p.table_offset[s];
      }
    }
    cuda::DecodeAttentionParams d;
    d.q = p.q;
    d.out = p.out;
    d.q_stride = p.q_stride;
    d.out_stride = p.out_stride;
    d.k_cache = p.k_cache;
    d.v_cache = p.v_cache;
    d.tokens = rows.data();
    d.positions = positions.data();
    d.block_tables = p.block_tables;
    d.table_offset = tables.data();
    d.num_tokens = static_cast<std::uint32_t>(rows.size());
    d.n_heads = p.n_heads;
    d.kv_heads = p.kv_heads;
    d.head_dim = p.head_dim;
    d.block_size = p.block_size;
    d.scale = p.scale;
    cuda::attention_reference(d);
    return cudaSuccess;
  }
  cudaError_t swiglu(const cuda::SwiGluParams& p) override { return done(cuda::swiglu_reference, p); }
  cudaError_t gather_rows(const cuda::GatherRowsParams& p) override { return done(cuda::gather_rows_reference, p); }
  cudaError_t gemm(const cuda::GemmArgs& args) override { return done(cuda::gemm_reference, args); }
  std::string gemm_error() const override { return ""; }
  cudaError_t sampling(const cuda::SamplingParams& p) override { return done(cuda::sampling_reference, p); }

  int decode_launches = 0;
  int prefill_launches = 0;

 private:
  template <class F, class P>
  static cudaError_t done(F&& f, const P& p) {
    f(p);
    return cudaSuccess;
  }
};

// The CUDA backend's step, with host memory for device memory and HostLauncher for the kernels: the same
// packing (pack_step_inputs, graph buckets included), the same pass (run_forward), the same weight layout.
class EmulatedCudaBackend final : public Backend {
 public:
  EmulatedCudaBackend(const ModelWeights& w, std::uint32_t max_seqs, std::uint32_t max_tokens, std::uint32_t blocks,
                      bool sample)
      : spec_(w.spec()), limits_(cuda::make_limits(max_tokens, max_seqs, 1024, 16)), blocks_(blocks), sample_(sample) {
    const bool tied = cuda::lm_head_is_embedding(w);
    weight_arena_.resize(cuda::device_weight_bytes(spec_, tied));
    cuda::place_weights(spec_, tied, weight_arena_.data(), weights_);
    HostSink sink;
    EXPECT_TRUE(cuda::stream_weights(w, weights_, sink).ok());
    const std::vector<float> inv_freq = rope_inv_freq(spec_);
    std::copy(inv_freq.begin(), inv_freq.end(), weights_.inv_freq);
    cuda::Carver measure;
    cuda::carve_activations(measure, spec_, limits_, 0, 0, act_);
    act_arena_.resize(measure.size());
    cuda::Carver place(act_arena_.data());
    cuda::carve_activations(place, spec_, limits_, 0, 0, act_);
    layer_elements_ = KvCacheLayout{spec_.layers, blocks, spec_.kv_heads, 16, spec_.head_dim, 2}.layer_elements();
    k_cache_.assign(layer_elements_ * spec_.layers, __float2bfloat16(0.0f));
    v_cache_.assign(layer_elements_ * spec_.layers, __float2bfloat16(0.0f));
    buckets_ = cuda::graph_buckets(limits_.max_seqs);
    seq_index_.resize(limits_.max_seqs);
    seq_ids_.resize(limits_.max_seqs);
    device_row_.resize(limits_.max_seqs);
    logits_row_.resize(limits_.max_seqs);
    ids_.resize(limits_.max_seqs);
  }

  Result<StepOutput, BackendError> execute(const StepPlan& plan) override {
    bool pure_decode = true;
    for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) pure_decode = pure_decode && plan.token_count[i] == 1;
    const std::uint32_t bucket = pure_decode ? cuda::bucket_for(buckets_, plan.num_tokens()) : 0;
    graph_steps += bucket != 0 ? 1 : 0;
    cuda::StepRows rows{seq_index_, seq_ids_, device_row_, 0};
    const cuda::StepShape shape = cuda::pack_step_inputs(plan, limits_, bucket, act_.inputs, rows);
    cuda::ForwardBuffers b;
    b.spec = &spec_;
    b.weights = &weights_;
    b.act = &act_;
    b.k_cache = k_cache_.data();
    b.v_cache = v_cache_.data();
    b.layer_elements = layer_elements_;
    b.num_blocks = blocks_;
    b.block_size = 16;
    b.sample = sample_;
    std::string failed;
    EXPECT_EQ(cuda::run_forward(b, shape, launcher, failed), cudaSuccess) << failed;
    StepOutput out;
    out.vocab = spec_.vocab;
    out.num_rows = rows.count;
    out.seq_index = {seq_index_.data(), rows.count};
    out.seq_ids = {seq_ids_.data(), rows.count};
    if (!sample_) {
      for (std::uint32_t r = 0; r < rows.count; ++r) logits_row_[r] = static_cast<std::int32_t>(device_row_[r]);
      out.logits = {act_.logits, std::size_t{shape.logit_rows} * spec_.vocab};
      out.logits_row = {logits_row_.data(), rows.count};
    } else {
      for (std::uint32_t r = 0; r < rows.count; ++r) {
        ids_[r] = act_.sampled[device_row_[r]];
        logits_row_[r] = -1;
      }
      out.token_ids = {ids_.data(), rows.count};
      out.logits_row = {logits_row_.data(), rows.count};
    }
    return out;
  }
  const ModelSpec& spec() const override { return spec_; }
  std::uint32_t num_kv_blocks() const override { return blocks_; }
  std::uint32_t block_size() const override { return 16; }
  std::uint32_t max_batched_tokens() const override { return limits_.max_tokens; }
  std::string_view name() const override { return "emulated cuda"; }

  HostLauncher launcher;
  int graph_steps = 0;

 private:
  ModelSpec spec_;
  cuda::BackendLimits limits_;
  std::uint32_t blocks_;
  bool sample_;
  std::vector<std::byte> weight_arena_, act_arena_;
  cuda::DeviceWeights weights_;
  cuda::Activations act_;
  std::size_t layer_elements_ = 0;
  std::vector<__nv_bfloat16> k_cache_, v_cache_;
  std::vector<std::uint32_t> buckets_;
  std::vector<std::uint32_t> seq_index_, device_row_;
  std::vector<std::uint64_t> seq_ids_;
  std::vector<std::int32_t> logits_row_, ids_;
};

class ForwardOnReferences : public ::testing::TestWithParam<const TinyShape*> {};

TEST_P(ForwardOnReferences, MatchesTheCpuBackend) {
  const TinyShape& shape = *GetParam();
  auto weights = make_model(shape, 1234);
  ASSERT_NE(weights, nullptr);
  auto cpu = make_cpu(weights);
  ASSERT_NE(cpu, nullptr);
  EmulatedCudaBackend emu(*weights, 16, 1024, 400, false);
  run_scenario(emu, *cpu, shape.vocab);
  EXPECT_GT(emu.launcher.decode_launches, 0);
  EXPECT_GT(emu.launcher.prefill_launches, 0);
  EXPECT_EQ(emu.graph_steps, 6 + 4 + 3 + 2);  // every pure decode step took the padded graph shape
}

TEST_P(ForwardOnReferences, GreedyDeviceSamplingPicksTheArgmax) {
  const TinyShape& shape = *GetParam();
  auto weights = make_model(shape, 77);
  ASSERT_NE(weights, nullptr);
  auto cpu = make_cpu(weights);
  ASSERT_NE(cpu, nullptr);
  EmulatedCudaBackend emu(*weights, 16, 1024, 400, true);
  DualDriver d(emu, *cpu, 3);
  std::mt19937_64 rng(5);
  std::map<std::uint64_t, std::int32_t> next;
  for (int step = 0; step < 4; ++step) {
    std::vector<DualDriver::Work> work;
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
      if (step == 0) {
        work.push_back({seq, random_tokens(5 + 7 * seq, shape.vocab, rng)});
      } else {
        work.push_back({seq, {next[seq]}});
      }
    }
    const auto rows = d.step(work);
    ASSERT_EQ(rows.size(), 3u);
    for (const auto& r : rows) {
      ASSERT_GE(r.gpu_id, 0);
      if (top_two_gap(r.cpu) > 0.1f) {
        EXPECT_EQ(r.gpu_id, argmax(r.cpu)) << "step " << step << " seq " << r.seq;
      }
      next[r.seq] = argmax(r.cpu);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardOnReferences, ::testing::Values(&kLlama, &kQwen),
                         [](const auto& info) { return std::string(info.param->name); });

}  // namespace
}  // namespace sluice
