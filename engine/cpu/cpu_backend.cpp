#include "engine/cpu/cpu_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <system_error>

#include "engine/backend/plan_check.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace sluice {

namespace {

constexpr unsigned kMaxThreads = 256;

BackendError plan_error(std::string message) {
  return BackendError{BackendError::Kind::invalid_plan, std::move(message)};
}

// Rows per chunk so one chunk does at least ~64k multiply-adds (fewer pool hand-offs for small matrices),
// rounded to the 4-row decode tile.
std::size_t matmul_grain(std::uint32_t cols, std::uint32_t n_tokens) {
  const std::size_t work_per_row = std::size_t{cols} * std::max<std::uint32_t>(n_tokens, 1);
  std::size_t g = (std::size_t{1} << 16) / std::max<std::size_t>(work_per_row, 1);
  g = std::clamp<std::size_t>(g, 4, 64);
  return (g + 3) / 4 * 4;
}

}  // namespace

CpuBackend::CpuBackend(std::shared_ptr<const ModelWeights> weights, const CpuBackendOptions& options)
    : weights_(std::move(weights)), options_(options), pool_(options.threads) {}

Result<std::unique_ptr<CpuBackend>, BackendError> CpuBackend::create(std::shared_ptr<const ModelWeights> weights,
                                                                     const CpuBackendOptions& options) {
  const auto config_error = [](std::string m) {
    return fail(BackendError{BackendError::Kind::invalid_config, std::move(m)});
  };
  if (weights == nullptr) return config_error("cpu backend: no model weights");
  if (options.threads == 0 || options.threads > kMaxThreads) {
    return config_error(fmt::format("cpu backend: threads must be in [1, {}], got {}", kMaxThreads, options.threads));
  }
  if (options.block_size == 0 || options.block_size > 1024) {
    return config_error(fmt::format("cpu backend: block_size must be in [1, 1024], got {}", options.block_size));
  }
  if (options.max_batched_tokens == 0 || options.max_batched_tokens > (1u << 20)) {
    return config_error("cpu backend: max_batched_tokens must be in [1, 2^20]");
  }
  const ModelSpec& spec = weights->spec();
  const std::uint32_t blocks = kv_blocks_for_budget(spec, options.block_size, sizeof(float), options.kv_cache_bytes);
  if (blocks == 0) {
    return fail(BackendError{
        BackendError::Kind::out_of_memory,
        fmt::format("cpu backend: kv_cache_bytes = {} holds no block of {} tokens ({} bytes needed); raise "
                    "kv_cache_bytes or lower block_size",
                    options.kv_cache_bytes, options.block_size, kv_bytes_per_block(spec, options.block_size, 4))});
  }
  std::unique_ptr<CpuBackend> b;
  try {
    b.reset(new CpuBackend(std::move(weights), options));
    b->layout_ = KvCacheLayout{spec.layers, blocks, spec.kv_heads, options.block_size, spec.head_dim, 4};
    b->inv_freq_ = rope_inv_freq(spec);
    b->k_cache_.reset(new float[b->layout_.total_elements()]);
    b->v_cache_.reset(new float[b->layout_.total_elements()]);
    b->thread_scratch_stride_ = std::max<std::size_t>(spec.max_position, spec.head_dim) + 16;
    b->thread_scratch_.assign(b->thread_scratch_stride_ * b->pool_.size(), 0.0f);
  } catch (const std::bad_alloc&) {
    return fail(BackendError{BackendError::Kind::out_of_memory,
                             fmt::format("cpu backend: cannot allocate a KV cache of {} bytes; lower kv_cache_bytes",
                                         options.kv_cache_bytes)});
  } catch (const std::system_error& e) {
    return fail(
        BackendError{BackendError::Kind::out_of_memory,
                     fmt::format("cpu backend: cannot start {} compute threads: {}", options.threads, e.what())});
  }
  return b;
}

Status<BackendError> CpuBackend::validate(const StepPlan& plan) const {
  const ModelSpec& spec = weights_->spec();
  const std::uint32_t n = plan.num_tokens();
  if (n > options_.max_batched_tokens) {
    return fail(plan_error(
        fmt::format("plan has {} tokens, more than max_batched_tokens = {}", n, options_.max_batched_tokens)));
  }
  const StepPlanLimits& lim = plan.limits();
  if (plan.num_seqs() > lim.max_seqs || n > lim.max_tokens || plan.num_table_entries() > lim.max_table_entries ||
      plan.seq_ids.size() < plan.num_seqs() || plan.token_ids.size() < n ||
      plan.block_ids.size() < plan.num_table_entries()) {
    return fail(plan_error("plan counts exceed its arrays"));
  }
  return check_plan_sequences(
      plan, PlanBounds{spec.max_position, "the model's ", " positions", layout_.block_size, layout_.num_blocks,
                       static_cast<std::uint32_t>(spec.vocab)});
}

void CpuBackend::ensure_capacity(std::uint32_t tokens, std::uint32_t rows) {
  const ModelSpec& s = weights_->spec();
  if (tokens > token_capacity_) {
    const std::size_t t = tokens;
    x_.resize(t * s.hidden);
    xn_.resize(t * s.hidden);
    q_.resize(t * s.q_dim());
    k_.resize(t * s.kv_dim());
    v_.resize(t * s.kv_dim());
    attn_.resize(t * s.q_dim());
    ffn_.resize(t * s.ffn);
    table_offset_.resize(t);
    token_capacity_ = tokens;
  }
  if (rows > out_seq_index_.size()) {
    final_x_.resize(std::size_t{rows} * s.hidden);
    logits_.resize(std::size_t{rows} * s.vocab);
    out_seq_index_.resize(rows);
    out_seq_ids_.resize(rows);
    out_token_.resize(rows);
  }
}

void CpuBackend::matmul(const kernels::WeightView& w, const float* x, std::size_t xs, std::uint32_t n, float* y,
                        std::size_t ys, const float* bias, bool accumulate) {
  kernels::MatmulParams p{w, x, xs, n, y, ys, bias, accumulate};
  pool_.parallel_for(w.rows, matmul_grain(w.cols, n), [&](std::size_t b, std::size_t e, unsigned) {
    kernels::matmul_rows(p, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e));
  });
}

void CpuBackend::forward_layer(std::uint32_t li, const StepPlan& plan, std::uint32_t n) {
  const ModelSpec& s = weights_->spec();
  const LayerWeights& L = weights_->layers()[li];
  const std::size_t H = s.hidden, QD = s.q_dim(), KD = s.kv_dim();
  const std::size_t norm_grain = std::max<std::size_t>(1, 8192 / H);

  kernels::RmsNormParams norm{x_.data(), H, xn_.data(), H, L.attn_norm, s.hidden, s.rms_eps};
  pool_.parallel_for(n, norm_grain, [&](std::size_t b, std::size_t e, unsigned) {
    kernels::rmsnorm_rows(norm, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e));
  });

  // Q, K and V as one job over their concatenated output rows.
  const kernels::MatmulParams pq{L.wq, xn_.data(), H, n, q_.data(), QD, L.bq, false};
  const kernels::MatmulParams pk{L.wk, xn_.data(), H, n, k_.data(), KD, L.bk, false};
  const kernels::MatmulParams pv{L.wv, xn_.data(), H, n, v_.data(), KD, L.bv, false};
  const std::uint32_t qr = L.wq.rows, kr = L.wk.rows;
  pool_.parallel_for(std::size_t{qr} + 2 * kr, matmul_grain(s.hidden, n), [&](std::size_t b, std::size_t e, unsigned) {
    const auto run = [&](const kernels::MatmulParams& p, std::size_t lo, std::size_t hi) {
      const std::size_t rb = std::max(b, lo), re = std::min(e, hi);
      if (rb < re) kernels::matmul_rows(p, static_cast<std::uint32_t>(rb - lo), static_cast<std::uint32_t>(re - lo));
    };
    run(pq, 0, qr);
    run(pk, qr, qr + kr);
    run(pv, qr + kr, qr + 2 * kr);
  });

  // RoPE, then K/V into the pages of each token's sequence.
  const kernels::RopeLayout layout =
      s.rope.style == RopeStyle::interleaved ? kernels::RopeLayout::interleaved : kernels::RopeLayout::half;
  const kernels::RopeParams rq{q_.data(), QD, s.heads, s.head_dim, plan.positions.data(), inv_freq_.data(), layout};
  const kernels::RopeParams rk{k_.data(), KD, s.kv_heads, s.head_dim, plan.positions.data(), inv_freq_.data(), layout};
  float* k_layer = k_cache_.get() + std::size_t{li} * layout_.layer_elements();
  float* v_layer = v_cache_.get() + std::size_t{li} * layout_.layer_elements();
  pool_.parallel_for(n, 4, [&](std::size_t b, std::size_t e, unsigned w) {
    float* scratch = thread_scratch_.data() + w * thread_scratch_stride_;
    kernels::rope_rows(rq, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e), scratch);
    kernels::rope_rows(rk, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e), scratch);
    for (std::size_t t = b; t < e; ++t) {
      const auto pos = static_cast<std::uint32_t>(plan.positions[t]);
      const auto block = static_cast<std::uint32_t>(plan.block_ids[table_offset_[t] + pos / layout_.block_size]);
      const std::uint32_t slot = pos % layout_.block_size;
      for (std::uint32_t g = 0; g < s.kv_heads; ++g) {
        const std::size_t off = layout_.offset(0, block, g, slot);
        std::memcpy(k_layer + off, k_.data() + t * KD + g * s.head_dim, s.head_dim * sizeof(float));
        std::memcpy(v_layer + off, v_.data() + t * KD + g * s.head_dim, s.head_dim * sizeof(float));
      }
    }
  });

  kernels::PagedAttentionParams ap;
  ap.q = q_.data();
  ap.q_stride = QD;
  ap.out = attn_.data();
  ap.out_stride = QD;
  ap.k_cache = k_layer;
  ap.v_cache = v_layer;
  ap.n_heads = s.heads;
  ap.kv_heads = s.kv_heads;
  ap.head_dim = s.head_dim;
  ap.block_size = layout_.block_size;
  ap.positions = plan.positions.data();
  ap.block_table = plan.block_ids.data();
  ap.block_table_offset = table_offset_.data();
  ap.sliding_window = s.sliding_window;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  pool_.parallel_for(std::size_t{n} * s.heads, 1, [&](std::size_t b, std::size_t e, unsigned w) {
    kernels::paged_attention_rows(ap, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e),
                                  thread_scratch_.data() + w * thread_scratch_stride_);
  });

  matmul(L.wo, attn_.data(), QD, n, x_.data(), H, L.bo, true);

  norm.weight = L.ffn_norm;
  pool_.parallel_for(n, norm_grain, [&](std::size_t b, std::size_t e, unsigned) {
    kernels::rmsnorm_rows(norm, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e));
  });
  const kernels::SwiGluParams sp{L.gate, L.up, xn_.data(), H, n, ffn_.data(), s.ffn};
  pool_.parallel_for(s.ffn, matmul_grain(s.hidden, n), [&](std::size_t b, std::size_t e, unsigned) {
    kernels::swiglu_rows(sp, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e));
  });
  matmul(L.down, ffn_.data(), s.ffn, n, x_.data(), H, nullptr, true);
}

void CpuBackend::compute_logits(const StepPlan& plan) {
  const ModelSpec& s = weights_->spec();
  std::uint32_t m = 0;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    if (plan.wants_logits[i] == 0) continue;
    out_seq_index_[m] = i;
    out_seq_ids_[m] = plan.seq_ids[i];
    out_token_[m] = plan.token_begin[i] + plan.token_count[i] - 1;
    ++m;
  }
  if (m == 0) return;
  const kernels::RmsNormParams norm{x_.data(), s.hidden, final_x_.data(), s.hidden, weights_->final_norm(),
                                    s.hidden,  s.rms_eps};
  for (std::uint32_t r = 0; r < m; ++r) {
    kernels::RmsNormParams one = norm;
    one.x = x_.data() + std::size_t{out_token_[r]} * s.hidden;
    one.y = final_x_.data() + std::size_t{r} * s.hidden;
    kernels::rmsnorm_rows(one, 0, 1);
  }
  matmul(weights_->lm_head(), final_x_.data(), s.hidden, m, logits_.data(), s.vocab, nullptr, false);
}

Result<StepOutput, BackendError> CpuBackend::execute(const StepPlan& plan) {
  auto ok = validate(plan);
  if (!ok) return fail(std::move(ok.error()));
  const ModelSpec& s = weights_->spec();
  const std::uint32_t n = plan.num_tokens();
  std::uint32_t rows = 0;
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) rows += plan.wants_logits[i] != 0 ? 1 : 0;
  StepOutput out;
  out.vocab = s.vocab;
  if (n == 0) return out;
  try {
    ensure_capacity(n, rows);
  } catch (const std::bad_alloc&) {
    return fail(BackendError{BackendError::Kind::out_of_memory,
                             fmt::format("cpu backend: cannot allocate activations for {} tokens", n)});
  }
  for (std::uint32_t i = 0; i < plan.num_seqs(); ++i) {
    for (std::uint32_t k = 0; k < plan.token_count[i]; ++k)
      table_offset_[plan.token_begin[i] + k] = plan.table_begin[i];
  }

  const kernels::WeightView& emb = weights_->token_embedding();
  pool_.parallel_for(n, 16, [&](std::size_t b, std::size_t e, unsigned) {
    for (std::size_t t = b; t < e; ++t) {
      kernels::dequantize_row(emb, static_cast<std::uint32_t>(plan.token_ids[t]), x_.data() + t * s.hidden);
    }
  });
  for (std::uint32_t l = 0; l < s.layers; ++l) forward_layer(l, plan, n);
  compute_logits(plan);

  out.num_rows = rows;
  out.seq_index = {out_seq_index_.data(), rows};
  out.seq_ids = {out_seq_ids_.data(), rows};
  out.logits = {logits_.data(), std::size_t{rows} * s.vocab};
  return out;
}

}  // namespace sluice
