#include "engine/cuda/cuda_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "kernels/cpu/weight_view.h"
#include "kernels/cuda/device_error.h"
#include "kernels/cuda/elementwise.h"

namespace sluice::cuda {

namespace {

// Both passes (sizing and placement) go through this one function, so they cannot disagree.
void carve_weights(Carver& c, const ModelSpec& s, bool tied, DeviceWeights& w) {
  const std::size_t h = s.hidden, qkv = std::size_t{s.q_dim()} + 2 * std::size_t{s.kv_dim()};
  w.embedding = c.take<__nv_bfloat16>(std::size_t{s.vocab} * h);
  w.lm_head = tied ? w.embedding : c.take<__nv_bfloat16>(std::size_t{s.vocab} * h);
  w.final_norm = c.take<__nv_bfloat16>(h);
  w.inv_freq = c.take<float>(s.head_dim / 2);
  w.layers.assign(s.layers, DeviceLayer{});
  for (DeviceLayer& l : w.layers) {
    l.qkv = c.take<__nv_bfloat16>(qkv * h);
    l.qkv_bias = s.qkv_bias ? c.take<__nv_bfloat16>(qkv) : nullptr;
    l.wo = c.take<__nv_bfloat16>(h * s.q_dim());
    l.bo = s.output_bias ? c.take<__nv_bfloat16>(h) : nullptr;
    l.gate_up = c.take<__nv_bfloat16>(2 * std::size_t{s.ffn} * h);
    l.down = c.take<__nv_bfloat16>(h * s.ffn);
    l.attn_norm = c.take<__nv_bfloat16>(h);
    l.ffn_norm = c.take<__nv_bfloat16>(h);
  }
}

// Round to nearest even, as __float2bfloat16 does; NaN stays a (quiet) NaN.
std::uint16_t bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// Streams bf16 rows to the device through two pinned buffers: one fills on the host while the other copies.
// Rows bound for consecutive device addresses are merged into one copy.
class Uploader final : public WeightSink {
 public:
  static constexpr std::size_t kBufferElems = std::size_t{8} << 20;  // 16 MiB of bf16 each

  explicit Uploader(cudaStream_t stream) : stream_(stream) {}
  ~Uploader() {
    for (cudaEvent_t e : done_)
      if (e != nullptr) cudaEventDestroy(e);
  }
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  Status<std::string> init() {
    for (int i = 0; i < 2; ++i) {
      if (cudaError_t err = buf_[i].allocate(kBufferElems * 2); err != cudaSuccess)
        return fail("pinned upload buffer: " + error_text(err));
      if (cudaError_t err = cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming); err != cudaSuccess)
        return fail("upload event: " + error_text(err));
    }
    return Ok{};
  }

  Status<std::string> put(__nv_bfloat16* dst, const float* src, std::size_t count) override {
    while (count > 0) {
      if (used_ == kBufferElems || (used_ > 0 && dst != run_dst_ + used_)) {
        if (auto st = flush(); !st) return st;
      }
      if (used_ == 0) run_dst_ = dst;
      const std::size_t n = std::min(count, kBufferElems - used_);
      auto* out = reinterpret_cast<std::uint16_t*>(buf_[cur_].data()) + used_;
      for (std::size_t i = 0; i < n; ++i) out[i] = bf16_bits(src[i]);
      used_ += n;
      dst += n;
      src += n;
      count -= n;
    }
    return Ok{};
  }

  Status<std::string> finish() {
    if (auto st = flush(); !st) return st;
    if (const cudaError_t err = cudaStreamSynchronize(stream_); err != cudaSuccess)
      return fail("weight upload: " + error_text(err));
    return Ok{};
  }

 private:
  Status<std::string> flush() {
    if (used_ == 0) return Ok{};
    cudaError_t err = cudaMemcpyAsync(run_dst_, buf_[cur_].data(), used_ * 2, cudaMemcpyHostToDevice, stream_);
    if (err == cudaSuccess) err = cudaEventRecord(done_[cur_], stream_);
    cur_ ^= 1;
    used_ = 0;
    // The other buffer may still be copying from its last flush; wait before overwriting it.
    if (err == cudaSuccess) err = cudaEventSynchronize(done_[cur_]);
    if (err != cudaSuccess) return fail("weight upload: " + error_text(err));
    return Ok{};
  }

  cudaStream_t stream_;
  PinnedAllocation buf_[2];
  cudaEvent_t done_[2] = {nullptr, nullptr};
  int cur_ = 0;
  std::size_t used_ = 0;
  __nv_bfloat16* run_dst_ = nullptr;
};

Status<std::string> put_matrix(WeightSink& up, const kernels::WeightView& w, __nv_bfloat16* dst,
                               std::vector<float>& row, std::string_view name) {
  if (w.data == nullptr) return fail(fmt::format("weight {} is missing", name));
  row.resize(w.cols);
  for (std::uint32_t r = 0; r < w.rows; ++r) {
    kernels::dequantize_row(w, r, row.data());
    if (auto st = up.put(dst + std::size_t{r} * w.cols, row.data(), w.cols); !st) return st;
  }
  return Ok{};
}

Status<std::string> put_vector(WeightSink& up, const float* v, std::size_t n, __nv_bfloat16* dst,
                               std::string_view name) {
  if (v == nullptr) return fail(fmt::format("weight {} is missing", name));
  return up.put(dst, v, n);
}

}  // namespace

cudaError_t allocate_device_weights(const ModelSpec& spec, bool tied, DeviceWeights& out) {
  if (const cudaError_t err = out.arena.allocate(device_weight_bytes(spec, tied)); err != cudaSuccess) return err;
  place_weights(spec, tied, out.arena.data(), out);
  return cudaSuccess;
}

void place_weights(const ModelSpec& spec, bool tied, std::byte* base, DeviceWeights& out) {
  Carver place(base);
  carve_weights(place, spec, tied, out);
}

std::uint64_t device_weight_bytes(const ModelSpec& spec, bool tied) {
  Carver measure;
  DeviceWeights w;
  carve_weights(measure, spec, tied, w);
  return measure.size();
}

bool lm_head_is_embedding(const ModelWeights& weights) {
  const kernels::WeightView& e = weights.token_embedding();
  const kernels::WeightView& h = weights.lm_head();
  return e.data == h.data && e.type == h.type && e.rows == h.rows && e.cols == h.cols && e.row_bytes == h.row_bytes;
}

Status<std::string> stream_weights(const ModelWeights& weights, const DeviceWeights& out, WeightSink& up) {
  const ModelSpec& s = weights.spec();
  const bool tied = out.lm_head == out.embedding;
  if (out.embedding == nullptr || out.layers.size() != s.layers) return fail(std::string("weights not placed"));
  std::vector<float> row;
  const std::size_t h = s.hidden, q = s.q_dim(), kv = s.kv_dim();

  if (auto st = put_matrix(up, weights.token_embedding(), out.embedding, row, "token_embedding"); !st) return st;
  if (!tied) {
    if (auto st = put_matrix(up, weights.lm_head(), out.lm_head, row, "lm_head"); !st) return st;
  }
  if (auto st = put_vector(up, weights.final_norm(), h, out.final_norm, "final_norm"); !st) return st;
  for (std::uint32_t i = 0; i < s.layers; ++i) {
    const LayerWeights& L = weights.layers()[i];
    const DeviceLayer& d = out.layers[i];
    const auto name = [i](std::string_view what) { return fmt::format("layer {} {}", i, what); };
    // Q, K and V rows stacked: one GEMM produces [q | k | v] per token.
    Status<std::string> st = put_matrix(up, L.wq, d.qkv, row, name("wq"));
    if (st) st = put_matrix(up, L.wk, d.qkv + q * h, row, name("wk"));
    if (st) st = put_matrix(up, L.wv, d.qkv + (q + kv) * h, row, name("wv"));
    if (st && s.qkv_bias) {
      st = put_vector(up, L.bq, q, d.qkv_bias, name("bq"));
      if (st) st = put_vector(up, L.bk, kv, d.qkv_bias + q, name("bk"));
      if (st) st = put_vector(up, L.bv, kv, d.qkv_bias + q + kv, name("bv"));
    }
    if (st) st = put_matrix(up, L.wo, d.wo, row, name("wo"));
    if (st && s.output_bias) st = put_vector(up, L.bo, h, d.bo, name("bo"));
    if (st) st = put_matrix(up, L.gate, d.gate_up, row, name("gate"));
    if (st) st = put_matrix(up, L.up, d.gate_up + std::size_t{s.ffn} * h, row, name("up"));
    if (st) st = put_matrix(up, L.down, d.down, row, name("down"));
    if (st) st = put_vector(up, L.attn_norm, h, d.attn_norm, name("attn_norm"));
    if (st) st = put_vector(up, L.ffn_norm, h, d.ffn_norm, name("ffn_norm"));
    if (!st) return st;
  }
  return Ok{};
}

Status<std::string> upload_weights(const ModelWeights& weights, cudaStream_t stream, DeviceWeights& out) {
  if (out.arena.data() == nullptr) return fail(std::string("weights not allocated"));
  Uploader up(stream);
  if (auto st = up.init(); !st) return st;
  if (auto st = stream_weights(weights, out, up); !st) return st;
  if (auto st = up.finish(); !st) return st;
  const std::vector<float> inv_freq = rope_inv_freq(weights.spec());
  if (const cudaError_t err =
          cudaMemcpy(out.inv_freq, inv_freq.data(), inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice);
      err != cudaSuccess) {
    return fail("uploading the RoPE frequencies: " + error_text(err));
  }
  return Ok{};
}

Status<std::string> fill_random_weights(const ModelSpec& s, std::uint64_t seed, cudaStream_t stream,
                                        DeviceWeights& out) {
  if (out.arena.data() == nullptr || out.layers.size() != s.layers) return fail(std::string("weights not allocated"));
  std::uint64_t tensor = 0;
  cudaError_t err = cudaSuccess;
  const auto fill = [&](__nv_bfloat16* p, std::size_t count, float scale) {
    if (err != cudaSuccess || p == nullptr) return;
    ++tensor;
    // A different stream per tensor: the seed mixed with the tensor's ordinal.
    RandomFillParams rp{p, count, seed ^ (tensor * 0x9E3779B97F4A7C15ull), scale};
    err = launch_random_fill(rp, stream);
  };
  const auto fan_in = [](std::size_t n) { return static_cast<float>(std::sqrt(3.0 / static_cast<double>(n))); };
  const std::size_t h = s.hidden, qkv = std::size_t{s.q_dim()} + 2 * std::size_t{s.kv_dim()};
  fill(out.embedding, std::size_t{s.vocab} * h, 1.0f);
  if (out.lm_head != out.embedding) fill(out.lm_head, std::size_t{s.vocab} * h, fan_in(h));
  for (DeviceLayer& l : out.layers) {
    fill(l.qkv, qkv * h, fan_in(h));
    fill(l.qkv_bias, qkv, 0.02f);
    fill(l.wo, h * s.q_dim(), fan_in(s.q_dim()));
    fill(l.bo, h, 0.02f);
    fill(l.gate_up, 2 * std::size_t{s.ffn} * h, fan_in(h));
    fill(l.down, h * s.ffn, fan_in(s.ffn));
  }
  if (err != cudaSuccess) return fail("random weight fill: " + error_text(err));
  // Norm weights of one: the plain RMSNorm.
  const std::vector<std::uint16_t> ones(h, bf16_bits(1.0f));
  const auto put_ones = [&](__nv_bfloat16* p) {
    if (err == cudaSuccess) err = cudaMemcpyAsync(p, ones.data(), h * 2, cudaMemcpyHostToDevice, stream);
  };
  put_ones(out.final_norm);
  for (DeviceLayer& l : out.layers) {
    put_ones(l.attn_norm);
    put_ones(l.ffn_norm);
  }
  const std::vector<float> inv_freq = rope_inv_freq(s);
  if (err == cudaSuccess)
    err =
        cudaMemcpyAsync(out.inv_freq, inv_freq.data(), inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice, stream);
  // The host vectors above must outlive the copies.
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) return fail("random weight fill: " + error_text(err));
  return Ok{};
}

}  // namespace sluice::cuda
