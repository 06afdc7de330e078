// The forward pass (see forward_pass.h). Every pointer a launch receives is fixed for a given StepShape
// (weights, activation arena, the input mirror at the shape's layout offsets), which is what makes a captured
// graph replayable: a later step of the same bucket only rewrites the input mirror before launching it.
#include "engine/cuda/forward_pass.h"

#include <fmt/format.h>

#include <cmath>

namespace sluice::cuda {

cudaError_t run_forward(const ForwardBuffers& b, const StepShape& shape, KernelLauncher& launch, std::string& failed) {
  const ModelSpec& s = *b.spec;
  const DeviceWeights& weights = *b.weights;
  const Activations& act = *b.act;
  const std::uint32_t t = shape.tokens, h = s.hidden, qd = s.q_dim(), kd = s.kv_dim();
  const std::uint32_t qkv_width = qd + 2 * kd;
  const auto input = [&](std::size_t offset) { return reinterpret_cast<std::int32_t*>(act.inputs + offset); };
  const StepInputLayout& L = shape.layout;
  const float attn_scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  cudaError_t err = cudaSuccess;
  // Records which launch failed; the caller turns it into the device_fault message.
  const auto check = [&](cudaError_t e, auto&& what) {
    if (e != cudaSuccess && err == cudaSuccess) {
      err = e;
      failed = what();
    }
    return err == cudaSuccess;
  };
  const auto gemm = [&](const __nv_bfloat16* a, const __nv_bfloat16* w, const __nv_bfloat16* bias, void* d,
                        std::uint32_t m, std::uint32_t n, std::uint32_t k, bool out_fp32, const char* name,
                        std::uint32_t layer) {
    GemmArgs g;
    g.a = a;
    g.w = w;
    g.bias = bias;
    g.d = d;
    g.m = m;
    g.n = n;
    g.k = k;
    g.out_fp32 = out_fp32;
    return check(launch.gemm(g),
                 [&] { return fmt::format("{} GEMM of layer {}: {}", name, layer, launch.gemm_error()); });
  };

  EmbeddingParams ep;
  ep.table = weights.embedding;
  ep.ids = input(L.token_ids);
  ep.out = act.residual;
  ep.num_tokens = t;
  ep.hidden = h;
  ep.vocab = s.vocab;
  if (!check(launch.embedding(ep), [] { return std::string("embedding"); })) return err;

  for (std::uint32_t li = 0; li < s.layers; ++li) {
    const DeviceLayer& W = weights.layers[li];
    const auto where = [li](const char* what) {
      return [li, what] { return fmt::format("{} of layer {}", what, li); };
    };

    // The residual picks up the previous layer's MLP output here (layer 0 has none yet).
    RmsNormParams norm;
    norm.residual = act.residual;
    norm.delta = li == 0 ? nullptr : act.delta;
    norm.weight = W.attn_norm;
    norm.out = act.normed;
    norm.rows = t;
    norm.hidden = h;
    norm.eps = s.rms_eps;
    if (!check(launch.rmsnorm(norm), where("attention rmsnorm"))) return err;

    if (!gemm(act.normed, W.qkv, W.qkv_bias, act.qkv, t, qkv_width, h, false, "QKV", li)) return err;

    __nv_bfloat16* k_layer = b.k_cache + li * b.layer_elements;
    __nv_bfloat16* v_layer = b.v_cache + li * b.layer_elements;
    KvWriteParams kv;
    kv.k = act.qkv + qd;
    kv.v = act.qkv + qd + kd;
    kv.k_stride = qkv_width;
    kv.v_stride = qkv_width;
    kv.k_cache = k_layer;
    kv.v_cache = v_layer;
    kv.slot_mapping = input(L.slot_mapping);
    kv.num_tokens = t;
    kv.kv_heads = s.kv_heads;
    kv.head_dim = s.head_dim;
    kv.block_size = b.block_size;
    kv.num_blocks = b.num_blocks;
    RopeParams rope;
    rope.q = act.qkv;
    rope.k = act.qkv + qd;
    rope.q_stride = qkv_width;
    rope.k_stride = qkv_width;
    rope.positions = input(L.positions);
    rope.inv_freq = weights.inv_freq;
    rope.num_tokens = t;
    rope.n_heads = s.heads;
    rope.kv_heads = s.kv_heads;
    rope.head_dim = s.head_dim;
    rope.interleaved = s.rope.style == RopeStyle::interleaved;
    rope.cache = &kv;  // the K and V rows go into the pages in the same launch
    if (!check(launch.rope(rope), where("RoPE and KV write"))) return err;

    if (shape.decode_tokens > 0) {
      DecodeAttentionParams da;
      da.q = act.qkv;
      da.out = act.attn;
      da.q_stride = qkv_width;
      da.out_stride = qd;
      da.k_cache = k_layer;
      da.v_cache = v_layer;
      da.tokens = input(L.decode_rows);
      da.positions = input(L.positions);
      da.block_tables = input(L.block_tables);
      da.table_offset = input(L.token_table_offset);
      da.num_tokens = shape.decode_tokens;
      da.n_heads = s.heads;
      da.kv_heads = s.kv_heads;
      da.head_dim = s.head_dim;
      da.block_size = b.block_size;
      da.max_context = shape.decode_max_context;
      da.scale = attn_scale;
      da.workspace = act.decode_workspace;
      da.workspace_tokens = act.decode_workspace_tokens;
      if (!check(launch.decode_attention(da), where("decode attention"))) return err;
    }
    if (shape.prefill_seqs > 0) {
      PrefillAttentionParams pa;
      pa.q = act.qkv;
      pa.out = act.attn;
      pa.q_stride = qkv_width;
      pa.out_stride = qd;
      pa.k_cache = k_layer;
      pa.v_cache = v_layer;
      pa.token_begin = input(L.prefill_token_begin);
      pa.token_count = input(L.prefill_token_count);
      pa.start_pos = input(L.prefill_start_pos);
      pa.table_offset = input(L.prefill_table_offset);
      pa.block_tables = input(L.block_tables);
      pa.num_seqs = shape.prefill_seqs;
      pa.max_tokens_per_seq = shape.prefill_max_tokens;
      pa.n_heads = s.heads;
      pa.kv_heads = s.kv_heads;
      pa.head_dim = s.head_dim;
      pa.block_size = b.block_size;
      pa.scale = attn_scale;
      if (!check(launch.prefill_attention(pa), where("prefill attention"))) return err;
    }

    // The output projection's bias rides on the next norm's residual add.
    if (!gemm(act.attn, W.wo, nullptr, act.delta, t, h, qd, false, "output projection", li)) return err;
    norm.delta = act.delta;
    norm.delta_bias = W.bo;
    norm.weight = W.ffn_norm;
    if (!check(launch.rmsnorm(norm), where("MLP rmsnorm"))) return err;

    if (!gemm(act.normed, W.gate_up, nullptr, act.gate_up, t, 2 * s.ffn, h, false, "gate/up", li)) return err;
    SwiGluParams sw;
    sw.gate_up = act.gate_up;
    sw.out = act.act;
    sw.num_tokens = t;
    sw.ffn = s.ffn;
    if (!check(launch.swiglu(sw), where("SwiGLU"))) return err;
    if (!gemm(act.act, W.down, nullptr, act.delta, t, h, s.ffn, false, "down", li)) return err;
  }

  RmsNormParams final_norm;
  final_norm.residual = act.residual;
  final_norm.delta = act.delta;
  final_norm.weight = weights.final_norm;
  final_norm.out = act.normed;
  final_norm.rows = t;
  final_norm.hidden = h;
  final_norm.eps = s.rms_eps;
  if (!check(launch.rmsnorm(final_norm), [] { return std::string("final rmsnorm"); })) return err;
  if (shape.logit_rows == 0) return err;

  GatherRowsParams gather;
  gather.in = act.normed;
  gather.out = act.final_rows;
  gather.rows = input(L.logit_rows);
  gather.num_rows = shape.logit_rows;
  gather.width = h;
  gather.in_stride = h;
  gather.out_stride = h;
  if (!check(launch.gather_rows(gather), [] { return std::string("gathering the logits rows"); })) return err;
  if (!gemm(act.final_rows, weights.lm_head, nullptr, act.logits, shape.logit_rows, s.vocab, h, true, "LM head",
            s.layers))
    return err;
  if (!b.sample) return err;

  SamplingParams sp;
  sp.logits = act.logits;
  sp.logits_stride = s.vocab;
  sp.rows = reinterpret_cast<const RowSampling*>(act.inputs + L.row_sampling);
  sp.out = act.sampled;
  sp.num_rows = shape.logit_rows;
  sp.vocab = s.vocab;
  sp.workspace = act.sampling_workspace;
  check(launch.sampling(sp), [] { return std::string("sampling"); });
  return err;
}

}  // namespace sluice::cuda
